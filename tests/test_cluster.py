"""The cluster's coordination on a real PostgreSQL server: claims never shared, leases that
expire and are renewed (and outlast a renewal cut off or stalled), a holder that knows when
it can no longer prove a lease (and can after a slow claim), host slots counted across
nodes (and a node holding none of a full host's slots first in line for the next, for as
long as it asks, without stalling others' claims elsewhere; added to an earlier version's
tables without a deadlock), failures said at WARNING (once a minute, also when they flap)
and counted, the publisher lock passing on when its holder dies, nodes
refusing a name in use, a server restart survived, and /healthz on the database's clock
(and healthy on a node that failed to publish once it is no longer the publisher)."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from aggregator import cluster
from aggregator.cluster import (
    PUBLISHER_LOCK,
    QUEUE_HOLD,
    Candidate,
    Failures,
    Node,
    beat_interval,
    choose,
    lease_timeout,
    node_name,
    source_weight,
    status,
)
from aggregator.config import LEASE_BOUNDS, SourceConfig, cluster_config, load_config
from aggregator.errors import ConfigError, StoreError
from aggregator.schedule import Scheduler, now_utc
from aggregator.sources.http import WebClient
from aggregator.store import Store
from tests.conftest import SEED_DOC
from tests.feedfarm import FeedFarm
from tests.localserver import serve_in_thread
from tests.pgserver import PgServer
from tests.test_regenerate import write_config

REPO = Path(__file__).resolve().parent.parent


def feed(name: str, host: str = "news.example.com.tr", **kw: object) -> SourceConfig:
    return SourceConfig(name=name, type="feed", every=60.0, url=f"https://{host}/{name}.xml",
                        **kw)  # type: ignore[arg-type]  # fmt: skip


def seeds(name: str) -> SourceConfig:
    return SourceConfig(name=name, type="seeds", every=60.0, path=Path("/nonexistent"))


def now_due(sources: list[SourceConfig]) -> tuple[dict[str, float], dict[str, float]]:
    return {s.name: 0.0 for s in sources}, {s.name: 86400.0 for s in sources}


async def joined(url: str, name: str, sources: list[SourceConfig], *, lease: float = 30.0,
                 per_host: int = 6) -> Node:  # fmt: skip
    node = Node(url, name, lease=lease, per_host=per_host)
    await node.join(sources, *now_due(sources))
    return node


# -- pure decisions ----------------------------------------------------------------------
def test_choose_keeps_due_order_capacity_and_host_slots() -> None:
    c = [Candidate("a", "h1", 1), Candidate("b", "h1", 1), Candidate("c", "h2", 1),
         Candidate("d", "", 1), Candidate("e", "h1", 1)]  # fmt: skip
    assert choose(c, {}, per_host=2, capacity=10) == ["a", "b", "c", "d"]
    assert choose(c, {"h1": 1}, per_host=2, capacity=10) == ["a", "c", "d"]
    assert choose(c, {}, per_host=2, capacity=2) == ["a", "b"]
    heavy = [Candidate("x", "h1", 6), Candidate("y", "h1", 1)]
    assert choose(heavy, {}, per_host=6, capacity=5) == ["x"]  # takes every slot of h1
    assert choose(heavy, {"h1": 1}, per_host=6, capacity=5) == ["y"]


def test_weights_and_node_names() -> None:
    assert source_weight(feed("a"), 6) == 1
    assert source_weight(feed("a", fulltext=True), 6) == 6
    assert node_name("web-1.example.com", 42) == "web-1-42"
    assert node_name("bad host!", 7) == "bad-host-7"
    assert len(node_name("x" * 200, 123456)) == 64


def test_every_allowed_lease_outlasts_a_renewal_cut_off() -> None:
    """Renewals start a beat apart and are cut off after `lease_timeout`: one that fails is
    followed by one that commits before the lease runs out, at every lease the config takes;
    a shorter lease (where a try would have under a second) is refused, naming the key."""
    low, high = LEASE_BOUNDS
    for lease in (low, 5.0, 10.0, 20.0, 30.0, 40.0, 60.0, 600.0, high):
        assert 2 * beat_interval(lease) + lease_timeout(lease) < lease, lease
        assert lease_timeout(lease) >= 1.0
    assert cluster_config({"lease": "4s"}).lease == 4.0
    with pytest.raises(ConfigError, match="cluster.lease: must be between 4s and 3600s"):
        cluster_config({"lease": "3s"})


# -- claims and leases -------------------------------------------------------------------
def test_nodes_claiming_at_once_never_take_the_same_source(pg_server: PgServer) -> None:
    """Eight nodes, each in a thread of its own, claim 400 due seed folders in small bites:
    every source is taken exactly once."""
    url = pg_server.database()
    sources = [seeds(f"s{i}") for i in range(400)]
    taken: list[str] = []
    lock = threading.Lock()

    def node_thread(i: int) -> None:
        async def work() -> None:
            node = await joined(url, f"n{i}", sources)
            while True:
                got = await node.claim(7)
                if not got:
                    break
                with lock:
                    taken.extend(got)
                for name in got:
                    await node.release(name, 3600.0)  # not due again during the test
            await node.leave()

        asyncio.run(work())

    threads = [threading.Thread(target=node_thread, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    counts = Counter(taken)
    assert set(counts) == {s.name for s in sources}
    assert max(counts.values()) == 1


def test_a_lease_not_renewed_expires_and_another_node_takes_the_source(
    pg_server: PgServer,
) -> None:
    url = pg_server.database()
    sources = [seeds("a"), seeds("b")]

    async def scenario() -> None:
        first = await joined(url, "first", sources, lease=2.0)
        second = await joined(url, "second", sources, lease=2.0)
        assert sorted(await first.claim(10)) == ["a", "b"]
        # the holder renews by itself: nobody else gets them past the lease
        for _ in range(8):
            await asyncio.sleep(0.3)
            assert await second.claim(10) == []
        # the holder goes silent (as if killed): the leases run out
        await first.close()
        started = time.monotonic()
        while not (got := await second.claim(10)):
            assert time.monotonic() - started < 4.0
            await asyncio.sleep(0.1)
        assert sorted(got) == ["a", "b"]
        assert 0.5 < time.monotonic() - started
        await first.leave()
        await second.leave()

    asyncio.run(scenario())


@asynccontextmanager
async def renewals_blocked(url: str) -> AsyncIterator[None]:
    """The heartbeats' table locked by another session: each renewal waits until it is cut
    off (as on a database too slow to answer within a lease); claims go on. The lock is
    taken off the event loop: a renewal in flight holds a row of that table until the loop
    lets it commit, so waiting for the lock on the loop's thread would wait for ever."""
    conn = await asyncio.to_thread(psycopg.connect, url)
    try:
        await asyncio.to_thread(conn.execute, "LOCK TABLE cluster_nodes IN EXCLUSIVE MODE")
        yield
        conn.rollback()
    finally:
        conn.close()


