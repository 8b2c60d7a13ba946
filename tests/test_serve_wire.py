"""The daemon's HTTP protocol over real sockets: a held file is answered by the protocol's
fast path (no ASGI call) with exactly the status, headers and body the app gives, in
request order on a connection, and with the bytes of the newest publish."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from aggregator.connections import server_settings
from aggregator.daemon import listen
from aggregator.serve import WIRE_CACHE_BYTES, FeedServer
from tests.test_serve import ATOM, BROWSER, Client

Scope = dict[str, Any]


class CountingServer(FeedServer):
    """The app, counting the requests that reached it through ASGI."""

    calls = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await super().__call__(scope, receive, send)


class NoAccessLog:
    """pytest captures even loggers that do not propagate, which turns uvicorn's access log
    (and so the slow path) on; the daemon runs with it off."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.access_log = False


@contextlib.contextmanager
def serving(app: FeedServer, **settings: Any) -> Iterator[int]:
    """`app` under uvicorn with the daemon's protocol and socket; yields its port."""
    sock = listen("127.0.0.1", 0)  # the daemon's socket (TCP_NODELAY on its connections)
    chosen = server_settings() | settings
    chosen["http"] = type("Protocol", (NoAccessLog, chosen["http"]), {})
    config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, ws="none",
                            server_header=False, proxy_headers=False, **chosen)  # fmt: skip
    server = uvicorn.Server(config)  # in a thread: no signal handlers
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.005)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _folder(tmp_path: Path) -> Path:
    out = tmp_path / "feeds"
    out.mkdir()
    (out / "atom.xml").write_bytes(ATOM)
    (out / "rss.xml").write_bytes(b"<rss/>")
    (out / "index.html").write_bytes(b"<p>Haber</p>")
    return out


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[CountingServer, int]]:
    app = CountingServer(_folder(tmp_path), None, None, None, revalidate=3600.0)
    with serving(app) as port:
        yield app, port


def exchange(port: int, raw: bytes, answers: int = 1) -> list[tuple[int, dict[str, str], bytes]]:
    """Send `raw` (one or more requests) on one connection and read `answers` responses:
    (status, headers without Date, body)."""
    found = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(raw)
        data = b""
        for _ in range(answers):
            while b"\r\n\r\n" not in data:
                data += more(s)
            head, data = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            pairs = (line.split(": ", 1) for line in lines[1:])
            headers = {name.lower(): value for name, value in pairs}
            size = int(headers.get("content-length", "0"))
            status = int(lines[0].split()[1])
            if raw.startswith(b"HEAD") or status == 304:
                size = 0
            while len(data) < size:
                data += more(s)
            body, data = data[:size], data[size:]
            assert "date" in headers
            del headers["date"]
            found.append((status, headers, body))
    return found


def more(s: socket.socket) -> bytes:
    chunk = s.recv(65536)
    assert chunk, "the server closed the connection before the answer was complete"
    return chunk


def request(path: str, headers: dict[str, str], method: str = "GET") -> bytes:
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode()


def test_held_files_get_the_apps_answers_without_an_asgi_call(
    served: tuple[CountingServer, int],
) -> None:
    app, port = served
    base = f"http://127.0.0.1:{port}"
    first = httpx.get(f"{base}/atom.xml", headers={"Accept-Encoding": "identity"})  # held now
    plain = first.headers["etag"]
    zipped = plain[:-1] + '-gz"'
    asked = [
        ("/atom.xml", {"Accept-Encoding": "identity"}, "GET"),
        ("/atom.xml", {"Accept-Encoding": "gzip, deflate"}, "GET"),
        ("/atom.xml", {"Accept-Encoding": "gzip;q=0"}, "GET"),
        ("/atom.xml", {"If-None-Match": plain}, "GET"),
        ("/atom.xml", {"If-None-Match": zipped, "Accept-Encoding": "gzip"}, "GET"),
        ("/atom.xml", {"If-None-Match": '"other"'}, "GET"),
        ("/atom.xml", {"If-Modified-Since": first.headers["last-modified"]}, "GET"),
        ("/atom.xml", {"Accept-Encoding": "gzip"}, "HEAD"),
        ("/atom.xml", {**BROWSER, "Accept-Encoding": "gzip"}, "GET"),  # renders the view
        ("/atom.xml", {**BROWSER, "Accept-Encoding": "gzip"}, "GET"),  # held view
        ("/%61tom.xml", {}, "GET"),
        ("/", {}, "GET"),
        ("/index.html", {}, "GET"),
    ]
    asgi = Client(app)
    with httpx.Client(base_url=base) as http:
        for path, headers, method in asked:
            want = asgi.request(method, path, headers)
            got = http.request(method, path, headers=headers)
            assert got.status_code == want.status_code, (path, headers)
            assert dict(got.headers) | {"date": ""} == dict(want.headers) | {"date": ""}
            assert got.content == want.content, (path, headers)
    app.calls = 0
    for path, headers, method in asked[1:8]:
        exchange(port, request(path, headers, method))
    assert app.calls == 0  # all of them from the protocol's fast path
    exchange(port, request("/healthz", {}))
    exchange(port, request("/nope.xml", {}))
    assert app.calls == 2


