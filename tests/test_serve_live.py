"""The server inside `aggregator run` (a real subprocess, real sockets): what a publish wrote
is served as soon as /healthz reports it, and a request head has a bound."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import feedparser
import httpx
import pytest

from aggregator.serve import MAX_HEAD_BYTES
from tests.test_daemon import Daemon, add_seed, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path).start()
    yield d
    if d.proc and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def test_a_publish_is_served_once_healthz_reports_it(daemon: Daemon) -> None:
    d = daemon
    url = d.url("/atom.xml")
    for n in range(1, 4):
        held = httpx.get(url)  # the server holds this version in memory now
        count = d.health()[1]["articles"]
        title = add_seed(d.seeds, n)
        wait_for("the publish", lambda count=count: d.health()[1]["articles"] > count)  # type: ignore[misc]
        # no wait: the publish told the server before /healthz showed it
        now = httpx.get(url, headers={"If-None-Match": held.headers["etag"]})
        assert now.status_code == 200
        assert title in {e.title for e in feedparser.parse(now.content).entries}
        assert httpx.get(url, headers={"If-None-Match": now.headers["etag"]}).status_code == 304


def test_a_request_head_over_the_bound_is_refused(daemon: Daemon) -> None:
    def status(headers: bytes) -> int:
        with socket.create_connection(("127.0.0.1", daemon.port), timeout=5) as s:
            s.sendall(b"GET /atom.xml HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
            return int(s.recv(64).split()[1])

    assert status(b"X-Pad: " + b"a" * (MAX_HEAD_BYTES // 2) + b"\r\n") == 200
    assert status(b"X-Pad: " + b"a" * MAX_HEAD_BYTES + b"\r\n") == 400
    assert status(b"".join(b"X-%d: y\r\n" % i for i in range(MAX_HEAD_BYTES // 4))) == 400
    assert httpx.get(daemon.url("/atom.xml")).status_code == 200
