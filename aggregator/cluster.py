"""Several daemons on one PostgreSQL database: which node runs which source, who publishes.

PostgreSQL is the coordination engine; there is no protocol of our own:

- **Claims.** `cluster_sources` holds each source's due time and its lease (`claimed_by`,
  `lease_until`). A node takes due sources with `SELECT ... FOR UPDATE SKIP LOCKED`, so two
  nodes never take the same row, and hands a source back with the delay until its next run
  (by `sources.policy`: interval, back-off, Retry-After). The holder renews its leases every
  `lease / 3` on a connection of their own, each try cut off after `lease / 4` (at most
  OP_TIMEOUT), so one failed or stuck renewal never lets a lease run out; a node that dies
  stops renewing, and its sources can be claimed again once their leases ran out. A node
  knows until when each of its leases is confirmed (by its own monotonic clock, counted
  from just before the statement that set it) and starts no fetch on a lease it cannot
  confirm (`ensure_held`): one that ran out while renewals failed may be another node's.
- **Politeness.** A web source being fetched holds `weight` of its host's `per_host` slots
  (1 for a feed; all of them for an html or fulltext source, which fetch pages in parallel).
  A claim counts the slots in use under a lock on the host's row of `cluster_hosts`, so no
  host has more than `per_host` fetches in flight across all nodes. A node that finds a
  host full while holding none of its slots is first in line for the next ones that free
  (`cluster_hosts.waiter`): nodes whose own fetches end there claim again at once and
  would otherwise keep every slot from it. Its place lasts while it asks, and the slots
  kept for it count as busy for the others. Back-off is in the due time, which every node
  reads.
- **Failures said.** A claim, release, renewal, publisher-lock check, beat or publish
  record that fails is logged at WARNING (at most once a FAILURE_REPEAT per operation, and
  the recovery from a failure told: `Failures`) and counted.
- **One publisher.** Whoever holds a session-level advisory lock (`PUBLISHER_LOCK`), on a
  connection of its own, publishes. PostgreSQL drops it when that session ends: at once when
  a node is killed, about 11 s after its network is cut (SERVER_KEEPALIVE).
- **Nodes.** `cluster_nodes` holds a heartbeat per node; rows silent for FORGET_NODE go.

Times are the database's clock (`now()`): the nodes' clocks need not agree, and a node hands
over delays, never times. A lost connection (PostgreSQL restarted, network down) is reopened
at the next use; meanwhile claims return nothing, releases wait in memory, and the node runs
what it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import psycopg

from aggregator.config import SourceConfig
from aggregator.errors import ConfigError, StoreError

log = logging.getLogger(__name__)

PUBLISHER_LOCK = 0x6861626572707562  # "haberpub": the advisory lock key of the publisher
SCHEMA_LOCK = 0x6861626572736368  # "habersch": serializes nodes creating the tables at once
CLAIM_SCAN = 1000  # due rows one claim looks at, at most
OP_TIMEOUT = 10.0  # one transaction of ours; past it the connection is dropped and reopened
CONNECT_TIMEOUT = 5
SERVER_KEEPALIVE = (5, 2, 3)  # idle s, interval s, probes: a cut node's session ends in ~11 s
FORGET_NODE = 3600.0  # seconds without a heartbeat before a node's row is deleted
MAX_NAME = 64
QUEUE_HOLD = 2.0  # seconds a node's place in a full host's queue lasts unless renewed
FAILURE_REPEAT = 60.0  # seconds between warnings about one operation that goes on failing
OPERATIONS = ("claim", "release", "renew", "publisher_lock", "beat", "published")

SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_nodes (
    name TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    machine TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started TIMESTAMPTZ NOT NULL,
    heartbeat TIMESTAMPTZ NOT NULL,
    published TIMESTAMPTZ,
    articles INTEGER,
    lock_pid INTEGER
);
CREATE TABLE IF NOT EXISTS cluster_sources (
    source TEXT PRIMARY KEY,
    host TEXT NOT NULL DEFAULT '',
    weight INTEGER NOT NULL DEFAULT 1,
    next_due TIMESTAMPTZ NOT NULL,
    claimed_by TEXT,
    lease_until TIMESTAMPTZ,
    fetching BOOLEAN NOT NULL DEFAULT false,
    last_run_by TEXT,
    last_run_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS cluster_sources_due ON cluster_sources (next_due);
CREATE INDEX IF NOT EXISTS cluster_sources_holder ON cluster_sources (claimed_by);
CREATE INDEX IF NOT EXISTS cluster_sources_fetching ON cluster_sources (host) WHERE fetching;
"""

# alone in a transaction of its own: the ALTER's exclusive lock on a table made by an earlier
# version must not wait while holding locks an earlier node's claim waits for (a deadlock)
HOSTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS cluster_hosts (
    host TEXT PRIMARY KEY,
    waiter TEXT,
    wanted INTEGER NOT NULL DEFAULT 0,
    waiting_until TIMESTAMPTZ
);
DO $$ BEGIN  -- a table made by an earlier version; no ALTER (and its lock) when not needed
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema =
                   current_schema() AND table_name = 'cluster_hosts' AND column_name = 'waiter')
    THEN ALTER TABLE cluster_hosts ADD COLUMN waiter TEXT,
        ADD COLUMN wanted INTEGER NOT NULL DEFAULT 0, ADD COLUMN waiting_until TIMESTAMPTZ;
    END IF;
