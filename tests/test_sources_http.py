"""The one HTTP client against a real local server: limits, redirects, conditional GET."""

from __future__ import annotations

import gzip
import itertools
import logging
import socketserver
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aggregator import USER_AGENT
from aggregator.errors import FetchError
from aggregator.sources.http import (
    HttpSettings,
    Response,
    RetryLater,
    WebClient,
    decode_body,
    detect_encoding,
    max_age,
    retry_after_seconds,
)
from tests.localserver import App, Reply, serve_in_thread


@pytest.fixture(scope="module")
def server() -> Iterator[App]:
    with serve_in_thread() as app:
        yield app


@pytest.fixture(scope="module")
def client() -> Iterator[WebClient]:
    with WebClient(HttpSettings(read_timeout=0.5, total_timeout=1.5, per_host=2)) as c:
        yield c


def get(client: WebClient, url: str, **kw: str) -> Response:
    return client.run(client.fetch(url, **kw))


def test_fetch_sends_our_user_agent_and_accepts_compression(server: App, client: WebClient) -> None:
    r = get(client, server.base + "/rss.xml")
    assert r.status == 200 and b"<rss" in r.body
    sent = [q for q in server.requests if q.path == "/rss.xml"][-1].headers
    assert sent["user-agent"] == USER_AGENT
    assert "gzip" in sent["accept-encoding"]


def test_answers_without_a_body_keep_the_connection_for_the_next_request(server: App) -> None:
    """A 304 or a redirect read to its end leaves its connection open: polling a site's
    unchanged feeds must not cost a new connection (a TLS handshake on the real web) each."""
    with WebClient() as fresh:
        first = get(fresh, server.base + "/etag.xml")
        assert get(fresh, server.base + "/etag.xml", etag=first.etag or "").not_modified
        assert get(fresh, server.base + "/etag.xml", etag=first.etag or "").not_modified
        assert get(fresh, server.base + "/moved").status == 200
    peers = [q.peer for q in server.requests if q.path in ("/etag.xml", "/moved", "/rss.xml")]
    assert len(peers[-5:]) == 5 and len(set(peers[-5:])) == 1, peers[-5:]


def test_https_connections_are_kept_and_their_304s_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over TLS too (the streams the client wraps after the handshake), a kept connection
    serves the next requests, and an unchanged feed answers 304 on it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)  # fmt: skip
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts this server only
    with serve_in_thread(tls=(str(cert), str(key))) as app, WebClient() as fresh:
        first = get(fresh, app.base + "/etag.xml")
        assert first.status == 200 and first.body
        assert get(fresh, app.base + "/etag.xml", etag=first.etag or "").not_modified
        assert get(fresh, app.base + "/rss.xml").body.startswith(b"<?xml")
        peers = [q.peer for q in app.requests]
    assert len(peers) == 3 and len(set(peers)) == 1, peers


def test_a_proxy_named_by_the_environment_carries_the_fetches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """HTTP_PROXY is honoured as httpx honours it (a site behind an outbound proxy): the
    fetch goes to the proxy, with the absolute URL, not to the unreachable origin."""
    body = b"<?xml version='1.0'?><rss version='2.0'><channel><title>p</title></channel></rss>"
    asked: list[bytes] = []

    class Proxy(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data = b""
            while b"\r\n\r\n" not in data and (chunk := self.request.recv(4096)):
                data += chunk
            asked.append(data.split(b"\r\n", 1)[0])
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
                                 % (len(body), body))  # fmt: skip

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Proxy) as proxy:
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        unreachable = socketserver.TCPServer(("127.0.0.1", 0), Proxy)
        origin = f"http://127.0.0.1:{unreachable.server_address[1]}/feed.xml"
        unreachable.server_close()  # nothing listens there
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY",
                     "https_proxy", "http_proxy"):  # fmt: skip
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        with WebClient() as fresh:
            r = get(fresh, origin)
        proxy.shutdown()
    assert r.status == 200 and r.body == body
    assert asked == [f"GET {origin} HTTP/1.1".encode()]


# -- a raw server, for answers uvicorn would never send ------------------------------------
Script = Callable[[int, int], tuple[bytes, bool] | None]
"""(connection number, request number on it) -> (answer, close after it); None: the
connection is closed with the request unanswered."""
OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 6\r\n\r\n<rss/>"


