"""HTTP for feed readers: the output directory at `/`, plus `GET /healthz` and `GET /metrics`.

A plain ASGI app (no framework on the hot path): each served file is held in memory with
its bytes, its gzip variant and every response header already built, so a request is two
dict lookups and two messages to the server; under the daemon's protocol (HttpProtocol) a
request for a held file is answered without the ASGI call at all, in one write of bytes
kept for the current second (at most WIRE_CACHE_BYTES of them, beside CACHE_BYTES of
files). The daemon tells the app when a publish wrote files (`FeedServer.published`), which
reloads them at once; anything else that changes the folder is seen within `revalidate`
seconds (the daemon's REVALIDATE; 0, the default for the app on its own, checks the file on
every request). A reload swaps the new version in whole: a request gets one version's bytes
and validators, never a mix.

The ETag is a hash of the bytes (strong, and stable across restarts, so a rewrite with the
same bytes still answers 304); the gzip variant gets its own tag, as RFC 9110 asks of
strong tags. Nothing outside the output directory is reachable: dot segments, dotfiles and
symlinks leading out all answer 404, and directories are never listed. A browser asking for
a feed (its Accept ranks text/html above every feed type) gets an HTML view of it rendered
here (pages.feed_view), with its own validators; feed readers get the feed.

With a PostgreSQL store the bytes come from the database instead of the folder (a
`FileSource`, aggregator/sharedout.py): every node then serves the same bytes, ETags and
Last-Modified. The source pushes each publish's changes in (`FeedServer.replace`), so held
files are never checked against the disk.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import json
import os
import re
import stat
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import tzinfo
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from xml.etree import ElementTree

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from aggregator.errors import StoreError
from aggregator.pages import feed_view

FEED_MAX_AGE = 300
PAGE_MAX_AGE = 300
GZIP_MIN_BYTES = 512
CACHE_BYTES = 32 * 1024 * 1024  # bytes of files (and their gzip and views) held in memory
FILE_MAX_BYTES = CACHE_BYTES // 4  # a larger file is read for each request, never held
HEADER_CACHE = 256  # distinct Accept / Accept-Encoding values whose answer is remembered
WIRE_CACHE_BYTES = 4 * 1024 * 1024  # whole answers, as sent, kept for the current Date
REVALIDATE = 1.0  # the daemon's: a file changed by anything but its publish is seen this soon
MAX_HEAD_BYTES = 16 * 1024  # request line and headers (uvicorn's bound for h11)

_BY_NAME = {
    "atom.xml": "application/atom+xml; charset=utf-8",
    "rss.xml": "application/rss+xml; charset=utf-8",
    "feed.json": "application/feed+json; charset=utf-8",
    "opml.xml": "text/x-opml; charset=utf-8",
    "opml-all.xml": "text/x-opml; charset=utf-8",
}
_BY_SUFFIX = {
    ".atom": "application/atom+xml; charset=utf-8",
    ".rss": "application/rss+xml; charset=utf-8",
    ".xml": "application/xml; charset=utf-8",
    ".json": "application/json; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".opml": "text/x-opml; charset=utf-8",
    ".xsl": "text/xsl; charset=utf-8",
    ".xslt": "text/xsl; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
_COMPRESSIBLE = ("text/", "application/")
_FEED_TYPES = ("application/atom+xml", "application/rss+xml")

Health = Callable[[], tuple[int, Mapping[str, Any]]]
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text exposition
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
_Answer = tuple[Message, Message]  # http.response.start and http.response.body


def content_type(name: str) -> str:
    """MIME type (with charset for text) from the file name (or path: RFC 5005 archive pages
    `archive/<n>.xml` are Atom); feeds get their own types."""
    if re.search(r"(?:^|/)archive/\d+\.xml$", name):
        return _BY_NAME["atom.xml"]
    lower = os.path.basename(name).lower()
    if lower in _BY_NAME:
        return _BY_NAME[lower]
    if lower.endswith((".atom.xml", "-atom.xml", "_atom.xml")):
        return _BY_NAME["atom.xml"]
    if lower.endswith((".rss.xml", "-rss.xml", "_rss.xml")):
        return _BY_NAME["rss.xml"]
    return _BY_SUFFIX.get(os.path.splitext(lower)[1], "application/octet-stream")


def _prefers_html(accept: str) -> bool:
    """A browser asking for a feed: its Accept names text/html and no feed type at least as
    high. (A reader names its feed types first, or nothing but `*/*`.)"""
    quality = _qualities(accept)
    page = quality.get("text/html", 0.0)
    return page > 0.0 and all(quality.get(t, 0.0) < page for t in _FEED_TYPES)


def _cache_control(mime: str) -> str:
    age = PAGE_MAX_AGE if mime.startswith("text/html") else FEED_MAX_AGE
    return f"public, max-age={age}"


def _qualities(header: str) -> dict[str, float]:
    """`Accept`-style header -> {lower-case name: q}; the first mention of a name counts."""
    found: dict[str, float] = {}
    for item in header.split(","):
        name, _, params = item.strip().partition(";")
        q = params.strip().lower()
        found.setdefault(name.strip().lower(), _q(q[2:]) if q.startswith("q=") else 1.0)
    return found


def _accepts_gzip(header: str) -> bool:
    """An explicit `gzip` entry decides; otherwise `*` does (RFC 9110 12.5.3)."""
    found = _qualities(header)
    quality = found.get("gzip", found.get("*", 0.0))
    return quality > 0.0


def _q(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return 1.0


@dataclass(frozen=True, slots=True, eq=False)
class Variant:
    """One representation of a file (plain or gzip) with its two answers built in advance,
    as ASGI messages and as header lines for HttpProtocol's fast path."""

    etag: bytes
    body: bytes
    full: Message  # the http.response.start of a 200
    body_message: Message  # its http.response.body
    not_modified: Message  # the http.response.start of a 304
    full_lines: bytes  # the 200's headers as sent: b"name: value\r\n" each
    not_modified_lines: bytes


