"""Configured web sources -> one Harvest each: fetch (http), parse (feed/html), new state.

Every source runs as its own task on the client's event loop, so a slow or failing one
never holds up the others. Bodies are parsed in worker processes when there are many
(feedparser is CPU-bound; both cores stay busy while the loop keeps fetching).
A body whose digest equals the stored one is not parsed again. Failures become
`Harvest(error=...)`; due times and back-off come from `policy` (one curve for all).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TypeVar

from aggregator.config import Config, SourceConfig
from aggregator.dedupe import collector_paused
from aggregator.errors import FetchError, ParseError, SourceError
from aggregator.model import Rejection, SourceState
from aggregator.sources import Harvest, Staged, policy, staged
from aggregator.sources.feed import FeedResult, parse_feed
from aggregator.sources.fulltext import Robots, with_pages
from aggregator.sources.html import article_links, parse_page
from aggregator.sources.http import (
    FetchPolicy,
    Response,
    RetryLater,
    WebClient,
    retry_after_seconds,
)

T = TypeVar("T")
POOL_MIN_SOURCES = 16
"""Below this many sources to fetch, parse in the loop's thread (no process start-up)."""


def harvest(
    sources: Sequence[SourceConfig],
    states: Mapping[str, SourceState],
    *,
    config: Config,
    client: object | None,
    now: datetime,
    force: bool = False,
) -> list[Harvest]:
    """One Harvest per source, in order. `client`: a WebClient to reuse, or None for one
    that lives for this call only. Sources not due are skipped unless `force`."""
    if client is not None and not isinstance(client, WebClient):
        raise TypeError(f"client must be an aggregator WebClient or None, not {client!r}")
    web = client or WebClient()
    try:
        return web.run(_harvest_all(web, sources, states, config, now, force))
    finally:
        if client is None:
            web.close()


async def _harvest_all(
    web: WebClient, sources: Sequence[SourceConfig], states: Mapping[str, SourceState],
    config: Config, now: datetime, force: bool,
) -> list[Harvest]:  # fmt: skip
    current = [states.get(s.name) or SourceState(name=s.name) for s in sources]
    due = sum(force or policy.is_due(s, st, now) for s, st in zip(sources, current, strict=True))
    parse = _Parser(web, pooled=due >= POOL_MIN_SOURCES and (os.cpu_count() or 1) > 1)
    async with asyncio.TaskGroup() as group:  # a bug in one task cancels the rest
        tasks = [group.create_task(_one(web, parse, s, st, config, now, force))
                 for s, st in zip(sources, current, strict=True)]  # fmt: skip
    return [t.result() for t in tasks]


class _Parser:
    """Runs pure parse functions inline or in the client's worker processes."""

    def __init__(self, web: WebClient, *, pooled: bool) -> None:
        self._web = web
        self._pooled = pooled
        self.robots = Robots(web)  # one run's robots.txt, for `fulltext` feeds

    async def __call__(self, job: Callable[[], T]) -> T:
        if not self._pooled:
            return job()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._web.parse_pool(), job)


HINT_CAP = 6 * 3600.0  # ttl / max-age stretch an interval to at most this (or `every`)


def succeeded(
    state: SourceState, source: SourceConfig, r: Response, now: datetime, *,
    ttl: float | None = None, digest: str | None = None,
) -> SourceState:  # fmt: skip
    """State after an answer: validators kept, failures cleared; the feed's ttl and the
    server's max-age are lower bounds on the interval."""
    # the server's own lower bound, but a CDN's year-long max-age must not park a source
    hint = min(max(r.max_age or 0.0, ttl or 0.0), max(source.every, HINT_CAP))
    return replace(
        policy.succeeded(state, source, now, interval=hint),
        etag=r.etag if not r.not_modified else (r.etag or state.etag),
        last_modified=r.last_modified if not r.not_modified else (
            r.last_modified or state.last_modified),
        feed_digest=digest or state.feed_digest,
    )  # fmt: skip


def failed(state: SourceState, source: SourceConfig, error: SourceError,
           now: datetime) -> SourceState:  # fmt: skip
    retry = retry_after_seconds(error.retry_after, now) if isinstance(error, RetryLater) else None
    return policy.failed(state, source, str(error), now, retry_after=retry)


def _message(source: SourceConfig, url: str, reason: str) -> str:
    return f"{url}: {reason} (source {source.name!r})"


async def _one(
    web: WebClient, parse: _Parser, source: SourceConfig, state: SourceState,
    config: Config, now: datetime, force: bool,
) -> Harvest:  # fmt: skip
    url = source.url or ""
    if not force and not policy.is_due(source, state, now):
        return Harvest(name=source.name, due=state.next_due, backing_off=state.failures > 0)
    try:
        if source.type == "feed":
            return await _feed(web, parse, source, state, config, now)
        return await _html(web, parse, source, state, config, now)
    except (FetchError, ParseError) as e:
        return Harvest(
            name=source.name, error=_message(source, url, str(e)),
            state=failed(state, source, e, now),
        )  # fmt: skip


def _digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=16).hexdigest()


