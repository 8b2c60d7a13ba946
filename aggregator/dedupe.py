"""Which records are the same article, which revision wins, and the id it keeps. Pure.

Same article when any match key is shared (each key is `kind:` + hash of the text shown):
  u:<canonical url>                 the same page
  g:<source>\\x1f<guid>              the same guid from the same feed
  t:<GİRİŞ minute UTC>\\x1f<fold>    same minute, same folded title
  l:<GİRİŞ minute UTC>\\x1f<fold>    same minute, same folded lead (spot or first paragraph)
  d:<day>\\x1f<fold title>           date-only records (no clock) with the same title that day
Titles/leads folding to fewer than 3 words are too generic to identify anything.

Winner: the greatest (updated, has a link, content hash) — newest GÜNCELLEME; on a tie the
revision with the site's own URL (a feed item or page over a link-less scrape), then the
greater content hash, so the choice is the same in every run and every input order.

Id (scheme v1): "urn:uuid:" + uuid5(ID_NAMESPACE, "v1|" + identity key), where the identity
key is the first match key of the cluster's earliest revision (least (updated, published,
key)). The store keeps the id once given; later revisions never change it.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import NamedTuple

from aggregator.model import Article
from aggregator.normalize import canonical_url, fold, html_to_text
from aggregator.records import utc_text

ID_SCHEME = "v1"
ID_NAMESPACE = uuid.UUID("0b6f3c1e-5a0d-5f2b-9d0e-616767726567")
_NAMESPACE_BYTES = ID_NAMESPACE.bytes
_MIN_WORDS = 3


class Candidate(NamedTuple):
    """What de-duplication needs of a record, without its body (memory stays small).
    A tuple: 100,000 of them cross from worker processes in a cold run, and a tuple
    pickles at a third of a dataclass's cost."""

    ref: int
    keys: tuple[str, ...]
    updated: str  # fixed-width UTC text (records.utc_text): string order is time order,
    published: str  # and it is the form the store keeps, computed once in the worker
    content_hash: str
    source: str = ""
    origin: str = ""
    categories: tuple[str, ...] = ()
    has_link: bool = False

    @property
    def rank(self) -> tuple[str, bool, str]:
        return (self.updated, self.has_link, self.content_hash)


def lead_text(article: Article) -> str:
    if article.summary:
        return article.summary
    first_p = article.content_html.split("</p>", 1)[0]
    return html_to_text(first_p)


def match_keys(article: Article, published_utc: str | None = None) -> tuple[str, ...]:
    """The record's match keys, each `kind:` + a 96-bit hash of its text (small in memory
    and in the store; only equality matters). `published_utc`: utc_text(published), when
    the caller has it already."""
    keys: list[str] = []
    if article.link:
        keys.append(_key("u", canonical_url(article.link)))
    if article.guid:
        keys.append(_key("g", f"{article.source}\x1f{article.guid}"))
    title, lead = fold(article.title), fold(lead_text(article))
    if article.date_only:
        if _words(title) >= _MIN_WORDS:
            keys.append(_key("d", f"{article.published.date().isoformat()}\x1f{title}"))
    else:
        utc = published_utc or utc_text(article.published)
        # strftime's minute, which pads years < 1000 differently from isoformat
        minute = (
            utc[:16]
            if utc[0] != "0"
            else article.published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
        )
        if _words(title) >= _MIN_WORDS:
            keys.append(_key("t", f"{minute}\x1f{title}"))
        if _words(lead) >= _MIN_WORDS:
            keys.append(_key("l", f"{minute}\x1f{lead}"))
    if not keys:  # nothing identifies it but itself
        keys.append("h:" + article.content_hash())
    return tuple(keys)


def _words(folded: str) -> int:
    """Words in a fold() result: single spaces between words, none at the ends."""
    return folded.count(" ") + 1 if folded else 0


def _key(kind: str, text: str) -> str:
    return f"{kind}:{hashlib.blake2b(text.encode('utf-8'), digest_size=12).hexdigest()}"


def candidate(ref: int, article: Article) -> Candidate:
    published = utc_text(article.published)
    return Candidate(
        ref=ref,
        keys=match_keys(article, published),
        updated=published if article.updated == article.published else utc_text(article.updated),
        published=published,
        content_hash=article.content_hash(),
        source=article.source,
        origin=article.origin,
        categories=article.categories,
        has_link=article.link is not None,
    )


def article_id(identity_key: str) -> str:
    """uuid5(ID_NAMESPACE, "v1|" + key), spelled out: uuid.uuid5 costs 3x as much, and a
    cold run names every article."""
    name = f"{ID_SCHEME}|{identity_key}".encode()
    raw = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x50  # version 5
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = raw.hex()
    return f"urn:uuid:{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def identity_key(cluster: Sequence[Candidate]) -> str:
    if len(cluster) == 1:
        return cluster[0].keys[0]
    earliest = min(cluster, key=lambda c: (c.updated, c.published, c.keys[0]))
    return earliest.keys[0]


def winner(cluster: Iterable[Candidate]) -> Candidate:
    return max(cluster, key=lambda c: c.rank)


def cluster(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Group candidates sharing any match key (transitively), in a stable order."""
    parent = list(range(len(candidates)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, cand in enumerate(candidates):
        for key in cand.keys:
            j = owner.setdefault(key, i)
            if j != i:
                ri, rj = root(i), root(j)
                if ri != rj:
                    parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[Candidate]] = {}
    for i, cand in enumerate(candidates):
        groups.setdefault(root(i), []).append(cand)
    return list(groups.values())