END $$;
"""


# -- pure decisions ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Candidate:
    """A due, unclaimed source as a claim sees it."""

    source: str
    host: str
    weight: int


def source_host(source: SourceConfig) -> str:
    """The host whose slots a source's fetch takes ('' for a seed folder: no host)."""
    if source.type == "seeds" or not source.url:
        return ""
    return (urlsplit(source.url).hostname or "").lower()


def source_weight(source: SourceConfig, per_host: int) -> int:
    """Slots of its host a source holds while it fetches: a feed makes one request at a
    time; an html source (or a feed with fulltext) fetches pages up to `per_host` at once."""
    return per_host if source.type == "html" or source.fulltext else 1


def choose(candidates: Sequence[Candidate], busy: Mapping[str, int], per_host: int,
           capacity: int) -> list[str]:  # fmt: skip
    """The candidates to claim, in their (due) order: at most `capacity`, and no host past
    `per_host` slots counting those `busy` already. A source heavier than `per_host` runs
    alone on its host."""
    load = dict(busy)
    chosen: list[str] = []
    for c in candidates:
        if len(chosen) >= capacity:
            break
        if c.host:
            weight = min(c.weight, per_host)
            if load.get(c.host, 0) + weight > per_host:
                continue
            load[c.host] = load.get(c.host, 0) + weight
        chosen.append(c.source)
    return chosen


def default_node_name() -> str:
    """`<hostname>-<pid>`: unique on one machine, and across machines with distinct names."""
    return node_name(socket.gethostname(), os.getpid())


def node_name(hostname: str, pid: int) -> str:
    suffix = f"-{pid}"
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", hostname.split(".")[0]).strip("-.") or "node"
    return base[: MAX_NAME - len(suffix)] + suffix


def beat_interval(lease: float) -> float:
    """How often a node renews its leases and heartbeat, start to start: three tries within
    a lease."""
    return min(lease / 3, 10.0)


def lease_timeout(lease: float) -> float:
    """How long a renewal may take before it is cut off: with tries a beat apart,
    a renewal that fails (or is cut off) is followed by one that commits before the lease
    it renews runs out: `2 * beat_interval + lease_timeout < lease` for every lease."""
    return min(OP_TIMEOUT, lease / 4)


# -- connections -------------------------------------------------------------------------
# a deadlock or a serialization failure (psycopg files them under OperationalError, not
# TransactionRollback): the transaction is rolled back, the connection and database are fine
_ROLLED_BACK = (psycopg.errors.TransactionRollback, psycopg.errors.DeadlockDetected,
                psycopg.errors.SerializationFailure)  # fmt: skip


def _connect_options(application: str) -> dict[str, Any]:
    """Client-side keepalives too: a cut network is noticed, not waited on forever."""
    return {
        "connect_timeout": CONNECT_TIMEOUT, "application_name": application[:63],
        "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2,
        "keepalives_count": 3, "tcp_user_timeout": 10_000,
    }  # fmt: skip


class _Link:
    """A connection of the cluster's own, reopened at the next use after a failure; each use
    is one transaction, cut off after `timeout` seconds, by the client (the connection is
    shut down, and the next use opens a new one) and by the server (`statement_timeout`: a
    statement cut off must not go on holding row locks that the next try waits for).
    Failures become StoreError."""

    def __init__(self, url: str, application: str, timeout: float, *,
                 announce: bool = True) -> None:  # fmt: skip
        self.url = url
        self.application = application
        self.timeout = timeout
        self.announce = announce  # log losing and regaining the database (one link does)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()
        self._closed = False  # for good: later uses fail at once instead of reconnecting
        self.generation = 0  # connections opened so far (session state goes with each)
        self.down_since: float | None = None  # monotonic time of the first failure
        self._cut_off = False  # the current transaction ran out of time

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncCursor[Any]]:
        async with self._lock:
            if self._closed:
                raise StoreError("cluster connection closed (the node left)")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + self.timeout
            self._cut_off = False
            timer = loop.call_at(deadline, self._cut_off_now)
            try:
                if self._conn is None or self._conn.closed:
                    async with asyncio.timeout_at(deadline):  # no query yet: a cancel is prompt
                        self._conn = await psycopg.AsyncConnection.connect(
                            self.url, **_connect_options(self.application)
                        )
                    await self._set_up(self._conn)
                async with self._conn.transaction(), self._conn.cursor() as cur:
                    yield cur
                if self._cut_off:  # it committed just in time, but the connection is shut:
                    # its session (an advisory lock) is gone, so the caller must not rely on it
                    await self._drop()
                    raise StoreError(f"cluster connection cut off after {self.timeout:g}s")
            except _ROLLED_BACK as e:  # the connection is fine: try again later
                raise StoreError(f"cluster transaction rolled back: {e}") from e
            except (psycopg.OperationalError, psycopg.InterfaceError, TimeoutError) as e:
                await self._drop()
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    if self.announce:
                        why = (f"no answer within {self.timeout:g}s" if self._cut_off
                               else str(e).strip().splitlines()[0] if str(e).strip()
                               else type(e).__name__)  # fmt: skip
                        log.warning("cluster: database unreachable (%s); retrying", why)
                raise StoreError(f"cluster database unreachable: {type(e).__name__}") from e
            except psycopg.Error as e:  # anything else (a read-only server after a failover,
                # a constraint): the connection is made anew, and the loops go on
                await self._drop()
                raise StoreError(f"cluster transaction failed: {e}") from e
            finally:
                timer.cancel()
        if self.down_since is not None:
            if self.announce:
                log.warning("cluster: database reachable again after %.1fs",
                            time.monotonic() - self.down_since)  # fmt: skip
            self.down_since = None

    def _cut_off_now(self) -> None:
        """The transaction's time is up: shut its connection's socket down, so the query
        waiting on it fails at once. Cancelling the task instead would make psycopg send a
        cancel request and wait up to 10 s for the query to end on a server that may not
        answer (a stalled backend), so the try would outlast its cut-off by that much."""
        self._cut_off = True
        if self._conn is not None:
            with contextlib.suppress(OSError, psycopg.Error):
                with socket.socket(fileno=os.dup(self._conn.pgconn.socket)) as sock:
                    sock.shutdown(socket.SHUT_RDWR)

    async def _set_up(self, conn: psycopg.AsyncConnection[Any]) -> None:
        idle, interval, count = SERVER_KEEPALIVE
        try:
            await conn.execute(  # the server's side: a vanished client's session ends
                f"SET tcp_keepalives_idle = {idle}; SET tcp_keepalives_interval = {interval};"
                f" SET tcp_keepalives_count = {count};"
                f" SET statement_timeout = {max(1, round(self.timeout * 1000))}"
            )
            await conn.commit()
        except BaseException:  # (cancelled too) a session half set up is not kept
            await self._drop()
            raise
        self.generation += 1

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                await conn.close()

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self._drop()


