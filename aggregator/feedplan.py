"""Which feeds are published and what each holds: the combined feed, one per source, one per
category, the named feeds from config, and (with output.archive) RFC 5005 archive pages.

Reads the store, writes nothing. Archive pages are fixed chunks of `max_items` articles,
oldest first; a page is rebuilt only when its articles or the site settings change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from aggregator.config import Config, FeedConfig
from aggregator.model import Article, Entry
from aggregator.normalize import slugify
from aggregator.publish import FeedSet
from aggregator.store import Store

ALL, SOURCES, CATEGORIES, NAMED = "Tüm haberler", "Kaynaklar", "Kategoriler", "Seçili akışlar"
MAX_CATEGORY_FEEDS = 1_000  # per-category feeds published (docs/reliability.md)


def matcher(words: tuple[str, ...]) -> Callable[[Article], bool] | None:
    """Title or summary contains a word starting with one of `words`, letters compared the
    Turkish-aware ASCII way (`Ukrayna` finds `Ukrayna'da`, `istanbul` finds `İSTANBUL`)."""
    if not words:
        return None
    keys = tuple("-" + slugify(w) for w in words)

    def keep(article: Article) -> bool:
        text = "-" + slugify(f"{article.title} {article.summary}") + "-"
        return any(key in text for key in keys)

    return keep


def plan(config: Config, store: Store, fingerprint: str) -> tuple[list[FeedSet], dict[str, str]]:
    """Feed sets to publish, and the archive page digests to remember once written.

    A source or category feed the store remembers as published (no article in it or leaving
    it changed since: `Store.published_feeds`) is `kept`: neither read nor rendered. So a
    publish costs what changed, whatever the store holds; the combined and named feeds
    (a fixed number) are always rendered."""
    n = config.max_items
    count, pages, digests = 0, [], {}  # type: tuple[int, list[tuple[int, list[Entry]]], dict[str, str]]
    if config.archive:
        count, pages, digests = _archive(config, store, fingerprint)
    published = store.published_feeds()
    feeds = [FeedSet(folder="", title=config.title, group=ALL, entries=store.latest(n),
                     archive_count=count, archives=pages)]  # fmt: skip

    def derived(
        folder: str, title: str, group: str, sources: Sequence[str] = (),
        categories: Sequence[str] = (),
    ) -> FeedSet:  # fmt: skip
        kept = _kept(config, folder, published.get(folder))
        entries = (
            () if kept is not None else store.select(n, sources=sources, categories=categories)
        )
        return FeedSet(folder=folder, title=title, group=group, entries=entries, kept=kept)

    for source in config.sources:
        feeds.append(derived(f"sources/{source.name}/", source.name, SOURCES,
                             sources=[source.name]))  # fmt: skip
    for slug, name in _largest_categories(store.categories()):
        feeds.append(derived(f"categories/{slug}/", name, CATEGORIES, categories=[slug]))
    for feed in config.feeds:
        feeds.append(_named(feed, store, n))
    return feeds, digests


def remembered(feeds: list[FeedSet], failed: tuple[str, ...] = ()) -> dict[str, str | None]:
    """publish-state values for the source and category feeds just written (all but those
    under `failed` folders): their listing on the index, as `Store.published_feeds` gives
    it back."""
    values: dict[str, str | None] = {}
    for feed in feeds:
        if (
            feed.kept is None
            and feed.group in (SOURCES, CATEGORIES)
            and not any(feed.folder.startswith(folder) for folder in failed)
        ):
            count, newest = feed.listing
            values["feed:" + feed.folder] = f"{count} {newest.isoformat() if newest else ''}"
    return values


def _kept(config: Config, folder: str, value: str | None) -> tuple[int, datetime | None] | None:
    """(count, newest) of a feed published as it stands whose files are all still there."""
    if value is None or not all(
        Path(config.output_dir, folder, name).is_file()
        for name in ("atom.xml", "rss.xml", "feed.json")
    ):
        return None
    count, _, newest = value.partition(" ")
    return int(count), datetime.fromisoformat(newest) if newest else None


def _largest_categories(categories: list[tuple[str, str, int]]) -> list[tuple[str, str]]:
    """(slug, name) of the MAX_CATEGORY_FEEDS categories with the most articles (ties: by
    slug), in slug order: inputs make categories, and each feed is three files."""
    largest = sorted(categories, key=lambda c: (-c[2], c[0]))[:MAX_CATEGORY_FEEDS]
    return sorted((slug, name) for slug, name, _ in largest)


def _named(feed: FeedConfig, store: Store, n: int) -> FeedSet:
    entries = store.select(n, sources=feed.sources, categories=feed.categories,
                           keep=matcher(feed.match))  # fmt: skip
    return FeedSet(folder=f"feeds/{feed.name}/", title=feed.title, group=NAMED, entries=entries)


def _archive(
    config: Config, store: Store, fingerprint: str
) -> tuple[int, list[tuple[int, list[Entry]]], dict[str, str]]:
    n = config.max_items
    rows = store.ids_oldest_first()
    count = len(rows) // n
    pages: list[tuple[int, list[Entry]]] = []
    digests: dict[str, str] = {}
    for k in range(1, count + 1):
        chunk = rows[(k - 1) * n : k * n]
        h = hashlib.blake2b(fingerprint.encode(), digest_size=16)
        for aid, content_hash in chunk:
            h.update(f"{aid}\x1f{content_hash}\x1e".encode())
        key = f"archive:{k}"
        digests[key] = h.hexdigest()
        if store.publish_state(key) != digests[key] or not _exists(config, k):
            pages.append((k, store.entries_by_ids([aid for aid, _ in chunk])))
    return count, pages, digests


def _exists(config: Config, page: int) -> bool:
    return Path(config.output_dir, "archive", f"{page}.xml").exists()
