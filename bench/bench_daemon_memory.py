"""Resident memory of `aggregator run` with many feed sources (issue 16: 320 MB at 1,000).

    python bench/bench_daemon_memory.py [--sources 1000] [--every 60s] [--seconds 150]
                                        [--code DIR]

The feeds come from bench_sources.py's local server (50 items each, 20 ms per answer, 20
loopback hosts; unchanged feeds answer 304). The daemon runs as a subprocess on a fresh
store; its VmRSS is sampled every 10 s. Printed: the resident memory after start-up (the
reference: imports and threads, before any source ran), the peak, and the steady figure
(the median of the last third of the samples, after the first pass and its publish), of
the daemon's own process and of it with its children (the publisher process) added, the
latter both as VmRSS (pages the processes share, such as the interpreter's and lxml's
code, counted in each) and as the sum of their proportional set sizes (Pss: a shared page
split between its sharers), which is what the tree takes from the machine.
`--code DIR` runs the daemon from another checkout (a worktree of main: before/after).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_sources  # noqa: E402


def _mib(path: str, field: str) -> float:
    """A `field: N kB` line of a /proc file, in MiB (0 for a process ended meanwhile, or a
    zombie, which has none)."""
    try:
        with open(path) as f:
            m = re.search(rf"^{field}:\s+(\d+)", f.read(), re.M)
    except OSError:
        return 0.0
    return int(m.group(1)) / 1024 if m else 0.0


def rss_mib(pid: int) -> float:
    return _mib(f"/proc/{pid}/status", "VmRSS")


def pss_mib(pid: int) -> float:
    return _mib(f"/proc/{pid}/smaps_rollup", "Pss")


def descendants(pid: int) -> list[int]:
    """Every process started by `pid`, and by those (the publisher, its workers if any)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                kids = [int(c) for c in f.read().split()]
        except OSError:
            continue
        for kid in kids:
            found += [kid, *descendants(kid)]
    return found


def tree_rss_mib(pid: int) -> tuple[float, float, float]:
    """Resident memory of `pid`, the sum over its descendants (each counted whole: pages
    they share are counted more than once), and the tree's summed Pss."""
    tree = [pid, *descendants(pid)]
    return rss_mib(pid), sum(rss_mib(k) for k in tree[1:]), sum(pss_mib(k) for k in tree)


def daemon_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    """The port an `aggregator run` writing its log to `log` listens on, once it says so."""
    port = None
    while port is None and proc.poll() is None:
        m = re.search(r"at http://127\.0\.0\.1:(\d+)/", log.read_text())
        port = int(m.group(1)) if m else None
        time.sleep(0.05)
    assert port, log.read_text()
    return port


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sources", type=int, default=1000)
    ap.add_argument("--every", default="60s")
    ap.add_argument("--seconds", type=float, default=150.0)
    ap.add_argument("--code", type=Path, default=ROOT,
                    help="the checkout whose aggregator the daemon runs")  # fmt: skip
    args = ap.parse_args()

    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    server = ctx.Process(target=bench_sources.serve, args=(20, 50, 0.02, theirs), daemon=True)
    server.start()
    bases = mine.recv()
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as tmp:
        config = bench_sources.write_config(Path(tmp), bases, args.sources)
        text = config.read_text().replace("every: 5m", f"every: {args.every}")
        config.write_text(text.replace("state: state.sqlite3\n",
                                       "state: state.sqlite3\nserver:\n  port: 0\n"))  # fmt: skip
        log = Path(tmp) / "daemon.log"
        with open(log, "wb") as err:
            env = dict(os.environ, PYTHONPATH=str(args.code.resolve()))
            proc = subprocess.Popen([sys.executable, "-m", "aggregator", "run", "--config",
                                     str(config)], cwd=args.code, env=env,
                                    stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
        try:
            port = daemon_port(proc, log)
            start, start_children, start_pss = tree_rss_mib(proc.pid)
            samples, totals, shares = [], [], []
            t0 = time.monotonic()
            while time.monotonic() - t0 < args.seconds:
                time.sleep(10)
                main_rss, children, pss = tree_rss_mib(proc.pid)
                samples.append(main_rss)
                totals.append(main_rss + children)
                shares.append(pss)
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).json()
            runs = len(re.findall(r"source s\d+: ", log.read_text()))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            server.terminate()
    steady = statistics.median(samples[-max(1, len(samples) // 3) :])
    steady_total = statistics.median(totals[-max(1, len(totals) // 3) :])
    steady_pss = statistics.median(shares[-max(1, len(shares) // 3) :])
    print(
        f"{args.sources} feed sources x 50 items, every {args.every}, {os.cpu_count()} CPUs, "
        f"code {args.code}; "
        f"{runs} source runs, {health['articles']} articles, status {health['status']}"
    )
    print(f"resident memory: {start:.0f} MiB after start-up (reference), peak {max(samples):.0f}"
          f" MiB, steady {steady:.0f} MiB (samples every 10 s: "
          f"{', '.join(f'{s:.0f}' for s in samples)})")  # fmt: skip
    print(f"with its children: {start + start_children:.0f} MiB after start-up, peak "
          f"{max(totals):.0f} MiB, steady {steady_total:.0f} MiB (samples: "
          f"{', '.join(f'{s:.0f}' for s in totals)})")  # fmt: skip
    print(
        f"the tree's Pss: {start_pss:.0f} MiB after start-up, peak {max(shares):.0f} MiB, "
        f"steady {steady_pss:.0f} MiB (samples: {', '.join(f'{s:.0f}' for s in shares)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