def test_a_renewal_cut_off_keeps_the_lease_and_a_holder_never_outlasts_its_lease(
    pg_server: PgServer,
) -> None:
    """Renewals blocked for less than a beat plus a cut-off: the lease holds, nobody else
    claims. Blocked for good: the holder stops confirming its lease no later than the
    database lets another node claim it, and once the database answers again it learns the
    source is another node's and never fetches it."""
    url = pg_server.database()

    async def scenario() -> None:
        a = await joined(url, "a", [seeds("s")], lease=2.0)  # a beat 0.67 s, cut off at 0.5 s
        b = await joined(url, "b", [seeds("s")], lease=2.0)
        assert await a.claim(5) == ["s"]
        async with renewals_blocked(url):
            for _ in range(8):
                await asyncio.sleep(0.1)
                assert await b.claim(5) == []
        for _ in range(10):
            await asyncio.sleep(0.1)
            assert await b.claim(5) == []
        a.ensure_held("s")
        async with renewals_blocked(url):
            started = time.monotonic()
            while not await b.claim(5):  # once a's lease ran out
                assert time.monotonic() - started < 4.0
                await asyncio.sleep(0.05)
            with pytest.raises(StoreError, match="not confirmed this node's lease"):
                a.ensure_held("s")  # already, before the database answers again
        assert await a.renew()
        with pytest.raises(StoreError, match="not confirmed"):
            a.ensure_held("s")
        assert await a.claim(5) == []
        await a.release("s", 60.0)  # the run a abandoned: b's claim stands
        assert status(url, ["s"], 2.0)["sources"]["s"]["holder"] == "b"
        b.ensure_held("s")
        await a.leave()
        await b.leave()

    asyncio.run(scenario())


@contextmanager
def rows_locked(url: str, sql: str, seconds: float) -> Iterator[None]:
    """Rows locked by another session (as another node's claim holds them) for `seconds`,
    from a thread: the block runs meanwhile."""
    locked = threading.Event()

    def hold() -> None:
        with psycopg.connect(url) as conn:
            conn.execute(sql)
            locked.set()
            time.sleep(seconds)
            conn.rollback()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert locked.wait(10.0)
        yield
    finally:
        thread.join()


def lease_left(url: str, source: str) -> float:
    """Seconds left of a source's lease in the database."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT extract(epoch FROM lease_until - clock_timestamp())"
                           " FROM cluster_sources WHERE source = %s", (source,),
                           ).fetchone()  # fmt: skip
    assert row is not None
    return float(row[0])


def test_a_claim_that_waits_longer_than_the_lease_may_fetch_on_it(pg_server: PgServer) -> None:
    """A claim waits 2.5 s for its host's row (another node's claim), longer than the 2 s
    lease: the lease the database set counts from the claim's UPDATE, and so does the node,
    which fetches on it (it used to count from before the wait and refuse)."""
    url = pg_server.database()

    async def scenario() -> None:
        a = await joined(url, "a", [feed("s")], lease=2.0)
        with rows_locked(url, "SELECT host FROM cluster_hosts FOR UPDATE", 2.5):
            assert await a.claim(1) == ["s"]
            a.ensure_held("s")
        assert lease_left(url, "s") > 0.5
        await a.leave()

    asyncio.run(scenario())


def test_a_renewal_that_waits_for_its_rows_confirms_the_lease_from_its_update(
    pg_server: PgServer,
) -> None:
    """A renewal waits 0.8 s for its source's row (within its 1 s cut-off): the node's lease
    counts from the renewal's UPDATE, so it still holds 4.4 s after the renewal began."""
    url = pg_server.database()

    async def scenario() -> None:
        other = await joined(url, "other", [seeds("s")], lease=4.0)
        a = Node(url, "a", lease=4.0, per_host=6)  # not joined: it renews only when told to
        a.configure(["s"])
        assert await a.claim(1) == ["s"]
        await asyncio.sleep(0.2)
        with rows_locked(url, "SELECT 1 FROM cluster_sources FOR UPDATE", 0.8):
            started = time.monotonic()
            assert await a.renew()
        await asyncio.sleep(started + 4.4 - time.monotonic())
        a.ensure_held("s")
        assert lease_left(url, "s") > 0.0
        await a.leave()
        await other.leave()

    asyncio.run(scenario())


