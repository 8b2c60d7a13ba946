"""Round 2 network figures (docs/reliability.md, "Round 2: network and server"), each next
to a reference measured in the same run.

    python bench/bench_hostile_net.py [--connections 1100]

1. Peak RSS and wall time of `regenerate` with one good feed (the reference) and with the
   good feed plus one compression bomb each: zstd 16 KB, zstd 64 KB, gzip inside gzip 1.8 KB.
2. `aggregator run` under RLIMIT_NOFILE 1024: /healthz latency with no other connection (the
   reference), then with --connections idle loopback connections held open; the daemon's
   peak fd count while they were opened.
"""

from __future__ import annotations

import argparse
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.localserver import XML, App, Reply, serve_in_thread  # noqa: E402
from tests.reliability.helpers import add_seed, regenerate_measured, write_config  # noqa: E402
from tests.reliability.test_rel_round2_net import (  # noqa: E402
    GOOD,
    daemon_port,
    feed_sources,
    gzip_gzip_bomb,
    status_within,
    zstd_bomb,
)


def bombs(scratch: Path) -> None:
    cases = {"zstd 16 KB": (zstd_bomb(16 * 1024), "zstd"),
             "zstd 64 KB": (zstd_bomb(64 * 1024), "zstd"),
             "gzip, gzip": (gzip_gzip_bomb(), "gzip, gzip")}  # fmt: skip
    with serve_in_thread(App(), fixtures=False) as app:
        app.route("/good.xml", Reply(body=GOOD.format(base=app.base).encode(), content_type=XML))
        for i, (body, encoding) in enumerate(cases.values()):
            app.route(f"/bomb{i}.xml", Reply(body=body, content_type=XML,
                                             headers={"Content-Encoding": encoding}))  # fmt: skip
        runs = [("reference: the good feed alone", {})]
        runs += [(f"good feed + {name} ({len(body):,} bytes)", {"bomb": f"/bomb{i}.xml"})
                 for i, (name, (body, _)) in enumerate(cases.items())]  # fmt: skip
        for label, extra in runs:
            root = Path(tempfile.mkdtemp(dir=scratch))
            urls = {"good": app.base + "/good.xml"} | {k: app.base + v for k, v in extra.items()}
            cfg = write_config(root, sources=feed_sources(urls))
            started = time.monotonic()
            proc, peak = regenerate_measured(cfg, root)
            seconds = time.monotonic() - started
            error = next((line for line in proc.stderr.splitlines() if "'bomb'" in line), "")
            print(f"{label}: exit {proc.returncode}, peak RSS {peak:.0f} MiB, {seconds:.2f} s"
                  + (f"\n    {error}" if error else ""))  # fmt: skip


def fd_pressure(scratch: Path, connections: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, connections + 500)), hard))
    root = Path(tempfile.mkdtemp(dir=scratch))
    cfg = write_config(root)
    add_seed(root / "seeds", 1)
    log_path = root / "daemon.log"
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "aggregator", "run", "--config", str(cfg)], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=log,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024)),
        )  # fmt: skip
    idle: list[socket.socket] = []
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], len(os.listdir(f"/proc/{daemon.pid}/fd")))
            except OSError:
                pass

    def healthz_ms() -> str:
        times = []
        for _ in range(5):
            started = time.monotonic()
            status_within(port, "/healthz", 5.0)
            times.append((time.monotonic() - started) * 1000)
        return f"median {sorted(times)[2]:.1f} ms, max {max(times):.1f} ms"

    try:
        port = daemon_port(daemon, log_path)
        print(f"/healthz, no other connection (reference): {healthz_ms()}")
        threading.Thread(target=sample, daemon=True).start()
        started = time.monotonic()
        for _ in range(connections):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=30))
        opened = time.monotonic() - started
        print(f"/healthz with {connections} idle connections at ulimit -n 1024: {healthz_ms()}"
              f" (opening them took {opened:.1f} s; daemon peak {peak[0]} fds)")  # fmt: skip
    finally:
        done.set()
        for s in idle:
            s.close()
        daemon.terminate()
        daemon.wait(timeout=20)
    lines = [line for line in log_path.read_text().splitlines() if "open files" in line]
    print(f"EMFILE lines in the daemon's log: {len(lines)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1100)
    args = parser.parse_args()
    print(f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}")
    scratch = ROOT / "bench" / "out"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch) as tmp:
        bombs(Path(tmp))
        fd_pressure(Path(tmp), args.connections)


if __name__ == "__main__":
    main()
