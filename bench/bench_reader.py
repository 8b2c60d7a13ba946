"""Benchmark: this aggregator next to lemon24/reader on the same feeds, in the same run.

    python bench/bench_reader.py [--reader-python PATH] [--sources 1000] [--items 50]
                                 [--workers 20] [--rounds 2]

bench_sources' server (its own process, 20 loopback addresses, 20 ms before each answer)
serves the same 1,000 feeds x 50 items to both. Each round runs, on a fresh store each:
this aggregator's whole `run_once` (everything new, then everything 304: fetch, parse,
de-duplicate, store and publish 3,010 files), then reader's `update_feeds` twice (fetch,
parse and store; reader publishes nothing). Rounds alternate which goes first. Printed per
pass: seconds, entries/s (new passes), sources/s and the busy core-seconds of the whole
machine during the pass (from /proc/stat: the bench server's share is in both sides' figures).

reader runs in a process of its own under `--reader-python`, a Python with `reader`
installed (`python -m venv /tmp/rdv && /tmp/rdv/bin/pip install reader sgmllib3k`: its
vendored feedparser imports sgmllib), so this project's environment needs nothing extra.
Its `--workers` threads fetch and parse at once (reader's own knob; the aggregator uses its
per-host limits and one parse worker per core).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

READER_PASSES = r"""
import json, os, sys, time, resource
from reader import make_reader
def busy():
    v = list(map(int, open("/proc/stat").readline().split()[1:9]))
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")
db, workers, urls = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
r = make_reader(db)
for url in urls:
    r.add_feed(url)
out = []
for _ in range(2):
    t, c = time.perf_counter(), busy()
    r.update_feeds(workers=workers, scheduled=False)  # every feed, due or not
    out.append((time.perf_counter() - t, busy() - c))
counts = r.get_entry_counts()
errors = sum(1 for f in r.get_feeds() if f.last_exception)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"passes": out, "entries": counts.total, "errors": errors, "peak_mb": peak}))
"""


def run_ours(bases: list[str], sources: int, folder: Path) -> list[tuple[float, float, int]]:
    """(seconds, busy core-seconds, entries read) per pass."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import bench_sources as bs

    from aggregator.config import load_config
    from aggregator.pipeline import run_once
    from aggregator.store import Store

    cfg = load_config(bs.write_config(folder, bases, sources))
    passes = []
    with Store.open(cfg.store_target) as store:
        for now in (bs.T0, bs.T0 + timedelta(hours=1)):
            t, c = time.perf_counter(), busy()
            report = run_once(cfg, store, None, now)
            passes.append((time.perf_counter() - t, busy() - c, report.read))
    return passes


def busy() -> float:
    """Busy core-seconds of the whole machine so far (the parse and render workers are the
    forkserver's children, out of reach of getrusage)."""
    with open("/proc/stat") as stat:
        v = list(map(int, stat.readline().split()[1:9]))
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def run_reader(python: str, urls: list[str], workers: int, folder: Path) -> dict[str, object]:
    done = subprocess.run(
        [python, "-c", READER_PASSES, str(folder / "reader.sqlite"), str(workers), *urls],
        capture_output=True, text=True, check=False, timeout=900,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"reader failed ({python}):\n{done.stderr[-2000:]}")
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def row(label: str, seconds: float, cpu: float, sources: int, entries: int = 0) -> None:
    rate = f"{entries / seconds:8.0f} entries/s" if entries else " " * 18
    print(f"  {label:<28} {seconds:7.2f} s  {rate}  {sources / seconds:7.0f} sources/s  "
          f"busy {cpu:6.2f} core-s", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reader-python", default=sys.executable)
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--workers", type=int, default=20, help="reader's update_feeds workers")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    probe = subprocess.run([args.reader_python, "-c", "import reader; print(reader.__version__)"],
                           capture_output=True, text=True, check=False)  # fmt: skip
    if probe.returncode != 0:
        hint = "python -m venv /tmp/rdv && /tmp/rdv/bin/pip install reader sgmllib3k"
        raise SystemExit(f"{args.reader_python} cannot import reader ({hint})")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_sources as bs

    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    server = ctx.Process(target=bs.serve, args=(20, args.items, 0.02, theirs), daemon=True)
    server.start()
    bases = mine.recv()
    time.sleep(0.5)  # the sockets are bound before uvicorn listens on them
    urls = [f"{bases[i % len(bases)]}/feed/{i}" for i in range(args.sources)]
    with ThreadPoolExecutor(16) as pool:  # the server makes each body once: before timing
        list(pool.map(lambda u: urllib.request.urlopen(u).read(), urls))
    print(
        f"{args.sources} feeds x {args.items} items, 20 ms server delay, {len(bases)} hosts, "
        f"{os.cpu_count()} CPUs; reader {probe.stdout.strip()} with {args.workers} workers"
    )
    try:
        for n in range(args.rounds):
            order = ("ours", "reader") if n % 2 == 0 else ("reader", "ours")
            print(f"round {n + 1}:")
            for who in order:
                with tempfile.TemporaryDirectory() as tmp:
                    if who == "ours":
                        (new, old) = run_ours(bases, args.sources, Path(tmp))
                        row("aggregator run_once (new)", new[0], new[1], args.sources, new[2])
                        row("aggregator run_once (304)", old[0], old[1], args.sources)
                    else:
                        got = run_reader(args.reader_python, urls, args.workers, Path(tmp))
                        passes = got["passes"]
                        assert isinstance(passes, list)
                        total = int(str(got["entries"]))
                        row("reader update_feeds (new)", *passes[0], args.sources, total)
                        row("reader update_feeds (304)", *passes[1], args.sources)
                        print(f"    reader stored {total} entries, {got['errors']} feeds "
                              f"failed, peak RSS {got['peak_mb']:.0f} MB")  # fmt: skip
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