def test_a_renewal_never_waits_for_its_nodes_heartbeat_row(pg_server: PgServer) -> None:
    """The node's heartbeat row is locked for longer than the lease (as by the node's own
    publish record on a stalled connection): its renewals keep the lease all the same."""
    url = pg_server.database()

    async def scenario() -> None:
        a = await joined(url, "a", [seeds("s")], lease=2.0)  # a beat 0.67 s, cut off at 0.5 s
        b = await joined(url, "b", [seeds("s")], lease=2.0)
        assert await a.claim(5) == ["s"]
        with rows_locked(url, "SELECT 1 FROM cluster_nodes WHERE name = 'a' FOR UPDATE", 3.0):
            started = time.monotonic()
            while time.monotonic() - started < 2.8:
                assert await b.claim(5) == []
                await asyncio.sleep(0.1)
            a.ensure_held("s")
        await a.leave()
        await b.leave()

    asyncio.run(scenario())


def leases_backend(url: str, node: str) -> int:
    """The server process of a node's leases connection."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                           " AND application_name = %s", (f"aggregator {node} leases",),
                           ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


def test_a_stalled_renewal_is_cut_off_and_costs_no_lease(pg_server: PgServer) -> None:
    """The server process of a node's leases connection stops answering (SIGSTOP; the
    server answers everything else): the renewal on it is cut off after a quarter of the
    lease and the next one, on a new connection, keeps the lease, so no other node takes
    the source and the holder still proves it; the work connection answers all along, and
    the stalled session ends once its process runs again (nothing left open)."""
    url = pg_server.database()

    async def scenario() -> None:
        a = await joined(url, "a", [seeds("s")], lease=4.0)
        b = await joined(url, "b", [seeds("s")], lease=4.0)
        assert await a.claim(5) == ["s"]
        await asyncio.sleep(0.2)
        stalled = leases_backend(url, "a")
        os.kill(stalled, signal.SIGSTOP)
        try:
            started = time.monotonic()
            while time.monotonic() - started < 6.0:  # longer than the lease
                assert await b.claim(5) == []
                await asyncio.sleep(0.2)
            a.ensure_held("s")
            assert await a.beat() is not None
        finally:
            os.kill(stalled, signal.SIGCONT)
        started = time.monotonic()
        while True:
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                                   (stalled,)).fetchone()  # fmt: skip
            if row is not None and row[0] == 0:
                break
            assert time.monotonic() - started < 5.0, "the stalled session is still open"
            await asyncio.sleep(0.1)
        await a.leave()
        await b.leave()

    asyncio.run(scenario())


def test_a_claim_never_takes_a_source_the_node_still_runs(pg_server: PgServer) -> None:
    """A lease that ran out while its run goes on (renewals failed) makes the source
    claimable again, but not by the node running it: only another node may take it over."""
    url = pg_server.database()

    async def scenario() -> None:
        a = await joined(url, "a", [seeds("s")])
        b = await joined(url, "b", [seeds("s")])
        assert await a.claim(5) == ["s"]
        with psycopg.connect(url) as conn:  # the lease ran out in the database
            conn.execute("UPDATE cluster_sources SET lease_until = now() - interval '1 second'")
        assert await a.claim(5) == []
        assert a.held == {"s"}
        assert await b.claim(5) == ["s"]
        await a.leave()
        await b.leave()

    asyncio.run(scenario())


def test_a_claim_rolled_back_by_a_deadlock_leaves_no_stale_source_list(
    pg_server: PgServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A claim loads the node's source names into its session, then is rolled back (here
    a deadlock with another session): that is no lost database (no warning, the connection
    is kept), and the next claim loads the names again instead of joining those of before
    (a reload's new sources would never be claimed)."""
    url = pg_server.database()
    sources = [feed("a", host="h1.example"), feed("c", host="h3.example")]

    async def scenario() -> None:
        node = await joined(url, "n", sources)
        node.configure(["c"])
        assert await node.claim(1) == ["c"]
        await node.release("c", 3600.0)
        node.configure(["a"])  # as a reload does
        async with await psycopg.AsyncConnection.connect(url) as other:
            await other.execute("SELECT 1 FROM cluster_hosts WHERE host = 'h1.example' FOR UPDATE")

            async def deadlock() -> None:
                """Once the claim holds a's row and waits for h1 (so it waits longer, and
                PostgreSQL makes it the victim), ask for a's row."""
                async with await psycopg.AsyncConnection.connect(url, autocommit=True) as w:
                    started = time.monotonic()
                    while not await (await w.execute(
                        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'aggregator n'"
                        " AND wait_event_type = 'Lock'")).fetchone():  # fmt: skip
                        assert time.monotonic() - started < 5.0
                        await asyncio.sleep(0.02)
                await other.execute("SELECT 1 FROM cluster_sources WHERE source = 'a' FOR UPDATE")

            with caplog.at_level(logging.WARNING, logger="aggregator.cluster"):
                got, _ = await asyncio.gather(node.claim(1), deadlock())
            assert got == []  # the claim was the deadlock's victim
            assert "unreachable" not in caplog.text
            await other.rollback()
        assert await node.claim(1) == ["a"]
        await node.leave()

    asyncio.run(scenario())


