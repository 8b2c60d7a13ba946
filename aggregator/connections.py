"""The daemon's HTTP connections under fd pressure (a thousand idle sockets must not starve
/healthz or fill the log).

- A connection gets HEADER_TIMEOUT seconds to deliver its request headers, from connecting
  or from the end of its previous response; after a response, uvicorn's keep-alive timeout
  closes an idle one sooner.
- At most `connection_limit(RLIMIT_NOFILE)` connections are open: the rest of the fds stay
  for the store, the output and the web client. A connection past the limit closes the one
  that has waited longest without a request in progress (an idle or a slow one), so a
  reader that sends its request promptly is always answered.
- asyncio accepts BACKLOG connections in one go, so the limit is enforced between small
  batches and accept() does not meet EMFILE; the kernel's listen queue is widened again
  after start (asyncio sets it to the batch size) so a flood does not drop the SYN of a
  reader that comes after it (a one-second retransmit).
- If accept() fails anyway (EMFILE, ENFILE: fds taken elsewhere), one warning a minute with
  a count, not a traceback per attempt (asyncio retries every second).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import socket
from typing import Any

from aggregator.serve import HttpProtocol

log = logging.getLogger(__name__)
HEADER_TIMEOUT = 10.0
KEEP_ALIVE_TIMEOUT = 5
RESERVED_FDS = 256
"""File descriptors kept free of client connections: store, logs, output, web client."""
BACKLOG = 64
"""How many connections asyncio accepts in one go (it also makes this the listen queue)."""
LISTEN_QUEUE = 1024
"""Connections the kernel holds before they are accepted: they cost us no fd until then."""
ACCEPT_ERROR_INTERVAL = 60.0
_ACCEPT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


def connection_limit(open_files: int) -> int:
    """Client connections allowed under a file descriptor limit of `open_files`. asyncio
    accepts a batch of BACKLOG before their protocols start and the next batch may come
    first: up to about three batches are open beyond the limit for a moment."""
    spare = min(RESERVED_FDS, open_files // 2)
    return max(8, open_files - spare - 4 * BACKLOG)


class GuardedProtocol(HttpProtocol):
    """The server's protocol (serve.HttpProtocol: httptools) with a header deadline and room
    made at the limit."""

    limit = connection_limit(1024)
    """Set per server by `server_settings` (a subclass with the limit of this process)."""
    order: dict[GuardedProtocol, None] = {}
    """Open connections, longest waiting first (a subclass per server has its own)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._arm()
        if len(self.order) > self.limit:
            self._make_room()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._deadline.cancel()
        if not self.transport.is_closing():  # else connection_lost comes next
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        self.order.pop(self, None)
        super().connection_lost(exc)

    def _arm(self) -> None:
        self.order.pop(self, None)
        self.order[self] = None  # waiting again: the newest
        self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._drop_if_waiting)

    @property
    def waiting(self) -> bool:
        """No request being answered: reading headers, or idle between requests."""
        return self.cycle is None or self.cycle.response_complete

    def _drop_if_waiting(self) -> None:
        if self.waiting:
            self.transport.close()

    def _make_room(self) -> None:
        """Close the connection waiting longest (requests being answered are few: they are
        skipped), or this one if every other is busy."""
        for other in self.order:
            if other is not self and other.waiting and not other.transport.is_closing():
                other.transport.close()
                return
        self.transport.close()


def server_settings() -> dict[str, Any]:
    """uvicorn.Config keyword arguments for this process's file descriptor limit."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_files = soft if soft != resource.RLIM_INFINITY else 1 << 20
    limits = {"limit": connection_limit(open_files), "order": {}}
    protocol = type("GuardedProtocol", (GuardedProtocol,), limits)
    return {"http": protocol, "backlog": BACKLOG, "timeout_keep_alive": KEEP_ALIVE_TIMEOUT}


def widen_listen_queue(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.listen(LISTEN_QUEUE)


class _AcceptErrors:
    """The loop's exception handler: accept() out of fds is one line a minute."""

    def __init__(self) -> None:
        self.last = float("-inf")
        self.since = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if not (isinstance(error, OSError) and error.errno in _ACCEPT_ERRNOS
                and "accept" in str(context.get("message", ""))):  # fmt: skip
            loop.default_exception_handler(context)
            return
        self.since += 1
        if loop.time() - self.last >= ACCEPT_ERROR_INTERVAL:
            log.warning("cannot accept connections: %s (%d failed attempts since the last such"
                        " line; retrying every second)", error.strerror, self.since)  # fmt: skip
            self.last, self.since = loop.time(), 0


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    loop.set_exception_handler(_AcceptErrors())
