"""Benchmark: article-page extraction, and what `fulltext: true` costs a first pass.

    python bench/bench_pages.py [--repeat 4] [--feeds 1000] [--items 50]
                                [--fulltext-feeds 100] [--fulltext-items 10]

1. Pages per second through `parse_page` over the real-page corpus
   (tests/data/real/pages/, `--repeat` times), in a process pool with one worker per CPU;
   beside it, in the same run, trafilatura's own `bare_extraction` on the same pages (the
   reference: our extraction runs it once per page plus our own layers).
2. bench/bench_sources.py's first `run_once` (everything new) with `fulltext` off
   (`--feeds` x `--items`), and on (`--fulltext-feeds` x `--fulltext-items`: each item's
   link is a page on the same local server, the stripped Hürriyet page of the corpus).
   The fulltext pass is scaled down: one page fetch + extraction per item.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_sources import line, serve, write_config  # noqa: E402

from aggregator.config import load_config  # noqa: E402
from aggregator.errors import ParseError  # noqa: E402
from aggregator.pipeline import run_once  # noqa: E402
from aggregator.sources.html import parse_page  # noqa: E402
from aggregator.store import Store  # noqa: E402
from tests.realpages import pages, score  # noqa: E402
from tests.test_real_pages import ours as ours_fields  # noqa: E402

TZ = ZoneInfo("Europe/Istanbul")
T0 = datetime(2026, 1, 10, 9, 0, tzinfo=TZ)


def ours(job: tuple[bytes, str]) -> bool:
    try:
        parse_page(job[0], url=job[1], source="bench", tz=TZ)
    except ParseError:
        return False
    return True


def theirs(job: tuple[bytes, str]) -> bool:
    from trafilatura import bare_extraction

    return bare_extraction(job[0], url=job[1], with_metadata=True) is not None


def pages_per_second(repeat: int) -> None:
    jobs = [(p.html, p.url) for p in pages()] * repeat
    size = sum(len(j[0]) for j in jobs) / len(jobs) / 1024
    workers = os.cpu_count() or 1
    print(f"{len(jobs)} pages (corpus x {repeat}, mean {size:.0f} KiB), {workers} workers")
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        list(pool.map(ours, jobs[: workers * 2]))  # imports and warm-up in every worker
        list(pool.map(theirs, jobs[: workers * 2]))
        for label, fn in (("trafilatura alone (reference)", theirs), ("parse_page", ours)):
            started = time.perf_counter()
            done = sum(pool.map(fn, jobs, chunksize=4))
            took = time.perf_counter() - started
            print(f"  {label:<30} {len(jobs) / took:7.1f} pages/s  ({done} extracted)")


def first_pass(label: str, feeds: int, items: int, fulltext: bool) -> None:
    ctx = multiprocessing.get_context("spawn")
    mine, theirs_end = ctx.Pipe()
    page = next(p for p in pages() if p.name == "scraperhryt-hurriyet").html if fulltext else b""
    server = ctx.Process(target=serve, args=(20, items, 0.02, theirs_end, page), daemon=True)
    server.start()
    bases = mine.recv()
    time.sleep(0.5)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(write_config(Path(tmp), bases, feeds, fulltext=fulltext))
            with Store.open(cfg.state) as store:
                started = time.perf_counter()
                report = run_once(cfg, store, None, T0)
                took = time.perf_counter() - started
            line(label, took, feeds, report.read)
            failed = sum(s.fulltext_failed for s in report.sources)
            print(f"  new {report.new}, failed sources {len(report.failed_sources)}"
                  + (f", pages without a body {failed}" if fulltext else ""))  # fmt: skip
    finally:
        server.terminate()
        server.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--feeds", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--fulltext-feeds", type=int, default=100)
    parser.add_argument("--fulltext-items", type=int, default=10)
    args = parser.parse_args()
    print(f"nproc {os.cpu_count()}")
    started = time.perf_counter()
    totals, _ = score(ours_fields)
    print(f"corpus scores {totals} ({time.perf_counter() - started:.1f} s, one process)")
    pages_per_second(args.repeat)
    first_pass("run_once pass 1, fulltext off", args.feeds, args.items, fulltext=False)
    first_pass(f"run_once pass 1, fulltext on ({args.fulltext_feeds}x{args.fulltext_items})",
               args.fulltext_feeds, args.fulltext_items, fulltext=True)  # fmt: skip


if __name__ == "__main__":
    main()