def test_a_released_source_is_due_after_its_delay(pg_server: PgServer) -> None:
    url = pg_server.database()

    async def scenario() -> None:
        node = await joined(url, "n", [seeds("a")])
        assert await node.claim(5) == ["a"]
        await node.release("a", 1.0)
        assert node.held == set()
        assert await node.claim(5) == []
        await asyncio.sleep(1.2)
        assert await node.claim(5) == ["a"]
        await node.leave()

    asyncio.run(scenario())


def test_host_slots_hold_across_nodes(pg_server: PgServer) -> None:
    """Twenty feeds of one host, three slots: three nodes together never have more than
    three fetches in flight there; a finished fetch frees its slot before the merge ends."""
    url = pg_server.database()
    sources = [feed(f"f{i}") for i in range(20)] + [feed("other", host="other.example.com")]

    async def scenario() -> None:
        nodes = [await joined(url, f"n{i}", sources, per_host=3) for i in range(3)]
        claims = [await n.claim(10) for n in nodes]
        flat = [name for got in claims for name in got]
        assert len([n for n in flat if n != "other"]) == 3
        assert "other" in flat
        assert await nodes[2].claim(10) == []
        holder = next(n for n, got in zip(nodes, claims, strict=True) if "f0" in got or
                      any(g.startswith("f") for g in got))  # fmt: skip
        done = next(g for g in holder.held if g.startswith("f"))
        await holder.fetched(done)  # merging now: not a request in flight any more
        # the freed slot is the first node's that found the host full (see the next test)
        first_in_line = next(n for n in nodes if n.queued)
        assert len(await first_in_line.claim(10)) == 1
        for n in nodes:
            await n.leave()

    asyncio.run(scenario())


def test_a_node_that_found_a_host_full_gets_its_next_free_slot(pg_server: PgServer) -> None:
    """Node a keeps a host's slots busy and claims again the moment one of its fetches
    ends (as a node's claim loop does); b, polling, found the host full: the freed slot is
    kept for b, so a busy node never starves another of a host for good. A place in line
    not renewed (its node stopped asking) lapses after QUEUE_HOLD; one whose node left
    goes with it."""
    url = pg_server.database()
    sources = [feed(f"f{i}") for i in range(12)]

    async def scenario() -> None:
        a = await joined(url, "a", sources, per_host=2)
        b = await joined(url, "b", sources, per_host=2)
        c = await joined(url, "c", sources, per_host=2)
        first = await a.claim(4)
        assert len(first) == 2
        assert await b.claim(4) == [] and b.queued  # full: b is first in line
        assert await c.claim(4) == [] and not c.queued  # (one node in line at a time)
        await a.fetched(first[0])
        assert await a.claim(4) == [] and not a.queued  # not a's to take again
        assert await c.claim(4) == []  # nor c's: b found it full first
        assert len(await b.claim(4)) == 1
        await a.fetched(first[1])  # b had its turn: whoever asks next may take this one
        assert len(await a.claim(4)) == 1
        assert await c.claim(4) == [] and c.queued
        await a.release(first[0], 3600.0)
        await a.release(first[1], 3600.0)  # (its slot was free already)
        for name in list(b.held):
            await b.fetched(name)
        await asyncio.sleep(QUEUE_HOLD + 0.2)  # c stopped asking: its place lapsed
        assert len(got := await a.claim(1)) == 1
        assert await c.claim(4) == [] and c.queued
        await c.leave()  # and a node that leaves gives its place up at once
        await a.fetched(got[0])
        assert len(await a.claim(1)) == 1
        for n in (a, b):
            await n.leave()

    asyncio.run(scenario())


def turn(url: str, host: str) -> tuple[str | None, int, bool | None] | None:
    """A host's turn in the database: (waiter, slots wanted, not yet lapsed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT waiter, wanted, waiting_until > now() FROM cluster_hosts"
                            " WHERE host = %s", (host,)).fetchone()  # fmt: skip


def test_an_html_source_in_line_keeps_its_turn_while_only_some_slots_are_free(
    pg_server: PgServer,
) -> None:
    """Node c's html source needs both slots of a host that a's feeds keep busy: c's turn
    lasts while it asks, also once one slot frees (too few for it), so a never takes that
    slot back, and c's source runs as soon as the other frees."""
    url = pg_server.database()
    feeds = [feed(f"f{i}", host="h.example") for i in range(6)]
    site = SourceConfig(name="site", type="html", every=60.0, url="https://h.example/news/")

    async def scenario() -> None:
        a = await joined(url, "a", feeds, per_host=2)
        c = await joined(url, "c", [site], per_host=2)
        got = await a.claim(2)
        assert len(got) == 2
        assert await c.claim(4) == [] and c.queued
        assert turn(url, "h.example") == ("c", 2, True)
        await a.fetched(got[0])  # one slot free: c needs both
        for _ in range(int(QUEUE_HOLD / 0.1) + 5):  # c asks as a queued node does
            assert await c.claim(4) == [] and c.queued
            await asyncio.sleep(0.1)
        assert turn(url, "h.example") == ("c", 2, True)
        assert await a.claim(1) == []  # the free slot is kept for c
        await a.fetched(got[1])
        assert await c.claim(4) == ["site"] and not c.queued
        assert turn(url, "h.example") == (None, 0, None)  # c had its turn
        for n in (a, c):
            await n.leave()

    asyncio.run(scenario())


