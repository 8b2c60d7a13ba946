"""`aggregator run` and `aggregator status`: one event loop holds the scheduler and the HTTP
server, so there is one process to supervise and one place that handles signals; its one
child, the publisher (`publisher.py`), lives and dies with it.

SIGTERM/SIGINT: the server stops accepting, scheduling stops, running work gets a few seconds,
pending changes are published, the store is closed, exit 0. A kill -9 loses nothing that was
published (files are replaced atomically; the store is SQLite in WAL mode). SIGHUP reloads
config.yaml; a config that fails validation is logged and the running one kept.
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
from pathlib import Path
from typing import Any

import uvicorn

from aggregator import cluster
from aggregator.config import Config, load_config
from aggregator.connections import quiet_accept_errors, server_settings, widen_listen_queue
from aggregator.errors import ConfigError, StoreError
from aggregator.model import SourceState
from aggregator.schedule import Scheduler
from aggregator.serve import REVALIDATE, create_app
from aggregator.store import Store, describe, exists, lock_holder

log = logging.getLogger(__name__)
STORE_CACHE_KIB = 8 * 1024  # SQLite's page cache in the daemon; the OS caches the file too


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ours stops the scheduler too, and uvicorn's
    would re-raise the signal after shutdown (killing us instead of exiting 0)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        widen_listen_queue(sockets or [])


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


def start(config: Config) -> int:
    """Take the store's lock, bind, run. A start that fails (port taken) leaves no new,
    empty state store behind: the next `check` or `status` should see a fresh setup."""
    created = [] if config.state_url else [
        p for p in (config.state.parent, config.state) if not p.exists()]  # fmt: skip
    # SQLite's lock: a second daemon or a regenerate is refused
    store = Store.open(config.store_target, holder="daemon")
    try:
        sock = listen(config.host, config.port)
    except BaseException:
        store.close()
        if config.state in created:
            _remove_fresh_store(config.state, config.state.parent in created)
        raise
    return run(config, store, sock)


def _remove_fresh_store(state: Path, folder_too: bool) -> None:
    for path in (state, *(state.with_name(state.name + x) for x in ("-wal", "-shm", ".lock"))):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    if folder_too:
        with contextlib.suppress(OSError):  # not empty: someone else put something there
            state.parent.rmdir()


def run(config: Config, store: Store, sock: socket.socket) -> int:
    """Serve and schedule until a signal arrives. Takes ownership of `store` and `sock`."""
    store.limit_cache(STORE_CACHE_KIB)
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
    scheduler = Scheduler(config, store, client=client, node=cluster_node(config))
    app = create_app(config.output_dir, scheduler.health, metrics=scheduler.metrics.render,
                     timezone=config.timezone, revalidate=REVALIDATE)  # fmt: skip
    scheduler.on_published = app.published
    shared = None
    if config.state_url is not None:  # every node serves the files stored in the database
        from aggregator.sharedout import SharedFiles

        shared = SharedFiles(config.state_url, app)
        await shared.start()
    debug = logging.getLogger().isEnabledFor(logging.DEBUG)
    if not debug:  # their per-job and startup lines would drown ours
        logging.getLogger("uvicorn").setLevel(logging.WARNING)
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        logging.getLogger("httpx").setLevel(logging.WARNING)
    server = _Server(
        uvicorn.Config(
            app, log_config=None, access_log=debug, lifespan="off", server_header=False,
            timeout_graceful_shutdown=3, proxy_headers=False, ws="none", **server_settings(),
        )
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    quiet_accept_errors(loop)

    def on_signal(name: str) -> None:
        if server.should_exit:
            server.force_exit = True
            return
        log.info("%s received: shutting down", name)
        server.should_exit = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    reloads: set[asyncio.Task[None]] = set()

    def on_hangup() -> None:
        task = asyncio.create_task(_reload(scheduler))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
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
        if shared is not None:
            await shared.close()
        if clean and scheduler.client is not None:
            from aggregator.sources.http import WebClient

            if isinstance(scheduler.client, WebClient):
                scheduler.client.close()
    log.info("stopped")
    return clean


def cluster_node(config: Config) -> cluster.Node | None:
    """This daemon as a node of those sharing a PostgreSQL store; None with SQLite."""
    if config.state_url is None:
        return None
    from aggregator.sources.http import HttpSettings

    name = config.cluster.node or cluster.default_node_name()
    log.info("cluster node %s (lease %gs)", name, config.cluster.lease)
    return cluster.Node(config.state_url, name, lease=config.cluster.lease,
                per_host=HttpSettings().per_host)  # fmt: skip


async def _reload(scheduler: Scheduler) -> None:
    path = scheduler.config.path
    log.info("SIGHUP received: reloading %s", path)
    try:
        new = await asyncio.to_thread(load_config, path)
    except ConfigError as e:
        log.error("config reload failed, still running the previous config: %s", e)
        return
    try:
        await scheduler.reconfigure(new)
    except Exception:  # a bug: say so, keep serving what runs
        log.exception("config reload failed (a bug; please report it)")


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


def status_data(config: Config, now: datetime) -> dict[str, Any]:
    """The state of the store and every source, JSON-ready (`status --json`; times ISO 8601
    with offset, in site.timezone). Reads the store without its lock, so it works while the
    daemon runs, and says who holds the lock."""
    states: dict[str, SourceState] = {}
    counts: dict[str, int] = {}
    rejected: dict[str, list[tuple[str, str, datetime]]] = {}
    total = expired = merged = 0
    target = config.store_target
    importing = Store.importing(target)
    created = exists(target)
    if created and not importing:
        try:
            with Store.open(target, lock=False, readonly=True) as store:
                for s in config.sources:
                    states[s.name] = store.source_state(s.name)
                    counts[s.name] = store.count(s.name)
                    if s.type == "seeds":
                        rejected[s.name] = [r for r in store.rejected_files(s.name)
                                            if os.path.exists(r[0])]  # fmt: skip
                total, expired = store.count(), store.expired_count()
                merged = store.merges()
        except StoreError:
            if not Store.importing(target):  # a first run began as we read
                raise
            importing = True
    held = lock_holder(target)
    shared: dict[str, Any] = {"nodes": [], "sources": {}}  # who runs what, on PostgreSQL
    if config.state_url is not None and created:
        shared = cluster.status(config.state_url, [s.name for s in config.sources],
                                config.cluster.lease)  # fmt: skip

    def iso(value: datetime | None) -> str | None:
        return value.astimezone(config.timezone).isoformat(timespec="seconds") if value else None

    data: dict[str, Any] = {
        "state": describe(target),
        "created": created,
        "held_by": {"pid": held[0], "as": held[1]} if held else None,
        "importing": importing,
        "articles": total,
        "expired": expired,
        "merged": merged,
        "retention": {"seconds": config.retention, "counted_from": "first_seen"},
        "sources": [
            {
                "name": s.name,
                "type": s.type,
                "every": s.every,
                "from": str(s.path if s.type == "seeds" else s.url),
                "articles": counts.get(s.name, 0),
                "last_success": iso(st.last_success),
                "last_error": st.last_error,
                "last_error_at": iso(st.last_error_at),
                "failures": st.failures,
                "next_due": iso(st.next_due),
                "rejected_files": [
                    {"path": p, "reason": r, "since": iso(t)}
                    for p, r, t in rejected.get(s.name, [])
                ],
            }  # fmt: skip
            for s in config.sources
            for st in [states.get(s.name, SourceState(name=s.name))]
        ],
    }
    if config.state_url is not None:  # several daemons may share it: who runs what
        data["nodes"] = [
            {"name": n["name"], "machine": n["machine"], "pid": n["pid"],
             "started": iso(n["started"]), "heartbeat": iso(n["heartbeat"]),
             "alive": n["alive"], "sources_held": n["held"], "publisher": n["publisher"]}
            for n in shared["nodes"]
        ]  # fmt: skip
        for d in data["sources"]:
            h = shared["sources"].get(d["name"], {})
            d["holder"] = h.get("holder")
            d["lease_until"] = iso(h.get("lease_until"))
            d["last_run_by"] = h.get("last_run_by")
    return data


def status_text(config: Config, now: datetime) -> str:
    """Every source with its last success, last error, next due time, article count and
    remembered rejections; who holds the store; how many articles retention removed."""
    data = status_data(config, now)

    def when(value: str | None) -> str:
        return _when(datetime.fromisoformat(value) if value else None, config, now)

    held = data["held_by"]
    lines = [
        f"state: {data['state']}" + ("" if data["created"] else " (not created yet)"),
        "held by: " + (f"a running daemon (pid {held['pid']})" if held and held["as"] == "daemon"
                       else f"a {held['as']} run (pid {held['pid']})" if held
                       else "no lock (a PostgreSQL store is shared)" if config.state_url
                       else "nobody (no daemon is running on this store)"),
        f"articles: {data['articles']}",
        f"merged articles: {data['merged']} (their ids kept as aliases of the survivors)",
        f"expired: {data['expired']} articles removed by retention ("
        + (f"{_span(config.retention)} from first seen)" if config.retention else "never)"),
    ]  # fmt: skip
    if "nodes" in data:
        lines[2:2] = [f"nodes: {len(data['nodes'])} (sharing this database)"] + [
            f"  {n['name']} ("
            + ("publisher" if n["publisher"] else "alive" if n["alive"] else "silent")
            + f", {n['machine']} pid {n['pid']}): last heartbeat {when(n['heartbeat'])},"
            f" {n['sources_held']} sources held"
            for n in data["nodes"]
        ]
    if data["importing"]:
        lines.append("a first run into this empty store is under way, or was stopped before it"
                     " committed; its articles show here when a run completes")  # fmt: skip
    for s, d in zip(config.sources, data["sources"], strict=True):
        lines += [
            "",
            f"{s.name} ({s.type}, every {_span(s.every)}): {d['articles']} articles",
            f"  from:         {d['from']}",
            f"  last success: {when(d['last_success'])}",
            f"  last error:   {when(d['last_error_at'])}"
            + (f": {d['last_error']}" if d["last_error"] else ""),
            f"  failures:     {d['failures']} in a row",
            f"  next due:     {when(d['next_due']) if d['next_due'] else 'at start'}",
        ]
        if "holder" in d:
            lines.append(f"  held by:      {d['holder'] or 'nobody'}" + (
                f" (lease until {when(d['lease_until'])})" if d["holder"] else
                f" (last run by {d['last_run_by']})" if d["last_run_by"] else ""))  # fmt: skip
        for r in d["rejected_files"]:
            lines.append(f"  rejected:     {r['path']}: {r['reason']} (not read again until "
                         "it changes)")  # fmt: skip
    return "\n".join(lines)
