"""The one HTTP client: polite, bounded, conditional GETs; httpx errors become FetchError here.

`WebClient` runs a few `httpx.AsyncClient`s on an event loop in a thread of its own, so sync
callers (the pipeline, the daemon's worker thread) can share it across runs and keep their
connections. Several clients with about ten requests in flight each, not one client with
fifty: httpcore's pool bookkeeping grows with its open connections (encode/httpx#3215).
Each host keeps to one of them, so its connections are reused from request to request
(dealt out by request, every pool saw every host and closed one host's connection to open
another's: a new TCP connection for nearly every fetch).

Bodies are read as sent and inflated by `inflate` in bounded steps (httpx would inflate each
network read whole: a 64 KB zstd bomb took 4 GiB).

Also here, pure: body decoding (HTTP charset, BOM, XML declaration, <meta charset>, UTF-8,
then Windows-1254 for undeclared Turkish pages), Cache-Control and Retry-After parsing.
"""

from __future__ import annotations

import asyncio
import codecs
import email.utils
import io
import ipaddress
import itertools
import re
import select
import socket
import threading
import zlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpcore
import httpx
import zstandard

from aggregator import USER_AGENT
from aggregator.errors import FetchError
from aggregator.normalize import absolute_url, mostly_utf8

T = TypeVar("T")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/json;q=0.9,"
    " application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.8, */*;q=0.5"
)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._:-]+)["']""")
_META_CHARSET = re.compile(
    rb"""<meta[^>]+?charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)  # not s-maxage
ACCEPT_ENCODING = "gzip, deflate, zstd"
"""Every encoding `inflate` decodes in bounded steps; nothing else is asked for."""
INFLATE_STEP = 64 * 1024
"""Most bytes one decoder step may produce: the limit is checked after every step."""
ZSTD_MAX_WINDOW = 8 * 1024 * 1024  # RFC 9659: HTTP decoders need no larger window
REMEMBERED_HOSTS = 10_000
"""Hosts whose client is remembered; past this, the hosts are dealt out afresh."""
KEPT_PER_CLIENT = 20
"""Connections one client keeps open, most of them idle for its hosts' next requests: with
the 8 clients, at most 160 sockets, inside the fds the daemon keeps free of its readers'
connections (connections.RESERVED_FDS)."""


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """Limits of the client. `per_host` bounds requests in flight to one host name."""

    connect_timeout: float = 5.0
    read_timeout: float = 15.0
    total_timeout: float = 30.0
    max_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 5
    per_host: int = 6
    clients: int = 8
    per_client: int = 10
    parse_workers: int = 0
    """Worker processes for parsing; 0: one per CPU."""


@dataclass(frozen=True, kw_only=True)
class Response:
    """A complete answer: 200 with its body, or 304 (`not_modified`) without one."""

    url: str
    status: int
    body: bytes = b""
    content_type: str = ""
    etag: str | None = None
    last_modified: str | None = None
    max_age: float | None = None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


@dataclass(frozen=True, kw_only=True)
class FetchPolicy:
    """Where one fetch may go, redirects included: with a `site`, only to its host (and
    port) or one of `allow_hosts` (`host` or `host:port`); with `block_private`, never to an
    address that is not globally routable (loopback, private, link-local...), checked on
    the addresses the host name resolves to."""

    site: str | None = None
    allow_hosts: tuple[str, ...] = ()
    block_private: bool = False


class RetryLater(FetchError):
    """429/503: the server asked us to wait (`retry_after` is the raw Retry-After value)."""

    def __init__(self, message: str, retry_after: str | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# -- pure helpers ------------------------------------------------------------------------
def conditional_headers(etag: str | None, last_modified: str | None) -> dict[str, str]:
    headers: dict[str, str] = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    return headers


def max_age(cache_control: str | None) -> float | None:
    """Seconds from `Cache-Control: max-age=N` (None when absent or `no-cache`/`no-store`)."""
    if not cache_control or re.search(r"no-(?:cache|store)", cache_control, re.IGNORECASE):
        return None
    m = _MAX_AGE.search(cache_control)
    return float(m.group(1)) if m else None


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """`Retry-After: 120` or an HTTP date -> seconds from `now` (never negative)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _charset(content_type: str) -> str | None:
    m = re.search(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", content_type, re.IGNORECASE)
    return m.group(1) if m else None


def _codec(name: str | bytes | None) -> str | None:
    if not name:
        return None
    label = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    try:
        codec = codecs.lookup(label.strip().lower()).name
    except LookupError:
        return None
    # Turkish sites that say Latin-1 almost always mean Latin-5 / Windows-1254.
    return "cp1254" if codec in ("iso8859-1", "latin-1", "cp1252", "iso8859-9") else codec


def detect_encoding(data: bytes, content_type: str = "") -> str:
    """The codec to read `data` with: BOM, HTTP charset, XML declaration, <meta charset>,
    then UTF-8 when it decodes, else Windows-1254 (the Turkish default of undeclared pages)."""
    if data.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    head = data[:4096]
    m_xml = _XML_ENCODING.match(head)
    m_meta = _META_CHARSET.search(head)
    declared = [
        _charset(content_type),
        m_xml.group(1) if m_xml else None,
        m_meta.group(1) if m_meta else None,
    ]
    for name in declared:
        codec = _codec(name)
        if codec is None or codec.startswith("utf-16"):
            continue
        if codec == "utf-8" and mostly_utf8(data):
            return codec  # a stray bad byte must not turn every Turkish letter into mojibake
        try:
            data.decode(codec)
        except UnicodeDecodeError:
            continue
        return codec
    return "utf-8" if mostly_utf8(data) else "cp1254"


def decode_body(data: bytes, content_type: str = "") -> str:
    """Bytes of a page or feed -> text, never raising (undecodable bytes become U+FFFD)."""
    return data.decode(detect_encoding(data, content_type), errors="replace")


def inflate(raw: bytes, content_encoding: str, limit: int) -> bytes:
    """A body as sent -> its bytes, decoded in steps of at most INFLATE_STEP so that a bomb
    stops at `limit` decoded bytes, not after a whole network read is inflated. One
    encoding at most: stacked ones (`gzip, gzip`) multiply a bomb and no server needs them."""
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        if len(raw) > limit:
            raise FetchError(f"body over the {limit}-byte limit; download aborted")
        return raw
    if len(codings) > 1:
        raise FetchError(f"refused stacked Content-Encoding {content_encoding!r} (one at most)")
    steps = _STEPS.get(codings[0])
    if steps is None:
        raise FetchError(f"unsupported Content-Encoding {codings[0]!r} (not asked for)")
    out = bytearray()
    try:
        for piece in steps(raw):
            out += piece
            if len(out) > limit:
                raise FetchError(f"decompressed body over the {limit}-byte limit; decoding stopped")
    except (zlib.error, zstandard.ZstdError) as e:
        raise FetchError(f"undecodable {codings[0]} body: {e}") from None
    return bytes(out)


def _zlib_steps(raw: bytes, wbits: int) -> Iterator[bytes]:
    d = zlib.decompressobj(wbits)
    data = raw
    while not d.eof:
        piece = d.decompress(data, INFLATE_STEP)
        data = d.unconsumed_tail
        if not piece and not data:
            return  # input used up (a truncated body ends here)
        yield piece


def _deflate_steps(raw: bytes) -> Iterator[bytes]:
    # RFC 9110's deflate is the zlib format; some servers send raw deflate instead
    zlib_header = len(raw) >= 2 and raw[0] & 0x0F == 8 and (raw[0] << 8 | raw[1]) % 31 == 0
    return _zlib_steps(raw, zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS)


def _zstd_steps(raw: bytes) -> Iterator[bytes]:
    decoder = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    with decoder.stream_reader(io.BytesIO(raw), read_across_frames=True) as reader:
        while piece := reader.read(INFLATE_STEP):
            yield piece


_STEPS: dict[str, Callable[[bytes], Iterator[bytes]]] = {
    "gzip": lambda raw: _zlib_steps(raw, 16 + zlib.MAX_WBITS),
    "x-gzip": lambda raw: _zlib_steps(raw, 16 + zlib.MAX_WBITS),
    "deflate": _deflate_steps,
    "zstd": _zstd_steps,
}


def without_userinfo(url: str) -> str:
    """`url` without `user:pass@` (httpx would send it as an Authorization header)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _origin(host: str, port: int | None, scheme: str = "") -> tuple[str, int | None]:
    """(host, port) compared loosely: case, a trailing dot, `www.` and default ports aside."""
    host = host.lower().rstrip(".").removeprefix("www.")
    return host, None if port == {"http": 80, "https": 443}.get(scheme) else port


def on_site(url: str, site: str, allow_hosts: Sequence[str] = ()) -> bool:
    """Whether `url` is on the host (and port) of `site` or on one of `allow_hosts`."""
    try:
        target, home = urlsplit(url), urlsplit(site)
        origin = _origin(target.hostname or "", target.port, target.scheme)
        allowed = [_origin(home.hostname or "", home.port, home.scheme)]
        for entry in allow_hosts:
            parts = urlsplit(f"//{entry}")
            allowed.append(_origin(parts.hostname or "", parts.port))
    except ValueError:
        return False
    return origin in allowed


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written as a number stands for, in every form a resolver takes
    (`127.0.0.1`, `127.1`, `0x7f000001`, `2130706433`, `[::1]`); None for a name."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def is_public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def _refuse_private(url: str) -> None:
    """FetchError unless every address of `url`'s host is public (fetch.block_private)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, parts.port or (443 if parts.scheme == "https" else 80),
                type=socket.SOCK_STREAM,
            )  # fmt: skip
        except OSError as e:
            raise FetchError(f"cannot resolve {host}: {e}") from None
        addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        if not is_public(address):
            raise FetchError(f"refused {host}: {address} is not a public address"
                             " (fetch.block_private)")  # fmt: skip


# -- the client ----------------------------------------------------------------------------
CLOSE_WAIT = 5.0
"""Seconds `close` gives the fetches still running to end once they are cancelled."""
DRAINED = 64 * 1024
"""A redirect's body of at most this many bytes (declared, or chunked) is read to its end,
so its connection stays open for the next request (httpcore closes a connection whose
answer was left unread)."""
DRAIN_WAIT = 1.0
"""Seconds a redirect's body may take to arrive; past them its connection is closed."""
_STALE = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
"""What a request meets on a kept connection the server closed just as it went out."""


def _framed_304(r: httpx.Response) -> bool:
    """Whether a 304 truly ends at its headers: the parser reads no 304 body, so bytes a
    server sent after it anyway would be read as the next answer on the connection."""
    length = r.headers.get("content-length", "0").strip()
    return "transfer-encoding" not in r.headers and length.isdigit() and int(length) == 0


async def _drain(r: httpx.Response) -> None:
    """Read a small redirect body to its end, or give up (the connection is then closed):
    never a reason for the redirect to fail or wait."""
    length = r.headers.get("content-length", "").strip()
    chunked = "chunked" in r.headers.get("transfer-encoding", "").lower()
    if not (chunked or (length.isdigit() and int(length) <= DRAINED)):
        return
    read = 0
    try:
        async with asyncio.timeout(DRAIN_WAIT):
            async for chunk in r.aiter_raw():
                read += len(chunk)
                if read > DRAINED:
                    return
    except (httpx.HTTPError, TimeoutError):
        return


class _Reuse:
    """httpx trace hook: whether a request went out on a connection it did not open."""

    def __init__(self) -> None:
        self.reused = True

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event.startswith("connection.connect_tcp"):
            self.reused = False


async def _get(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> httpx.Response:
    """GET `url`, its body left to stream. A kept connection the server closed as the request
    went out fails before any answer: that request is sent once more (a GET may be), and the
    pool, which dropped the dead connection, gives it a live one or opens a new one."""
    trace = _Reuse()
    request = client.build_request("GET", url, headers=headers, extensions={"trace": trace})
    try:
        return await client.send(request, stream=True)
    except _STALE:
        if not trace.reused:
            raise
    return await client.send(request, stream=True)


def _readable(sock: socket.socket | None) -> bool:
    """httpcore's test of an idle kept connection: readable means the server closed it (or
    sent what it must not); a socket that is gone counts as closed."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


class _Stream(httpcore.AsyncNetworkStream):
    """httpcore's anyio stream with its socket looked up once. Before every request the
    pool asks each idle connection whether its socket is readable, and anyio answers each
    lookup by rebuilding a table of the socket's attributes with a getpeername() call: 40%
    of this process's CPU per fetch. Same socket, same answer."""

    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream
        self._socket: socket.socket | None = stream.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._stream.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return _readable(self._socket)
        return self._stream.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, its streams wrapped in `_Stream`."""

    def __init__(self) -> None:
        self._backend = httpcore.AnyIOBackend()

    async def connect_tcp(
        self, host: str, port: int, timeout: float | None = None,
        local_address: str | None = None, socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:  # fmt: skip
        return _Stream(await self._backend.connect_tcp(
            host, port, timeout, local_address, socket_options))  # fmt: skip

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._backend.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


def _on_backend(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """`client` with its connection pools (the direct one and those of the proxies the
    environment names: HTTP(S)_PROXY, ALL_PROXY) on `_Backend`. httpx takes no backend, so
    it is set on each pool; should a later httpx lack them, its own stays."""
    mounts: Any = getattr(client, "_mounts", {})
    for transport in (getattr(client, "_transport", None), *mounts.values()):
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.AsyncConnectionPool) and hasattr(pool, "_network_backend"):
            pool._network_backend = _Backend()
    return client


@dataclass
class _Slot:
    client: httpx.AsyncClient
    free: asyncio.Semaphore


@dataclass
class _Limits:
    per_host: int
    hosts: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def host(self, name: str) -> asyncio.Semaphore:
        sem = self.hosts.get(name)
        if sem is None:
            sem = self.hosts[name] = asyncio.Semaphore(self.per_host)
        return sem


class WebClient:
    """The shared client. Create once (the daemon) or per run (`regenerate`); `close()` it.

    Fetch from coroutines run with `run()`; the parse worker pool lives here too, so that
    its lifetime (and start-up cost) follows the client's."""

    def __init__(self, settings: HttpSettings | None = None) -> None:
        self.settings = settings or HttpSettings()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="aggregator-http", daemon=True
        )
        self._thread.start()
        self._slots: list[_Slot] = self.run(self._open())
        self._next = itertools.count()
        self._slot_of: dict[str, _Slot] = {}
        self._limits = _Limits(self.settings.per_host)
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    async def _open(self) -> list[_Slot]:
        s = self.settings
        timeout = httpx.Timeout(s.read_timeout, connect=s.connect_timeout, pool=s.total_timeout)
        # in flight: at most per_client (its semaphore); open: room for its hosts' idle ones
        kept = max(s.per_client, KEPT_PER_CLIENT)
        limits = httpx.Limits(max_connections=kept, max_keepalive_connections=kept)
        headers = {"User-Agent": USER_AGENT, "Accept": _ACCEPT, "Accept-Language": "tr, en;q=0.5",
                   "Accept-Encoding": ACCEPT_ENCODING}  # fmt: skip
        tls = httpx.create_ssl_context()  # one for all: each costs 20-30 ms to load
        return [
            _Slot(
                _on_backend(
                    httpx.AsyncClient(
                        headers=headers,
                        timeout=timeout,
                        limits=limits,
                        follow_redirects=False,
                        verify=tls,
                    )
                ),
                asyncio.Semaphore(s.per_client),
            )
            for _ in range(max(1, s.clients))
        ]

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the client's loop and wait for its result (from any other thread)."""
        if self._loop.is_closed():
            coro.close()
            raise RuntimeError("WebClient is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:  # the caller stops waiting (Ctrl-C): so does the coroutine
            future.cancel()
            raise

    def parse_pool(self) -> Executor:
        """Worker processes for CPU-bound parsing (forkserver: safe beside our threads)."""
        if self._pool is None:
            import multiprocessing
            import os

            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(["aggregator.sources.web"])
            workers = self.settings.parse_workers or os.cpu_count() or 1
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        return self._pool

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.run(self._aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()
            if self._pool is not None:
                self._pool.shutdown(cancel_futures=True)

    async def _aclose(self) -> None:
        # what a caller stopped waiting for (Ctrl-C) ends before its clients and the loop
        # close: a task left pending would be destroyed with the loop, and say so on stderr
        others = asyncio.all_tasks() - {asyncio.current_task()}
        for task in others:
            task.cancel()
        if others:
            await asyncio.wait(others, timeout=CLOSE_WAIT)
        for slot in self._slots:
            await slot.client.aclose()

    def __enter__(self) -> WebClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @asynccontextmanager
    async def _slot(self, url: str) -> AsyncIterator[httpx.AsyncClient]:
        host = urlsplit(url).hostname or ""
        slot = self._slot_of.get(host)
        if slot is None:  # hosts dealt out in turn, so the clients share them evenly
            if len(self._slot_of) >= REMEMBERED_HOSTS:
                self._slot_of.clear()
            slot = self._slot_of[host] = self._slots[next(self._next) % len(self._slots)]
        async with self._limits.host(host), slot.free:
            yield slot.client

    async def fetch(
        self, url: str, *, etag: str | None = None, last_modified: str | None = None,
        policy: FetchPolicy = FetchPolicy(),
    ) -> Response:  # fmt: skip
        """GET `url` (conditionally) within `policy`. Raises FetchError (RetryLater for
        429/503) naming why."""
        total = self.settings.total_timeout
        headers = conditional_headers(etag, last_modified)
        async with self._slot(url) as client:
            try:
                async with asyncio.timeout(total):
                    return await self._follow(client, url, headers, policy)
            except TimeoutError:
                raise FetchError(f"no complete answer within {total:g}s") from None
            except httpx.TimeoutException as e:
                raise FetchError(f"timed out ({type(e).__name__})") from e
            except httpx.ConnectError as e:
                raise FetchError(f"cannot connect: {e}") from e
            except httpx.HTTPError as e:
                raise FetchError(f"{type(e).__name__}: {e}") from e
            except httpx.InvalidURL as e:
                raise FetchError(f"invalid URL: {e}") from e

    async def _follow(
        self, client: httpx.AsyncClient, url: str, headers: dict[str, str], policy: FetchPolicy
    ) -> Response:
        current = url
        for _ in range(self.settings.max_redirects + 1):
            current = without_userinfo(current)
            if policy.site is not None and not on_site(current, policy.site, policy.allow_hosts):
                raise FetchError(f"refused {current}: not on the host of {policy.site}"
                                 " (fetch.allow_hosts lists other hosts)")  # fmt: skip
            if policy.block_private:
                await _refuse_private(current)
            r = await _get(client, current, headers)
            try:
                if r.status_code in _REDIRECTS and "location" in r.headers:
                    await _drain(r)
                    location = r.headers["location"]
                    target = absolute_url(current, location)
                    if target is None:
                        raise FetchError(f"refused a redirect to a non-http(s) URL: {location}")
                    current = target
                    continue
                return await self._answer(r, current)
            finally:
                await r.aclose()
        raise FetchError(f"more than {self.settings.max_redirects} redirects (loop?)")

    async def _answer(self, r: httpx.Response, url: str) -> Response:
        head = Response(
            url=url,
            status=r.status_code,
            content_type=r.headers.get("content-type", ""),
            etag=r.headers.get("etag"),
            last_modified=r.headers.get("last-modified"),
            max_age=max_age(r.headers.get("cache-control")),
        )
        if r.status_code == 304:
            if _framed_304(r):  # read its (empty) end: the connection is kept
                async for _ in r.aiter_raw():
                    pass
            return head
        if r.status_code in (429, 503):
            raise RetryLater(f"HTTP {r.status_code} {r.reason_phrase}".strip(),
                             r.headers.get("retry-after"))  # fmt: skip
        if not 200 <= r.status_code < 300:
            raise FetchError(f"HTTP {r.status_code} {r.reason_phrase}".strip())
        limit = self.settings.max_bytes
        declared = r.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FetchError(f"body of {declared} bytes is over the {limit}-byte limit")
        raw = bytearray()
        async for chunk in r.aiter_raw():  # as sent: httpx would inflate a read at once
            raw += chunk
            if len(raw) > limit:
                raise FetchError(f"body over the {limit}-byte limit; download aborted")
        body = inflate(bytes(raw), r.headers.get("content-encoding", ""), limit)
        return replace(head, body=body)
