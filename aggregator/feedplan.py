"""Which feeds are published and what each holds: the combined feed, one per source, one per
category, the named feeds from config, and (with output.archive) RFC 5005 archive pages.

Reads the store, writes nothing. Archive pages are fixed chunks of `max_items` articles,
oldest first; a page is rebuilt only when its articles or the site settings change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Plan:
    """What a publish writes. `feeds` reads each feed's entries only as it is reached (a
    publish never holds them all); `rebuilding` is the publish state to commit before any
    file is written; `state` the one to remember once `feeds` is used up and written,
    `listed` being told of every feed rendered (its newest time is the worker's to find);
    `rendered` how many of `feeds` are sure to be rendered (others may be kept)."""

    feeds: Iterator[FeedSet]
    rebuilding: dict[str, str | None]
    state: dict[str, str]
    listed: Callable[[FeedSet, datetime | None], None]
    rendered: int


def plan(config: Config, store: Store, fingerprint: str) -> Plan:
    """The feeds to publish: the combined feed, one per source and category, the named ones.

    A source or category feed whose articles no merge or expiry touched since it was
    published (`feed:<folder>` is still in the publish state) is `kept`: neither read nor
    rendered. A touched one is rendered only when its articles or their versions differ
    from those it was published with (`digest:<folder>`). So a publish costs what changed,
    whatever the store holds; the combined and named feeds (a fixed number) are always
    rendered. The digests of touched feeds go before anything is written (`rebuilding`),
    so a publish killed (or failing) half way through their files never leaves one
    remembered as matching what its files hold; those found unchanged get theirs back."""
    n = config.max_items
    count, pages, state = 0, [], {}  # type: tuple[int, list[tuple[int, Sequence[Entry]]], dict[str, str]]
    if config.archive:
        count, pages, state = _archive(config, store, fingerprint)
    untouched = store.publish_states("feed:")
    digests = store.publish_states("digest:")
    derived_feeds: list[tuple[str, str, str, list[str], list[str]]] = [
        (f"sources/{source.name}/", source.name, SOURCES, [source.name], [])
        for source in config.sources
    ] + [
        (f"categories/{slug}/", name, CATEGORIES, [], [slug])
        for slug, name in _largest_categories(store.categories())
    ]  # fmt: skip
    kept: dict[str, tuple[int, datetime | None]] = {}
    rendered: dict[str, str] = {}  # digest of the articles of each derived feed rendered
    comparable: set[str] = set()  # touched, on disk: kept if its digest still matches
    for folder, *_ in derived_feeds:
        on_disk = all(Path(config.output_dir, folder, name).is_file()
                      for name in ("atom.xml", "rss.xml", "feed.json"))  # fmt: skip
        if on_disk and len(digests.get(folder, "").split(" ")) == 3:
            if folder in untouched:
                kept[folder] = _listing(digests[folder].split(" "))
            else:
                comparable.add(folder)

    def derived(
        folder: str, title: str, group: str, sources: Sequence[str], categories: Sequence[str]
    ) -> FeedSet:  # fmt: skip
        if folder in kept:
            return FeedSet(folder=folder, title=title, group=group, entries=(),
                           kept=kept[folder])  # fmt: skip
        entries: Sequence[Entry] = ()
        if folder in comparable:  # its records are read only if its digest changed
            versions = store.select_versions(n, sources=sources, categories=categories)
        else:
            versions, entries = store.versions_and_entries(n, sources=sources,
                                                           categories=categories)  # fmt: skip
        h = hashlib.blake2b(title.encode(), digest_size=16)
        for row in versions:
            h.update("\x1f".join(row).encode() + b"\x1e")
        state["feed:" + folder] = ""
        if folder in comparable and digests[folder].split(" ")[0] == h.hexdigest():
            state["digest:" + folder] = digests[folder]
            return FeedSet(folder=folder, title=title, group=group, entries=(),
                           kept=_listing(digests[folder].split(" ")))  # fmt: skip
        rendered[folder] = h.hexdigest()  # its digest is remembered once it is rendered
        if folder in comparable:
            entries = store.entries_by_ids([aid for aid, _, _ in versions])
        return FeedSet(folder=folder, title=title, group=group, entries=entries)

    def listed(feed: FeedSet, newest: datetime | None) -> None:
        if feed.folder in rendered:
            when = newest.isoformat() if newest else ""
            state["digest:" + feed.folder] = f"{rendered[feed.folder]} {len(feed.entries)} {when}"

    def feeds() -> Iterator[FeedSet]:
        yield FeedSet(folder="", title=config.title, group=ALL, entries=store.latest(n),
                      archive_count=count, archives=pages)  # fmt: skip
        for spec in derived_feeds:
            yield derived(*spec)
        for feed in config.feeds:
            yield _named(feed, store, n)

    rebuilding: dict[str, str | None] = {
        "digest:" + folder: None for folder, *_ in derived_feeds
        if folder not in kept and folder in digests
    }  # fmt: skip
    sure = 1 + len(config.feeds) + len(derived_feeds) - len(kept) - len(comparable)
    return Plan(feeds=feeds(), rebuilding=rebuilding, state=state, listed=listed,
                rendered=sure)  # fmt: skip


def written_state(state: dict[str, str], failed: tuple[str, ...]) -> dict[str, str | None]:
    """The part of `plan`'s state to remember when the feeds under `failed` folders were
    not written: that of every other source and category feed."""
    return {
        key: value for key, value in state.items()
        if key.startswith(("feed:", "digest:"))
        and not key.partition(":")[2].startswith(failed)
    }  # fmt: skip


def _listing(remembered: list[str]) -> tuple[int, datetime | None]:
    """(count, newest) from a `digest:` value."""
    _, count, newest = remembered
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
) -> tuple[int, list[tuple[int, Sequence[Entry]]], dict[str, str]]:
    n = config.max_items
    rows = store.ids_oldest_first()
    count = len(rows) // n
    pages: list[tuple[int, Sequence[Entry]]] = []
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
