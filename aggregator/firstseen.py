"""First-seen dates: an item without a believable date is dated when the aggregator first
saw it. The store keeps that time per (source, item), so a later run gives the same date:
ids, order and feed bytes do not churn. Also where web records' parse warnings (a date not
believed) are logged, since the parse itself runs in worker processes and logs nothing."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from aggregator.model import Article
from aggregator.normalize import fold
from aggregator.records import article_from_json, unpack_record
from aggregator.sources import Staged, staged
from aggregator.store import Store

log = logging.getLogger(__name__)
# the stored JSON of a record that needs a look (a first-seen date, or warnings to log);
# both forms records.record_bytes writes spell these the same
_SEEN = b'"published_source":"seen"'
_NO_WARNINGS = b'"warnings":[]'


def item_key(article: Article) -> str:
    """Which item of its source a record is: guid, else link, else title (hashed: bounded)."""
    text = article.guid or article.link or "title:" + fold(article.title)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def settle(store: Store, source: str, records: Sequence[Staged], now: datetime) -> Sequence[Staged]:
    """`records` with every first-seen record dated by the store (new ones: `now`)."""
    seen: dict[int, Article] = {}
    for i, (_, record) in enumerate(records):
        raw = unpack_record(record)
        if isinstance(raw, str):
            raw = raw.encode("utf-8")
        if _SEEN not in raw and _NO_WARNINGS in raw:
            continue
        article = article_from_json(raw)
        for warning in article.warnings:
            log.warning("source %s: %s: %s", source, article.link or article.origin, warning)
        if article.published_source == "seen":
            seen[i] = article
    if not seen:
        return records
    times = store.first_seen_times(source, sorted({item_key(a) for a in seen.values()}), now)
    out = list(records)
    for i, article in seen.items():
        when = times[item_key(article)]
        (out[i],) = staged([replace(article, published=when, updated=when)])
    return out