@contextmanager
def scripted_server(script: Script) -> Iterator[tuple[str, list[tuple[int, int]]]]:
    """A server on 127.0.0.1 answering each request with the bytes `script` gives; yields
    its URL and the (connection, request) pairs it was asked."""
    asked: list[tuple[int, int]] = []
    numbers = itertools.count()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn, buffer = next(numbers), b""
            for i in itertools.count():
                while b"\r\n\r\n" not in buffer:
                    data = self.request.recv(65536)
                    if not data:
                        return
                    buffer += data
                buffer = buffer.split(b"\r\n\r\n", 1)[1]
                asked.append((conn, i))
                answer = script(conn, i)
                if answer is None:
                    return
                self.request.sendall(answer[0])
                if answer[1]:
                    return

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as server:
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", asked
        finally:
            server.shutdown()
            thread.join(10)


def test_redirect_with_a_slow_body_is_followed_without_waiting_for_it(server: App) -> None:
    """Every piece inside read_timeout, the whole body longer than total_timeout: the body
    of a redirect is not worth the source's time bound."""
    server.route("/slowmove", Reply(302, body=b"x" * 40, chunks=10, chunk_delay=0.3,
                                    headers={"Location": "/rss.xml"}))  # fmt: skip
    with WebClient(HttpSettings(read_timeout=0.5, total_timeout=1.5)) as web:
        assert get(web, server.base + "/slowmove").status == 200


@pytest.mark.parametrize("closed", [True, False], ids=["closed", "left-open"])
def test_redirect_with_a_body_cut_short_is_still_followed(closed: bool) -> None:
    moved = b"HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 100\r\n\r\nshort"

    def script(conn: int, i: int) -> tuple[bytes, bool]:
        return (moved, closed) if (conn, i) == (0, 0) else (OK, False)

    with scripted_server(script) as (base, _), WebClient(HttpSettings(read_timeout=0.5)) as web:
        r = get(web, base + "/moved")
    assert r.status == 200 and r.url == base + "/ok"


@pytest.mark.parametrize("stray", [b"Content-Length: 5\r\n\r\nhello",
                                   b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"],
                         ids=["content-length", "chunked"])  # fmt: skip
def test_304_with_a_body_gives_up_its_connection_and_the_next_fetch_is_read_right(
    stray: bytes,
) -> None:
    """The parser reads no body after a 304: bytes a server sends anyway must not be taken
    for the next answer on that connection."""

    def script(conn: int, i: int) -> tuple[bytes, bool]:
        if (conn, i) == (0, 0):
            return b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n' + stray, False
        return OK, False

    with scripted_server(script) as (base, asked), WebClient() as web:
        assert get(web, base + "/a.xml", etag='"v1"').not_modified
        assert get(web, base + "/b.xml").body == b"<rss/>"
    assert asked == [(0, 0), (1, 0)]


def test_kept_connection_closed_by_the_server_as_a_request_arrives_is_asked_again() -> None:
    """The server's keep-alive timer fires as our next request reaches it: the request is
    sent again on a new connection, not reported as a failed source."""

    def script(conn: int, i: int) -> tuple[bytes, bool] | None:
        return (b'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\n\r\n', False) if i == 0 else None

    with scripted_server(script) as (base, asked), WebClient() as web:
        assert get(web, base + "/a.xml", etag='"v1"').not_modified
        assert get(web, base + "/a.xml", etag='"v1"').not_modified
    assert asked == [(0, 0), (0, 1), (1, 0)]


def test_new_connection_closed_without_an_answer_is_a_fetch_error_asked_once() -> None:
    with scripted_server(lambda conn, i: None) as (base, asked), WebClient() as web:
        with pytest.raises(FetchError, match="RemoteProtocolError"):
            get(web, base + "/a.xml")
    assert asked == [(0, 0)]


def test_closing_the_client_ends_a_fetch_still_waiting(
    server: App, caplog: pytest.LogCaptureFixture
) -> None:
    """What Ctrl-C leaves behind (a caller no longer waiting for its fetch): close() ends
    it at once, and no task is left for asyncio to destroy with the loop."""
    asked = threading.Event()

    def slow(_request: object) -> Reply:
        asked.set()
        return Reply(body=b"late", delay=5)  # answered, had the fetch been left to wait

    server.route("/never.xml", slow)
    outcome: list[BaseException | Response] = []
    web = WebClient()

    def wait() -> None:
        try:
            outcome.append(get(web, server.base + "/never.xml"))
        except BaseException as e:  # the test looks at what it was
            outcome.append(e)

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert asked.wait(10)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        web.close()
        waiter.join(10)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], CancelledError), outcome
    assert not [r for r in caplog.records if r.name == "asyncio"], caplog.text