def test_answers_keep_request_order_and_connection_rules(
    served: tuple[CountingServer, int],
) -> None:
    app, port = served
    httpx.get(f"http://127.0.0.1:{port}/atom.xml")
    # pipelined: a request the app must answer (rss.xml not held yet), then a held one
    both = request("/rss.xml", {}) + request("/atom.xml", {"Accept-Encoding": "identity"})
    rss, atom = exchange(port, both, answers=2)
    assert (rss[0], rss[2]) == (200, b"<rss/>")
    assert (atom[0], atom[2]) == (200, ATOM)
    many = exchange(port, request("/atom.xml", {"Accept-Encoding": "identity"}) * 5, answers=5)
    assert [a[2] for a in many] == [ATOM] * 5
    # HTTP/1.0 and Connection: close get their answer, then the connection closes
    for raw in (b"GET /atom.xml HTTP/1.0\r\n\r\n",
                request("/atom.xml", {"Connection": "close"})):  # fmt: skip
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(raw)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"connection: close\r\n" in data
        assert data.endswith(b"\r\n\r\n" + ATOM)
    # a GET with a body: the body is read and dropped, the next request still answered
    body = b"x" * 100
    raw = request("/atom.xml", {"Content-Length": str(len(body))}) + body
    one, two = exchange(port, raw + request("/rss.xml", {}), answers=2)
    assert (one[2], two[2]) == (ATOM, b"<rss/>")


def test_the_fast_path_serves_the_newest_publish(
    served: tuple[CountingServer, int], tmp_path: Path
) -> None:
    app, port = served
    url = f"http://127.0.0.1:{port}/atom.xml"
    old = httpx.get(url)
    assert httpx.get(url, headers={"If-None-Match": old.headers["etag"]}).status_code == 304
    newer = ATOM.replace(b"Haber", b"Yeni haber")
    (tmp_path / "feeds" / "atom.xml").write_bytes(newer)
    asyncio.run(app.published(["atom.xml"]))
    now = httpx.get(url, headers={"If-None-Match": old.headers["etag"]})
    assert now.status_code == 200 and now.content == newer
    assert httpx.get(url, headers={"If-None-Match": now.headers["etag"]}).status_code == 304


def test_a_reader_that_does_not_read_gets_every_answer_whole_and_in_order(
    served: tuple[CountingServer, int], tmp_path: Path
) -> None:
    # larger than the bytes of whole answers kept per second: built for each request
    big = bytes(range(256)) * (WIRE_CACHE_BYTES // 256 + 1)
    (tmp_path / "feeds" / "big.bin").write_bytes(big)
    app, port = served
    httpx.get(f"http://127.0.0.1:{port}/big.bin")
    httpx.get(f"http://127.0.0.1:{port}/atom.xml")
    # 20 pipelined requests sent before reading anything: the server's write buffer fills
    # and the rest wait for the reader (the app's path) instead of piling up
    one = request("/big.bin", {}) + request("/atom.xml", {"Accept-Encoding": "identity"})
    answers = exchange(port, one * 10, answers=20)
    assert [a[2] for a in answers] == [big, ATOM] * 10


class SlowRss(FeedServer):
    """/rss.xml takes 2 s to find (a slow disk): its request goes to the app."""

    async def _find(self, path: str) -> Any:
        if path == "/rss.xml":
            await asyncio.sleep(2.0)
        return await super()._find(path)


def test_a_request_the_app_answers_after_a_fast_answer_outlives_the_keep_alive_timer(
    tmp_path: Path,
) -> None:
    """A fast answer arms uvicorn's keep-alive timer; the app's answer to the request
    pipelined behind it must not be cut off by it (found by a review)."""
    app = SlowRss(_folder(tmp_path), None, None, None, revalidate=3600.0)
    with serving(app, timeout_keep_alive=1) as port:
        httpx.get(f"http://127.0.0.1:{port}/atom.xml")  # held from now on
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(request("/atom.xml", {}) + request("/rss.xml", {}))
            s.settimeout(4.0)
            data = b""
            with contextlib.suppress(TimeoutError):
                while chunk := s.recv(65536):
                    data += chunk
    assert data.count(b"HTTP/1.1 200") == 2, data[-300:]
