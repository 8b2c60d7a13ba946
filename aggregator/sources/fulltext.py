"""`fulltext: true` feeds: each new or changed item's page, fetched once, gives its body.

An item is known by the content hash of the feed's own version of it (before the page
body replaces its content), kept in the source's state (`fulltext_seen`): an item the
feed still carries unchanged is neither fetched nor staged again (the store already has
its full-text revision). The feed's summary stays the summary. A page that cannot be
fetched, is disallowed by robots.txt, or yields no body leaves the feed's own content in
place: counted in the source's report, logged, retried when the feed next changes; never
fatal. robots.txt is read once per host per run, with the same client.

A page that gave a body is kept in the store with its validators (`fulltext_pages`): when
its item changes in the feed the page is asked for with If-None-Match / If-Modified-Since,
and a 304 publishes the kept body (`settle`, on the store's side, after the harvest).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit
from urllib.robotparser import RobotFileParser

from aggregator import USER_AGENT
from aggregator.config import SourceConfig
from aggregator.errors import FetchError, ParseError
from aggregator.normalize import plain_text
from aggregator.records import article_from_json, unpack_record
from aggregator.sources import Staged, staged
from aggregator.sources.html import page_body
from aggregator.sources.http import RetryLater, WebClient, decode_body

if TYPE_CHECKING:
    from aggregator.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")
Parse = Callable[[Callable[[], T]], Awaitable[T]]
MAX_ROBOTS_BYTES = 512 * 1024
"""A longer robots.txt is read up to here (RFC 9309 asks crawlers for at least 500 KiB)."""


class Robots:
    """robots.txt per host, fetched once per run (concurrent askers wait for the one
    fetch). Missing (4xx) allows everything; unreachable (5xx, 429, network) allows
    nothing this run, as RFC 9309 asks."""

    def __init__(self, web: WebClient) -> None:
        self._web = web
        self._hosts: dict[str, asyncio.Task[RobotFileParser | None]] = {}

    async def allowed(self, url: str) -> bool:
        parts = urlsplit(url)
        root = f"{parts.scheme}://{parts.netloc}"
        if root not in self._hosts:
            self._hosts[root] = asyncio.ensure_future(self._read(root))
        rules = await self._hosts[root]
        return rules is None or rules.can_fetch(USER_AGENT, url)

    async def _read(self, root: str) -> RobotFileParser | None:
        rules = RobotFileParser(root + "/robots.txt")
        try:
            r = await self._web.fetch(root + "/robots.txt")
        except FetchError as e:
            if str(e).startswith("HTTP 4") and not isinstance(e, RetryLater):
                return None
            rules.parse(["User-agent: *", "Disallow: /"])
            return rules
        text = decode_body(r.body[:MAX_ROBOTS_BYTES], r.content_type)
        rules.parse(text.splitlines())
        return rules


@dataclass(frozen=True, slots=True)
class Page:
    """An item page just answered, to keep: `item` is the feed content hash of the item it
    gives a body to; `body` None means 304 (the kept body stands, and the item's record in
    the harvest still has the feed's content until `settle` gives it that body)."""

    url: str
    item: str
    etag: str | None
    last_modified: str | None
    body: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    records: tuple[Staged, ...]
    unchanged: int
    failed: int
    seen: frozenset[str]
    pages: tuple[Page, ...]


async def with_pages(
    web: WebClient, parse: Parse[Any], robots: Robots, source: SourceConfig,
    records: Sequence[Staged], seen: frozenset[str] | None,
    kept: Mapping[str, tuple[str | None, str | None]] | None = None,
) -> Outcome:  # fmt: skip
    """The feed's records with page bodies for the new or changed ones; the unchanged
    ones left out (counted). `seen`: the items fetched on earlier runs; `kept`: the
    validators of the pages the store keeps a body of, by URL."""
    known = seen or frozenset()
    fresh = [r for r in records if r[0].content_hash not in known]
    results = await asyncio.gather(*(_one(web, parse, robots, source, r, kept or {})
                                     for r in fresh))  # fmt: skip
    failed = sum(not ok for _, ok, _ in results)
    items = frozenset(r[0].content_hash for r in records)
    fetched = frozenset(r[0].content_hash for r, (_, ok, _) in zip(fresh, results, strict=True)
                        if ok)  # fmt: skip
    return Outcome(
        records=tuple(record for record, _, _ in results),
        unchanged=len(records) - len(fresh),
        failed=failed,
        seen=(known & items) | fetched,  # only items the feed still carries: bounded by it
        pages=tuple(page for _, _, page in results if page is not None),
    )


async def _one(
    web: WebClient, parse: Parse[Any], robots: Robots, source: SourceConfig, record: Staged,
    kept: Mapping[str, tuple[str | None, str | None]],
) -> tuple[Staged, bool, Page | None]:  # fmt: skip
    article = article_from_json(unpack_record(record[1]))
    link = article.link
    if not link:
        return record, True, None  # nothing to fetch: the feed's content is all there is
    etag, last_modified = kept.get(link, (None, None))
    try:
        if not await robots.allowed(link):
            raise FetchError("disallowed by robots.txt")
        r = await web.fetch(link, etag=etag, last_modified=last_modified)
        if r.not_modified and link not in kept:
            raise FetchError("answered 304 Not Modified to a request that was not conditional")
        if r.not_modified:  # asked so only when a body is kept: `settle` gives it
            page = Page(link, record[0].content_hash, r.etag or etag,
                        r.last_modified or last_modified, None)  # fmt: skip
            return record, True, page
        full: tuple[Staged, str] | None = await parse(functools.partial(
            _with_body, record[1], r.body, url=r.url, content_type=r.content_type,
            selectors=source.selectors,
        ))  # fmt: skip
    except (FetchError, ParseError) as e:
        log.warning("%s: full text not fetched, the feed's content kept: %s (source %r)",
                    link, e, source.name)  # fmt: skip
        return record, False, None
    if full is None:
        log.warning("%s: no article body found on the page, the feed's content kept "
                    "(source %r)", link, source.name)  # fmt: skip
        return record, False, None
    staged_record, body = full
    if r.etag is None and r.last_modified is None:
        return staged_record, True, None  # nothing to ask conditionally with: not kept
    return staged_record, True, Page(link, record[0].content_hash, r.etag, r.last_modified, body)


def _with_body(
    packed: bytes, page: bytes, *, url: str, content_type: str,
    selectors: tuple[tuple[str, str], ...],
) -> tuple[Staged, str] | None:  # fmt: skip
    """In a worker: the item with the page's body as its content, and that body; or None
    (no body)."""
    body = page_body(page, url=url, content_type=content_type, selectors=selectors)
    if not plain_text(body).strip():
        return None
    return _bodied(packed, body), body


def _bodied(packed: bytes, body: str) -> Staged:
    article = article_from_json(unpack_record(packed))
    summary = article.summary or plain_text(article.content_html)
    (record,) = staged([replace(article, content_html=body, summary=summary)])
    return record


def settle(
    store: Store, source: str, records: Sequence[Staged], pages: Sequence[Page], now: datetime
) -> Sequence[Staged]:
    """On the store's side: `records` with the kept body for each page answered 304, and
    the pages just answered kept. A kept body gone (never expected) leaves the feed's text."""
    reused = {p.item: p.url for p in pages if p.body is None}
    bodies = store.fulltext_bodies(source, sorted(set(reused.values()))) if reused else {}
    out = []
    for record in records:
        url = reused.get(record[0].content_hash)
        if url is not None and url in bodies:
            record = _bodied(record[1], bodies[url])
        elif url is not None:
            log.warning("%s: its kept page body is gone, the feed's content kept (source %r)",
                        url, source)  # fmt: skip
        out.append(record)
    store.remember_fulltext_pages(
        source, ((p.url, p.item, p.etag, p.last_modified, p.body) for p in pages), now
    )
    return out