def test_gzip_body_is_decoded(server: App, client: WebClient) -> None:
    body = "Kıymalı Böreği".encode() * 100
    server.route("/gz", Reply(body=gzip.compress(body), headers={"Content-Encoding": "gzip"}))
    assert get(client, server.base + "/gz").body == body


@pytest.mark.parametrize(("path", "reason"), [
    ("/status/500", "HTTP 500"),
    ("/status/404", "HTTP 404"),
    ("/loop", "more than 5 redirects"),
    ("/slow", "timed out"),
    ("/drip", "no complete answer within 1.5s"),
    ("/huge", "over the 5242880-byte limit"),
    ("/huge-declared", "over the 5242880-byte limit"),
    ("/to-file", "non-http(s) URL: file:///etc/passwd"),
])  # fmt: skip
def test_misbehaving_servers_are_fetch_errors(
    server: App, client: WebClient, path: str, reason: str
) -> None:
    with pytest.raises(FetchError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        get(client, server.base + path)


def test_refused_connection_is_a_fetch_error(client: WebClient) -> None:
    with pytest.raises(FetchError, match="cannot connect"):
        get(client, "http://127.0.0.1:9/feed.xml")


def test_429_carries_retry_after(server: App, client: WebClient) -> None:
    with pytest.raises(RetryLater) as info:
        get(client, server.base + "/status/429")
    assert info.value.retry_after == "7200"


def test_redirect_is_followed_and_final_url_kept(server: App, client: WebClient) -> None:
    r = get(client, server.base + "/moved")
    assert r.url == server.base + "/rss.xml" and r.status == 200


def test_etag_conditional_get_answers_304(server: App, client: WebClient) -> None:
    first = get(client, server.base + "/etag.xml")
    assert first.etag == '"v1"' and first.max_age == 3600 and not first.not_modified
    again = get(client, server.base + "/etag.xml", etag='"v1"')
    assert again.not_modified and again.body == b""


def test_last_modified_conditional_get(server: App, client: WebClient) -> None:
    first = get(client, server.base + "/lm.xml")
    again = get(client, server.base + "/lm.xml", last_modified=first.last_modified or "")
    assert again.not_modified


def test_per_host_limit_bounds_requests_in_flight(server: App, client: WebClient) -> None:
    server.route("/wait", Reply(body=b"ok", delay=0.2))

    async def six() -> list[Response]:
        import asyncio

        return await asyncio.gather(*(client.fetch(server.base + "/wait") for _ in range(6)))

    started = time.perf_counter()
    assert len(client.run(six())) == 6
    assert time.perf_counter() - started >= 0.55  # 6 requests, 2 at a time, 0.2 s each


def test_closed_client_refuses_work() -> None:
    c = WebClient()
    c.close()
    c.close()
    with pytest.raises(RuntimeError):
        c.run(c.fetch("http://127.0.0.1:9/"))


@pytest.mark.parametrize(("data", "content_type", "expected"), [
    ("Kıymalı Böreği".encode("cp1254"), "text/html", "cp1254"),
    ("Kıymalı Böreği".encode(), "text/html", "utf-8"),
    ("Kıymalı Böreği".encode("cp1254"), "text/html; charset=ISO-8859-9", "cp1254"),
    ("Kıymalı".encode("cp1254"), "text/html; charset=iso-8859-1", "cp1254"),
    ("Kıymalı".encode("cp1254"), "text/html; charset=utf-8", "cp1254"),
    ('<?xml version="1.0" encoding="windows-1254"?><a>Kıymalı</a>'.encode("cp1254"), "",
     "cp1254"),
    ('<meta charset="iso-8859-9"><p>Kıymalı</p>'.encode("iso-8859-9"), "", "cp1254"),
    ("Kıymalı".encode("utf-8-sig"), "text/html; charset=cp1254", "utf-8-sig"),
])  # fmt: skip
def test_detect_encoding(data: bytes, content_type: str, expected: str) -> None:
    assert detect_encoding(data, content_type) == expected
    assert "Kıymalı" in decode_body(data, content_type)


def test_cache_control_and_retry_after_parsing() -> None:
    assert max_age("public, max-age=600") == 600
    assert max_age("s-maxage=5, max-age=60") == 60
    assert max_age("no-cache, max-age=600") is None
    assert max_age(None) is None
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("120", now) == 120
    assert retry_after_seconds("Thu, 01 Jan 2026 12:05:00 GMT", now) == 300
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0
    assert retry_after_seconds("soon", now) is None