def test_slots_kept_for_a_turn_never_stop_another_nodes_claims_elsewhere(
    pg_server: PgServer,
) -> None:
    """A host whose free slot is kept for node b's turn counts as full for every other node:
    its due sources there do not fill d's claim, which takes the idle host's source."""
    url = pg_server.database()
    feeds = [feed(f"f{i}", host="h.example") for i in range(12)]

    async def scenario() -> None:
        a = await joined(url, "a", feeds, per_host=2)
        b = await joined(url, "b", feeds, per_host=2)
        d = await joined(url, "d", [*feeds, feed("x", host="x.example")], per_host=2)
        got = await a.claim(4)
        assert len(got) == 2
        assert await b.claim(4) == [] and b.queued
        await a.fetched(got[0])  # h.example: one slot in use, one kept for b
        assert await d.claim(4) == ["x"] and not d.queued
        assert len(await b.claim(4)) == 1
        for n in (a, b, d):
            await n.leave()

    asyncio.run(scenario())


def test_an_html_source_fetches_alone_on_its_host(pg_server: PgServer) -> None:
    url = pg_server.database()
    listing = SourceConfig(name="site", type="html", every=60.0, url="https://h.example/news/")
    sources = [listing, feed("f", host="h.example")]

    async def scenario() -> None:
        a = await joined(url, "a", sources, per_host=4)
        b = await joined(url, "b", sources, per_host=4)
        first = await a.claim(10)
        assert len(first) == 1
        assert await b.claim(10) == []  # the html source takes all four slots, or the feed one
        await a.release(first[0], 3600.0)
        assert len(await b.claim(10)) == 1
        await a.leave()
        await b.leave()

    asyncio.run(scenario())


# -- nodes -------------------------------------------------------------------------------
def test_a_live_nodes_name_is_refused_and_a_dead_ones_claims_are_freed(
    pg_server: PgServer,
) -> None:
    url = pg_server.database()

    async def scenario() -> None:
        first = await joined(url, "web1", [seeds("a")], lease=2.0)
        assert await first.claim(5) == ["a"]
        with pytest.raises(ConfigError, match="cluster.node: a node named 'web1' is running"):
            await joined(url, "web1", [seeds("a")], lease=2.0)
        await first.close()  # killed: no heartbeat from now on
        await asyncio.sleep(2.2)  # none for a lease: that run is dead
        again = await joined(url, "web1", [seeds("a")], lease=2.0)
        assert await again.claim(5) == ["a"]  # the dead run's claim was freed at join
        await again.leave()

    asyncio.run(scenario())


def test_a_node_that_left_is_not_written_back_by_a_late_renewal(pg_server: PgServer) -> None:
    """`leave` deletes the node's row while a renewal is due: no renewal may write it back
    after (it would keep the node 'running' for a lease, and a restart under its name would
    be refused)."""
    url = pg_server.database()

    async def scenario() -> None:
        node = await joined(url, "a", [seeds("s")], lease=2.0)  # a renewal every 0.67 s
        async with await psycopg.AsyncConnection.connect(url) as holder, \
                await psycopg.AsyncConnection.connect(url, autocommit=True) as watch:  # fmt: skip
            await holder.execute("SELECT 1 FROM cluster_nodes WHERE name = 'a' FOR UPDATE")
            leaving = asyncio.create_task(node.leave())  # its DELETE waits for the row

            async def waiting(application: str) -> datetime | None:
                row = await (await watch.execute(
                    "SELECT max(query_start) FROM pg_stat_activity WHERE application_name = %s"
                    " AND wait_event_type = 'Lock'", (application,))).fetchone()  # fmt: skip
                return row[0] if row else None

            started = time.monotonic()
            while (deleting := await waiting("aggregator a")) is None:
                assert time.monotonic() - started < 5.0
                await asyncio.sleep(0.02)
            while time.monotonic() - started < 1.5:  # a renewal queued behind the DELETE?
                renewing = await waiting("aggregator a leases")
                if renewing is not None and renewing > deleting:
                    break
                await asyncio.sleep(0.02)
            await holder.rollback()
            await leaving
        await asyncio.sleep(0.3)
        assert status(url, ["s"], 2.0)["nodes"] == []

    asyncio.run(scenario())


def test_status_shows_each_node_and_each_sources_holder(pg_server: PgServer) -> None:
    url = pg_server.database()
    assert status(url, ["a"], 30.0) == {"publisher": None, "nodes": [], "sources": {}}

    long = "a-node-" + "x" * 57  # the longest name: more than an application_name holds

    async def scenario() -> None:
        a = await joined(url, long, [seeds("a"), seeds("b")])
        b = await joined(url, "b-node", [seeds("a"), seeds("b")])
        assert await a.try_publisher()
        got = await a.claim(1)
        await b.beat()
        view = status(url, ["a", "b"], 30.0)
        assert view["publisher"] == long
        by_name = {n["name"]: n for n in view["nodes"]}
        assert by_name[long]["held"] == 1 and by_name[long]["publisher"]
        assert by_name["b-node"]["held"] == 0 and by_name["b-node"]["alive"]
        assert view["sources"][got[0]]["holder"] == long
        other = "b" if got == ["a"] else "a"
        assert view["sources"][other]["holder"] is None
        await a.leave()
        after = status(url, ["a", "b"], 30.0)
        assert [n["name"] for n in after["nodes"]] == ["b-node"]
        assert after["sources"][got[0]]["holder"] is None
        await b.leave()

    asyncio.run(scenario())


