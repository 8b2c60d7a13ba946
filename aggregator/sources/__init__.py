"""Source kinds. Each turns one configured source into a Harvest; none writes anything.

- seedfile: local scraped-text files (read incrementally by the pipeline)
- feed, html, http: configured web sources (see web.harvest)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aggregator.dedupe import Candidate, candidate, lead_text
from aggregator.model import Article, Rejection, SourceState
from aggregator.normalize import cases, fold_cased, strip_labels
from aggregator.records import article_from_json, pack_record, unpack_record
from aggregator.signature import SIGNATURE_HTML, body_text, signed_text, sketches

if TYPE_CHECKING:
    from aggregator.sources.fulltext import Page

Staged = tuple[Candidate, bytes]
"""A parsed record ready for the store: its de-duplication candidate and packed form."""


def staged(articles: Sequence[Article]) -> tuple[Staged, ...]:
    """Done where the parsing is (a worker process): the main process only stages. Each
    candidate carries its text signature, computed for all the articles at once (a merge
    that compares them by text then needs no record decoded). Match keys and signature
    fold title and summary alike: folded to case once, for both (`_texts`)."""
    texts = [_texts(a) for a in articles]
    signed = sketches([signed for _, _, signed in texts])
    return tuple(
        (candidate(-1, a, s, folds, body), pack_record(a))
        for a, s, (folds, body, _) in zip(articles, signed, texts, strict=True)
    )


def _texts(a: Article) -> tuple[list[str] | None, str | None, str | None]:
    """(match keys' folds, the body's text for the candidate, the signed text), each None
    where candidate() or sketches() is to make it the general way."""
    if a.published_source == "seen":
        return None, None, None  # neither folds nor signs anything
    body = body_text(a)
    shown = body if len(a.content_html) <= SIGNATURE_HTML else None  # the whole body's
    if a.date_only:  # its match keys fold the title alone
        return None, shown, signed_text(a, body)
    lead = lead_text(a)
    lowered = cases(a.title, a.summary, lead, body)
    if lowered is None:  # a NUL in them
        return None, shown, signed_text(a, body)
    title, summary, lead_case, body_case = lowered
    folds = fold_cased((a.title, a.summary, lead), f"{title}\x00{summary}\x00{lead_case}")
    return folds, shown, strip_labels(f"{title} {summary} {body_case}")


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
