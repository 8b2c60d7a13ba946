"""Source kinds. Each turns one configured source into a Harvest; none writes anything.

- seedfile: local scraped-text files (read incrementally by the pipeline)
- feed, html, http: configured web sources (see web.harvest)
"""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.model import Article, Rejection, SourceState


@dataclass(frozen=True, kw_only=True)
class Harvest:
    """What one web source gave in one run. `error` set means the source failed as a whole;
    `state` is its new HTTP/back-off state to persist (None: leave as is)."""

    name: str
    articles: tuple[Article, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    unchanged: int = 0
    not_modified: bool = False
    error: str | None = None
    state: SourceState | None = None