# -- the publisher -----------------------------------------------------------------------
HOLDER = """
import asyncio, sys
from aggregator.cluster import Node

async def main():
    node = Node(sys.argv[1], "doomed", lease=30.0, per_host=6)
    await node.join([], {}, {})
    assert await node.try_publisher()
    print("publisher", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def test_the_publisher_lock_passes_on_within_seconds_of_a_kill_9(pg_server: PgServer) -> None:
    url = pg_server.database()
    with subprocess.Popen([sys.executable, "-c", HOLDER, url], cwd=REPO,
                          stdout=subprocess.PIPE, text=True) as proc:  # fmt: skip
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "publisher"

        async def scenario() -> float:
            other = await joined(url, "survivor", [])
            assert not await other.try_publisher()
            assert status(url, [], 30.0)["publisher"] == "doomed"
            os.kill(proc.pid, signal.SIGKILL)
            killed = time.monotonic()
            while not await other.try_publisher():
                assert time.monotonic() - killed < 5.0
                await asyncio.sleep(0.1)
            assert await other.try_publisher()  # and it stays held
            took = time.monotonic() - killed
            await other.leave()
            return took

        try:
            assert asyncio.run(scenario()) < 5.0
        finally:
            proc.kill()


def test_a_restarted_server_is_survived_and_nothing_is_lost(pg_server: PgServer) -> None:
    """PostgreSQL restarts under a node holding a claim: claims return nothing meanwhile,
    the release made while the database was down is kept and applied afterwards, the
    publisher lock is taken again, and the node's connection is reopened."""
    url = pg_server.database()

    async def scenario() -> None:
        node = await joined(url, "n", [seeds("a"), seeds("b")])
        assert await node.try_publisher()
        assert sorted(await node.claim(1)) in (["a"], ["b"])
        held = next(iter(node.held))
        pg_server.stop()
        try:
            await node.release(held, 3600.0)  # the database is down: kept for later
            assert node.held == {held}
            assert await node.claim(5) == []
            assert await node.beat() is None
            assert not await node.try_publisher()
        finally:
            pg_server.start()
        view = await node.beat()  # applies the release, renews, reconnected
        assert view is not None and node.held == set()
        assert await node.claim(5) == [("b" if held == "a" else "a")]  # the held one waits
        assert await node.try_publisher()
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT claimed_by, next_due > now() + interval '50 minutes'"
                " FROM cluster_sources WHERE source = %s", (held,),
            ).fetchone()  # fmt: skip
        assert row == (None, True)
        await node.leave()

    asyncio.run(scenario())


# -- the scheduler on a node -------------------------------------------------------------
def test_two_scheduling_nodes_share_the_sources_and_never_fetch_one_twice(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """Two schedulers (each with a store of its own here: the claims are what is shared)
    run 30 feeds every 2 s for 9 s: no feed is fetched twice within an interval, every feed
    runs again and again, both nodes do part of the work, and only one publishes."""
    url = pg_server.database()
    with serve_in_thread(fixtures=False) as app:
        farm = FeedFarm(app, 30)
        configs = []
        for k in range(2):
            root = tmp_path / f"n{k}"
            root.mkdir()
            (root / "config.yaml").write_text(
                "output:\n  dir: out\nstate: state.sqlite3\nretention: never\n"
                f"cluster:\n  node: n{k}\n  lease: 4s\nsources:\n{farm.sources_yaml('2s')}",
                encoding="utf-8",
            )
            configs.append(load_config(root / "config.yaml"))

        async def scenario() -> list[Scheduler]:
            running = []
            for k, cfg in enumerate(configs):
                node = Node(url, cfg.cluster.node, lease=cfg.cluster.lease, per_host=6)
                scheduler = Scheduler(cfg, Store.open(cfg.state, holder="daemon"),
                                      client=WebClient(), node=node, seed=k)  # fmt: skip
                await scheduler.start()
                running.append(scheduler)
            await asyncio.sleep(9.0)
            # stopped together: once the publisher left, the other would take the lock
            # over and publish too (as it should), if it were still running
            assert await asyncio.gather(*(s.stop() for s in running)) == [True, True]
            for scheduler in running:
                assert isinstance(scheduler.client, WebClient)
                scheduler.client.close()
            return running

        schedulers = asyncio.run(scenario())
    assert farm.double_fetches(2.0) == []
    fetches = farm.snapshot()
    assert len(fetches) == 30 and min(len(t) for t in fetches.values()) >= 3
    ran = [sum(st.last_success is not None for st in s.states.values()) for s in schedulers]
    assert all(ran), ran
    published = [(cfg.output_dir / "atom.xml").exists() for cfg in configs]
    assert sorted(published) == [False, True]


def test_a_reload_on_a_node_runs_changed_and_added_sources_and_drops_removed_ones(
    pg_server: PgServer, tmp_path: Path
) -> None:
    url = pg_server.database()
    with serve_in_thread(fixtures=False) as app:
        farm = FeedFarm(app, 4)

        def config(names: list[int], moved: int | None = None) -> Path:
            sources = "".join(
                f"  - name: f{i}\n    type: feed\n    url: {farm.url(i)}"
                + ("?moved" if i == moved else "") + "\n    every: 1h\n"
                for i in names
            )  # fmt: skip
            path = tmp_path / "config.yaml"
            path.write_text(
                "output:\n  dir: out\nstate: state.sqlite3\nretention: never\n"
                f"cluster:\n  lease: 4s\nsources:\n{sources}", encoding="utf-8",
            )  # fmt: skip
            return path

        first = load_config(config([0, 1, 2]))

        async def scenario() -> None:
            node = Node(url, "n", lease=4.0, per_host=6)
            scheduler = Scheduler(first, Store.open(first.state, holder="daemon"),
                                  client=WebClient(), node=node)  # fmt: skip
            await scheduler.start()
            while len(farm.snapshot()) < 3:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            await scheduler.reconfigure(load_config(config([0, 1, 3], moved=1)))
            deadline = time.monotonic() + 10.0  # an added source's first run is staggered
            while not (len(farm.hits[3]) and len(farm.hits[1]) > 1):
                assert time.monotonic() < deadline, farm.snapshot()
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)  # and nothing else runs
            assert await scheduler.stop()
            assert isinstance(scheduler.client, WebClient)
            scheduler.client.close()

        asyncio.run(scenario())
    fetches = farm.snapshot()
    assert {i: len(t) for i, t in fetches.items()} == {0: 1, 1: 2, 2: 1, 3: 1}


