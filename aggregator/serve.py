"""HTTP for feed readers: the output directory at `/`, plus `GET /healthz` and `GET /metrics`.

Files are served from memory keyed by (inode, mtime, size): publishing replaces files
atomically, so a new inode means new bytes. The ETag is a hash of the bytes (strong, and
stable across restarts); the gzip variant gets its own tag, as RFC 9110 asks of strong tags.
Nothing outside the output directory is reachable: dot segments, dotfiles and symlinks
leading out all answer 404, and directories are never listed. A browser asking for a feed
(its Accept names text/html) gets an HTML view of it rendered here (pages.feed_view), with
its own validators; feed readers get the feed.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import tzinfo
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from aggregator.pages import feed_view

FEED_MAX_AGE = 300
PAGE_MAX_AGE = 300
GZIP_MIN_BYTES = 512
CACHE_BYTES = 32 * 1024 * 1024

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

Health = Callable[[], tuple[int, Mapping[str, Any]]]
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # Prometheus text exposition


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


_FEED_TYPES = ("application/atom+xml", "application/rss+xml")


def _for_browser(mime: str, accept: str) -> bool:
    """A browser asking for a feed: its Accept names text/html and no feed type at least as
    high. (A reader names its feed types first, or nothing but `*/*`.)"""
    if not mime.startswith(_FEED_TYPES):
        return False
    quality = _qualities(accept)
    page = quality.get("text/html", 0.0)
    return page > 0.0 and all(quality.get(t, 0.0) < page for t in _FEED_TYPES)


def _cache_control(mime: str) -> str:
    age = PAGE_MAX_AGE if mime.startswith("text/html") else FEED_MAX_AGE
    return f"public, max-age={age}"


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    gzipped: bytes | None
    etag: str
    gzip_etag: str
    last_modified: str
    mtime: int
    mime: str


class FileCache:
    """Bytes, hashes and gzip of served files, computed once per file version (LRU by size)."""

    def __init__(self, limit: int = CACHE_BYTES) -> None:
        self._limit = limit
        self._used = 0
        self._items: OrderedDict[str, tuple[tuple[int, int, int], _File]] = OrderedDict()

    def get(self, path: str, st: os.stat_result) -> _File | None:
        hit = self._items.get(path)
        if hit and hit[0] == _key(st):
            self._items.move_to_end(path)
            return hit[1]
        return None

    def put(self, path: str, st: os.stat_result, item: _File) -> None:
        key = _key(st)
        old = self._items.pop(path, None)
        if old:
            self._used -= _size(old[1])
        if _size(item) > self._limit // 4:
            return
        self._items[path] = (key, item)
        self._used += _size(item)
        while self._used > self._limit and self._items:
            _, (_, dropped) = self._items.popitem(last=False)
            self._used -= _size(dropped)


def _key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def load(path: str, st: os.stat_result) -> _File:
    """Read, hash and compress one file (off the event loop: it may be large)."""
    with open(path, "rb") as f:
        body = f.read()
    mime = content_type(path)
    digest = hashlib.blake2b(body, digest_size=12).hexdigest()
    gzipped = None
    if len(body) >= GZIP_MIN_BYTES and mime.startswith(_COMPRESSIBLE):
        gzipped = gzip.compress(body, compresslevel=6, mtime=0)
    return _File(
        body=body, gzipped=gzipped, etag=f'"{digest}"', gzip_etag=f'"{digest}-gz"',
        last_modified=formatdate(int(st.st_mtime), usegmt=True), mtime=int(st.st_mtime),
        mime=mime,
    )  # fmt: skip


def view(item: _File, tz: tzinfo | None) -> _File:
    """The browser view of a feed file, with validators of its own (derived from the feed's:
    the same feed bytes always give the same page)."""
    body = feed_view(item.body, tz)
    gzipped = gzip.compress(body, compresslevel=6, mtime=0)
    tag = item.etag.strip('"')
    return replace(item, body=body, gzipped=gzipped, etag=f'"{tag}-html"',
                   gzip_etag=f'"{tag}-html-gz"', mime="text/html; charset=utf-8")  # fmt: skip


def _size(item: _File) -> int:
    return len(item.body) + len(item.gzipped or b"")


def resolve(root: Path, url_path: str) -> str | None:
    """The real path of a regular file under `root` for a decoded URL path, or None."""
    parts = [p for p in url_path.split("/") if p]
    if url_path == "" or url_path.endswith("/"):
        parts.append("index.html")
    for part in parts:
        if part.startswith(".") or "\\" in part or "\x00" in part:
            return None  # dot segments, dotfiles (publish's temporary files), odd bytes
    real = os.path.realpath(os.path.join(root, *parts))
    if os.path.commonpath([real, str(root)]) != str(root):
        return None  # a symlink leading out
    return real


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


def _not_modified(request: Request, item: _File) -> bool:
    inm = request.headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*":
            return True
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        return item.etag in tags or item.gzip_etag in tags
    ims = request.headers.get("if-modified-since")
    if ims:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError, IndexError):
            return False
        return item.mtime <= int(since.timestamp())
    return False


def create_app(
    output_dir: Path,
    health: Health | None = None,
    *,
    metrics: Callable[[], bytes] | None = None,
    timezone: tzinfo | None = None,
) -> Starlette:
    """The ASGI app. `health` returns (status code, JSON body) for /healthz, `metrics` the
    Prometheus text for /metrics (404 without it); `timezone` is the browser view's."""
    root = Path(os.path.realpath(output_dir))
    cache = FileCache()
    not_found = PlainTextResponse("Not Found\n", status_code=404)

    async def healthz(request: Request) -> Response:
        status, body = health() if health else (200, {"status": "ok"})
        return JSONResponse(dict(body), status_code=status,
                            headers={"Cache-Control": "no-store"})  # fmt: skip

    async def scrape(request: Request) -> Response:
        if metrics is None:
            return not_found
        return Response(metrics(), media_type=METRICS_TYPE,
                        headers={"Cache-Control": "no-store"})  # fmt: skip

    async def serve_file(request: Request) -> Response:
        real = resolve(root, request.path_params["path"])
        if real is None:
            return not_found
        try:
            st = os.stat(real)
            if not os.path.isfile(real):
                return not_found
            found = cache.get(real, st)
            if found is None:
                found = await run_in_threadpool(load, real, st)
                cache.put(real, st, found)
        except OSError:  # gone, not a directory, unreadable, name too long...
            return not_found
        item = found
        feed_file = item.mime.startswith(_FEED_TYPES)
        if _for_browser(item.mime, request.headers.get("accept", "")):
            key = real + "\x00view"
            shown = cache.get(key, st)
            try:
                if shown is None:
                    shown = await run_in_threadpool(view, item, timezone)
                    cache.put(key, st, shown)
                item = shown
            except ElementTree.ParseError:  # not a feed of ours after all: show it as it is
                pass
        use_gzip = item.gzipped is not None and _accepts_gzip(
            request.headers.get("accept-encoding", "")
        )
        headers = {
            "ETag": item.gzip_etag if use_gzip else item.etag,
            "Last-Modified": item.last_modified,
            "Cache-Control": _cache_control(item.mime),
            "X-Content-Type-Options": "nosniff",
        }
        vary = ["Accept-Encoding"] if item.gzipped is not None or feed_file else []
        if feed_file:  # the feed for readers, its HTML view for browsers
            vary.append("Accept")
        if vary:
            headers["Vary"] = ", ".join(vary)
        if _not_modified(request, item):
            return Response(status_code=304, headers=headers)
        body = item.gzipped if use_gzip and item.gzipped is not None else item.body
        if use_gzip:
            headers["Content-Encoding"] = "gzip"
        headers["Content-Type"] = item.mime
        headers["Content-Length"] = str(len(body))
        return Response(b"" if request.method == "HEAD" else body, headers=headers)

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET", "HEAD"]),
            Route("/metrics", scrape, methods=["GET", "HEAD"]),
            Route("/{path:path}", serve_file, methods=["GET", "HEAD"]),
        ]
    )
