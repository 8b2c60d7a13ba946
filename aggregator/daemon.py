"""`aggregator run` and `aggregator status`: one event loop holds the scheduler and the HTTP
server, so there is one process to supervise and one place that handles signals.

SIGTERM/SIGINT: the server stops accepting, scheduling stops, running work gets a few seconds,
pending changes are published, the store is closed, exit 0. A kill -9 loses nothing that was
published (files are replaced atomically; the store is SQLite in WAL mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Iterator
from datetime import datetime

import uvicorn

from aggregator.config import Config
from aggregator.errors import ConfigError, StoreError
from aggregator.model import SourceState
from aggregator.schedule import Scheduler
from aggregator.serve import create_app
from aggregator.store import Store

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ours stops the scheduler too, and uvicorn's
    would re-raise the signal after shutdown (killing us instead of exiting 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """Bind before anything starts, so a busy port is one clear error, not a traceback."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise ConfigError(f"server.host: cannot listen on {host!r}: {e.strerror or e}") from e
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except OSError as e:
        sock.close()
        raise ConfigError(f"server.port: cannot listen on {host}:{port}: {e.strerror or e}") from e
    return sock


def run(config: Config, store: Store, sock: socket.socket) -> int:
    """Serve and schedule until a signal arrives. Takes ownership of `store` and `sock`."""
    asyncio.run(_main(config, store, sock))
    # Leave without joining threads: a web fetch or a run may still be stuck in one (threads
    # cannot be interrupted). Fetches touch no store; the store is closed, or, if a run was
    # abandoned, SQLite rolls its open transaction back on the next start.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


async def _main(config: Config, store: Store, sock: socket.socket) -> bool:
    client = None
    if any(s.type != "seeds" for s in config.sources):
        from aggregator.sources.http import WebClient

        client = WebClient()  # one for the daemon's lifetime: connections are reused
    scheduler = Scheduler(config, store, client=client)
    app = create_app(config.output_dir, scheduler.health)
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    if not debug:  # their per-job and startup lines would drown ours
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    server = _Server(
        uvicorn.Config(
            app, log_config=None, access_log=debug, lifespan="off", server_header=False,
            timeout_graceful_shutdown=3, proxy_headers=False,
        )
    )  # fmt: skip
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if server.should_exit:
            server.force_exit = True
            return
        log.info("%s received: shutting down", name)
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    log.info("serving %s at http://%s:%d/ (%d sources)", config.output_dir, shown, port,
             len(config.sources))  # fmt: skip
    await scheduler.start()
    try:
        await server.serve(sockets=[sock])
    finally:
        clean = await scheduler.stop()
        sock.close()
        if clean and client is not None:
            client.close()
    log.info("stopped")
    return clean


def _when(value: datetime | None, config: Config, now: datetime) -> str:
    if value is None:
        return "never"
    local = value.astimezone(config.timezone)
    delta = (value - now).total_seconds()
    ago = f"in {_span(delta)}" if delta >= 0 else f"{_span(-delta)} ago"
    return f"{local:%Y-%m-%d %H:%M:%S %z} ({ago})"


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def status_text(config: Config, now: datetime) -> str:
    """Every source with its last success, last error, next due time and article count.
    Reads the store without its lock, so it works while the daemon runs."""
    states: dict[str, SourceState] = {}
    counts: dict[str, int] = {}
    total = merged = 0
    importing = Store.importing(config.state)
    if config.state.exists() and not importing:
        try:
            with Store.open(config.state, lock=False, readonly=True) as store:
                for s in config.sources:
                    states[s.name] = store.source_state(s.name)
                    counts[s.name] = store.count(s.name)
                total = store.count()
                merged = store.merges()
        except StoreError:
            if not Store.importing(config.state):  # a first run began as we read
                raise
            importing = True
    lines = [f"state: {config.state}" + ("" if config.state.exists() else " (not created yet)"),
             f"articles: {total}", f"merged articles: {merged}"]  # fmt: skip
    if importing:
        lines.append("a first run into this empty store is under way, or was stopped before it"
                     " committed; its articles show here when a run completes")  # fmt: skip
    for s in config.sources:
        st = states.get(s.name, SourceState(name=s.name))
        where = s.path if s.type == "seeds" else s.url
        lines += [
            "",
            f"{s.name} ({s.type}, every {_span(s.every)}): {counts.get(s.name, 0)} articles",
            f"  from:         {where}",
            f"  last success: {_when(st.last_success, config, now)}",
            f"  last error:   {_when(st.last_error_at, config, now)}"
            + (f": {st.last_error}" if st.last_error else ""),
            f"  failures:     {st.failures} in a row",
            f"  next due:     {_when(st.next_due, config, now) if st.next_due else 'at start'}",
        ]
    return "\n".join(lines)
