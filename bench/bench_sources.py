"""Benchmark: 1,000 feed sources x 50 items from a local server that waits 20 ms per answer.

    python bench/bench_sources.py [--sources 1000] [--items 50] [--delay 0.02] [--hosts 20]
                                  [--parser fast|feedparser] [--store sqlite|postgresql|both]

The server runs in its own process (uvicorn, like tests/localserver.py) and listens on
several loopback addresses (127.0.0.1, 127.0.0.2, ...), so the per-host limit applies as
it would to many sites. Prints, for a harvest-only pass, a first `run_once` (everything
new) and a second one (every source answers 304): seconds, sources/s, entries/s, CPU
seconds of this process, peak RSS of this process and of its children from
resource.getrusage; under each `run_once`, the pipeline's own timings of its stages.
`--store both` runs the two `run_once` passes on SQLite, then on PostgreSQL, in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import random
import resource
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from aggregator.config import Config, load_config  # noqa: E402
from aggregator.pipeline import run_once  # noqa: E402
from aggregator.sources.web import harvest  # noqa: E402
from aggregator.store import Store  # noqa: E402
from tests.pgserver import PgServer, binaries  # noqa: E402

TZ = ZoneInfo("Europe/Istanbul")
T0 = datetime(2026, 1, 10, 9, 0, tzinfo=TZ)


_WORDS = (
    "ekonomi meclis belediye seçim deprem enflasyon ihracat futbol transfer kongre bütçe"
    " maaş asgari vergi okul üniversite sınav hastane aşı orman yangın sel baraj enerji"
    " doğalgaz elektrik zam faiz borsa döviz altın tarım hasat liman köprü otoyol tren"
    " havalimanı turizm otel müze festival konser film dizi kitap ödül rekor şampiyon"
).split()


def _story(index: int, j: int) -> str:
    """Twelve words drawn for this item only: distinct stories (items of one template
    with one body would rightly be one article to de-duplication's text matching)."""
    rng = random.Random(index * 100_003 + j)
    return " ".join(rng.choice(_WORDS) for _ in range(12))


def feed_body(index: int, items: int, pages: bool = False) -> bytes:
    """`pages`: item links point at this server's /page/ (for `fulltext` runs)."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Kaynak {index}</title><link>https://site{index}.test/</link>"
    ]
    for j in range(items):
        minute = (index * items + j) % 1440
        link = (f"/page/{index}/{j}" if pages else
                f"https://site{index}.test/haber/{j}-ankarada-onemli-gelisme")  # fmt: skip
        parts.append(
            f"<item><title>Kaynak {index} haber {j}: {_story(index + 1, j)}</title>"
            f"<link>{link}</link>"
            f"<guid>site{index}-{j}</guid>"
            f"<pubDate>Fri, 09 Jan 2026 {minute // 60:02d}:{minute % 60:02d}:00 +0300</pubDate>"
            f"<category>Gündem</category>"
            f"<description><![CDATA[<p>{_story(index, j)} <b>kısa</b> {_story(j, index)}.</p>"
            f"<p>{_story(index + 2, j + 3)} {_story(j + 5, index + 7)}.</p>]]></description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode("utf-8")


def serve_on_hosts(app: Any, hosts: int, ready: Any) -> None:
    """Run `app` on 127.0.0.1, 127.0.0.2, ... (one port each, so per-host limits apply as
    to many sites); their base URLs are sent through `ready` first."""
    import uvicorn  # here: the server process's import, not the bench's

    socks = []
    for h in range(hosts):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((f"127.0.0.{h + 1}", 0))
        socks.append(sock)
    ready.send([f"http://{s.getsockname()[0]}:{s.getsockname()[1]}" for s in socks])
    config = uvicorn.Config(app, lifespan="off", log_level="error", access_log=False,
                            ws="none", backlog=4096, timeout_keep_alive=60)  # fmt: skip
    uvicorn.Server(config).run(sockets=socks)


def serve(hosts: int, items: int, delay: float, ready: Any, page: bytes = b"") -> None:
    """Server process: one uvicorn, one socket per loopback address. `page`: the article
    page served at /page/... (and feeds link there); robots.txt is missing (404)."""
    bodies: dict[int, bytes] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if not scope["path"].startswith("/feed/"):
            found = page and scope["path"].startswith("/page/")
            await asyncio.sleep(delay)
            await send({"type": "http.response.start", "status": 200 if found else 404,
                        "headers": [(b"content-type", b"text/html; charset=utf-8")]})  # fmt: skip
            await send({"type": "http.response.body", "body": page if found else b""})
            return
        index = int(scope["path"].rsplit("/", 1)[1])
        etag = f'"f{index}"'.encode()
        await asyncio.sleep(delay)
        if dict(scope["headers"]).get(b"if-none-match") == etag:
            await send({"type": "http.response.start", "status": 304,
                        "headers": [(b"etag", etag)]})  # fmt: skip
            await send({"type": "http.response.body", "body": b""})
            return
        body = bodies.get(index) or bodies.setdefault(index, feed_body(index, items, bool(page)))
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/rss+xml; charset=utf-8"), (b"etag", etag),
            (b"content-length", str(len(body)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": body})

    serve_on_hosts(app, hosts, ready)


def write_config(root: Path, bases: list[str], sources: int, fulltext: bool = False) -> Path:
    lines = [
        "site:\n  title: Bench\n  timezone: Europe/Istanbul\noutput:\n  dir: out\n"
        "  max_items: 200\nstate: state.sqlite3\nretention: never\nsources:\n"
    ]
    for i in range(sources):
        base = bases[i % len(bases)]
        lines.append(
            f"  - name: s{i}\n    type: feed\n    url: {base}/feed/{i}\n    every: 5m\n"
            + ("    fulltext: true\n" if fulltext else "")
        )
    path = root / "config.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def peak_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def line(label: str, seconds: float, sources: int, entries: int, cpu: float) -> None:
    """`cpu`: CPU seconds of this process (its threads: the web client's loop, the store,
    publishing's writers), not of the parse or render workers nor the server."""
    own, children = peak_mb()
    print(f"{label:<36} {seconds:7.2f} s  {sources / seconds:8.1f} sources/s  "
          f"{entries / seconds:8.1f} entries/s  CPU here {cpu:5.2f} s  peak RSS {own:.0f} MB "
          f"(largest child {children:.0f} MB)", flush=True)  # fmt: skip


class Phases(logging.Handler):
    """The pipeline's own debug lines (fetched, staged, merged, published: seconds since
    the pass began), printed under the pass."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def print(self) -> None:
        print("  " + "; ".join(self.lines))
        self.lines.clear()


@contextmanager
def backend_config(cfg: Config, backend: str, folder: Path) -> Iterator[Config]:
    """`cfg` with a fresh store and output folder: a SQLite file, or a database of a
    PostgreSQL server of its own (durable, as a real one is)."""
    folder.mkdir()
    if backend == "sqlite":
        yield replace(cfg, state=folder / "state.sqlite3", output_dir=folder / "out")
        return
    bindir = binaries()
    if bindir is None:
        raise SystemExit("PostgreSQL binaries (initdb, pg_ctl) not installed")
    pg = PgServer(bindir)
    try:
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            for setting in ("fsync", "synchronous_commit", "full_page_writes"):
                conn.execute(f"ALTER SYSTEM SET {setting} = on")
            conn.execute("SELECT pg_reload_conf()")
        yield replace(cfg, state_url=pg.database("bench"), output_dir=folder / "out")
    finally:
        pg.close()


def store_passes(cfg: Config, sources: int, backend: str) -> None:
    phases = Phases()
    pipeline_log = logging.getLogger("aggregator.pipeline")
    pipeline_log.addHandler(phases)
    pipeline_log.setLevel(logging.DEBUG)
    with Store.open(cfg.store_target) as store:
        started, cpu = time.perf_counter(), time.process_time()
        report = run_once(cfg, store, None, T0)
        took = time.perf_counter() - started
        line(f"{backend}: run_once pass 1 (new)", took, sources, report.read,
             time.process_time() - cpu)  # fmt: skip
        print(f"  new {report.new}, failed {len(report.failed_sources)}")
        phases.print()
        started, cpu = time.perf_counter(), time.process_time()
        report = run_once(cfg, store, None, T0 + timedelta(hours=1))
        took = time.perf_counter() - started
        not_modified = sum(s.not_modified for s in report.sources)
        line(f"{backend}: run_once pass 2 (304)", took, sources, report.read,
             time.process_time() - cpu)  # fmt: skip
        print(f"  not modified {not_modified}, failed {len(report.failed_sources)}")
        phases.print()
    pipeline_log.removeHandler(phases)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sources", type=int, default=1000)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument(
        "--parser",
        choices=("fast", "feedparser"),
        default="fast",
        help="feedparser: every feed read by feedparser (the fast path off)",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "postgresql", "both"),
        default="sqlite",
        help="the store of the run_once passes; both: SQLite, then PostgreSQL (a server of its "
        "own, tests/pgserver.py, made durable: fsync and synchronous_commit on) in the same run",
    )
    args = parser.parse_args()
    os.environ["AGGREGATOR_FASTFEED"] = "1" if args.parser == "fast" else "0"  # workers too

    ctx = multiprocessing.get_context("spawn")
    mine, theirs = ctx.Pipe()
    server = ctx.Process(target=serve, args=(args.hosts, args.items, args.delay, theirs),
                         daemon=True)  # fmt: skip
    server.start()
    bases = mine.recv()
    time.sleep(0.5)
    print(f"{args.sources} feeds x {args.items} items, {args.delay * 1000:.0f} ms server delay, "
          f"{len(bases)} hosts, {os.cpu_count()} CPUs, parser: {args.parser}")  # fmt: skip
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(write_config(Path(tmp), bases, args.sources))
            started, cpu = time.perf_counter(), time.process_time()
            harvests = harvest(cfg.sources, {}, config=cfg, client=None, now=T0)
            took = time.perf_counter() - started
            entries = sum(len(h.records) for h in harvests)
            errors = [h.error for h in harvests if h.error]
            line("harvest only (fetch+parse)", took, args.sources, entries,
                 time.process_time() - cpu)  # fmt: skip
            if errors:
                print(f"  {len(errors)} errors, e.g. {errors[0]}")
            states = {h.name: h.state for h in harvests if h.state}
            del harvests
            started, cpu = time.perf_counter(), time.process_time()
            again = harvest(cfg.sources, states, config=cfg, client=None,
                            now=T0 + timedelta(hours=1))  # fmt: skip
            took = time.perf_counter() - started
            line("harvest only, all 304", took, args.sources, 0, time.process_time() - cpu)
            print(f"  not modified {sum(h.not_modified for h in again)}")
            for backend in ("sqlite", "postgresql") if args.store == "both" else (args.store,):
                with backend_config(cfg, backend, Path(tmp) / backend) as run_cfg:
                    store_passes(run_cfg, args.sources, backend)
    finally:
        server.terminate()
        server.join()


if __name__ == "__main__":
    main()