def test_a_read_only_database_fails_calls_softly_and_the_node_recovers(
    pg_server: PgServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """After a failover to a read-only server, claims, beats and the publisher lock fail
    as 'nothing now' (never an error that would end the node's loops), each said once at
    WARNING with the node, the operation and the error (not again within a minute) and
    counted in /metrics; once the database takes writes again, the node works as before
    and says so."""
    url = pg_server.database()
    config = tmp_path / "config.yaml"
    config.write_text("state: s.sqlite3\ncluster:\n  node: n\nsources: []\n", encoding="utf-8")
    dbname = url.rsplit("/", 1)[1]

    def read_only(on: bool) -> None:
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{dbname}" SET default_transaction_read_only = '
                         + ("on" if on else "off"))  # fmt: skip
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()", (dbname,)
            )  # fmt: skip

    async def scenario() -> Scheduler:
        node = await joined(url, "n", [seeds("a")])
        cfg = load_config(config)
        scheduler = Scheduler(cfg, Store.open(cfg.state), node=node)  # (not started)
        read_only(True)
        try:
            for _ in range(2):
                assert await node.claim(4) == []
                assert await node.beat() is None
                assert not await node.try_publisher()
        finally:
            read_only(False)
        for _ in range(3):  # the first use after the terminated session may still fail
            if await node.claim(4):
                break
        assert node.held == {"a"}
        assert await node.beat() is not None
        assert await node.try_publisher()
        await node.leave()
        scheduler.store.close()
        return scheduler

    with caplog.at_level(logging.WARNING, logger="aggregator.cluster"):
        scheduler = asyncio.run(scenario())
    said = [r.getMessage() for r in caplog.records]
    for operation in ("claim", "beat", "publisher_lock"):
        failed = [m for m in said if m.startswith(f"cluster: node n: {operation} failed (")]
        assert len(failed) == 1, said  # the second failure, a moment later: not again
        # (the first use after the sessions were ended finds its connection gone)
        assert re.search(r"\): cluster (transaction failed: cannot execute \w+ in a"
                         r" read-only transaction|database unreachable: AdminShutdown)$",
                         failed[0])  # fmt: skip
        assert any(m.startswith(f"cluster: node n: {operation} works again after") for m in said)
    metrics = scheduler.metrics.render().decode()
    for operation in ("claim", "beat", "publisher_lock"):
        counted = rf'^aggregator_cluster_failures_total{{operation="{operation}"}} [2-4]\.0$'
        assert re.search(counted, metrics, re.M), metrics
    assert 'aggregator_cluster_failures_total{operation="renew"} ' in metrics  # shown at 0


