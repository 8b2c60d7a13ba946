"""Serve throughput and daemon memory of `aggregator run`, measured from other processes.

    python bench/bench_serve.py [--files 200] [--seconds 2] [--repeat 2] [--clients 8]
                                [--pin both|shared|pinned] [--against CHECKOUT]
                                [--cycles 60] [--python]

1. Starts `aggregator run` (every: 1s) on a temporary config with --files seed files, and
   with --against the daemon of another checkout (e.g. /work/main, with its own .venv if it
   has one) on the same seeds, for a before/after pair measured in the same rounds.
2. Requests/s for /atom.xml: conditional GETs answered 304, full GETs (identity) and full
   GETs with gzip, with --clients and with 64 connections (p99 latency), and the HTML view a
   browser gets (full and 304). The reference is nginx serving the same bytes (and their
   gzip) where installed, run after each of our runs with the same load; medians of --repeat
   rounds are printed, each with the CPU time the server spent per answer (user + system,
   its child processes included), which other work on the machine moves far less than the
   rate or the tail. With wrk installed it drives the load (--python to skip it);
   otherwise a small asyncio client runs in a second process (no latency figures then).
   Each case runs twice a round (--pin both): "shared", wrk (2 threads) and the server
   free to use every CPU, and "pinned", the server (every thread and child process of it,
   nginx's too) on CPU 0 and wrk (1 thread) on CPU 1, so the load generator never takes
   the server's core: what is left of the tail then is the server's own and that of
   whatever else runs on CPU 0.
3. Lets the daemon run --cycles cycles of its source (1 s each; at the usual every: 5m an
   hour is 12 cycles), adding a seed file every few cycles so merges and publishes happen,
   and prints its resident memory before and after.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
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


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def family(pid: int) -> list[int]:
    """`pid` and its descendants (the daemon's worker processes, nginx's workers)."""
    found = [pid]
    for p in found:
        try:
            found += [int(k) for k in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except OSError:
            pass
    return found


def place(pid: int, cpus: str) -> None:
    """Every thread of `pid` and of its descendants onto `cpus` (taskset's list form)."""
    for p in family(pid):
        subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(p)], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its descendants so far (every thread's)."""
    total = 0
    for p in family(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def measure(url: str, seconds: float, clients: int, headers: dict[str, str], server: int,
            pinned: bool = False) -> dict[str, float]:  # fmt: skip
    """One load run: {"rate": requests/s, "p99": ms (wrk only, else nan), "errors": n,
    "cpu": microseconds of CPU the `server` process (and its children) spent per answer,
    a figure that other work on the machine moves far less than the rate}. `pinned`: wrk
    runs one thread on CPU 1 (the server was placed on CPU 0)."""
    before = cpu_seconds(server)
    found = _load(url, seconds, clients, headers, pinned)
    found["cpu"] = (cpu_seconds(server) - before) * 1e6 / max(1.0, found.pop("answers"))
    return found


def _load(url: str, seconds: float, clients: int, headers: dict[str, str],
          pinned: bool) -> dict[str, float]:  # fmt: skip
    wrk = None if os.environ.get("BENCH_NO_WRK") else shutil.which("wrk")
    if wrk:
        threads = "-t1" if pinned else "-t2"
        cmd = [wrk, threads, f"-c{clients}", f"-d{max(1, round(seconds))}s", "--latency", url]
        if pinned:
            cmd = ["taskset", "-c", "1", *cmd]
        for k, v in headers.items():
            cmd += ["-H", f"{k}: {v}"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s)\b", out)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                           out)  # fmt: skip
        return {
            "rate": rate,
            "answers": float(re.search(r"(\d+) requests in", out).group(1)),  # type: ignore[union-attr]
            "p99": float(p99.group(1)) * _UNITS[p99.group(2)] if p99 else float("nan"),
            "errors": (int(bad.group(1)) if bad else 0)
            + (sum(int(g) for g in errors.groups()) if errors else 0),
        }
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
    return {"rate": rate, "answers": rate * seconds, "p99": float("nan"), "errors": bad}


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    types {{ application/atom+xml xml; }}
    keepalive_requests 1000000;
    client_body_temp_path {root}/tmp;
    proxy_temp_path {root}/tmp;
    fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp;
    scgi_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        gzip_static on;
        gzip_vary on;
        add_header Cache-Control "public, max-age=300";
    }}
}}
"""


def start_nginx(work: Path, feed: bytes) -> tuple[subprocess.Popen[bytes], int] | None:
    """nginx (one worker, as we are one event loop) serving the same atom.xml and its gzip
    next to it (gzip_static): the reference figures of this run. None without nginx."""
    nginx = shutil.which("nginx")
    if not nginx:
        return None
    root = work / "nginx"
    (root / "www").mkdir(parents=True)
    (root / "tmp").mkdir()
    (root / "www" / "atom.xml").write_bytes(feed)
    (root / "www" / "atom.xml.gz").write_bytes(gzip.compress(feed, compresslevel=6, mtime=0))
    for path in (work, root, root / "www", *(root / "www").iterdir()):
        path.chmod(0o755)  # nginx workers run as nobody when started as root
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONF.format(root=root, port=port))
    cmd = [nginx, "-e", str(root / "error.log"), "-p", str(root), "-c", str(conf)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import httpx

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/atom.xml")
            return proc, port
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    return None


def shown(runs: list[dict[str, float]]) -> str:
    rates = [r["rate"] for r in runs]
    p99 = statistics.median([r["p99"] for r in runs])
    text = f"{statistics.median(rates):7.0f} req/s ({min(rates):.0f}-{max(rates):.0f})"
    if p99 == p99:  # not nan
        text += f" p99 {p99:5.2f} ms"
    text += f" cpu {statistics.median([r['cpu'] for r in runs]):4.1f} us"
    errors = sum(int(r["errors"]) for r in runs)
    return text + (f" ERRORS {errors}" if errors else "")


def start_daemon(work: Path, tree: Path, python: str) -> tuple[subprocess.Popen[bytes], str]:
    """`aggregator run` from checkout `tree` on the seeds in `work`; (process, base URL)."""
    (work / "config.yaml").write_text(CONFIG.replace("path: seeds", f"path: {work.parent}/seeds"))
    log = work / "daemon.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [python, "-m", "aggregator", "run", "--config", str(work / "config.yaml")],
            cwd=tree, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = re.search(r"at http://127\.0\.0\.1:(\d+)/", log.read_text())
        if m:
            return proc, f"http://127.0.0.1:{m.group(1)}"
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{tree}: the daemon did not start:\n{log.read_text()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument(
        "--pin",
        choices=("both", "shared", "pinned"),
        default="both",
        help="where wrk and the servers run (see the module docstring)",
    )
    ap.add_argument(
        "--against",
        type=Path,
        metavar="CHECKOUT",
        help="also run the daemon of another checkout (e.g. main) in each round",
    )
    ap.add_argument("--cycles", type=int, default=60)
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
    (work / "ours").mkdir()
    proc, base = start_daemon(work / "ours", ROOT, sys.executable)
    daemons = [("ours", proc, base)]
    try:
        if args.against:
            (work / "against").mkdir()
            tree = args.against.resolve()
            venv = tree / ".venv" / "bin" / "python"
            python = str(venv) if venv.exists() else sys.executable
            other, other_base = start_daemon(work / "against", tree, python)
            daemons.append((tree.name, other, other_base))
        deadline = time.monotonic() + 60
        for _, _, b in daemons:
            while time.monotonic() < deadline:
                h = httpx.get(f"{b}/healthz").json()
                if h["articles"] >= min(args.files, 50) and h["last_publish"]:
                    break
                time.sleep(0.2)
        url = f"{base}/atom.xml"
        full = httpx.get(url, headers={"Accept-Encoding": "identity"})
        zipped = httpx.get(url, headers={"Accept-Encoding": "gzip"})
        size_gz = zipped.headers["content-length"]
        tool = "python client" if args.python or not shutil.which("wrk") else "wrk"
        print(f"cpus (nproc): {os.cpu_count()}; load from a second process: {tool}")
        print(f"/atom.xml: {len(full.content)} bytes, {size_gz} gzipped, 50 entries")
        if args.against:
            print(f"{daemons[1][0]}: the daemon of {args.against.resolve()}, same seeds")
        rss_start = rss_kib(proc.pid)
        ref = start_nginx(work, full.content)
        servers = [(name, f"{b}/atom.xml", p.pid) for name, p, b in daemons]
        if ref:
            servers.append(("nginx", f"http://127.0.0.1:{ref[1]}/atom.xml", ref[0].pid))
            print(f"reference: nginx {shutil.which('nginx')}, 1 worker, gzip_static, same file")
        else:
            print("reference: none (nginx not installed)")
        etags = {u: httpx.get(u).headers["etag"] for _, u, _ in servers}
        browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                   "Accept-Encoding": "gzip"}  # fmt: skip
        view_etags = {
            u: httpx.get(u, headers=browser).headers["etag"] for _, u, _ in daemons_of(servers)
        }
        cases: list[tuple[str, int, Any, bool]] = [
            ("304 conditional GET", args.clients,
             lambda u: {"If-None-Match": etags[u], "Accept-Encoding": "identity"}, True),
            ("full GET identity", args.clients, lambda u: {"Accept-Encoding": "identity"}, True),
            ("full GET gzip", args.clients, lambda u: {"Accept-Encoding": "gzip"}, True),
            ("304, 64 connections", 64,
             lambda u: {"If-None-Match": etags[u], "Accept-Encoding": "identity"}, True),
            ("full gzip, 64 connections", 64, lambda u: {"Accept-Encoding": "gzip"}, True),
            ("browser view, gzip", args.clients, lambda u: browser, False),
            ("browser view, 304", args.clients,
             lambda u: {**browser, "If-None-Match": view_etags[u]}, False),
        ]  # fmt: skip
        placements = ["shared", "pinned"] if args.pin == "both" else [args.pin]
        if args.python or (os.cpu_count() or 1) < 2 or not shutil.which("taskset"):
            placements = ["shared"]
        every_cpu = f"0-{(os.cpu_count() or 1) - 1}"
        results: dict[tuple[str, str, str], list[dict[str, float]]] = {}
        for _ in range(args.repeat):  # interleaved, so drift hits every server alike
            for placement in placements:
                for _, _, pid in servers:
                    place(pid, "0" if placement == "pinned" else every_cpu)
                for label, clients, headers, with_nginx in cases:
                    for name, u, pid in servers:
                        if name == "nginx" and not with_nginx:
                            continue
                        found = measure(u, args.seconds, clients, headers(u), pid,
                                        placement == "pinned")  # fmt: skip
                        results.setdefault((placement, label, name), []).append(found)
        for _, _, pid in servers:
            place(pid, every_cpu)
        if ref:
            ref[0].terminate()
            ref[0].wait(timeout=10)
        names = [name for name, _, _ in servers]
        print(f"medians of {args.repeat} runs of {args.seconds:.0f} s (min-max), "
              f"{' | '.join(names)}:")  # fmt: skip
        for placement in placements:
            print(f" {placement}: " + ("server on CPU 0, wrk -t1 on CPU 1" if placement ==
                                       "pinned" else "server and wrk -t2 on any CPU"))  # fmt: skip
            for label, _, _, _ in cases:
                mine = results[(placement, label, "ours")]
                shown_all = [shown(mine)]
                for name in names[1:]:
                    theirs = results.get((placement, label, name))
                    if theirs:
                        ratio = median_rate(mine) / median_rate(theirs)
                        shown_all.append(f"{shown(theirs)} ({ratio:.2f}x)")
                print(f"  {label:<27} " + " | ".join(shown_all))

        print(f"running {args.cycles} cycles of every: 1s (a new seed file every 5 cycles)...")
        rss_after_load = rss_kib(proc.pid)
        samples = []
        for cycle in range(args.cycles):
            if cycle % 5 == 0:
                write_seed(seeds, args.files + cycle)
            time.sleep(1.0)
            if cycle % 30 == 29:
                samples.append(rss_kib(proc.pid))
        source_runs = len(re.findall(r"source tgrt: ", (work / "ours" / "daemon.log").read_text()))
        rss_end = rss_kib(proc.pid)
        print(f"resident memory: {rss_start / 1024:.1f} MiB after start-up, "
              f"{rss_after_load / 1024:.1f} MiB after the load, "
              f"{rss_end / 1024:.1f} MiB after {source_runs} source runs in all "
              f"(samples every 30 s: {', '.join(f'{s / 1024:.1f}' for s in samples)} MiB); "
              f"child processes: {children_kib(proc.pid) / 1024:.1f} MiB")  # fmt: skip
        h = httpx.get(f"{base}/healthz").json()
        print(f"healthz: {h['status']}, {h['articles']} articles")
    finally:
        for name, p, _ in daemons:
            p.terminate()
            print(f"{name}: daemon exit status after SIGTERM: {p.wait(timeout=15)}")
        shutil.rmtree(work, ignore_errors=True)
    return 0


def daemons_of(servers: list[tuple[str, str, int]]) -> list[tuple[str, str, int]]:
    return [s for s in servers if s[0] != "nginx"]


def median_rate(runs: list[dict[str, float]]) -> float:
    return statistics.median([r["rate"] for r in runs])


if __name__ == "__main__":
    sys.exit(main())
