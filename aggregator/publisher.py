"""The daemon's publisher: `pipeline.publish_now` in a process of its own.

Publishing is Python work (reading and decoding entries, rendering, comparing bytes); in
the serving process it holds the GIL against the event loop, and on the store's thread it
kept every source run (a 304's too) waiting for it. So `aggregator run` starts one child
process that opens the store itself (SQLite's write-ahead log lets it read while the
daemon merges; its own writes, the publish state, are a few rows, within the store's
busy timeout) and publishes when asked, one request at a time over a socket pair: the config,
`now` and the cluster fence go in; the files written, the article count and the time
taken come back. It renders in its own process, not in a pool of workers: one core for
publishing leaves the other to serving and merging, and there are no grandchildren to
orphan or to double the memory.

Nothing published is lost when the child dies mid-publish (killed, out of memory): files
are replaced atomically and the store keeps the publish pending until `finish_publish`,
so a new child (started at once, one retry) publishes it again. The child dies with the
daemon (Linux: PR_SET_PDEATHSIG; elsewhere when it reads the end of its pipe), runs in a
session of its own and ignores SIGINT/SIGTERM (systemd signals every process of a
service: the daemon's shutdown ends it after the final publish), and is killed if it
does not end in time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from aggregator.config import Config
from aggregator.errors import AggregatorError, PublishError

log = logging.getLogger(__name__)

CHILD_STORE_CACHE_KIB = 8 * 1024  # the child's SQLite page cache (as the daemon's)
STOP_GRACE = 5.0  # the child gets this long to end after being asked, then it is killed
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Published:
    written: list[str]
    articles: int
    seconds: float


class PublisherDied(PublishError):
    """The publisher process ended before answering (killed, out of memory, a crash)."""


class Publisher:
    """The publisher process, seen from the daemon's event loop. Requests go one at a time
    through one thread (a request cancelled by its caller still finishes there, so answers
    never go to the wrong request); `start` and restarts run on the event loop's thread,
    which lives as long as the daemon (the child's death signal follows that thread)."""

    def __init__(self, target: Path | str) -> None:
        self.target = target
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._sent: Config | None = None  # the config the child holds
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "aggregator-publisher")

    def start(self) -> None:
        """Start the child (if not running): it opens the store now, before any run."""
        if self._process is not None and self._process.poll() is None:
            return
        self._reap()
        root = logging.getLogger()
        fmt = "json" if any(type(h.formatter).__name__ == "JsonFormatter"
                            for h in root.handlers) else "text"  # fmt: skip
        mine, theirs = socket.socketpair()
        # a new session: a terminal's Ctrl-C reaches the daemon alone, which ends us
        process = subprocess.Popen(
            [sys.executable, "-c", "from aggregator.publisher import main; main()",
             str(theirs.fileno()), str(os.getpid())],
            stdin=subprocess.DEVNULL, pass_fds=[theirs.fileno()], start_new_session=True,
        )  # fmt: skip
        theirs.close()  # so the child's end closing is seen as its death
        conn = Connection(mine.detach())
        # the store's address (a PostgreSQL URL may hold a password: not on the command line)
        conn.send((self.target, logging.getLevelName(root.getEffectiveLevel()), fmt))
        self._process, self._conn, self._sent = process, conn, None
        log.debug("publisher process started (pid %s)", process.pid)

    async def publish(self, config: Config, now: datetime, fence: int | None) -> Published:
        """Publish in the child; a child that dies mid-publish is replaced and asked once
        more. Raises PublishError (or the child's expected error as one), PublisherDied."""
        for attempt in (1, 2):
            self.start()
            assert self._conn is not None
            request = (None if config is self._sent else config, now, fence)
            reply = await asyncio.get_running_loop().run_in_executor(
                self._thread, _round_trip, self._conn, request
            )
            if reply[0] != "died":
                self._sent = config
                break
            code = self._exit_code()
            log.warning("publisher process ended mid-publish (%s)%s", code,
                        "; starting a new one" if attempt == 1 else "")  # fmt: skip
        else:
            raise PublisherDied(f"the publisher process ended twice mid-publish ({code})")
        if reply[0] == "ok":
            return Published(written=reply[1], articles=reply[2], seconds=reply[3])
        if reply[0] == "error":
            raise PublishError(reply[1])
        raise RuntimeError(f"publishing failed in the publisher process: {reply[1]}")

    def _exit_code(self) -> str:
        process = self._process
        if process is None:
            return "not started"
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(1.0)
        code = process.returncode
        self._reap()
        if code is None:
            return "not answering"
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"

    def _reap(self) -> None:
        """Kill the child if it still runs, wait for it, close the pipe."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            self._process.wait()
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = self._sent = None

    async def close(self, grace: float = STOP_GRACE) -> None:
        """Ask the child to end once the request under way (if any) is answered; kill it
        after `grace`."""
        process, conn = self._process, self._conn
        loop = asyncio.get_running_loop()
        if process is not None and conn is not None:
            goodbye = loop.run_in_executor(self._thread, _goodbye, conn)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await loop.run_in_executor(None, process.wait, grace)
            if process.poll() is None:
                log.warning("publisher process did not end in %.1fs; killing it", grace)
                process.kill()
            await goodbye  # the thread is done with the pipe: it can be closed
        self._thread.shutdown(wait=False, cancel_futures=True)
        self._reap()


def _goodbye(conn: Connection) -> None:
    with contextlib.suppress(OSError):
        conn.send(None)


def _round_trip(
    conn: Connection, request: tuple[Config | None, datetime, int | None]
) -> tuple[Any, ...]:
    try:
        conn.send(request)
        reply: tuple[Any, ...] = conn.recv()
    except (EOFError, OSError):  # the child ended: its end of the pipe closed
        return ("died",)
    return reply


# -- the child process -------------------------------------------------------------------


def main() -> None:
    """The child: `python -c ... FD PARENT_PID`; publish on request until the pipe ends
    (or a None request)."""
    _die_with(int(sys.argv[2]))
    for sig in (signal.SIGINT, signal.SIGTERM):  # systemd signals every process: the
        signal.signal(sig, signal.SIG_IGN)  # daemon ends us after its final publish
    conn = Connection(int(sys.argv[1]))
    target, level, fmt = conn.recv()
    libc = ctypes.CDLL(None) if sys.platform.startswith("linux") else None
    from aggregator import logs
    from aggregator.pipeline import publish_now
    from aggregator.store import Store

    logs.setup(level, fmt)
    store: Store | None = None
    config: Config | None = None

    def open_store() -> Store:
        opened = Store.open(target, lock=False)  # the daemon holds the lock
        opened.limit_cache(CHILD_STORE_CACHE_KIB)
        return opened

    with contextlib.suppress(AggregatorError):  # opened now, so a first run into an empty
        store = open_store()  # store knows a reader is there; else at the first request
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            break
        if request is None:
            break
        sent, now, fence = request
        config = sent or config
        assert config is not None
        t0 = time.perf_counter()
        reply: tuple[Any, ...]
        try:
            store = store or open_store()
            written = publish_now(config, store, now, fence, workers=1)
            reply = ("ok", written, store.count(), time.perf_counter() - t0)
        except AggregatorError as e:
            reply = ("error", str(e) or type(e).__name__)
        except Exception as e:  # a bug: its traceback here, one line in the daemon
            log.exception("publishing failed (a bug; please report it)")
            reply = ("bug", f"{type(e).__name__}: {e}")
        if libc is not None and hasattr(libc, "malloc_trim"):  # glibc: the freed heap of a
            libc.malloc_trim(0)  # large publish goes back to the system, not kept for good
        try:
            conn.send(reply)
        except OSError:
            break
    if store is not None:
        store.close()


def _die_with(parent: int) -> None:
    """Be killed when the daemon dies, even by kill -9 (Linux); elsewhere the end of the
    pipe ends us once the publish under way is done."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the signal was set
        os._exit(0)
