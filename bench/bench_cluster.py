"""The cluster's coordination cost on a PostgreSQL server of the bench's own (tests/pgserver.py).

    python bench/bench_cluster.py [--sources 10000] [--seconds 6] [--nodes 1 2 3] [--rounds 2]

1. Claims: N processes, each a cluster node, claim due sources (4 at a time, as a node with
   four fetch threads does), mark each fetched and release it due again at once: whole
   source cycles (claim + fetched + release, three transactions) per second the database
   sustains with 1, 2 and 3 claiming nodes; sources spread over 20 hosts (host slots
   counted). Rounds interleave the node counts; medians. Reference in each round: bare
   `SELECT 1` round trips per second on one connection.
2. Overhead per source run: one node's coordination time per source (the cycle above, on
   its own) next to a whole source run (`run_once` of one feed source from the local
   server, unchanged bytes: fetch, digest, state saved) on SQLite and on PostgreSQL.

    python bench/bench_cluster.py --farm [--feeds 10000] [--farm-nodes 1 3] [--farm-seconds 45]

3. The daemons: `aggregator run` x 1 and x 3 on a fresh database, FEEDS feed sources every
   15 minutes from a local server (its own process, 20 loopback addresses, 20 ms before each
   answer). Measured from the first fetch, for less than the interval: the first pass,
   where every source is due at once, so the rate sustained is the capacity to set against
   the 667 sources/minute that 10,000 sources every 15 minutes ask. Any feed fetched twice
   is a double fetch.
   CPU seconds of the daemons (with their workers) and of PostgreSQL; database size.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from aggregator.cluster import Node  # noqa: E402
from aggregator.config import SourceConfig  # noqa: E402

HOSTS = 20
BATCH = 4


def bench_sources(count: int) -> list[SourceConfig]:
    return [
        SourceConfig(
            name=f"s{i}", type="feed", every=900.0, url=f"http://127.0.{i % HOSTS}.1/f/{i}"
        )  # never fetched
        for i in range(count)
    ]


def claimer(url: str, name: str, count: int, seconds: float, start: Any, out: Any) -> None:
    """One node: claim, fetched, release, as fast as the database answers."""

    async def main() -> None:
        sources = bench_sources(count)
        node = Node(url, name, lease=60.0, per_host=6)
        await node.join(sources, {s.name: 0.0 for s in sources},
                        {s.name: 86400.0 for s in sources})  # fmt: skip
        start.wait()
        cycles = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for source in await node.claim(BATCH):
                await node.fetched(source)
                await node.release(source, 0.0)
                cycles += 1
        await node.leave()
        out.put(cycles)

    asyncio.run(main())


def round_trips(url: str, seconds: float) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        n, deadline = 0, time.monotonic() + seconds
        while time.monotonic() < deadline:
            conn.execute("SELECT 1").fetchone()
            n += 1
    return n / seconds


def claims(url: str, nodes: int, count: int, seconds: float) -> float:
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=claimer, args=(url, f"bench{i}", count, seconds, start, out))
             for i in range(nodes)]  # fmt: skip
    for p in procs:
        p.start()
    time.sleep(2.0 + nodes)  # every node joined (and imported) before the clock starts
    start.set()
    total = sum(out.get(timeout=seconds + 60) for _ in procs)
    for p in procs:
        p.join()
    return total / seconds


def run_ms(runs: int, state: str) -> float:
    """ms per `run_once` of one feed source, unchanged body (fetch, digest, state saved),
    on the store `state` (a SQLite file name or a PostgreSQL URL)."""
    from aggregator.config import load_config
    from aggregator.pipeline import run_once
    from aggregator.sources.http import WebClient
    from aggregator.store import Store
    from tests.feedfarm import FeedFarm
    from tests.localserver import serve_in_thread

    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(fixtures=False) as app:
        farm = FeedFarm(app, 1, items=20)
        root = Path(tmp)
        (root / "config.yaml").write_text(
            f"output:\n  dir: out\nstate: {state}\nretention: never\n"
            f"sources:\n{farm.sources_yaml('1s')}", encoding="utf-8",
        )  # fmt: skip
        config = load_config(root / "config.yaml")
        from datetime import UTC, datetime, timedelta

        now = datetime(2026, 1, 2, tzinfo=UTC)
        with Store.open(config.store_target) as store, WebClient() as client:
            run_once(config, store, client, now, publish_feeds=False)
            started = time.perf_counter()
            for i in range(runs):
                run_once(config, store, client, now + timedelta(seconds=i + 1),
                         publish_feeds=False, force=True)  # fmt: skip
            return (time.perf_counter() - started) / runs * 1000


# -- the daemons on a feed farm --------------------------------------------------------
FARM_HOSTS = 20
FARM_DELAY = 0.02


def farm_server(ready: Any) -> None:
    """The feeds, and /__stats: fetches so far and feeds fetched more than once."""
    import json
    from collections import Counter

    from bench_sources import serve_on_hosts

    from tests.feedfarm import rss

    hits: Counter[int] = Counter()
    bodies: dict[int, bytes] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/__reset":
            hits.clear()
            body = b"{}"
        elif path == "/__stats":
            doubled = sum(1 for n in hits.values() if n > 1)
            stats = {"fetches": sum(hits.values()), "feeds": len(hits), "doubled": doubled}
            body = json.dumps(stats).encode()
        else:
            i = int(path.rsplit("/", 1)[1])
            hits[i] += 1
            await asyncio.sleep(FARM_DELAY)
            body = bodies.get(i) or bodies.setdefault(i, rss(i, 3, "https://farm.test"))
        headers = [(b"content-type", b"application/rss+xml; charset=utf-8"),
                   (b"content-length", str(len(body)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    serve_on_hosts(app, FARM_HOSTS, ready)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += children.get(p, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of the processes and their descendants (living, and reaped)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for root in pids:
        for p in _descendants(root):
            try:
                fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
    return total / ticks


def farm_config(root: Path, url: str, bases: list[str], feeds: int, node: str) -> Path:
    sources = "".join(
        f"  - name: s{i}\n    type: feed\n    url: {bases[i % len(bases)]}/feed/{i}\n"
        "    every: 15m\n"
        for i in range(feeds)
    )
    path = root / "config.yaml"
    path.write_text(
        f"state: {url}\noutput:\n  dir: out\nretention: never\nlog_level: warning\n"
        f"server:\n  port: 0\ncluster:\n  node: {node}\nsources:\n{sources}",
        encoding="utf-8",
    )
    return path


def farm_run(server: Any, bases: list[str], feeds: int, nodes: int, seconds: float) -> None:
    import json
    import subprocess
    import urllib.request

    import psycopg

    url = server.database("farm")
    repo = Path(__file__).resolve().parent.parent

    def stats(what: str = "stats") -> dict[str, int]:
        with urllib.request.urlopen(f"{bases[0]}/__{what}", timeout=10) as r:
            return dict(json.loads(r.read()))

    stats("reset")

    with tempfile.TemporaryDirectory() as tmp:
        procs = []
        for n in range(nodes):
            root = Path(tmp) / f"node{n}"
            root.mkdir()
            config = farm_config(root, url, bases, feeds, f"b{n}")
            with open(root / "log", "wb") as log:
                procs.append(subprocess.Popen(
                    [sys.executable, "-m", "aggregator", "run", "--config", str(config)],
                    stdout=subprocess.DEVNULL, stderr=log, cwd=repo,
                ))  # fmt: skip
        pg_pid = int((server.data / "postmaster.pid").read_text().split()[0])
        pg0, t0 = cpu_seconds([pg_pid]), time.monotonic()
        while stats()["fetches"] == 0 and time.monotonic() - t0 < 120:
            time.sleep(0.2)  # start-up: a config of 10,000 sources, the store, joining
        s1, t1 = stats(), time.monotonic()
        time.sleep(seconds)
        s2, t2 = stats(), time.monotonic()
        node_cpu = cpu_seconds([p.pid for p in procs])
        pg_cpu = cpu_seconds([pg_pid]) - pg0
        with psycopg.connect(url) as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            articles = conn.execute("SELECT count(*) FROM articles").fetchone()
        for p in procs:
            p.kill()
            p.wait()
    assert size is not None and articles is not None
    rate = (s2["fetches"] - s1["fetches"]) / (t2 - t1) * 60
    wall = t2 - t0
    print(f"{nodes} node(s): {rate:,.0f} sources/min sustained (667/min asked) over "
          f"{t2 - t1:.0f}s after the first fetch ({t1 - t0:.0f}s after the start); "
          f"{s2['fetches']:,} fetched in {wall:.0f}s, {s2['doubled']} fetched twice; "
          f"CPU: nodes {node_cpu:.0f}s "
          f"({node_cpu / wall:.2f} cores), PostgreSQL {pg_cpu:.0f}s ({pg_cpu / wall:.2f} "
          f"cores); database {int(size[0]) / 2**20:.0f} MiB, {articles[0]:,} articles")  # fmt: skip


def farm(args: argparse.Namespace, server: Any) -> None:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    feed_server = ctx.Process(target=farm_server, args=(theirs,), daemon=True)
    feed_server.start()
    bases = ours.recv()
    try:
        delay = f"{FARM_DELAY * 1000:.0f} ms"
        print(f"{args.feeds} feed sources every 15m, {FARM_HOSTS} hosts, {delay} per answer;"
              f" {args.farm_seconds:.0f}s per run")  # fmt: skip
        for n in args.farm_nodes:
            print(f"reference: {round_trips(server.database('ref'), 2.0):,.0f} SELECT 1/s")
            farm_run(server, bases, args.feeds, n, args.farm_seconds)
    finally:
        feed_server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--farm", action="store_true", help="the daemons on a feed farm")
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--farm-nodes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--farm-seconds", type=float, default=45.0)
    args = parser.parse_args()
    from tests.pgserver import PgServer, binaries

    bindir = binaries()
    if bindir is None:
        sys.exit("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    server = PgServer(bindir)
    try:
        print(f"nproc {os.cpu_count()}; PostgreSQL of our own (fsync off)")
        if args.farm:
            farm(args, server)
            return
        print(f"{args.sources} "
              f"sources over {HOSTS} hosts, {BATCH} claimed at a time")  # fmt: skip
        rates: dict[int, list[float]] = {n: [] for n in args.nodes}
        for r in range(args.rounds):
            reference = round_trips(server.database("ref"), 2.0)
            for n in args.nodes:
                rates[n].append(claims(server.database("claims"), n, args.sources, args.seconds))
            shown = ", ".join(f"{n} node(s) {rates[n][-1]:,.0f}/s" for n in args.nodes)
            print(f"round {r + 1}: reference {reference:,.0f} SELECT 1/s; {shown}")
        for n in args.nodes:
            rate = statistics.median(rates[n])
            print(f"{n} node(s): {rate:,.0f} source cycles/s (claim + fetched + release), "
                  f"{rate / n:,.0f}/s per node (median of {args.rounds})")  # fmt: skip
        one = statistics.median(rates[min(args.nodes)]) / min(args.nodes)
        sqlite_ms, pg_ms = run_ms(200, "state.sqlite3"), run_ms(200, server.database("run"))
        print(f"overhead per source run: {1000 / one:.2f} ms of coordination (one node's "
              f"cycle); a whole unchanged-feed run takes {sqlite_ms:.2f} ms on SQLite and "
              f"{pg_ms:.2f} ms on PostgreSQL (same run)")  # fmt: skip
    finally:
        server.close()


if __name__ == "__main__":
    main()
