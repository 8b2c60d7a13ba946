"""Misbehaving HTTP peers that an ASGI app cannot play, on 127.0.0.1 (port 0) in a thread:
a server that accepts and never answers, an endless chunked body (fast: the size limit
must stop it) and a trickle (one byte now and then: the total timeout must stop it)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


def _handle(conn: socket.socket, stop: threading.Event) -> None:
    with conn:
        conn.settimeout(1.0)
        try:
            request = conn.recv(65536).decode("latin-1")
        except OSError:
            return
        path = request.split(" ", 2)[1] if request.count(" ") >= 2 else "/"
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip
        try:
            if path == "/never":
                stop.wait()  # accepted, read, and never a byte back
            elif path == "/endless":
                conn.sendall(head + b"5\r\n<rss>\r\n")
                chunk = b"%x\r\n%s\r\n" % (65536, b" " * 65536)
                while not stop.is_set():
                    conn.sendall(chunk)
            elif path == "/trickle":
                conn.sendall(head + b"5\r\n<rss>\r\n")
                while not stop.wait(0.2):
                    conn.sendall(b"1\r\n \r\n")
        except OSError:
            pass  # the client gave up: that is the point


@contextmanager
def hostile_server() -> Iterator[str]:
    """Yields the base URL; every connection gets its own thread."""
    stop = threading.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.settimeout(0.2)
    threads: list[threading.Thread] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            t = threading.Thread(target=_handle, args=(conn, stop), daemon=True)
            t.start()
            threads.append(t)

    acceptor = threading.Thread(target=serve, daemon=True)
    acceptor.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        acceptor.join(timeout=5)
        for t in threads:
            t.join(timeout=5)
        sock.close()
