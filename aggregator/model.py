"""The one record type that flows through the pipeline, and the report a run returns.

The small records that cross between processes by the thousand (Entry here, Candidate,
FileOutcome) are NamedTuples: a frozen slots dataclass pickles through
dataclasses.fields() per object, several times the cost."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import NamedTuple

# Bounds on what one input controls (docs/reliability.md, "Round 2: content bounds"): an
# article keeps at most this much, so no input can make every feed or the store grow with it.
MAX_TITLE = 500  # characters
MAX_SUMMARY = 2_000
MAX_NAMES = 20  # categories, and authors, per article (the first ones)
MAX_NAME = 100  # characters of one category or author name


@dataclass(frozen=True, kw_only=True, slots=True)
class Article:
    """One revision of one article, as read from one input.

    `content_html` is already sanitized; `summary` and `title` are plain text.
    `link` is the site's own URL for it (tracking parameters dropped) or None (seed files
    have none); identity uses its canonical form (normalize.canonical_url).
    `date_only` marks records whose only date is a day (no clock time).
    `published_source` is "source" (the date came from the input) or "seen" (no believable
    date: `published` is the time the aggregator first saw the item; such records match only
    by URL or guid). Not part of `content_hash`.
    """

    title: str
    published: datetime
    updated: datetime
    source: str
    origin: str
    summary: str = ""
    content_html: str = ""
    authors: tuple[str, ...] = ()
    agency: str = ""
    categories: tuple[str, ...] = ()
    language: str = ""
    link: str | None = None
    guid: str | None = None
    image: str | None = None
    date_only: bool = False
    published_source: str = "source"
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if self.published.tzinfo is None or self.updated.tzinfo is None:
            raise ValueError("Article datetimes must be timezone-aware")
        _clamp(self)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        # a frozen slots dataclass pickles through dataclasses.fields() per object, slow
        # when thousands of articles go to the feed-rendering processes
        return (_rebuild_article, tuple(getattr(self, name) for name in _ARTICLE_FIELDS))

    def content_hash(self) -> str:
        """Hash of what a reader sees: a re-fetch with equal meaning hashes equal
        (source, origin and parse warnings don't count)."""
        meaning = "\x1e".join(
            (
                self.title,
                self.summary,
                self.content_html,
                "\x1f".join(self.authors),
                self.agency,
                "\x1f".join(self.categories),
                self.link or "",
                self.image or "",
                updated := self.updated.isoformat(),
                updated if self.published is self.updated else self.published.isoformat(),
            )
        )
        return hashlib.blake2b(meaning.encode("utf-8"), digest_size=16).hexdigest()


_ARTICLE_FIELDS = tuple(f.name for f in fields(Article))


def _clamp(a: Article) -> None:
    """Cut what is over a bound (every source builds Articles: one place holds for all)."""
    if (
        len(a.title) <= MAX_TITLE
        and len(a.summary) <= MAX_SUMMARY
        and len(a.categories) <= MAX_NAMES
        and len(a.authors) <= MAX_NAMES
        and max(map(len, a.categories), default=0) <= MAX_NAME
        and max(map(len, a.authors), default=0) <= MAX_NAME
    ):
        return  # within every bound (nearly always): _cut would cut nothing
    _cut(a)


def _cut(a: Article) -> None:
    cut: list[str] = []
    for name, limit in (("title", MAX_TITLE), ("summary", MAX_SUMMARY)):
        text: str = getattr(a, name)
        if len(text) > limit:
            object.__setattr__(a, name, text[: limit - 1].rstrip() + "…")
            cut.append(f"{name} cut to {limit} characters")
    for name in ("categories", "authors"):
        values: tuple[str, ...] = getattr(a, name)
        if len(values) > MAX_NAMES or any(len(v) > MAX_NAME for v in values):
            kept = tuple(dict.fromkeys(v[:MAX_NAME].rstrip() for v in values[:MAX_NAMES]))
            object.__setattr__(a, name, kept)
            cut.append(f"{len(values)} {name}: the first {MAX_NAMES} kept, {MAX_NAME} characters"
                       " each")  # fmt: skip
    if cut:
        object.__setattr__(a, "warnings", (*a.warnings, *cut))


def _rebuild_article(*values: object) -> Article:
    return Article(**dict(zip(_ARTICLE_FIELDS, values, strict=True)))  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class Rejection:
    """An input the run could not use, with the reason a user can act on."""

    source: str
    origin: str
    reason: str

    def __str__(self) -> str:
        return f"{self.origin}: {self.reason} (source {self.source!r})"


@dataclass(frozen=True, kw_only=True, slots=True)
class SourceReport:
    name: str
    read: int = 0
    unchanged: int = 0
    rejected: tuple[Rejection, ...] = ()
    error: str | None = None
    not_modified: bool = False
    due: datetime | None = None  # not tried this run (not due yet): due then
    backing_off: bool = False  # ... because it failed last time
    fulltext_failed: int = 0
    """`fulltext` feeds: items whose page gave no body (the feed's content was kept)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RunReport:
    sources: tuple[SourceReport, ...]
    new: int
    updated: int
    unchanged: int
    published: int
    feeds_written: tuple[str, ...]
    seconds: float
    merged: int = 0  # stored articles merged into another (a revision bridged them)
    expired: int = 0  # articles retention removed in this run
    output_failures: tuple[str, ...] = ()  # feeds not written (errors.OutputIncomplete)

    @property
    def read(self) -> int:
        return sum(s.read for s in self.sources)

    @property
    def rejections(self) -> tuple[Rejection, ...]:
        return tuple(r for s in self.sources for r in s.rejected)

    @property
    def failed_sources(self) -> tuple[SourceReport, ...]:
        return tuple(s for s in self.sources if s.error)

    @property
    def skipped_sources(self) -> tuple[SourceReport, ...]:
        return tuple(s for s in self.sources if s.due is not None)


class Entry(NamedTuple):
    """A published article: its permanent id and the winning revision.
    `article.published` is the earliest GİRİŞ seen across revisions."""

    id: str
    article: Article


class SeedFileState(NamedTuple):
    """What a seed file was when last read: unchanged size and mtime skip the read."""

    size: int
    mtime_ns: int
    digest: str


@dataclass(frozen=True, slots=True)
class SourceState:
    name: str
    etag: str | None = None
    last_modified: str | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    failures: int = 0
    next_due: datetime | None = None
    feed_digest: str | None = None
    fulltext_seen: frozenset[str] | None = None
    """`fulltext` feeds: content hashes of the items whose page was fetched (None: none
    recorded; the store keeps what it has)."""
    fulltext_pages: Mapping[str, tuple[str | None, str | None]] | None = None
    """`fulltext` feeds: (ETag, Last-Modified) of each item page whose body the store keeps,
    by page URL, for conditional GET (None: none kept)."""
