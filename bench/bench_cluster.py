"""The cluster's coordination cost on a PostgreSQL server of the bench's own (tests/pgserver.py).

    python bench/bench_cluster.py [--sources 10000] [--seconds 6] [--nodes 1 2 3] [--rounds 2]

1. Claims: N processes, each a cluster node, claim due sources (4 at a time, as a node with
   four fetch threads does), mark each fetched and release it due again at once: whole
   source cycles (claim + fetched + release, three transactions) per second the database
   sustains with 1, 2 and 3 claiming nodes; sources spread over 20 hosts (host slots
   counted). Rounds interleave the node counts; medians. Reference in each round: bare
   `SELECT 1` round trips per second on one connection.
2. Overhead per source run: one node's coordination time per source (the cycle above, on
   its own) next to a whole source run on SQLite (`run_once` of one feed source from the
   local server, unchanged bytes: fetch, digest, state saved).
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

from aggregator.cluster import Node  # noqa: E402
from aggregator.config import SourceConfig  # noqa: E402

HOSTS = 20
BATCH = 4


def bench_sources(count: int) -> list[SourceConfig]:
    return [
        SourceConfig(name=f"s{i}", type="feed", every=900.0, url=f"http://10.0.{i % HOSTS}.1/f/{i}")
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


def sqlite_run_ms(runs: int) -> float:
    """ms per `run_once` of one feed source on SQLite, unchanged body (the same-run
    comparison for the cluster's per-run cost)."""
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
            "output:\n  dir: out\nstate: state.sqlite3\nretention: never\n"
            f"sources:\n{farm.sources_yaml('1s')}", encoding="utf-8",
        )  # fmt: skip
        config = load_config(root / "config.yaml")
        from datetime import UTC, datetime, timedelta

        now = datetime(2026, 1, 2, tzinfo=UTC)
        with Store.open(config.state) as store, WebClient() as client:
            run_once(config, store, client, now, publish_feeds=False)
            started = time.perf_counter()
            for i in range(runs):
                run_once(config, store, client, now + timedelta(seconds=i + 1),
                         publish_feeds=False, force=True)  # fmt: skip
            return (time.perf_counter() - started) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from tests.pgserver import PgServer, binaries

    bindir = binaries()
    if bindir is None:
        sys.exit("PostgreSQL binaries (initdb, pg_ctl) are not installed")
    server = PgServer(bindir)
    try:
        print(f"nproc {os.cpu_count()}; PostgreSQL of our own (fsync off), {args.sources} "
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
        run_ms = sqlite_run_ms(200)
        print(
            f"overhead per source run: {1000 / one:.2f} ms of coordination (one node's "
            f"cycle) vs {run_ms:.2f} ms for a whole unchanged-feed run on SQLite (same run)"
        )
    finally:
        server.close()


if __name__ == "__main__":
    main()
