"""Three `aggregator run` processes on one PostgreSQL database and 300 feeds from a local
server that records every request: no feed fetched twice in an interval and no more than
the per-host limit in flight across the nodes; status and /healthz naming the nodes; a
second node with a live one's name refused; a node stopped (SIGTERM) handing its sources
back at once, one killed (kill -9) having them fetched again within an interval plus the
lease; the publisher killed and another publishing within seconds; PostgreSQL restarted
under the running nodes with nothing lost and no node exiting.

The tests run in order on one cluster (module fixture): each leaves three nodes running."""

from __future__ import annotations

import functools
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from aggregator.sources.http import HttpSettings
from tests.feedfarm import FeedFarm
from tests.localserver import App, serve_in_thread
from tests.pgserver import PgServer
from tests.test_daemon import wait_for

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

FEEDS = 300
EVERY = 5.0
LEASE = 4.0
ANSWER = 0.02  # each feed answers this long after the request: fetches overlap
PER_HOST = HttpSettings().per_host  # every feed is on 127.0.0.1
# a source due is claimed within a claim poll (1 s) and a jitter (10% of EVERY)
PICKUP = EVERY + LEASE + 1.0 + EVERY * 0.1 + 1.5  # the last term: fetching on a busy machine


class Node:
    """One `aggregator run` on the shared database, with its own folder and output."""

    def __init__(self, root: Path, name: str, url: str, sources: str) -> None:
        self.name = name
        self.root = root / name
        self.root.mkdir()
        self.config = self.root / "config.yaml"
        self.config.write_text(
            f"state: {url}\noutput:\n  dir: out\nretention: never\nserver:\n  port: 0\n"
            f"cluster:\n  node: {name}\n  lease: {LEASE:g}s\nsources:\n{sources}",
            encoding="utf-8",
        )
        self.log = self.root / "daemon.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "run", "--config", str(self.config)],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        self.port = 0

    def listening(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n{self.logs()}")
        m = re.search(r"at http://127\.0\.0\.1:(\d+)/", self.logs())
        self.port = int(m.group(1)) if m else 0
        return bool(self.port)

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def atom(self) -> str:
        path = self.root / "out" / "atom.xml"
        return path.read_text(encoding="utf-8") if path.exists() else ""

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"http://127.0.0.1:{self.port}{path}", timeout=5)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