async def _fetch_changed(
    web: WebClient, source: SourceConfig, state: SourceState, now: datetime
) -> tuple[Response, str] | Harvest:
    """The source's body and its digest, or a "not modified" Harvest (304, or the same bytes
    as last time: nothing to parse)."""
    assert source.url is not None
    policy = FetchPolicy(site=source.url, allow_hosts=source.fetch.allow_hosts,
                         block_private=source.fetch.block_private_configured)  # fmt: skip
    r = await web.fetch(source.url, etag=state.etag, last_modified=state.last_modified,
                        policy=policy)  # fmt: skip
    digest = _digest(r.body)
    if r.not_modified or digest == state.feed_digest:
        return Harvest(name=source.name, not_modified=True,
                       state=succeeded(state, source, r, now))  # fmt: skip
    return r, digest


async def _feed(
    web: WebClient, parse: _Parser, source: SourceConfig, state: SourceState,
    config: Config, now: datetime,
) -> Harvest:  # fmt: skip
    fetched = await _fetch_changed(web, source, state, now)
    if isinstance(fetched, Harvest):
        return fetched
    r, digest = fetched
    records, rejected, ttl = await parse(functools.partial(
        _feed_records, r.body, url=r.url, content_type=r.content_type, source=source.name,
        tz=config.timezone, language=config.language, now=now,
    ))  # fmt: skip
    if source.fulltext:
        done = await with_pages(web, parse, parse.robots, source, records, state.fulltext_seen,
                                state.fulltext_pages)  # fmt: skip
        return Harvest(
            name=source.name, records=done.records, rejected=rejected,
            unchanged=done.unchanged, fulltext_failed=done.failed, fulltext_pages=done.pages,
            state=replace(succeeded(state, source, r, now, ttl=ttl, digest=digest),
                          fulltext_seen=done.seen),
        )  # fmt: skip
    return Harvest(
        name=source.name, records=records, rejected=rejected,
        state=succeeded(state, source, r, now, ttl=ttl, digest=digest),
    )  # fmt: skip


def _feed_records(
    data: bytes, **options: Any
) -> tuple[tuple[Staged, ...], tuple[Rejection, ...], float | None]:
    """A feed body's staged records. In a parse worker the cyclic collector waits meanwhile:
    a feed makes tens of thousands of short-lived objects and no cycles the collector must
    find before it ends, and each collection on the way walks the young ones still alive.
    Not on the daemon's fetch threads: their pauses overlapping one another and the store
    thread's would keep the collector off most of the time there."""
    in_worker = multiprocessing.parent_process() is not None
    with collector_paused() if in_worker else contextlib.nullcontext():
        try:
            result: FeedResult = parse_feed(data, **options)
        except ParseError as e:
            if advice := _html_not_feed(data, options["url"]):
                raise ParseError(advice) from e
            raise
        return staged(result.articles), result.rejected, result.ttl


_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
               "application/json")  # fmt: skip


def _html_not_feed(data: bytes, url: str) -> str | None:
    """What to do when a `type: feed` URL answers with an HTML page: the feed it advertises
    (`<link rel="alternate">`, feed autodiscovery), or `type: html`."""
    head = data[:1024].lower()  # the body decides: feeds are often served as text/html
    if b"<!doctype html" not in head and b"<html" not in head:
        return None
    from urllib.parse import urljoin

    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data[: 512 * 1024], "html.parser")
    for link in soup.find_all("link", href=True):
        rel: Any = link.get("rel") or []
        kind = str(link.get("type") or "").lower()
        if "alternate" in [str(r).lower() for r in rel] and kind in _FEED_TYPES:
            feed = urljoin(url, str(link["href"]))
            return (
                f"this is an HTML page, not a feed; it advertises the feed {feed}: set "
                "url: to it, or set type: html to read the page's article links"
            )
    return (
        "this is an HTML page, not a feed, and it advertises none (no <link "
        'rel="alternate">): set type: html to read its article links, or find the '
        "site's feed address"
    )


def _page_record(data: bytes, **options: Any) -> Staged:
    (record,) = staged([parse_page(data, **options)])
    return record


async def _html(
    web: WebClient, parse: _Parser, source: SourceConfig, state: SourceState,
    config: Config, now: datetime,
) -> Harvest:  # fmt: skip
    """The listing page, then its article pages. An unchanged listing (304 or same digest)
    means no page is fetched; a page that fails is a rejection, not a source failure."""
    fetched = await _fetch_changed(web, source, state, now)
    if isinstance(fetched, Harvest):
        return fetched
    r, digest = fetched
    allow = source.fetch.allow_hosts
    links = article_links(r.body, url=r.url, content_type=r.content_type,
                          selector=source.links, limit=source.limit, allow_hosts=allow)  # fmt: skip
    policy = FetchPolicy(site=r.url, allow_hosts=allow,
                         block_private=source.fetch.block_private_links)  # fmt: skip
    pages = await asyncio.gather(*(_page(web, parse, source, config, link, policy, now)
                                   for link in links))  # fmt: skip
    return Harvest(
        name=source.name,
        records=tuple(p for p in pages if not isinstance(p, Rejection)),
        rejected=tuple(p for p in pages if isinstance(p, Rejection)),
        state=succeeded(state, source, r, now, digest=digest),
    )


async def _page(
    web: WebClient, parse: _Parser, source: SourceConfig, config: Config, url: str,
    policy: FetchPolicy, now: datetime,
) -> Staged | Rejection:  # fmt: skip
    try:
        r = await web.fetch(url, policy=policy)
        return await parse(functools.partial(
            _page_record, r.body, url=r.url, content_type=r.content_type, source=source.name,
            tz=config.timezone, language=config.language, selectors=source.selectors, seen=now,
        ))  # fmt: skip
    except (FetchError, ParseError) as e:
        return Rejection(source=source.name, origin=url, reason=str(e))