def test_failures_between_successes_warn_once_a_minute(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claim that fails every other try (a queued node claims ten times a second) is told
    once and its recovery once, not at every flap; the next warning, a FAILURE_REPEAT
    later, counts the failures not told."""
    failures = Failures("n")
    counted: list[str] = []
    failures.on_failure = counted.append
    with caplog.at_level(logging.WARNING, logger="aggregator.cluster"):
        for _ in range(50):
            failures.failed("claim", "canceling statement due to statement timeout")
            failures.succeeded("claim")
        monkeypatch.setattr(cluster, "FAILURE_REPEAT", 0.0)  # a minute later
        failures.failed("claim", "canceling statement due to statement timeout")
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "cluster: node n: claim failed (1 in a row over 0.0s): canceling statement due to"
        " statement timeout",
        "cluster: node n: claim works again after 1 failure over 0.0s",
        "cluster: node n: claim failed (1 in a row over 0.0s; 49 more since the last"
        " warning): canceling statement due to statement timeout",
    ]
    assert counted == ["claim"] * 51


def test_a_node_of_this_version_joins_next_to_an_earlier_nodes_claim(
    pg_server: PgServer,
) -> None:
    """Rolling upgrade: the columns of a host's turn are added to an earlier version's
    `cluster_hosts` while an earlier node's claim holds a source row and then locks the
    host rows (as that version's claim does); neither the claim nor the join is rolled
    back as a deadlock, even when the join must update that source (its host changed)."""
    url = pg_server.database()
    sources = [feed(f"f{i}", host="h.example") for i in range(3)]
    moved = [feed("f0", host="h2.example"), *sources[1:]]

    async def scenario() -> None:
        earlier = await joined(url, "earlier", sources)
        await earlier.leave()
        with psycopg.connect(url, autocommit=True) as conn:  # the earlier version's table
            conn.execute("ALTER TABLE cluster_hosts DROP COLUMN waiter, DROP COLUMN wanted,"
                         " DROP COLUMN waiting_until")  # fmt: skip
        claim = await psycopg.AsyncConnection.connect(url)
        try:
            await claim.execute("SELECT 1 FROM cluster_sources WHERE source = 'f0' FOR UPDATE")
            join = asyncio.create_task(joined(url, "b", moved, per_host=2))
            await asyncio.sleep(0.5)  # the join waits for the claim's row
            await claim.execute("SELECT host FROM cluster_hosts ORDER BY host FOR UPDATE")
            await claim.commit()
        finally:
            await claim.close()
        b = await asyncio.wait_for(join, 10.0)
        assert turn(url, "h.example") == (None, 0, None)
        assert sorted(await b.claim(4)) == ["f0", "f1", "f2"]
        await b.leave()

    asyncio.run(scenario())


def test_healthz_tells_the_last_publish_on_the_databases_clock(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """A node whose clock is three hours ahead publishes: /healthz gives the publish time
    and its age by the database's clock, as every other node's does."""
    url = pg_server.database()
    cfg = load_config(write_config(tmp_path, extra="cluster:\n  lease: 4s\n"))
    shutil.copy(SEED_DOC, tmp_path / "seeds" / SEED_DOC.name)

    async def scenario() -> dict[str, object]:
        node = Node(url, "ahead", lease=cfg.cluster.lease, per_host=6)
        scheduler = Scheduler(cfg, Store.open(cfg.state, holder="daemon"), node=node,
                              clock=lambda: now_utc() + timedelta(hours=3))  # fmt: skip
        await scheduler.start()
        started = time.monotonic()
        while (health := scheduler.health())[0] != 200:
            assert time.monotonic() - started < 20.0, health
            await asyncio.sleep(0.1)
        assert await scheduler.stop()
        return health[1]

    body = asyncio.run(scenario())
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    published = datetime.fromisoformat(str(body["last_publish"]))
    assert abs((row[0] - published).total_seconds()) < 30
    assert 0 <= float(str(body["last_publish_age"])) < 30


def test_a_node_that_failed_to_publish_is_healthy_once_another_holds_the_lock(
    pg_server: PgServer, tmp_path: Path
) -> None:
    """The publisher's publishes fail (a file it cannot write): its /healthz says 503. Once
    another session holds the publisher lock, the failure is no longer this node's to fix:
    its /healthz says 200 within seconds, and stays so (it used to say 503 for good)."""
    url = pg_server.database()
    cfg = load_config(write_config(tmp_path, extra="cluster:\n  lease: 4s\n", state=url))
    shutil.copy(SEED_DOC, tmp_path / "seeds" / SEED_DOC.name)

    async def until(what: str, done: Callable[[], bool], within: float) -> None:
        started = time.monotonic()
        while not done():
            assert time.monotonic() - started < within, what
            await asyncio.sleep(0.1)

    async def scenario() -> None:
        node = Node(url, "n", lease=cfg.cluster.lease, per_host=6)
        scheduler = Scheduler(cfg, Store.open(url, holder="daemon"), node=node)
        await scheduler.start()
        await until("a first publish", lambda: scheduler.health()[0] == 200, 20.0)
        index = cfg.output_dir / "index.html"
        index.unlink()
        index.mkdir()  # the next publish (within 2 s, the publisher's poll) fails
        await until("a failed publish", lambda: scheduler.health()[0] == 503, 10.0)
        assert "index.html" in str(scheduler.health()[1]["publish_error"])
        with psycopg.connect(url, autocommit=True) as other:  # another node takes the lock
            other.execute("SELECT pg_terminate_backend(%s)", (node.lock_pid,))
            started = time.monotonic()
            while not other.execute("SELECT pg_try_advisory_lock(%s)",
                                    (PUBLISHER_LOCK,)).fetchone()[0]:  # type: ignore[index]  # fmt: skip
                assert time.monotonic() - started < 5.0
                await asyncio.sleep(0.01)
            await until("/healthz 200 on the node that lost the lock",
                        lambda: scheduler.health()[0] == 200, 5.0)  # fmt: skip
            await asyncio.sleep(3.0)  # a publisher's poll and more: no publish error again
            code, body = scheduler.health()
            assert not node.publisher
            await scheduler.stop()
        assert code == 200, body["publish_error"]

    asyncio.run(scenario())


def test_a_lock_session_cut_off_as_its_commit_arrives_is_no_publisher(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deadline of the lock link's try falls just as its COMMIT is answered: the
    connection (and with it the advisory lock) is gone, so the node must not count itself
    the publisher while another node takes the lock (found by a review)."""
    url = pg_server.database()

    async def scenario() -> tuple[bool, bool]:
        a, b = await joined(url, "a", []), await joined(url, "b", [])
        commit, link = psycopg.AsyncTransaction.__aexit__, a._lock_link

        async def deadline_at_commit(self: Any, *exc: Any) -> Any:
            done = await commit(self, *exc)
            if self._conn is link._conn:
                link._cut_off_now()
            return done

        monkeypatch.setattr(psycopg.AsyncTransaction, "__aexit__", deadline_at_commit)
        got_a = await a.try_publisher()
        monkeypatch.setattr(psycopg.AsyncTransaction, "__aexit__", commit)
        got_b = await b.try_publisher()
        await a.leave()
        await b.leave()
        return got_a, got_b

    assert asyncio.run(scenario()) == (False, True)