class Cluster:
    def __init__(self, root: Path, url: str, farm: FeedFarm) -> None:
        self.root, self.url, self.farm = root, url, farm
        self.names = (f"n{i}" for i in itertools.count())
        self.nodes: list[Node] = []

    def start(self, count: int = 1) -> list[Node]:
        sources = self.farm.sources_yaml(f"{EVERY:g}s")
        started = [Node(self.root, next(self.names), self.url, sources) for _ in range(count)]
        self.nodes += started
        for node in started:
            wait_for(f"{node.name} to listen", node.listening, 30)
            # started: its heartbeat row is written once its store has loaded
            wait_for(f"{node.name} to join", lambda n=node: self.joined(n.name), 30)
        return started

    def joined(self, name: str) -> bool:
        try:
            return bool(self.sql("SELECT 1 FROM cluster_nodes WHERE name = %s", name))
        except psycopg.errors.UndefinedTable:  # no node has joined yet
            return False

    def running(self) -> list[Node]:
        return [n for n in self.nodes if n.proc.poll() is None]

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    def publisher(self) -> str | None:
        """The node holding the publisher lock, by `aggregator status --json`."""
        node = self.running()[0]
        done = subprocess.run(
            [sys.executable, "-m", "aggregator", "status", "--json", "--config", str(node.config)],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        nodes = json.loads(done.stdout)["nodes"]
        return next((n["name"] for n in nodes if n["publisher"]), None)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def articles(self) -> int:
        return int(self.sql("SELECT count(*) FROM articles")[0][0])

    def story(self) -> str:
        """What each node did, for a failure's message: runs logged, every warning and
        error, and its last lines."""
        parts = []
        for node in self.nodes:
            lines = node.logs().splitlines()
            runs = sum(" new, " in line for line in lines)
            alert = [line for line in lines if " WARNING " in line or " ERROR " in line]
            state = "running" if node.proc.poll() is None else f"exit {node.proc.returncode}"
            parts.append(f"--- {node.name} ({state}, {runs} runs logged); warnings and errors:\n"
                         + "\n".join(alert[-30:]) + f"\n--- {node.name}'s last lines:\n"
                         + "\n".join(lines[-15:]))  # fmt: skip
        return "\n".join(parts)


def told(test: Callable[..., None]) -> Callable[..., None]:
    """A failed test's message tells what each node did (`Cluster.story`)."""

    @functools.wraps(test)
    def run(cluster: Cluster, *args: Any, **kwargs: Any) -> None:
        try:
            test(cluster, *args, **kwargs)
        except AssertionError as e:
            raise AssertionError(f"{e}\n{cluster.story()}") from e

    return run


@pytest.fixture(scope="module")
def cluster(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with serve_in_thread(App(), fixtures=False) as app:
        farm = FeedFarm(app, FEEDS, delay=ANSWER)
        c = Cluster(tmp_path_factory.mktemp("multinode"), pg_server.database(), farm)
        try:
            c.start(3)
            # every feed read once and published (a fresh store's first pass)
            wait_for("the first pass", lambda: len(farm.snapshot()) == FEEDS, 60)
            wait_for("the first publish", lambda: any(farm.newest() in n.atom()
                                                      for n in c.nodes), 60)  # fmt: skip
            yield c
        finally:
            for node in c.nodes:
                if node.proc.poll() is None:
                    node.proc.kill()
                    node.proc.wait()


@told
def test_no_feed_is_fetched_twice_in_an_interval(cluster: Cluster) -> None:
    farm = cluster.farm
    since = time.monotonic()
    time.sleep(5 * EVERY)
    assert farm.double_fetches(EVERY) == []
    fetches = farm.snapshot()
    # five intervals: every feed ran again and again (about five times), on all three nodes
    assert min(sum(t >= since for t in times) for times in fetches.values()) >= 3
    runs = dict(cluster.sql("SELECT last_run_by, count(*) FROM cluster_sources GROUP BY 1"))
    assert set(runs) == {"n0", "n1", "n2"}, runs
    # the host's limit held across the three nodes (each alone may fetch 4 at once: 12
    # without it), the first pass included, when all 300 were due together
    assert farm.max_in_flight() <= PER_HOST


@told
def test_a_second_node_with_a_live_nodes_name_is_refused(cluster: Cluster) -> None:
    taken = cluster.running()[0]
    config = cluster.root / "same-name.yaml"
    config.write_text(taken.config.read_text(encoding="utf-8"), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "run", "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert f"cluster.node: a node named '{taken.name}' is running" in done.stderr


@told
def test_status_and_healthz_show_the_nodes(cluster: Cluster) -> None:
    node = cluster.nodes[0]
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "status", "--config", str(node.config)],
        cwd=REPO, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "nodes: 3 (sharing this database)" in done.stdout
    for name in ("n0", "n1", "n2"):
        assert re.search(rf"^  {name} \((publisher|alive), .*sources held$", done.stdout, re.M)
    assert re.search(r"^  held by:      (n[012] \(lease until|nobody \(last run by n[012])",
                     done.stdout, re.M)  # fmt: skip
    publisher = cluster.publisher()
    for n in cluster.nodes:
        health = n.get("/healthz")
        assert health.status_code == 200
        assert health.json()["node"] == n.name and health.json()["publisher"] == publisher


@told
def test_a_killed_nodes_sources_are_fetched_again_within_an_interval_plus_the_lease(
    cluster: Cluster,
) -> None:
    farm = cluster.farm
    publisher = cluster.publisher()
    victim = next(n for n in cluster.running() if n.name != publisher)
    victim.kill()
    killed = time.monotonic()
    held = {r[0] for r in cluster.sql(
        "SELECT source FROM cluster_sources WHERE claimed_by = %s", victim.name)}  # fmt: skip
    time.sleep(PICKUP + EVERY)
    for i, times in farm.snapshot().items():
        before = [t for t in times if t < killed]
        after = [t for t in times if t >= killed]
        assert after, f"feed {i} never fetched after the kill"
        assert after[0] - (before[-1] if before else killed) <= PICKUP, (i, victim.name)
    # a fetch under way on the dead node is done again: only those come close together
    doubled = {f"f{i}" for i, _ in farm.double_fetches(EVERY, since=killed - EVERY)}
    assert doubled <= held, (doubled, held)
    assert not cluster.sql("SELECT 1 FROM cluster_sources WHERE claimed_by = %s"
                           " AND lease_until > now()", victim.name)  # fmt: skip
    cluster.start()


@told
def test_a_node_stopped_with_sigterm_hands_its_sources_back_at_once(cluster: Cluster) -> None:
    farm = cluster.farm
    publisher = cluster.publisher()
    node = next(n for n in cluster.running() if n.name != publisher)
    node.proc.send_signal(signal.SIGTERM)
    assert node.proc.wait(timeout=15) == 0
    stopped = time.monotonic()
    assert not cluster.sql("SELECT 1 FROM cluster_sources WHERE claimed_by = %s", node.name)
    assert not cluster.joined(node.name)
    time.sleep(EVERY + 2.0)
    for i, times in farm.snapshot().items():  # no lease to wait out: on time, as before
        before = [t for t in times if t < stopped]
        after = [t for t in times if t >= stopped]
        assert after and after[0] - before[-1] <= EVERY + 2.5, (i, before[-1:], after[:1])
    cluster.start()


@told
def test_with_the_publisher_killed_the_feeds_are_still_updated_within_seconds(
    cluster: Cluster,
) -> None:
    publisher = cluster.publisher()
    assert publisher is not None
    cluster.node(publisher).kill()
    killed = time.monotonic()
    title = cluster.farm.publish_item()  # a new item in every feed

    def heir() -> str | None:
        name = cluster.publisher()
        return name if name != publisher else None

    node = cluster.node(wait_for("another publisher", heir, 10))
    took = time.monotonic() - killed
    wait_for("the new item in the new publisher's feed", lambda: title in node.atom(),
             EVERY + 15)  # fmt: skip
    # and served by every node (from the database: the same bytes)
    for other in cluster.running():
        wait_for(f"{other.name} serving it", lambda n=other: title in n.get("/atom.xml").text, 10)
    assert took < 10
    cluster.start()


@told
def test_postgresql_restarted_under_running_nodes(cluster: Cluster, pg_server: PgServer) -> None:
    """The nodes reconnect, lose nothing (every item published since is stored and
    published) and never exit."""
    wait_for("the last item everywhere", lambda: cluster.articles() >= FEEDS * (cluster.farm.items),
             2 * PICKUP)  # fmt: skip
    before = cluster.articles()
    running = cluster.running()
    pg_server.restart()
    restarted = time.monotonic()
    title = cluster.farm.publish_item()
    wait_for("every new item stored", lambda: cluster.articles() >= before + FEEDS,
             2 * PICKUP + 10)  # fmt: skip
    assert cluster.articles() == before + FEEDS
    publisher = wait_for("a publisher", cluster.publisher, 10)
    wait_for("the new item published", lambda: title in cluster.node(publisher).atom(), 15)
    assert all(n.proc.poll() is None for n in running), [n.logs()[-2000:] for n in running]
    assert all(times[-1] > restarted for times in cluster.farm.snapshot().values())