class Failures:
    """Which of a node's cluster operations keep failing, told at WARNING at most once a
    FAILURE_REPEAT per operation, whether the failures come in a row or between successes
    (a queued node claims ten times a second); the first success after a failure told is
    told too. Each failure is also counted (`on_failure`: the metric)."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.on_failure: Callable[[str], None] | None = None
        # operation: (monotonic time of the first failure in a row, failures in a row)
        self._failing: dict[str, tuple[float, int]] = {}
        self._warned: dict[str, float] = {}  # operation: monotonic time of its last warning
        self._untold: dict[str, int] = {}  # operation: failures since its last warning

    def failed(self, operation: str, error: object) -> None:
        now = time.monotonic()
        first, count = self._failing.get(operation, (now, 0))
        self._failing[operation] = (first, count + 1)
        if now - self._warned.get(operation, -FAILURE_REPEAT) >= FAILURE_REPEAT:
            untold = self._untold.pop(operation, 0)
            self._warned[operation] = now
            log.warning("cluster: node %s: %s failed (%d in a row over %.1fs%s): %s",
                        self.node, operation, count + 1, now - first,
                        f"; {untold} more since the last warning" if untold else "",
                        error)  # fmt: skip
        else:
            self._untold[operation] = self._untold.get(operation, 0) + 1
            log.debug("cluster: node %s: %s failed: %s", self.node, operation, error)
        if self.on_failure is not None:
            self.on_failure(operation)

    def succeeded(self, operation: str) -> None:
        if operation not in self._failing:
            return
        first, count = self._failing.pop(operation)
        if self._warned.get(operation, -math.inf) >= first:  # (recovering from failures told)
            log.warning("cluster: node %s: %s works again after %d failure%s over %.1fs",
                        self.node, operation, count, "" if count == 1 else "s",
                        time.monotonic() - first)  # fmt: skip


# -- the node ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Publish:
    """A publish as the database saw it: its time and age by the database's clock, so nodes
    whose clocks disagree report the same."""

    at: datetime
    articles: int  # in the store then
    age: float  # seconds since, by the database's clock, when read
    read: float  # time.monotonic() when read

    def age_now(self) -> float:
        return self.age + (time.monotonic() - self.read)


@dataclass(frozen=True, slots=True)
class ClusterView:
    """What a beat learns about the whole cluster (and `Node.last_publish`, its latest
    publish)."""

    never_run: int  # of this node's sources, how many no node has run yet
    publisher: str | None


class Node:
    """This daemon as one node of the cluster: its claims, heartbeat and publisher lock.

    Call `join` once (from then on the node renews its leases and heartbeat by itself),
    then `claim`/`ensure_held`/`fetched`/`release` per source run, `beat` every
    `beat_interval(lease)` and `try_publisher` every second or so; `leave` at shutdown."""

    def __init__(self, url: str, name: str, *, lease: float, per_host: int) -> None:
        self.url = url
        self.name = name
        self.lease = lease
        self.timeout = lease_timeout(lease)  # of a renewal
        self.per_host = per_host
        self.token = uuid.uuid4().hex
        self.held: set[str] = set()  # claimed and not yet handed back (in the database)
        self.last_publish: Publish | None = None  # the cluster's latest known publish
        self.publisher = False
        self.lock_pid: int | None = None  # the backend pid of the session holding the lock
        self._sources: tuple[str, ...] = ()
        self._unreleased: dict[str, tuple[float, float]] = {}  # name: (delay, monotonic)
        self._loaded: tuple[int, tuple[str, ...]] | None = None  # node_sources of a session
        self._confirmed: dict[str, float] = {}  # held source: monotonic end of its lease
        self._unsure = False  # a claim failed: it may have committed unheard of
        self.queued = False  # the last claim queued for a full host's next free slot
        self._work = _Link(url, f"aggregator {name}", OP_TIMEOUT)
        self._lease_link = _Link(url, f"aggregator {name} leases", self.timeout, announce=False)
        self._lock_link = _Link(url, f"aggregator {name} publisher", OP_TIMEOUT)
        self._renewer: asyncio.Task[None] | None = None
        self.failures = Failures(name)

    # -- membership ---------------------------------------------------------------------
    async def join(self, sources: Sequence[SourceConfig], first_delay: Mapping[str, float],
                   cap: Mapping[str, float]) -> None:  # fmt: skip
        """Register this node and its sources. A source new to the cluster is first due
        after `first_delay[name]` seconds; a known one keeps the cluster's due time, but no
        later than `cap[name]` seconds from now. Raises ConfigError when a live node has
        this node's name (its claims would be ours)."""
        async with self._work.transaction() as cur:
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            await cur.execute(HOSTS_SCHEMA)
        try:
            async with self._work.transaction() as cur:
                await cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                await cur.execute(SCHEMA)
                await cur.execute(
                    "SELECT extract(epoch FROM now() - heartbeat) FROM cluster_nodes"
                    " WHERE name = %s AND heartbeat > now() - make_interval(secs => %s)",
                    (self.name, self.lease),
                )  # fmt: skip
                alive = await cur.fetchone()
                if alive is not None:
                    raise ConfigError(
                        f"cluster.node: a node named {self.name!r} is running (heartbeat "
                        f"{float(alive[0]):.0f}s ago); give each node a name of its own"
                    )
                await cur.execute(
                    "INSERT INTO cluster_nodes (name, token, machine, pid, started, heartbeat)"
                    " VALUES (%s, %s, %s, %s, now(), now()) ON CONFLICT (name) DO UPDATE SET"
                    " token = EXCLUDED.token, machine = EXCLUDED.machine, pid = EXCLUDED.pid,"
                    " started = now(), heartbeat = now(), published = NULL",
                    (self.name, self.token, socket.gethostname(), os.getpid()),
                )  # fmt: skip
                # claims (and places in line) under this name are a dead earlier run's
                await self._drop_claims(cur)
                await self._upsert(cur, sources, first_delay, cap)
        except ConfigError:
            await self.close()
            raise
        self._sources = tuple(s.name for s in sources)
        self._renewer = asyncio.create_task(self._keep_leases())

    async def add_sources(self, sources: Sequence[SourceConfig], first_delay: Mapping[str, float],
                          cap: Mapping[str, float]) -> None:  # fmt: skip
        """A reload's added sources (as `join` registers them)."""
        async with self._work.transaction() as cur:
            await self._upsert(cur, sources, first_delay, cap)

    async def _upsert(
        self, cur: psycopg.AsyncCursor[Any], sources: Sequence[SourceConfig],
        first_delay: Mapping[str, float], cap: Mapping[str, float],
    ) -> None:  # fmt: skip
        rows = sorted((s.name, source_host(s), source_weight(s, self.per_host),
                       first_delay[s.name], cap[s.name]) for s in sources)  # fmt: skip
        # new rows only: an UPDATE of every row would wait on (and deadlock with) claims
        await cur.executemany(
            "INSERT INTO cluster_sources (source, host, weight, next_due)"
            " VALUES (%s, %s, %s, now() + make_interval(secs => %s)) ON CONFLICT DO NOTHING",
            [r[:4] for r in rows],
        )  # fmt: skip
        await cur.execute(
            "UPDATE cluster_sources c SET host = v.host, weight = v.weight,"
            " next_due = LEAST(c.next_due, now() + make_interval(secs => v.cap))"
            " FROM unnest(%s::text[], %s::text[], %s::int[], %s::float8[])"
            " AS v(source, host, weight, cap) WHERE c.source = v.source AND (c.host <> v.host"
            " OR c.weight <> v.weight OR c.next_due > now() + make_interval(secs => v.cap))",
            ([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
             [r[4] for r in rows]),
        )  # fmt: skip
        hosts = sorted({r[1] for r in rows if r[1]})
        await cur.executemany(
            "INSERT INTO cluster_hosts (host) VALUES (%s) ON CONFLICT DO NOTHING",
            [(h,) for h in hosts],
        )

    def configure(self, sources: Iterable[str]) -> None:
        """The sources this node may claim (a reload changes them)."""
        self._sources = tuple(sources)

    async def run_now(self, names: Sequence[str]) -> None:
        """Sources whose settings changed: due now, whoever holds the next claim."""
        async with self._work.transaction() as cur:
            await cur.execute("UPDATE cluster_sources SET next_due = now() WHERE source = ANY(%s)",
                              (list(names),))  # fmt: skip

    async def _load_sources(self, cur: psycopg.AsyncCursor[Any]) -> None:
        """This node's source names in a temporary table of its session: a claim joins it
        instead of sending thousands of names each time."""
        if self._loaded == (self._work.generation, self._sources):
            return
        await cur.execute("CREATE TEMP TABLE IF NOT EXISTS node_sources (source TEXT PRIMARY KEY)")
        await cur.execute("TRUNCATE node_sources")
        async with cur.copy("COPY node_sources (source) FROM STDIN") as copy:
            for name in self._sources:
                await copy.write_row((name,))
        await cur.execute("ANALYZE node_sources")
        self._loaded = (self._work.generation, self._sources)

    # -- claims -------------------------------------------------------------------------
    async def claim(self, capacity: int) -> list[str]:
        """Take up to `capacity` due sources of this node's, within the hosts' free slots.
        Nothing (not an error) while the database is unreachable."""
        self.queued = False
        if capacity <= 0 or not self._sources:
            return []
        try:
            await self._flush_releases()
        except StoreError:
            return []  # (told by the release)
        try:
            async with self._work.transaction() as cur:
                claimed, confirmed = await self._claim(cur, capacity)
        except StoreError as e:
            self._unsure = True  # it may have committed all the same
            self._loaded = None  # a load of node_sources rolled back with it
            self.failures.failed("claim", e)
            return []
        self.failures.succeeded("claim")
        self._unsure = False
        self.held.update(claimed)
        self._confirmed.update(dict.fromkeys(claimed, confirmed))
        return claimed

    async def _claim(self, cur: psycopg.AsyncCursor[Any],
                     capacity: int) -> tuple[list[str], float]:  # fmt: skip
        """The sources claimed, and the monotonic time until which their leases last at
        least: a lease counted from just before the statement that sets it, after the
        waits for row locks (a claim may wait longer than a lease for them)."""
        held = list(self.held)
        if self._unsure:  # a claim whose commit we never heard of is not ours to keep
            await cur.execute(  # (claims take turns on this connection: `held` is exact)
                "UPDATE cluster_sources SET claimed_by = NULL, lease_until = NULL,"
                " fetching = false WHERE claimed_by = %s AND source <> ALL(%s)",
                (self.name, held),
            )  # fmt: skip
        await cur.execute(_HOSTS_TAKEN, {"node": self.name, "per_host": self.per_host})
        full: list[str] = []  # no slot for this node: in use, or kept for another's turn
        waiting: set[str] = set()  # hosts where this node is first in line
        line: set[str] = set()  # full hosts where it may queue
        for host, used, holds_one, first, kept in await cur.fetchall():
            if first:
                waiting.add(host)
            if used + kept >= self.per_host:
                full.append(host)
                # none of its slots are this node's: it is not woken by a fetch of its own
                # ending there, and nodes that are would take every slot that frees first
                if not holds_one and not kept:
                    line.add(host)
        await self._load_sources(cur)
        await cur.execute(
            "SELECT c.source, c.host, c.weight FROM cluster_sources c JOIN node_sources n"
            " ON n.source = c.source WHERE c.next_due <= now() AND (c.claimed_by IS NULL"
            " OR c.lease_until < now()) AND c.host <> ALL(%s) AND c.source <> ALL(%s)"
            " ORDER BY c.next_due LIMIT %s FOR UPDATE OF c SKIP LOCKED",
            (full, held, min(CLAIM_SCAN, capacity * 4)),  # never a source it still runs
        )  # fmt: skip
        candidates = [Candidate(*row) for row in await cur.fetchall()]
        if not candidates and not waiting and not line:
            return [], 0.0
        # the hosts of the first `capacity` candidates only: fewer rows locked, shorter
        # waits for other claimers; the rest wait for a later claim
        hosts = sorted({c.host for c in candidates[:capacity] if c.host})
        candidates = [c for c in candidates if not c.host or c.host in hosts]
        busy: dict[str, int] = {}
        # every host row this claim writes or counts from, locked in name order (no
        # deadlock; one place alone is locked by its own update): whoever claims from a
        # host counts its slots alone; slots kept for another's turn are not this node's
        turns = waiting | line
        locked = sorted({*hosts, *turns}) if hosts or len(turns) > 1 else []
        if locked:
            await cur.execute(
                "SELECT host, waiter = %s AND waiting_until > now(), CASE WHEN waiter <> %s"
                " AND waiting_until > now() THEN wanted ELSE 0 END FROM cluster_hosts"
                " WHERE host = ANY(%s) ORDER BY host FOR UPDATE", (self.name, self.name, locked),
            )  # fmt: skip
            for host, first, kept in await cur.fetchall():
                busy[host] = int(kept)
                if first:
                    waiting.add(host)
                else:
                    waiting.discard(host)
        if hosts:
            await cur.execute(
                "SELECT host, sum(LEAST(weight, %s)) FROM cluster_sources WHERE fetching"
                " AND lease_until > now() AND host = ANY(%s) GROUP BY host",
                (self.per_host, hosts),
            )  # fmt: skip
            for host, n in await cur.fetchall():
                busy[host] = busy.get(host, 0) + int(n)
        chosen = choose(candidates, busy, self.per_host, capacity)
        confirmed = time.monotonic() + self.lease  # the database's lease ends later
        if chosen:
            await cur.execute(  # the lease counts from now, not from the claim's start
                "UPDATE cluster_sources SET claimed_by = %s,"
                " lease_until = clock_timestamp() + make_interval(secs => %s),"
                " fetching = (host <> '') WHERE source = ANY(%s)", (self.name, self.lease, chosen),
            )  # fmt: skip
        if places := sorted(waiting | line):
            served = waiting & {c.host for c in candidates if c.source in chosen}
            await cur.execute(_PLACES, {
                "node": self.name, "per_host": self.per_host, "hold": QUEUE_HOLD,
                "hosts": places, "served": [h in served for h in places],
            })  # fmt: skip
            self.queued = any(first for (first,) in await cur.fetchall())
        return chosen, confirmed

    def ensure_held(self, name: str) -> None:
        """Raise StoreError unless this node's lease on `name` is confirmed now: a fetch
        must not start on a claim whose lease may have run out while renewals failed
        (another node may be fetching it). Safe from any thread."""
        if self._confirmed.get(name, 0.0) <= time.monotonic():
            raise StoreError(
                "not fetched: the cluster database has not confirmed this node's lease on"
                f" it ({self.lease:g}s), so another node may run it"
            )

    async def fetched(self, name: str) -> None:
        """The source's fetch is over (its merge may still run): its host slots are free."""
        try:
            async with self._work.transaction() as cur:
                await cur.execute(
                    "UPDATE cluster_sources SET fetching = false WHERE source = %s"
                    " AND claimed_by = %s AND fetching", (name, self.name),
                )  # fmt: skip
        except StoreError as e:  # a lost update frees them at release
            self.failures.failed("release", e)

    async def release(self, name: str, delay: float) -> None:
        """Hand a source back, due again in `delay` seconds. While the database is
        unreachable the lease is kept (renewed) and the release retried."""
        self._unreleased[name] = (max(0.0, delay), time.monotonic())
        with contextlib.suppress(StoreError):
            await self._flush_releases()

    async def _flush_releases(self) -> None:
        """The releases waiting, in one transaction (StoreError: they wait on)."""
        if not self._unreleased:
            return
        try:
            async with self._work.transaction() as cur:
                pending = dict(self._unreleased)  # releases may arrive while this one awaits
                lost = []
                for name, (delay, at) in sorted(pending.items()):  # the renewals' lock order
                    await cur.execute(
                        "UPDATE cluster_sources SET claimed_by = NULL, lease_until = NULL,"
                        " fetching = false, next_due = now() + make_interval(secs => %s),"
                        " last_run_by = %s, last_run_at = now()"
                        " WHERE source = %s AND claimed_by = %s",
                        (max(0.0, delay - (time.monotonic() - at)), self.name, name, self.name),
                    )  # fmt: skip
                    if cur.rowcount == 0:
                        lost.append(name)
        except StoreError as e:
            self.failures.failed("release", e)
            raise
        self.failures.succeeded("release")
        for name in lost:
            log.warning("source %s: this node's lease ran out before the run ended; another"
                        " node may have run it too", name)  # fmt: skip
        for name in pending:
            if self._unreleased.get(name) == pending[name]:
                del self._unreleased[name]
                self.held.discard(name)
                self._confirmed.pop(name, None)

    # -- liveness -----------------------------------------------------------------------
    async def _keep_leases(self) -> None:
        """Renew every beat, start to start: a slow try delays the next by no more than its
        own cut-off (`lease_timeout`)."""
        every = beat_interval(self.lease)
        while True:
            started = time.monotonic()
            try:
                await self.renew()
            except Exception:  # a bug: say so, and keep renewing
                log.exception("cluster: renewing the leases failed (a bug; retrying)")
            await asyncio.sleep(max(0.0, started + every - time.monotonic()))

    async def renew(self) -> bool:
        """Renew the leases held, then heartbeat, on the leases' own connection (no wait
        behind claims, releases or publish records); learn which are confirmed, and until
        when. A lease found taken by another node (it ran out while renewals failed) is no
        longer confirmed. False when the database did not answer in time."""
        held = sorted(self.held)
        before = {name: self._confirmed.get(name) for name in held}  # a claim since is newer
        try:
            async with self._lease_link.transaction() as cur:
                confirmed = set()
                if held:
                    await cur.execute(_LOCK_IN_ORDER, (self.name, held))
                    until = time.monotonic() + self.lease  # after the waits for the rows
                    await cur.execute(
                        "UPDATE cluster_sources SET lease_until = clock_timestamp()"
                        " + make_interval(secs => %s) WHERE claimed_by = %s AND source = ANY(%s)"
                        " RETURNING source", (self.lease, self.name, held),
                    )  # fmt: skip
                    confirmed = {r[0] for r in await cur.fetchall()}
                await self._heartbeat(cur)
        except StoreError as e:
            self.failures.failed("renew", e)
            return False
        self.failures.succeeded("renew")
        for name in held:
            if name not in self.held:
                continue  # handed back meanwhile
            if name in confirmed:
                self._confirmed[name] = max(self._confirmed.get(name, 0.0), until)
            elif name in self._confirmed and self._confirmed[name] == before[name]:
                del self._confirmed[name]  # (unless claimed anew since)
                log.warning("source %s: this node's lease on it ran out, and another node"
                            " holds it now", name)  # fmt: skip
        return True

    async def _heartbeat(self, cur: psycopg.AsyncCursor[Any]) -> None:
        """This node's heartbeat, without waiting for its row: whoever holds it (the node's
        own publish record or lock session, on a connection that may stall) must not hold
        up the renewal of its leases. A beat skipped costs little: a heartbeat counts for a
        whole lease."""
        await cur.execute(
            "UPDATE cluster_nodes SET heartbeat = now(), token = %s WHERE name = (SELECT name"
            " FROM cluster_nodes WHERE name = %s FOR UPDATE SKIP LOCKED)", (self.token, self.name),
        )  # fmt: skip
        if cur.rowcount:
            return
        await cur.execute("SELECT 1 FROM cluster_nodes WHERE name = %s", (self.name,))
        if await cur.fetchone() is None:  # forgotten (silent for FORGET_NODE): back again
            await cur.execute(
                "INSERT INTO cluster_nodes (name, token, machine, pid, started, heartbeat)"
                " VALUES (%s, %s, %s, %s, now(), now()) ON CONFLICT (name) DO UPDATE"
                " SET heartbeat = now(), token = EXCLUDED.token",
                (self.name, self.token, socket.gethostname(), os.getpid()),
            )  # fmt: skip

    async def beat(self) -> ClusterView | None:
        """Retry releases; what the cluster looks like (the leases are renewed by the node
        itself, `renew`). None while the database is unreachable."""
        try:
            await self._flush_releases()
        except StoreError:
            return None  # (told by the release)
        try:
            async with self._work.transaction() as cur:
                await cur.execute(
                    "DELETE FROM cluster_nodes WHERE heartbeat < now() - make_interval(secs => %s)",
                    (FORGET_NODE,),
                )  # fmt: skip
                await cur.execute(
                    "SELECT published, articles, extract(epoch FROM clock_timestamp() - published)"
                    " FROM cluster_nodes WHERE published IS NOT NULL"
                    " ORDER BY published DESC LIMIT 1"
                )  # fmt: skip
                published = await cur.fetchone()
                await self._load_sources(cur)
                await cur.execute(
                    "SELECT count(*) FROM cluster_sources c JOIN node_sources n"
                    " ON n.source = c.source WHERE c.last_run_at IS NULL"
                )
                never = await cur.fetchone()
                await cur.execute(_PUBLISHER, (PUBLISHER_LOCK,))
                holder = await cur.fetchone()
        except StoreError as e:
            self._loaded = None  # a load of node_sources rolled back with it
            self.failures.failed("beat", e)
            return None
        self.failures.succeeded("beat")
        if published is not None:
            self._saw_publish(published)
        return ClusterView(
            never_run=int(never[0]) if never else 0,
            publisher=holder[0] if holder else None,
        )

    def _saw_publish(self, row: tuple[Any, ...]) -> None:
        at, articles, age = row
        if self.last_publish is None or at >= self.last_publish.at:
            self.last_publish = Publish(at, int(articles or 0), float(age), time.monotonic())

    async def published(self, articles: int) -> None:
        """Record a publish (other nodes' /healthz tell the cluster's latest)."""
        try:
            async with self._work.transaction() as cur:
                await cur.execute("UPDATE cluster_nodes SET published = now(), articles = %s"
                                  " WHERE name = %s RETURNING published, articles, 0.0",
                                  (articles, self.name))  # fmt: skip
                row = await cur.fetchone()
        except StoreError as e:
            self.failures.failed("published", e)
            return
        self.failures.succeeded("published")
        if row is not None:
            self._saw_publish(row)

    async def try_publisher(self) -> bool:
        """Whether this node is the publisher: take the lock if free, else check it is
        still held by this session (a reopened connection holds nothing)."""
        try:
            async with self._lock_link.transaction() as cur:
                if self.publisher:
                    await cur.execute(_HOLDS_LOCK, (PUBLISHER_LOCK,))
                else:
                    await cur.execute("SELECT pg_try_advisory_lock(%s)", (PUBLISHER_LOCK,))
                row = await cur.fetchone()
                held = bool(row and row[0])
                if held and not self.publisher:  # how `status` tells whose session holds it
                    await cur.execute(
                        "UPDATE cluster_nodes SET lock_pid = pg_backend_pid()"
                        " WHERE name = %s RETURNING lock_pid", (self.name,)
                    )  # fmt: skip
                    got = await cur.fetchone()
                    self.lock_pid = int(got[0]) if got else None
        except StoreError as e:
            held = False
            self.failures.failed("publisher_lock", e)
        else:
            self.failures.succeeded("publisher_lock")
        if not held:
            self.lock_pid = None
        if held != self.publisher:
            log.warning("cluster: node %s %s the publisher", self.name,
                        "is now" if held else "is no longer")  # fmt: skip
        self.publisher = held
        return held

    async def leave(self) -> None:
        """Hand back every claim now (others need not wait out the leases), drop the
        heartbeat row and the publisher lock."""
        await self._stop_renewing()  # a renewal after this would write the row back
        with contextlib.suppress(StoreError):
            await self._flush_releases()
            async with self._work.transaction() as cur:
                await self._drop_claims(cur)
                await cur.execute("DELETE FROM cluster_nodes WHERE name = %s AND token = %s",
                                  (self.name, self.token))  # fmt: skip
        self.held.clear()
        await self.close()

    async def _drop_claims(self, cur: psycopg.AsyncCursor[Any]) -> None:
        """Every claim of this node's name and its places in the hosts' lines, gone."""
        await cur.execute(
            "UPDATE cluster_sources SET claimed_by = NULL, lease_until = NULL,"
            " fetching = false WHERE claimed_by = %s", (self.name,),
        )  # fmt: skip
        await cur.execute("UPDATE cluster_hosts SET waiter = NULL, wanted = 0, waiting_until"
                          " = NULL WHERE waiter = %s", (self.name,))  # fmt: skip

    async def _stop_renewing(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)

    async def close(self) -> None:
        """Stop renewing; close the connections (the publisher lock goes with its session)."""
        self.publisher = False
        await self._stop_renewing()
        self._confirmed.clear()
        for link in (self._lock_link, self._lease_link, self._work):
            await link.close()


_HOSTS_TAKEN = (  # each host with slots in use or a node's turn: slots in use, whether the
    # node holds one, whether the turn is the node's, the slots kept for another's turn
    "SELECT coalesce(u.host, h.host), coalesce(u.used, 0), coalesce(u.holds_one, false),"
    " coalesce(h.waiter = %(node)s, false), CASE WHEN h.waiter <> %(node)s THEN h.wanted"
    " ELSE 0 END FROM (SELECT host, sum(LEAST(weight, %(per_host)s)) AS used,"
    " bool_or(claimed_by = %(node)s) AS holds_one FROM cluster_sources WHERE fetching"
    " AND lease_until > now() GROUP BY host) u FULL JOIN (SELECT host, waiter, wanted"
    " FROM cluster_hosts WHERE waiting_until > now()) h ON h.host = u.host"
)
_PLACES = (  # the node's turn on each host taken or renewed for the slots its most overdue
    # source there needs, or given up (served, or nothing due there any more); never
    # another node's turn unless it lapsed
    "UPDATE cluster_hosts h SET waiter = CASE WHEN w.wanted IS NULL THEN NULL ELSE %(node)s"
    " END, wanted = coalesce(w.wanted, 0), waiting_until = CASE WHEN w.wanted IS NULL"
    " THEN NULL ELSE now() + make_interval(secs => %(hold)s) END"
    " FROM unnest(%(hosts)s::text[], %(served)s::bool[]) AS q(host, served)"
    " LEFT JOIN LATERAL (SELECT LEAST(c.weight, %(per_host)s) AS wanted FROM cluster_sources c"
    " JOIN node_sources n ON n.source = c.source WHERE NOT q.served AND c.host = q.host"
    " AND c.next_due <= now() AND (c.claimed_by IS NULL OR c.lease_until < now())"
    " ORDER BY c.next_due LIMIT 1) w ON true WHERE h.host = q.host"
    " AND (h.waiter = %(node)s OR h.waiter IS NULL OR h.waiting_until <= now())"
    " AND (w.wanted IS NOT NULL OR h.waiter IS NOT NULL) RETURNING h.waiter = %(node)s"
)
_LOCK_IN_ORDER = (  # a node's rows, locked in the order releases take them (Python's: bytes)
    "SELECT 1 FROM cluster_sources WHERE claimed_by = %s AND source = ANY(%s)"
    ' ORDER BY source COLLATE "C" FOR UPDATE'
)
_HOLDS_LOCK = (
    "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted"
    " AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = %s"
)
_PUBLISHER = (  # the node whose lock session holds the publisher's lock
    "SELECT n.name FROM pg_locks l JOIN cluster_nodes n ON n.lock_pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.database = ("
    "SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND ((l.classid::bigint << 32) | l.objid::bigint) = %s LIMIT 1"
)


# -- `aggregator status` -----------------------------------------------------------------
def status(url: str, sources: Sequence[str], lease: float) -> dict[str, Any]:
    """Every node (name, machine, pid, started, last heartbeat, alive, sources held,
    publisher) and each named source's holder and due time, from the database."""
    try:
        with psycopg.connect(url, **_connect_options("aggregator status")) as conn:
            found = conn.execute("SELECT to_regclass('cluster_sources')").fetchone()
            if not found or found[0] is None:  # no node ever ran on this database
                return {"publisher": None, "nodes": [], "sources": {}}
            holder = conn.execute(_PUBLISHER, (PUBLISHER_LOCK,)).fetchone()
            publisher = holder[0] if holder else None
            nodes = conn.execute(
                "SELECT n.name, n.machine, n.pid, n.started, n.heartbeat,"
                " n.heartbeat > now() - make_interval(secs => %s),"
                " (SELECT count(*) FROM cluster_sources s WHERE s.claimed_by = n.name"
                "  AND s.lease_until > now()), n.published"
                " FROM cluster_nodes n ORDER BY n.name", (lease,),
            ).fetchall()  # fmt: skip
            rows = conn.execute(
                "SELECT source, CASE WHEN lease_until > now() THEN claimed_by END,"
                " lease_until, next_due, last_run_by, last_run_at FROM cluster_sources"
                " WHERE source = ANY(%s)", (list(sources),),
            ).fetchall()  # fmt: skip
    except psycopg.Error as e:
        raise StoreError(f"cluster status: cannot read the database: {e}") from e
    return {
        "publisher": publisher,
        "nodes": [
            {"name": n[0], "machine": n[1], "pid": n[2], "started": n[3], "heartbeat": n[4],
             "alive": bool(n[5]), "held": int(n[6]), "published": n[7],
             "publisher": n[0] == publisher}
            for n in nodes
        ],
        "sources": {
            r[0]: {"holder": r[1], "lease_until": r[2] if r[1] else None, "next_due": r[3],
                   "last_run_by": r[4], "last_run_at": r[5]}
            for r in rows
        },
    }  # fmt: skip
