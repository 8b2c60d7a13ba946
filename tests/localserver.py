"""A real HTTP server on 127.0.0.1 (port 0) in a thread, for tests and the benchmark.

Modelled on httpx's tests/conftest.py `serve_in_thread`: uvicorn runs a small ASGI app;
routes are plain functions of the request returning a `Reply`. Fixture bodies live in
tests/data/web/, with `{base}` replaced by the server's own URL.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

WEB = Path(__file__).parent / "data" / "web"
XML = "application/xml; charset=utf-8"
HTML = "text/html; charset=utf-8"


@dataclass
class Request:
    path: str
    query: str
    headers: dict[str, str]
    peer: str = ""
    """The client's address and port: one per connection."""


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds to wait before answering at all."""
    chunks: int = 1
    """Send the body in this many pieces, without a Content-Length."""
    chunk_delay: float = 0.0


Route = Callable[[Request], Reply]


class App:
    """The ASGI app: exact paths first, then prefixes (longest first)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.prefixes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.requests: list[Request] = []
        self.delay = 0.0
        self.base = ""

    def route(self, path: str, reply: Route | Reply) -> None:
        self.routes[path] = reply if callable(reply) else (lambda _r, rep=reply: rep)

    def prefix(self, path: str, reply: Route) -> None:
        self.prefixes[path] = reply

    def _find(self, path: str) -> Route | None:
        if path in self.routes:
            return self.routes[path]
        for prefix in sorted(self.prefixes, key=len, reverse=True):
            if path.startswith(prefix):
                return self.prefixes[prefix]
        return None

    async def __call__(
        self, scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:  # fmt: skip
        if scope["type"] != "http":
            return
        request = Request(
            path=scope["path"],
            query=scope.get("query_string", b"").decode("latin-1"),
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            peer=":".join(str(part) for part in scope.get("client") or ()),
        )
        self.hits[request.path] += 1
        self.requests.append(request)
        route = self._find(request.path)
        reply = route(request) if route else Reply(404, b"not found")
        wait = reply.delay + self.delay
        if wait:
            await asyncio.sleep(wait)
        headers = [(b"content-type", reply.content_type.encode())]
        headers += [(k.lower().encode(), v.encode("latin-1")) for k, v in reply.headers.items()]
        if reply.chunks <= 1:
            headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        size = max(1, -(-len(reply.body) // max(1, reply.chunks)))
        pieces = [reply.body[i : i + size] for i in range(0, len(reply.body), size)] or [b""]
        for i, piece in enumerate(pieces):
            if i and reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            await send({"type": "http.response.body", "body": piece,
                        "more_body": i < len(pieces) - 1})  # fmt: skip


def fixture(name: str, base: str) -> bytes:
    return (WEB / name).read_bytes().replace(b"{base}", base.encode())


def install_fixture_routes(app: App) -> None:
    """The routes the issue asks for: feeds, pages and misbehaving answers."""
    base = app.base

    def file(name: str, content_type: str) -> Route:
        return lambda _r: Reply(body=fixture(name, base), content_type=content_type)

    app.route("/rss.xml", file("rss.xml", "application/rss+xml; charset=utf-8"))
    app.route("/atom.xml", file("atom.xml", "application/atom+xml"))
    app.route("/feed.json", file("feed.json", "application/feed+json"))
    app.route("/news/", file("listing.html", HTML))
    app.route("/news/mit-kalin-umerov", file("jsonld.html", HTML))
    app.route("/news/tgrt-style", file("tgrt.html", HTML))
    app.route("/yasam/kiymali-borek", file("cp1254.html", "text/html"))
    app.route("/hostile.html", file("hostile.html", HTML))
    app.route("/status/500", Reply(500, b"boom"))
    app.route("/status/404", Reply(404, b"gone"))
    app.route("/status/429", Reply(429, b"slow down", headers={"Retry-After": "7200"}))
    app.route("/status/503", Reply(503, b"later", headers={"Retry-After": "120"}))
    app.route("/loop", lambda r: Reply(302, headers={"Location": f"/loop?{len(r.query) + 1}"}))
    app.route("/slow", Reply(body=b"<rss/>", delay=3.0))
    app.route("/drip", Reply(body=b"<rss>" + b" " * 50 + b"</rss>", chunks=50, chunk_delay=0.1))
    app.route("/huge", Reply(body=b"<rss>" + b" " * (6 * 1024 * 1024), chunks=64))
    app.route("/huge-declared", Reply(body=b"x" * (6 * 1024 * 1024)))
    app.route("/malformed.xml", Reply(body=b"<?xml version='1.0'?><rss><channel><<<&&&",
                                      content_type=XML))  # fmt: skip
    app.route("/to-file", Reply(301, headers={"Location": "file:///etc/passwd"}))
    app.route("/moved", Reply(301, headers={"Location": "/rss.xml"}))

    def etag(r: Request) -> Reply:
        if r.headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return Reply(body=fixture("rss.xml", base), content_type=XML,
                     headers={"ETag": '"v1"', "Cache-Control": "max-age=3600"})  # fmt: skip

    app.route("/etag.xml", etag)

    def last_modified(r: Request) -> Reply:
        stamp = "Thu, 01 Jan 2026 17:00:00 GMT"
        if r.headers.get("if-modified-since") == stamp:
            return Reply(304)
        return Reply(body=fixture("atom.xml", base), content_type=XML,
                     headers={"Last-Modified": stamp})  # fmt: skip

    app.route("/lm.xml", last_modified)


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # older uvicorn; newer ones skip it off-main
        pass


@contextmanager
def serve_in_thread(
    app: App | None = None, *, fixtures: bool = True, tls: tuple[str, str] | None = None
) -> Iterator[App]:
    """Run `app` on 127.0.0.1 with a free port until the block ends; `app.base` is its URL.
    `tls`: (certificate file, key file) to serve https."""
    app = app or App()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    app.base = f"{'https' if tls else 'http'}://127.0.0.1:{sock.getsockname()[1]}"
    if fixtures:
        install_fixture_routes(app)
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False,
                            ws="none", timeout_keep_alive=30, ssl_certfile=tls and tls[0],
                            ssl_keyfile=tls and tls[1])  # fmt: skip
    server = _Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.001)
        yield app
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
