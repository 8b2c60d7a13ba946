"""Serving and 304 refreshes while `aggregator run` publishes (issue 16: `/atom.xml` p99
under 10 ms during publishes, no 304 refresh delayed by publishing).

    python bench/bench_daemon_publish.py [--sources 1000] [--every 60s] [--seconds 150]
                                         [--rate 100] [--store N] [--switch-interval S]
                                         [--code DIR]

A local feed server in its own process (bench_sources.py's layout: 20 loopback hosts, 20 ms
before each answer) serves N feeds of 50 items; every minute a tenth of them gains a new
item (a new ETag), the rest answer 304. The daemon runs as a subprocess on a fresh store
(or, with `--store N`, on a copy of bench_publish.py's cached store of N articles, its
sources renamed to these feeds), polling every source every `--every`. A client in a third
process asks for `/atom.xml` `--rate` times a second on one kept-alive connection
(alternately a full gzip GET and a conditional GET answered 304) and times each answer.

Printed, from the daemon's log lines and the client's timings: every publish (files, time),
answer latency percentiles inside publish windows and outside them (the same-run
reference), before and after the first pass (when every source has run once); how long
source runs that got a 304 took (from when the job started, so any wait for the store's
one thread is in it), those that overlapped a publish next to those that did not (the
reference: a publish that delays 304 runs shows as a gap), and how much of their time a
publish was running; the resident memory of the daemon and of its children (the
publisher process), sampled every 2 s. `--code DIR` runs the daemon from another checkout
(e.g. a worktree of main), for before/after runs with the same harness.
`--switch-interval` runs the daemon with another `sys.setswitchinterval` (an experiment:
how long the serving thread waits for the GIL while a publish or merge holds it).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import multiprocessing
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_daemon_memory  # noqa: E402
import bench_sources  # noqa: E402

CHANGE_PERIOD = 60.0  # seconds between a changing feed's versions
CHANGING_SHARE = 10  # one feed in this many changes each period


def changing_body(index: int, items: int, version: int) -> bytes:
    """Feed `index` after `version` new items: the newest `items`, newest first."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Kaynak {index}</title><link>https://site{index}.test/</link>"
    ]
    for j in range(version + items - 1, version - 1, -1):
        minute = (index * 7 + j * 13) % (60 * 24 * 28)
        day, rest = divmod(minute, 1440)
        parts.append(
            f"<item><title>Kaynak {index} haber {j}: {bench_sources._story(index + 1, j)}</title>"
            f"<link>https://site{index}.test/haber/{j}</link><guid>site{index}-{j}</guid>"
            f"<pubDate>{day + 1:02d} Dec 2025 {rest // 60:02d}:{rest % 60:02d}:00 +0300</pubDate>"
            f"<category>Kategori {(index + j) % 40}</category>"
            f"<description><![CDATA[<p>{bench_sources._story(index, j)} "
            f"{bench_sources._story(j, index)}.</p>]]></description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def serve(hosts: int, items: int, delay: float, ready: Any) -> None:
    """The feed server process: feed i's version is how many periods it changed in."""

    started = time.monotonic()

    def version(index: int) -> int:
        periods = int((time.monotonic() - started) / CHANGE_PERIOD)
        return sum(1 for g in range(1, periods + 1) if (index + g) % CHANGING_SHARE == 0)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        index = int(scope["path"].rsplit("/", 1)[1])
        v = version(index)
        etag = f'"f{index}-{v}"'.encode()
        await asyncio.sleep(delay)
        if dict(scope["headers"]).get(b"if-none-match") == etag:
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(b"etag", etag)]})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return
        body = changing_body(index, items, v)
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/rss+xml; charset=utf-8"), (b"etag", etag),
            (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    bench_sources.serve_on_hosts(app, hosts, ready)


def probe(port: int, rate: float, seconds: float, out: Any) -> None:
    """Client process: (wall time at the start, seconds, status) of each answer."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    timings: list[tuple[float, float, int]] = []
    etag = ""
    gap = 1 / rate
    deadline = time.monotonic() + seconds
    k = 0
    while time.monotonic() < deadline:
        headers = {"Accept-Encoding": "gzip"}
        if k % 2 and etag:
            headers["If-None-Match"] = etag
        wall, t0 = time.time(), time.perf_counter()
        try:
            conn.request("GET", "/atom.xml", headers=headers)
            r = conn.getresponse()
            r.read()
            status = r.status
            etag = r.getheader("ETag") or etag
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status = 0
        took = time.perf_counter() - t0
        timings.append((wall, took, status))
        k += 1
        time.sleep(max(0.0, gap - took))
    out.send(timings)


_LINE = re.compile(r"^(\S+) \w+ \S+: (.*)$")
_PUBLISHED = re.compile(r"feeds published: (\d+) files written .*, (\d+) articles, ([\d.]+)s")
_SOURCE = re.compile(r"source s\d+: (\d+) new, (\d+) updated, (\d+) unchanged in ([\d.]+)s")


def parse_log(
    text: str,
) -> tuple[list[tuple[float, float, int, int]], list[tuple[float, float]], list[float]]:
    """Publishes (start, end, files, articles), 304 source runs (start, end) and the end
    of every source run."""
    publishes, not_modified, ends = [], [], []
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        try:
            end = datetime.fromisoformat(m.group(1)).timestamp()
        except ValueError:
            continue
        if p := _PUBLISHED.search(m.group(2)):
            files, articles, took = int(p.group(1)), int(p.group(2)), float(p.group(3))
            publishes.append((end - took, end, files, articles))
        elif s := _SOURCE.search(m.group(2)):
            ends.append(end)
            if s.group(1, 2, 3) == ("0", "0", "0"):
                not_modified.append((end - float(s.group(4)), end))
    return publishes, not_modified, ends


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def describe(label: str, ms: list[float]) -> None:
    if not ms:
        print(f"  {label:<44} none")
        return
    print(f"  {label:<44} {len(ms):6d}  p50 {pct(ms, 0.5):6.2f}  p99 {pct(ms, 0.99):7.2f}"
          f"  max {max(ms):7.2f} ms")  # fmt: skip


def seed_store(size: int, state: Path, sources: int) -> None:
    """A copy of bench_publish.py's cached store, its sources renamed s0.. to these feeds."""
    cached = ROOT / "bench" / "out" / "publish-cache" / f"store-{size}.sqlite3"
    if not cached.exists():
        sys.exit(f"{cached}: run bench/bench_publish.py --sizes {size} first")
    shutil.copyfile(cached, state)
    conn = sqlite3.connect(state)
    conn.execute("UPDATE articles SET source = 's' || (CAST(substr(source, 2) AS INTEGER) * "
                 f"{max(1, sources // 100)})")  # fmt: skip
    conn.commit()
    conn.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--every", default="60s")
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--rate", type=float, default=100.0, help="client requests per second")
    ap.add_argument("--store", type=int, default=0, help="start on a store of N articles")
    ap.add_argument("--switch-interval", type=float, default=0.0,
                    help="the daemon's sys.setswitchinterval (default: 0.005 s)")  # fmt: skip
    ap.add_argument("--code", type=Path, default=ROOT,
                    help="the checkout whose aggregator the daemon runs")  # fmt: skip
    args = ap.parse_args()

    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    server = ctx.Process(target=serve, args=(20, 50, 0.02, theirs), daemon=True)
    server.start()
    bases = mine.recv()
    with tempfile.TemporaryDirectory(prefix="bench-publish-") as tmp:
        config = bench_sources.write_config(Path(tmp), bases, args.sources)
        text = config.read_text().replace("every: 5m", f"every: {args.every}")
        text = text.replace("max_items: 200", "max_items: 50")
        config.write_text(text.replace("state: state.sqlite3\n",
                                       "state: state.sqlite3\nserver:\n  port: 0\n"))  # fmt: skip
        if args.store:
            seed_store(args.store, Path(tmp) / "state.sqlite3", args.sources)
        log = Path(tmp) / "daemon.log"
        with open(log, "wb") as err:
            # the daemon, optionally with another GIL switch interval (an experiment knob)
            start = ("import sys; from aggregator.cli import main; "
                     f"sys.setswitchinterval({args.switch_interval or sys.getswitchinterval()}); "
                     f"sys.exit(main(['run', '--config', {str(config)!r}]))")  # fmt: skip
            env = dict(os.environ, PYTHONPATH=str(args.code.resolve()))
            proc = subprocess.Popen([sys.executable, "-c", start], cwd=args.code, env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        try:
            port = bench_daemon_memory.daemon_port(proc, log)
            got, sent = ctx.Pipe()
            client = ctx.Process(target=probe, args=(port, args.rate, args.seconds, sent))
            client.start()
            memory = []  # (daemon, its children) resident MiB
            while not got.poll(2.0):
                memory.append(bench_daemon_memory.tree_rss_mib(proc.pid)[:2])  # RSS, not Pss
            timings = got.recv()
            client.join()
            text = log.read_text()
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            server.terminate()
    publishes, not_modified, ends = parse_log(text)
    print(f"{args.sources} feed sources x 50 items, every {args.every}, {os.cpu_count()} CPUs, "
          f"start store {args.store or 'empty'}; client {args.rate:g} req/s for "
          f"{args.seconds:g} s; GIL switch interval "
          f"{(args.switch_interval or sys.getswitchinterval()) * 1000:g} ms; code "
          f"{args.code}")  # fmt: skip
    # the first pass: until every source ran once (its merges keep the store thread busy)
    first_pass = sorted(ends)[args.sources - 1] if len(ends) >= args.sources else float("inf")
    for start, end, files, articles in publishes:
        phase = "first pass" if end <= first_pass else "after it"
        print(f"  publish: {files:5d} files, {articles:7d} articles, {end - start:6.2f} s"
              f"  ({phase})")  # fmt: skip

    def publishing(t0: float, t1: float) -> bool:
        return any(t0 < end and start < t1 for start, end, _, _ in publishes)

    answered = [(w, s * 1000) for w, s, status in timings if status in (200, 304)]
    missing = sum(1 for _, _, status in timings if status == 404)  # before the first publish
    failed = sum(1 for _, _, status in timings if status not in (200, 304, 404))
    print(f"/atom.xml answers ({missing} 404s before the first publish, {failed} failed; "
          "a 200 is gzip, every other ask a 304), in ms:")  # fmt: skip
    for label, keep in (("first pass", lambda t: t <= first_pass),
                        ("after the first pass", lambda t: t > first_pass)):  # fmt: skip
        runs = [(w, ms) for w, ms in answered if keep(w)]
        describe(
            f"{label}, during publishes", [ms for w, ms in runs if publishing(w, w + ms / 1000)]
        )
        describe(f"{label}, outside (reference)",
                 [ms for w, ms in runs if not publishing(w, w + ms / 1000)])  # fmt: skip

    def overlap(t0: float, t1: float) -> float:
        return sum(max(0.0, min(t1, end) - max(t0, start)) for start, end, _, _ in publishes)

    print("source runs answered 304, from job start to merged (including any wait for the "
          "store's one thread), in ms:")  # fmt: skip
    for label, keep in (("first pass", lambda t: t <= first_pass),
                        ("after the first pass", lambda t: t > first_pass)):  # fmt: skip
        runs = [(s, e) for s, e in not_modified if keep(e)]
        describe(f"{label}, all", [(e - s) * 1000 for s, e in runs])
        describe(f"{label}, overlapping a publish",
                 [(e - s) * 1000 for s, e in runs if overlap(s, e)])  # fmt: skip
        describe(f"{label}, not overlapping (reference)",
                 [(e - s) * 1000 for s, e in runs if not overlap(s, e)])  # fmt: skip
        describe(f"{label}, of them publishing meanwhile",
                 [overlap(s, e) * 1000 for s, e in runs if overlap(s, e)])  # fmt: skip
    if memory:
        own, kids = [m for m, _ in memory], [m + k for m, k in memory]
        after = memory[len(memory) // 2 :]
        print(f"resident memory (MiB, every 2 s): daemon peak {max(own):.0f}, median of the "
              f"second half {statistics.median(m for m, _ in after):.0f}; with its children "
              f"peak {max(kids):.0f}, median of the second half "
              f"{statistics.median(m + k for m, k in after):.0f} (children alone peak "
              f"{max(k for _, k in memory):.0f})")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
