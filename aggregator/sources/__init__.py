"""Source kinds. Each turns one configured source into a Harvest; none writes anything.

- seedfile: local scraped-text files (read incrementally by the pipeline)
- feed, html, http: configured web sources (see web.harvest)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.dedupe import Candidate, candidate
from aggregator.model import Article, Rejection, SourceState
from aggregator.records import article_from_json, pack_record, unpack_record
from aggregator.signature import signatures

if TYPE_CHECKING:
    from aggregator.sources.fulltext import Page

Staged = tuple[Candidate, bytes]
"""A parsed record ready for the store: its de-duplication candidate and packed form."""


def staged(articles: Sequence[Article]) -> tuple[Staged, ...]:
    """Done where the parsing is (a worker process): the main process only stages. Each
    candidate carries its text signature, computed for all the articles at once (a merge
    that compares them by text then needs no record decoded)."""
    return tuple(
        (candidate(-1, a, s), pack_record(a))
        for a, s in zip(articles, signatures(articles), strict=True)
    )


@dataclass(frozen=True, kw_only=True)
class Harvest:
    """What one web source gave in one run. `error` set means the source failed as a whole;
    `state` is its new HTTP/back-off state to persist (None: leave as is). Records are kept
    packed (a third of an Article's memory); `articles` unpacks them for a look."""

    name: str
    records: tuple[Staged, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    unchanged: int = 0
    fulltext_failed: int = 0
    fulltext_pages: tuple[Page, ...] = ()
    """`fulltext` feeds: the item pages just answered, for the store to keep (fulltext.settle)."""
    not_modified: bool = False
    error: str | None = None
    state: SourceState | None = None
    due: datetime | None = None  # not tried this run (not due yet): due then
    backing_off: bool = False  # ... because it failed last time

    @property
    def articles(self) -> tuple[Article, ...]:
        return tuple(article_from_json(unpack_record(record)) for _, record in self.records)