@dataclass(frozen=True, slots=True)
class Representation:
    """A file's bytes (or the browser view of a feed) in the forms we send."""

    plain: Variant
    gzipped: Variant | None
    mtime: int  # for If-Modified-Since

    def matches(self, if_none_match: bytes) -> bool:
        """If-None-Match names this version (either encoding: the bytes are the same)."""
        if if_none_match.strip() == b"*":
            return True
        tags = {t.strip().removeprefix(b"W/") for t in if_none_match.split(b",")}
        return self.plain.etag in tags or (self.gzipped is not None and self.gzipped.etag in tags)

    def modified_since(self, header: bytes) -> bool:
        try:
            since = parsedate_to_datetime(header.decode("latin-1"))
        except (TypeError, ValueError, IndexError):
            return True
        return self.mtime > int(since.timestamp())


def represent(body: bytes, mime: str, tag: str, mtime: float, feed: bool) -> Representation:
    """`body` served as `mime` with ETag `tag`: plain and (when worth it) gzip, each with
    its 200 and 304 headers built."""
    compressible = len(body) >= GZIP_MIN_BYTES and mime.startswith(_COMPRESSIBLE)
    vary = ["Accept-Encoding"] if compressible or feed else []
    if feed:  # the feed for readers, its HTML view for browsers
        vary.append("Accept")
    common: Headers = [
        (b"last-modified", formatdate(int(mtime), usegmt=True).encode()),
        (b"cache-control", _cache_control(mime).encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    if vary:
        common.append((b"vary", ", ".join(vary).encode()))

    def variant(data: bytes, etag: str, encoding: bytes | None) -> Variant:
        validators = [(b"etag", etag.encode()), *common]
        typed = [*validators, (b"content-type", mime.encode())]
        if encoding:
            typed.append((b"content-encoding", encoding))
        typed.append((b"content-length", str(len(data)).encode()))
        return Variant(
            etag=etag.encode(), body=data,
            full={"type": "http.response.start", "status": 200, "headers": typed},
            body_message={"type": "http.response.body", "body": data},
            not_modified={"type": "http.response.start", "status": 304, "headers": validators},
            full_lines=_lines(typed), not_modified_lines=_lines(validators),
        )  # fmt: skip

    gzipped = None
    if compressible:
        gzipped = variant(gzip.compress(body, compresslevel=6, mtime=0), f'"{tag}-gz"', b"gzip")
    return Representation(plain=variant(body, f'"{tag}"', None), gzipped=gzipped,
                          mtime=int(mtime))  # fmt: skip


class Entry:
    """One cached file: its representation, the stat it was read under, when it was last
    checked, and (for a feed) its browser view once a browser asked for it."""

    __slots__ = ("real", "key", "checked", "file", "feed", "view", "size")

    def __init__(self, real: str, key: tuple[int, int, int], checked: float, body: bytes,
                 mime: str, mtime: float, tag: str | None = None) -> None:  # fmt: skip
        self.real = real
        self.key = key
        self.checked = checked
        self.feed = mime.startswith(_FEED_TYPES)
        tag = tag or etag_of(body)
        self.file = represent(body, mime, tag, mtime, self.feed)
        self.view: Representation | None = None  # computed on a browser's first visit
        self.size = _size(self.file)

    def browser_view(self, tz: tzinfo | None) -> Representation:
        """The HTML page of this feed, validators derived from the feed's (the same bytes
        always give the same page); the feed itself if it does not parse as one."""
        try:
            page = feed_view(self.file.plain.body, tz)
        except ElementTree.ParseError:  # not a feed of ours after all: show it as it is
            return self.file
        tag = self.file.plain.etag.decode().strip('"') + "-html"
        return represent(page, "text/html; charset=utf-8", tag, self.file.mtime, True)


def _lines(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join(b"%s: %s\r\n" % pair for pair in headers)


def etag_of(body: bytes) -> str:
    """The ETag (without quotes) of a file's bytes: the same on every node and restart."""
    return hashlib.blake2b(body, digest_size=12).hexdigest()


def _size(r: Representation) -> int:
    return len(r.plain.body) + (len(r.gzipped.body) if r.gzipped else 0)


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def load(real: str, checked: float) -> Entry | None:
    """Read, hash and compress one file (off the event loop: it may be large); None when it
    is not a regular file (gone, a directory, unreadable...)."""
    try:
        if not stat.S_ISREG(os.stat(real).st_mode):
            return None  # before opening: a FIFO would block the read
        with open(real, "rb") as f:
            st = os.fstat(f.fileno())  # the version these bytes are
            body = f.read()
    except OSError:
        return None
    return Entry(real, _key(st), checked, body, content_type(real), st.st_mtime)


def _answer(status: int, body: bytes, mime: str, *extra: tuple[bytes, bytes]) -> _Answer:
    headers = [(b"content-type", mime.encode()), (b"content-length", str(len(body)).encode()),
               *extra]  # fmt: skip
    return ({"type": "http.response.start", "status": status, "headers": headers},
            {"type": "http.response.body", "body": body})  # fmt: skip


_EMPTY: Message = {"type": "http.response.body", "body": b""}
_NO_STORE = (b"cache-control", b"no-store")
_NOT_FOUND = _answer(404, b"Not Found\n", "text/plain; charset=utf-8")
_UNAVAILABLE = _answer(503, b"Service Unavailable\n", "text/plain; charset=utf-8",
                       (b"retry-after", b"5"), _NO_STORE)  # fmt: skip
_NOT_ALLOWED = _answer(405, b"Method Not Allowed\n", "text/plain; charset=utf-8",
                       (b"allow", b"GET, HEAD"))  # fmt: skip


def canonical(url_path: str) -> str | None:
    """`/a//b/` -> `/a/b/index.html`: the one cache key of a decoded URL path, or None for
    dot segments, dotfiles (publish's temporary files) and odd bytes."""
    parts = [p for p in url_path.split("/") if p]
    if not parts or url_path.endswith("/"):
        parts.append("index.html")
    for part in parts:
        if part.startswith(".") or "\\" in part or "\x00" in part:
            return None
    return "/" + "/".join(parts)


def resolve(root: Path, url_path: str) -> str | None:
    """The real path of a file under `root` for a decoded URL path, or None."""
    key = canonical(url_path)
    if key is None:
        return None
    real = os.path.realpath(os.path.join(root, key[1:]))
    if os.path.commonpath([real, str(root)]) != str(root):
        return None  # a symlink leading out
    return real


class FileSource(Protocol):
    """Where files come from instead of the output folder (sharedout.SharedFiles)."""

    async def load(self, key: str) -> Entry | None:
        """The file at canonical path `key`, or None; StoreError when it cannot tell. The
        server holds what it returns before any other task runs."""

    async def refresh(self) -> None:
        """Catch up with the newest publish now."""

    def health(self) -> Mapping[str, Any]:
        """What /healthz says of it (under `published_files`)."""


class FeedServer:
    """The ASGI app: files from memory (see the module docstring), /healthz, /metrics."""

    def __init__(self, output_dir: Path, health: Health | None, metrics: Callable[[], bytes]
                 | None, timezone: tzinfo | None, revalidate: float) -> None:  # fmt: skip
        self.root = Path(os.path.realpath(output_dir))
        self.revalidate = revalidate
        self._health = health
        self._metrics = metrics
        self._timezone = timezone
        self._files: OrderedDict[str, Entry] = OrderedDict()  # canonical URL path -> file, LRU
        self._used = 0
        self._gzip_ok: dict[bytes, bool] = {}
        self._page_ok: dict[bytes, bool] = {}
        self._source: FileSource | None = None
        self._wire: dict[tuple[Variant, bool, bool], bytes] = {}
        self._wire_used = 0
        self._wire_defaults: list[tuple[bytes, bytes]] = []
        self._preamble = b""

    def use(self, source: FileSource) -> None:
        """Serve files from `source` instead of the folder; it keeps held files current."""
        self._source = source
        self.revalidate = float("inf")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await _not_http(scope, receive, send)
        path: str = scope["path"]
        method: str = scope["method"]
        if method != "GET" and method != "HEAD":
            return await _send(send, _NOT_ALLOWED, method)
        entry = self._current(path)
        if entry is None:
            if path == "/healthz":
                return await _send(send, self._healthz(), method)
            if path == "/metrics":
                return await _send(send, self._scrape(), method)
            try:
                entry = await self._find(path)
            except StoreError:  # not held, and the database cannot be asked now
                return await _send(send, _UNAVAILABLE, method)
            if entry is None:
                return await _send(send, _NOT_FOUND, method)
        chosen = self._choose(entry, scope["headers"])
        if chosen is None:  # a browser's first visit: render its view
            await self._view(path, entry)
            chosen = self._choose(entry, scope["headers"])
            assert chosen is not None
        variant, fresh = chosen
        if fresh:
            await send(variant.not_modified)
            await send(_EMPTY)
            return
        await send(variant.full)
        await send(variant.body_message if method == "GET" else _EMPTY)

    def answer_held(
        self, path: str, headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[Variant, bool] | None:
        """What __call__ answers a GET or HEAD of `path` with (the variant, and True for a
        304), when it is known without waiting: the file is held and due for no check, and
        no browser view must be rendered first. None: only __call__ can tell."""
        entry = self._current(path)
        return None if entry is None else self._choose(entry, headers)

    def wire(self, variant: Variant, fresh: bool, with_body: bool,
             defaults: list[tuple[bytes, bytes]], keep_alive: bool) -> bytes:  # fmt: skip
        """The whole answer on the wire (status line, the server's `defaults` headers such as
        Date, the variant's, its body): one write. Kept while `defaults` stay the same."""
        if defaults != self._wire_defaults:
            self._wire.clear()
            self._wire_used = 0
            self._wire_defaults = list(defaults)
            self._preamble = _lines(defaults)
        key = (variant, fresh, with_body)
        found = self._wire.get(key) if keep_alive else None
        if found is not None:
            return found
        found = b"".join((
            STATUS_LINE[304] if fresh else STATUS_LINE[200], self._preamble,
            variant.not_modified_lines if fresh else variant.full_lines,
            b"" if keep_alive else b"connection: close\r\n", b"\r\n",
            variant.body if with_body and not fresh else b"",
        ))  # fmt: skip
        if keep_alive and len(found) <= WIRE_CACHE_BYTES:
            if self._wire_used + len(found) > WIRE_CACHE_BYTES:
                self._wire.clear()
                self._wire_used = 0
            self._wire[key] = found
            self._wire_used += len(found)
        return found

    def _current(self, path: str) -> Entry | None:
        """The file held under `path` if no check against the disk is due."""
        entry = self._files.get(path)
        if entry is None or time.monotonic() - entry.checked > self.revalidate:
            return None
        self._files.move_to_end(path)
        return entry

    def _choose(
        self, entry: Entry, headers: Iterable[tuple[bytes, bytes]]
    ) -> tuple[Variant, bool] | None:
        """The variant the request's headers ask for and whether their validators match it
        (a 304); None when it asks for a browser view not rendered yet."""
        inm = ims = None
        accept = encoding = b""
        for name, value in headers:
            if name == b"if-none-match":
                inm = value if inm is None else inm + b"," + value
            elif name == b"accept-encoding":
                encoding = encoding + b"," + value if encoding else value
            elif name == b"accept":
                accept = accept + b"," + value if accept else value
            elif name == b"if-modified-since":
                ims = value
        rep = entry.file
        if accept and entry.feed and self._wants_page(accept):
            if entry.view is None:
                return None
            rep = entry.view
        variant = rep.plain
        if rep.gzipped is not None and encoding and self._takes_gzip(encoding):
            variant = rep.gzipped
        if inm is not None:
            fresh = inm == variant.etag or rep.matches(inm)
        else:
            fresh = ims is not None and not rep.modified_since(ims)
        return variant, fresh

    async def published(self, written: Iterable[str]) -> None:
        """A publish wrote these files (paths relative to the output folder): reload the
        ones held, off the event loop, and swap each in whole."""
        if self._source is not None:
            return await self._source.refresh()
        paths = list(written)  # resolved off the loop too: a first publish writes thousands
        reals = await asyncio.to_thread(lambda: {r for w in paths if (r := resolve(self.root, w))})
        stale = [(key, e.real) for key, e in self._files.items() if e.real in reals]
        if not stale:
            return
        started = time.monotonic()
        fresh = await asyncio.to_thread(lambda: [(key, load(real, started))
                                                 for key, real in stale])  # fmt: skip
        for key, entry in fresh:
            self._put(key, entry)

    def held(self) -> list[str]:
        """Canonical paths of the files held in memory."""
        return list(self._files)

    def replace(self, changes: Mapping[str, Entry | None]) -> None:
        """Swap these files in (None: drop) at once: no request sees some and not others."""
        for key, entry in changes.items():
            self._put(key, entry)

    async def _find(self, path: str) -> Entry | None:
        """The slow path: a file not held, or due for a check against the disk."""
        key = canonical(path)
        if key is None:
            return None
        if self._source is not None:
            entry = self._files.get(key)  # asked for by another name, e.g. `/`
            if entry is None:
                entry = await self._source.load(key)
                self._put(key, entry)
            return entry
        now = time.monotonic()
        entry = self._files.get(key)
        if entry is not None:
            if now - entry.checked <= self.revalidate:  # asked for by another name, e.g. `/`
                return entry
            try:
                st = os.stat(os.path.join(self.root, key[1:]))
            except OSError:
                st = None
            if st is not None and _key(st) == entry.key:
                entry.checked = now
                return entry
        real = resolve(self.root, key)
        loaded = None if real is None else await asyncio.to_thread(load, real, now)
        self._put(key, loaded)
        return loaded

    def _put(self, key: str, entry: Entry | None) -> None:
        """Hold `entry` under `key` (None: drop it), unless a newer read got there first."""
        old = self._files.get(key)
        if old is not None:
            if entry is not None and old.checked > entry.checked:
                return
            self._used -= old.size
            del self._files[key]
        if entry is None or entry.size > FILE_MAX_BYTES:
            return
        self._files[key] = entry
        self._used += entry.size
        self._evict()

    def _evict(self) -> None:
        while self._used > CACHE_BYTES and self._files:
            _, dropped = self._files.popitem(last=False)
            self._used -= dropped.size

    async def _view(self, path: str, entry: Entry) -> Representation:
        view = await asyncio.to_thread(entry.browser_view, self._timezone)
        if entry.view is None:
            entry.view = view
            if view is not entry.file:
                entry.size += _size(view)
                if self._files.get(canonical(path) or "") is entry:
                    self._used += _size(view)
                    self._evict()
        return view

    def _wants_page(self, accept: bytes) -> bool:
        found = self._page_ok.get(accept)
        if found is None:
            found = _prefers_html(accept.decode("latin-1"))
            _remember(self._page_ok, accept, found)
        return found

    def _takes_gzip(self, encoding: bytes) -> bool:
        found = self._gzip_ok.get(encoding)
        if found is None:
            found = _accepts_gzip(encoding.decode("latin-1"))
            _remember(self._gzip_ok, encoding, found)
        return found

    def _healthz(self) -> _Answer:
        status, body = self._health() if self._health else (200, {"status": "ok"})
        if self._source is not None:
            body = {**body, "published_files": self._source.health()}
        data = json.dumps(dict(body), ensure_ascii=False, separators=(",", ":")).encode()
        return _answer(status, data, "application/json", _NO_STORE)

    def _scrape(self) -> _Answer:
        if self._metrics is None:
            return _NOT_FOUND
        return _answer(200, self._metrics(), METRICS_TYPE, _NO_STORE)


def _remember(memo: dict[bytes, bool], header: bytes, answer: bool) -> None:
    if len(memo) >= HEADER_CACHE:
        memo.clear()  # someone sends a new value each time: stay bounded, start over
    memo[header] = answer


async def _send(send: Send, answer: _Answer, method: str) -> None:
    await send(answer[0])
    await send(answer[1] if method != "HEAD" else _EMPTY)


async def _not_http(scope: Scope, receive: Receive, send: Send) -> None:
    """Lifespan: nothing to set up; websockets: refused."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})


def create_app(
    output_dir: Path,
    health: Health | None = None,
    *,
    metrics: Callable[[], bytes] | None = None,
    timezone: tzinfo | None = None,
    revalidate: float = 0.0,
) -> FeedServer:
    """The ASGI app. `health` returns (status code, JSON body) for /healthz, `metrics` the
    Prometheus text for /metrics (404 without it); `timezone` is the browser view's. A held
    file is checked against the disk when `revalidate` seconds passed since its last check
    (0: on every request); `FeedServer.published` reloads files a publish wrote at once."""
    return FeedServer(output_dir, health, metrics, timezone, revalidate)


class HttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol (about 3x its h11 one on this app) with two changes:

    - the bound on a request's head that its h11 protocol has and this one lacks: past
      MAX_HEAD_BYTES the request is answered 400 and the connection closed;
    - a fast path: a GET or HEAD that FeedServer can answer from memory at once
      (`answer_held`) is answered from the parser's callback, in one write of bytes built
      once a second (`wire`), with no ASGI task, scope or messages. Anything else (a file
      not held or due for a check, a browser view not rendered yet, /healthz, a request
      pipelined behind a slower one, a reader not reading its answers, access logging on)
      goes to the app as before. Both paths choose the answer with the same code."""

    _head = 0
    _ready: bytes | None = None  # the fast path's answer to the request being read
    _close = False

    def on_message_begin(self) -> None:
        self._head = 0
        self._ready = None
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value))
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._ready = self._held_answer()
        if self._ready is None:
            # a fast answer just before this request armed the keep-alive timer, which the
            # app's answer would not cancel: it would close the connection under it
            self._unset_keepalive_if_required()
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._ready is None:  # a GET's body means nothing to us: dropped
            super().on_body(body)

    def on_message_complete(self) -> None:
        wire = self._ready
        if wire is None:
            return super().on_message_complete()
        self._ready = None
        self.transport.write(wire)
        if self._close:
            self.transport.close()
        self.on_response_complete()

    def _held_answer(self) -> bytes | None:
        app = self.app
        if (not isinstance(app, FeedServer) or self.access_log or self.expect_100_continue
                or self.limit_concurrency is not None or self.flow.write_paused
                or (self.cycle is not None and not self.cycle.response_complete)):  # fmt: skip
            return None
        method = self.parser.get_method()
        if (method != b"GET" and method != b"HEAD") or self.parser.should_upgrade():
            return None
        try:
            path = httptools.parse_url(self.url).path.decode("ascii")
        except (httptools.HttpParserError, UnicodeDecodeError):
            return None  # uvicorn's own path says what is wrong with it
        if "%" in path:
            path = urllib.parse.unquote(path)
        chosen = app.answer_held(self.root_path + path, self.headers)
        if chosen is None:
            return None
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        self._close = not keep_alive
        return app.wire(chosen[0], chosen[1], method == b"GET", self.server_state.default_headers,
                        keep_alive)  # fmt: skip

    def _grow(self, size: int) -> None:
        self._head += size
        if self._head > MAX_HEAD_BYTES:
            raise httptools.HttpParserError(f"request head over {MAX_HEAD_BYTES} bytes")
