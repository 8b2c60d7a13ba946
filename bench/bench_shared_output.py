"""Serving published files from PostgreSQL (aggregator/sharedout.py) against serving them
from the folder, and how long a publish takes to reach every node.

    python bench/bench_shared_output.py [--seeds 200] [--nodes 3] [--seconds 3] [--repeat 3]
                                        [--publishes 10]

1. Publishes --seeds seed files into a folder with a SQLite store, and stores the files
   in a PostgreSQL server of its own (tests/pgserver.py: initdb + pg_ctl, temporary).
2. Requests/s for /atom.xml (full GET and 304) from one server process reading the folder
   (the reference) and one reading the database, the daemon's uvicorn settings, wrk with 8
   connections (bench_serve.measure), interleaved; medians of --repeat rounds.
3. --nodes server processes on the database; --publishes times: one new seed, a publish
   (prepare, write, commit), then the time from the commit until every node answers with
   the new ETag (each polled every 2 ms). Median and worst.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from bench_serve import measure, write_seed  # noqa: E402

from aggregator.config import load_config  # noqa: E402
from aggregator.pipeline import run_once  # noqa: E402
from aggregator.sharedout import Mirror  # noqa: E402
from aggregator.store import Store  # noqa: E402
from tests.pgserver import PgServer, binaries  # noqa: E402

CONFIG = """\
output:
  dir: feeds
  max_items: 50
state: state/aggregator.sqlite3
sources:
  - name: tgrt
    type: seeds
    path: seeds
    every: 1s
"""
NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)


def serve(url: str, folder: str) -> None:
    """A server process (`--node`): the database's files, or the folder's with `-`."""
    import uvicorn

    from aggregator.connections import server_settings
    from aggregator.serve import REVALIDATE, create_app
    from aggregator.sharedout import SharedFiles

    app = create_app(Path(folder), revalidate=REVALIDATE)
    # IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (as the daemon's listen())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning",
                                           ws="none", **server_settings()))  # fmt: skip

    async def main() -> None:
        if url != "-":
            await SharedFiles(url, app).start()
        print(sock.getsockname()[1], flush=True)
        await server.serve(sockets=[sock])

    asyncio.run(main())


def start_node(url: str, folder: Path) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, __file__, "--node", url, str(folder)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None
    return proc, f"http://127.0.0.1:{proc.stdout.readline().strip()}"


def publish(config_path: Path, url: str, n: int | None) -> None:
    config = load_config(config_path)
    if n is not None:
        write_seed(config.sources[0].path or Path(), n)
    config.output_dir.mkdir(parents=True, exist_ok=True)
    with Mirror.open(url, config.output_dir) as mirror, Store.open(config.state) as store:
        mirror.prepare()
        mirror.begin()
        mirror.commit(list(run_once(config, store, None, NOW).feeds_written))


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--node":
        serve(sys.argv[2], sys.argv[3])
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--publishes", type=int, default=10)
    args = ap.parse_args()
    bindir = binaries()
    if bindir is None or not shutil.which("wrk"):
        print("needs PostgreSQL (initdb, pg_ctl) and wrk")
        return 1
    work = Path(tempfile.mkdtemp(prefix="bench-shared-"))
    pg = PgServer(bindir)
    procs: list[subprocess.Popen[str]] = []
    try:
        url = pg.database("bench")
        (work / "seeds").mkdir()
        (work / "config.yaml").write_text(CONFIG)
        for n in range(args.seeds):
            write_seed(work / "seeds", n)
        publish(work / "config.yaml", url, None)
        size = (work / "feeds" / "atom.xml").stat().st_size
        print(f"nproc {os.cpu_count()}; /atom.xml {size / 1024:.0f} KiB; {args.seeds} articles")

        disk_proc, disk = start_node("-", work / "feeds")
        db_proc, db = start_node(url, work / "feeds")
        procs += [disk_proc, db_proc]
        etag = httpx.get(db + "/atom.xml").headers["etag"]
        assert etag == httpx.get(disk + "/atom.xml").headers["etag"]
        for name, headers in (("full GET", {}), ("304", {"If-None-Match": etag})):
            rates: dict[str, list[float]] = {"folder": [], "database": []}
            for _ in range(args.repeat):
                for which, base in (("folder", disk), ("database", db)):
                    run = measure(base + "/atom.xml", args.seconds, 8, headers)
                    assert run["errors"] == 0, run
                    rates[which].append(run["rate"])
            print(f"/atom.xml {name:8}: database {statistics.median(rates['database']):8.0f}"
                  f" req/s   folder (reference) {statistics.median(rates['folder']):8.0f}"
                  " req/s")  # fmt: skip
        for p in procs:
            p.kill()
            p.wait()
        procs.clear()

        nodes = []
        for _ in range(args.nodes):
            proc, base = start_node(url, work / "feeds")
            procs.append(proc)
            nodes.append(base)
        lags = []
        with httpx.Client() as client:
            for i in range(args.publishes):
                old = {b: client.get(b + "/atom.xml").headers["etag"] for b in nodes}
                publish(work / "config.yaml", url, args.seeds + i)
                committed = time.perf_counter()
                waiting = set(nodes)
                while waiting:
                    for b in list(waiting):
                        if client.get(b + "/atom.xml").headers["etag"] != old[b]:
                            waiting.discard(b)
                    if time.perf_counter() - committed > 30:
                        raise SystemExit("a node did not see the publish in 30 s")
                    time.sleep(0.002)
                lags.append((time.perf_counter() - committed) * 1000)
        print(f"publish -> all {args.nodes} nodes serving it: median {statistics.median(lags):.0f}"
              f" ms, worst {max(lags):.0f} ms over {args.publishes} publishes")  # fmt: skip
    finally:
        for p in procs:
            p.kill()
            p.wait()
        pg.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
