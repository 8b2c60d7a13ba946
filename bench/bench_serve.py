"""Serve throughput and daemon memory of `aggregator run`, measured from other processes.

    python bench/bench_serve.py [--files 200] [--seconds 5] [--clients 8] [--cycles 120]

1. Starts `aggregator run` (every: 1s) on a temporary config with --files seed files.
2. Requests/s for /atom.xml: conditional GETs answered 304, full GETs (identity) and full
   GETs with gzip, and the HTML view a browser gets (full and 304). With wrk installed it
   drives the load (--python to skip it); otherwise a small asyncio client runs in a second
   process with --clients keep-alive connections.
3. Lets the daemon run --cycles cycles of its source (1 s each; at the usual every: 5m an
   hour is 12 cycles), adding a seed file every few cycles so merges and publishes happen,
   and prints its resident memory before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.seedmaker import tgrt_seed  # noqa: E402

TZ = ZoneInfo("Europe/Istanbul")
CONFIG = """\
output:
  dir: feeds
  max_items: 50
state: state/aggregator.sqlite3
server:
  port: 0
sources:
  - name: tgrt
    type: seeds
    path: seeds
    every: 1s
"""


def write_seed(folder: Path, n: int) -> None:
    giris = datetime(2026, 1, 1, 6, 0, tzinfo=TZ) + timedelta(minutes=3 * n)
    text = tgrt_seed(
        title=f"Gündem {n}: belediye meclisi yeni bütçeyi {n}. oturumda kabul etti",
        spot=f"Meclisin {n}. oturumunda bütçe ve ulaşım projeleri görüşüldü.",
        giris=giris, guncelleme=giris + timedelta(minutes=10),
        body=tuple(f"Paragraf {i} için haber metni, oturum {n}." for i in range(8)),
    )  # fmt: skip
    tmp = folder / f".{n}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / f"{n:05d}.txt")


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))  # type: ignore[union-attr]


def children_kib(pid: int) -> int:
    try:
        kids = open(f"/proc/{pid}/task/{pid}/children").read().split()
    except OSError:
        return 0
    return sum(rss_kib(int(k)) for k in kids if os.path.exists(f"/proc/{k}"))


def load(url: str, seconds: float, clients: int, headers: dict[str, str]) -> tuple[float, int]:
    """Python load generator (run in its own process): `clients` keep-alive HTTP/1.1
    connections on asyncio streams, stdlib only (httpx itself tops out near 1000 req/s here,
    which would measure the client, not the server). Returns (requests/s, bad answers)."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n{extra}\r\n".encode()
    done = [0]
    bad = [0]

    async def client(stop: float) -> None:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        while time.monotonic() < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if m and status != 304:
                await reader.readexactly(int(m.group(1)))
            done[0] += 1
            bad[0] += status not in (200, 304)
        writer.close()

    async def run() -> float:
        t0 = time.monotonic()
        await asyncio.gather(*(client(t0 + seconds) for _ in range(clients)))
        return time.monotonic() - t0

    elapsed = asyncio.run(run())
    return done[0] / elapsed, bad[0]


def measure(url: str, seconds: float, clients: int, headers: dict[str, str]) -> str:
    wrk = None if os.environ.get("BENCH_NO_WRK") else shutil.which("wrk")
    if wrk:
        cmd = [wrk, "-t2", f"-c{clients}", f"-d{max(1, int(seconds))}s", "--latency", url]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = bad.group(1) if bad else "0"
        return f"{rate:9.0f} req/s  (wrk, 2 threads, {clients} connections, errors {errors})"
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); import bench_serve as b; "
        "print(json.dumps(b.load(sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), "
        "json.loads(sys.argv[5]))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(Path(__file__).parent), url, str(seconds),
         str(clients), json.dumps(headers)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rate, bad = json.loads(out)
    return f"{rate:9.0f} req/s  (python asyncio client, {clients} connections, errors {bad})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--cycles", type=int, default=120)
    ap.add_argument("--python", action="store_true", help="use the python client, not wrk")
    args = ap.parse_args()
    if args.python:
        os.environ["BENCH_NO_WRK"] = "1"

    import httpx

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    seeds = work / "seeds"
    seeds.mkdir()
    for n in range(args.files):
        write_seed(seeds, n)
    (work / "config.yaml").write_text(CONFIG)
    log = work / "daemon.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "--config", str(work / "config.yaml")],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        port = None
        while port is None and time.monotonic() < deadline:
            m = re.search(r"at http://127\.0\.0\.1:(\d+)/", log.read_text())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        assert port, log.read_text()
        url = f"http://127.0.0.1:{port}/atom.xml"
        while time.monotonic() < deadline:
            h = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
            if h["articles"] >= min(args.files, 50) and h["last_publish"]:
                break
            time.sleep(0.2)
        full = httpx.get(url, headers={"Accept-Encoding": "identity"})
        zipped = httpx.get(url, headers={"Accept-Encoding": "gzip"})
        size_gz = zipped.headers["content-length"]
        tool = "python client" if args.python or not shutil.which("wrk") else "wrk"
        print(f"cpus (nproc): {os.cpu_count()}; load from a second process: {tool}")
        print(f"/atom.xml: {len(full.content)} bytes, {size_gz} gzipped, 50 entries")
        rss_start = rss_kib(proc.pid)
        etag = full.headers["etag"]
        print("304 conditional GET:", measure(url, args.seconds, args.clients,
              {"If-None-Match": etag, "Accept-Encoding": "identity"}))  # fmt: skip
        print("full GET identity:  ", measure(url, args.seconds, args.clients,
              {"Accept-Encoding": "identity"}))  # fmt: skip
        print("full GET gzip:      ", measure(url, args.seconds, args.clients,
              {"Accept-Encoding": "gzip"}))  # fmt: skip
        browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                   "Accept-Encoding": "gzip"}  # fmt: skip
        print("browser view, gzip: ", measure(url, args.seconds, args.clients, browser))
        view_etag = httpx.get(url, headers=browser).headers["etag"]
        print("browser view, 304:  ", measure(url, args.seconds, args.clients,
              {**browser, "If-None-Match": view_etag}))  # fmt: skip

        print(f"running {args.cycles} cycles of every: 1s (a new seed file every 5 cycles)...")
        rss_after_load = rss_kib(proc.pid)
        samples = []
        for cycle in range(args.cycles):
            if cycle % 5 == 0:
                write_seed(seeds, args.files + cycle)
            time.sleep(1.0)
            if cycle % 30 == 29:
                samples.append(rss_kib(proc.pid))
        runs = len(re.findall(r"source tgrt: ", log.read_text()))
        rss_end = rss_kib(proc.pid)
        print(f"resident memory: {rss_start / 1024:.1f} MiB after start-up, "
              f"{rss_after_load / 1024:.1f} MiB after the load, "
              f"{rss_end / 1024:.1f} MiB after {runs} source runs in all "
              f"(samples every 30 s: {', '.join(f'{s / 1024:.1f}' for s in samples)} MiB); "
              f"child processes: {children_kib(proc.pid) / 1024:.1f} MiB")  # fmt: skip
        h = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        print(f"healthz: {h['status']}, {h['articles']} articles")
    finally:
        proc.terminate()
        rc = proc.wait(timeout=15)
        print(f"daemon exit status after SIGTERM: {rc}")
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
