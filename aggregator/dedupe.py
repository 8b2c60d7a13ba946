"""Which records are the same article, which revision gives each published field, and the
id it keeps: decided here, as values (`decide` -> `Plan`s); the store only applies them. Pure.

Same article when any exact match key is shared (each key is `kind:` + hash of the text shown):
  u:<canonical url>                 the same page
  g:<source>\\x1f<guid>              the same guid from the same feed
  t:<GİRİŞ minute UTC>\\x1f<fold>    same minute, same folded title
  l:<GİRİŞ minute UTC>\\x1f<fold>    same minute, same folded spot (summary)
  p:<GİRİŞ minute UTC>\\x1f<fold>    same minute, same folded first body paragraph
  d:<day>\\x1f<fold title>           date-only records (no clock) with the same title that day
Titles, spots and paragraphs folding to fewer than 3 words are too generic to identify anything.
Or, failing every key, when they share the GİRİŞ anchor (the minute; the day for date-only
records) and their whole texts are similar: `similarity` >= SIMILAR. Records whose date is
only when we first saw them (published_source "seen") match by URL and guid alone.
Never one article: two records of one source carrying different guids (the publisher says
they are different items, as feed readers key entries by feed + guid), however alike their
URL or text; a group holding several guids of a source (stored before this rule) still takes
a record with any of them. Such a record, kept apart from the article its URL names, takes
its id from its guid key (`distinct_ids`).

Fields (`fields`): title, summary, authors, updated and categories come from the newest
revision (greatest `Candidate.rank`: updated, first seen, has a link, content hash) of the
article's site; the link is the newest on-site revision's that has one; the body is the
newest's unless it carries only a summary of a fuller body (empty, its summary again, or
under half the fullest body's length); empty categories/authors/image are filled from the
newest revision that has them.
A copy whose URL names another host than the article's site joins as a copy only.

Id (scheme v1): "urn:uuid:" + uuid5(ID_NAMESPACE, "v1|" + identity key), where the identity
key is the first match key of the cluster's earliest on-site revision (least (updated,
published, key)). The store keeps the id once given; a record bridging two stored articles
merges them into the one published first, the other id kept as its alias for good.
"""

from __future__ import annotations

import gc
import hashlib
import threading
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

from aggregator import peers
from aggregator.model import Article
from aggregator.normalize import (
    canonical_url,
    collapse,
    fold,
    fold_each,
    html_to_text,
    plain_host,
)
from aggregator.peers import SIMILAR as SIMILAR  # deciding's inputs, named here too
from aggregator.peers import Group, Node
from aggregator.records import utc_text
from aggregator.signature import signature as signature
from aggregator.signature import similarity as similarity

ID_SCHEME = "v1"
ID_NAMESPACE = uuid.UUID("0b6f3c1e-5a0d-5f2b-9d0e-616767726567")
_NAMESPACE_BYTES = ID_NAMESPACE.bytes
_MIN_WORDS = 3
MAX_PEERS = 64  # articles of one GİRİŞ anchor compared by text (a bound on the work)


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
    host: str = ""  # the site this copy speaks for: its link's host (or its seeds `site:`)
    anchor: str = ""  # GİRİŞ minute (UTC) or day (date-only); "" never compared by text
    body: int = 0  # body length; -1: no body of its own (empty, or its summary again)
    has_authors: bool = False
    has_image: bool = False
    seen: str = ""  # when the store first had this revision (UTC text); "" this run's
    # its text signature, when computed where the record was parsed (`sources.staged`): the
    # store keeps it beside the staged record for the merge; None: the merge computes it
    signature: bytes | None = None

    @property
    def rank(self) -> tuple[str, str, bool, str]:
        """Newest first by GÜNCELLEME; on a tie the revision first seen in a later run (a
        correction without a new date), then the one with a link, then the content hash."""
        return (self.updated, self.seen, self.has_link, self.content_hash)


def lead_text(article: Article) -> str:
    """The first body paragraph (the spot is a key of its own)."""
    html = article.content_html
    end = html.find("</p>")
    if end < 0:
        end = len(html)
    if html.startswith("<p>") and html.find("<", 3, end) < 0 and html.find("&", 0, end) < 0:
        return html[3:end]  # a plain paragraph, as seed files give (fold drops the rest)
    return html_to_text(html[:end])


def match_keys(
    article: Article, published_utc: str | None = None, minute: str | None = None,
    folds: Sequence[str] | None = None,
) -> tuple[str, ...]:  # fmt: skip
    """The record's match keys, each `kind:` + a 96-bit hash of its text (small in memory
    and in the store; only equality matters), in the order u, g, then t/l/p or d (or h).
    `published_utc`, `minute`: utc_text(published) and its GİRİŞ minute, when the caller
    has them already; `folds`: fold_each(title, summary, lead_text), likewise."""
    keys: list[str] = []
    if article.link:
        keys.append(_key("u", canonical_url(article.link)))
    if article.guid:
        keys.append(_key("g", f"{article.source}\x1f{article.guid}"))
    if article.published_source != "seen":
        if article.date_only:
            title = fold(article.title)
            if _words(title) >= _MIN_WORDS:
                keys.append(_key("d", f"{article.published.date().isoformat()}\x1f{title}"))
        else:
            minute = minute or _minute(article, published_utc or utc_text(article.published))
            texts = folds or fold_each(article.title, article.summary, lead_text(article))
            for kind, folded in zip("tlp", texts, strict=True):
                if _words(folded) >= _MIN_WORDS:
                    keys.append(_key(kind, f"{minute}\x1f{folded}"))
    if not keys:  # nothing identifies it but itself
        keys.append("h:" + article.content_hash())
    return tuple(keys)


def _minute(article: Article, utc: str) -> str:
    if utc[0] != "0":
        return utc[:16]
    # strftime's minute, which pads years < 1000 differently from isoformat
    return article.published.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def anchor(article: Article, published_utc: str | None = None) -> str:
    """What GİRİŞ says of every revision: its UTC minute, or for a date-only record its
    local day as the UTC span `start~end`; "" when the date is only when we saw it."""
    if article.published_source == "seen":
        return ""
    if article.date_only:
        p = article.published
        start = datetime.combine(p.date(), datetime.min.time(), p.tzinfo)
        try:
            return f"{utc_text(start)}~{utc_text(start + timedelta(days=1))}"
        except OverflowError:  # a day at the very end (or start) of time: no span to compare
            return ""
    return _minute(article, published_utc or utc_text(article.published))


def anchor_range(anchor_text: str) -> tuple[str, str]:
    """The stored `published` (UTC text) span an anchor covers."""
    lo, sep, hi = anchor_text.partition("~")
    return (lo, hi) if sep else (lo, lo + "\x7f")


def _words(folded: str) -> int:
    """Words in a fold() result: single spaces between words, none at the ends."""
    return folded.count(" ") + 1 if folded else 0


def _key(kind: str, text: str) -> str:
    return f"{kind}:{hashlib.blake2b(text.encode('utf-8'), digest_size=12).hexdigest()}"


def site_host(url: str | None) -> str:
    """The host naming a site: lower case, without `www.`."""
    host = (plain_host(url) or _hostname(url)) if url else ""
    return host[4:] if host.startswith("www.") else host


def _hostname(url: str) -> str:
    """urllib's reading of the host (plain_host answers alike for a feed item's usual link,
    without urllib)."""
    try:
        return (urlsplit(url.strip()).hostname or "").lower()
    except ValueError:
        return ""


def candidate(
    ref: int, article: Article, signature: bytes | None = None,
    folds: Sequence[str] | None = None, body_text: str | None = None,
) -> Candidate:  # fmt: skip
    """`signature`, `folds` (see match_keys), `body_text` (signature.body_text, for a body
    of at most SIGNATURE_HTML characters): the article's, when the caller has them."""
    published = utc_text(article.published)
    body = len(article.content_html)
    if not body or (
        body <= 2 * len(article.summary) + 16
        and article.summary
        == (html_to_text(article.content_html) if body_text is None else collapse(body_text))
    ):
        body = -1  # (html_to_text is collapse of the signature's body text)
    if article.date_only or article.published_source == "seen":
        minute, at = None, anchor(article, published)
    else:
        minute = at = _minute(article, published)
    return Candidate(  # by position: a cold run builds one per record (keywords cost 1 us)
        ref,
        match_keys(article, published, minute, folds),
        published if article.updated == article.published else utc_text(article.updated),
        published,
        article.content_hash(),
        article.source,
        article.origin,
        article.categories,
        article.link is not None,
        site_host(article.link),
        at,
        body,
        bool(article.authors),
        article.image is not None,
        "",
        signature,
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


def _guid_key(cluster: Sequence[Candidate]) -> str:
    """The guid key of the earliest revision carrying one (else the identity key)."""
    with_guid = [c for c in cluster if any(k[0] == "g" for k in c.keys)]
    if not with_guid:
        return identity_key(cluster)
    earliest = min(with_guid, key=lambda c: (c.updated, c.published, c.keys[0]))
    return next(k for k in earliest.keys if k[0] == "g")


def winner(cluster: Iterable[Candidate]) -> Candidate:
    return max(cluster, key=lambda c: c.rank)


_pauses = 0  # collector_paused calls under way, in every thread
_pauses_lock = threading.RLock()  # re-entered by a finalizer that pauses, mid-switch
_resume = False  # whether the collector was on when the first of them began


@contextmanager
def collector_paused(freeze: bool = False) -> Iterator[None]:
    """Python's cyclic garbage collector off while a run's candidates are clustered,
    staged and merged: that makes a few tuples per record and no cycles, and each
    collection would walk every object a cold run holds (its hundreds of thousands of
    candidates and keys): a fifth of a cold merge's CPU. The switch is the process's:
    pauses in several threads (the daemon parses on fetch threads while it merges) are
    counted, and the collector is back on when the last one ends. `freeze`: if this one
    ends the pause, what was made meanwhile is frozen first (gc.freeze), so the next
    young collection does not walk it all (the caller unfreezes)."""
    global _pauses, _resume
    with _pauses_lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _pauses_lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                if freeze:
                    gc.freeze()
                gc.enable()


def cluster(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    """Group candidates sharing any match key (transitively), in a stable order."""
    with collector_paused():
        return _cluster(candidates)


def _cluster(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    parent = list(range(len(candidates)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    held: dict[int, Guids] = {}  # root -> the guids of its records, by source

    def held_by(r: int) -> Guids:
        """A root's guids: a record alone is looked at when it first meets another."""
        if (g := held.get(r)) is None:
            k = candidates[r].keys  # a guid key comes first or after the URL key
            g = held[r] = guids([candidates[r]]) if k[0][0] == "g" or (
                len(k) > 1 and k[1][0] == "g") else {}  # fmt: skip
        return g

    for i, cand in enumerate(candidates):
        for key in cand.keys:
            j = owner.setdefault(key, i)
            if j != i:
                ri, rj = root(i), root(j)
                if ri != rj and not _apart(held_by(ri), held_by(rj)):
                    lo, hi = min(ri, rj), max(ri, rj)
                    parent[hi] = lo
                    _hold(held, lo, hi)
    groups: dict[int, list[Candidate]] = {}
    for i, cand in enumerate(candidates):
        groups.setdefault(root(i), []).append(cand)
    return list(groups.values())


# -- one source's guids ----------------------------------------------------------------------
Guids = dict[str, frozenset[str]]  # source -> the guid (`g:`) keys of its records


def guids(revisions: Iterable[Candidate]) -> Guids:
    """The guid keys these revisions carry, by source."""
    out: dict[str, set[str]] = {}
    for c in revisions:
        for k in c.keys:
            if k[0] == "g":
                out.setdefault(c.source, set()).add(k)
    return {s: frozenset(ks) for s, ks in out.items()}


def _apart(a: Guids | None, b: Guids | None) -> bool:
    """Different articles: some source gave each its own guids, none in common."""
    if not a or not b:
        return False
    return any(s in b and ks.isdisjoint(b[s]) for s, ks in a.items())


def _hold(held: dict[int, Guids], root: int, other: int) -> None:
    """`root` now holds `other`'s guids too."""
    theirs = held.pop(other, None)
    if theirs:
        mine = held.setdefault(root, {})
        for s, ks in theirs.items():
            mine[s] = mine.get(s, frozenset()) | ks


# -- the decision ---------------------------------------------------------------------------
class Fields(NamedTuple):
    """Content hashes of the revisions each published field comes from."""

    base: str  # title, summary, updated (and the rest unless named below)
    link: str
    content: str
    categories: str
    authors: str
    image: str

    @property
    def plain(self) -> bool:
        """Every field from one revision: publish that revision's record as it is."""
        return (
            self.base
            == self.link
            == self.content
            == self.categories
            == self.authors
            == (self.image)
        )


class Stored(NamedTuple):
    """A stored article a run touches, as deciding needs it."""

    id: str
    published: str
    site: str  # "" until a copy with a URL (or a seeds `site:`) fixed it
    fields: Fields
    revisions: tuple[Candidate, ...]  # its kept history (the published ones always among them)


class Plan(NamedTuple):
    """What the store does for one article this run."""

    id: str
    members: tuple[Candidate, ...]  # this run's revisions of it
    stored: Stored | None  # None: a new article
    retired: tuple[str, ...]  # stored articles merged into it: their ids become aliases
    published: str  # earliest GİRİŞ of its site's copies
    site: str
    fields: Fields
    best: Candidate  # the revision giving title, summary and updated
    categories: tuple[str, ...]
    changed: bool  # anything published differs from what the store has


def join(
    n_clusters: int,
    matches: Mapping[int, Collection[str]],
    alike: Sequence[tuple[Node, Node]] = (),
    held: Mapping[Node, Guids] | None = None,
) -> list[tuple[list[int], list[str]]]:
    """Which of this run's clusters and stored articles are one article: (cluster indexes,
    stored ids) per article. `matches`: cluster -> stored ids sharing an exact key with it;
    `alike`: pairs sharing a GİRİŞ anchor whose texts are similar (`peers.alike`), joined in
    this order; `held`: each node's guids (`guids`): nodes whose guids of one source differ
    stay apart."""
    if not matches and not alike:  # nothing to join: each cluster is its own article
        return [([i], []) for i in range(n_clusters)]
    index: dict[str, int] = {}
    for ids in matches.values():
        for sid in ids:
            index.setdefault(sid, n_clusters + len(index))
    for pair in alike:
        for node in pair:
            if isinstance(node, str):
                index.setdefault(node, n_clusters + len(index))
    parent = list(range(n_clusters + len(index)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owned: dict[int, Guids] = {}
    for node, g in (held or {}).items():
        at = node if isinstance(node, int) else index.get(node)
        if g and at is not None:
            owned[at] = dict(g)

    def union(i: int, j: int) -> None:
        ri, rj = root(i), root(j)
        if ri != rj and not _apart(owned.get(ri), owned.get(rj)):
            lo, hi = min(ri, rj), max(ri, rj)
            parent[hi] = lo
            _hold(owned, lo, hi)

    for i, ids in matches.items():
        for sid in sorted(ids) if held else ids:  # an order that decides: the same every run
            union(i, index[sid])
    for a, b in alike:
        union(*(x if isinstance(x, int) else index[x] for x in (a, b)))
    groups: dict[int, tuple[list[int], list[str]]] = {}
    for i in range(n_clusters):
        groups.setdefault(root(i), ([], []))[0].append(i)
    for sid, i in index.items():
        if root(i) in groups:  # a stored article no cluster joined stays as it is
            groups[root(i)][1].append(sid)
    return list(groups.values())


def decide(
    clusters: Sequence[Sequence[Candidate]],
    matches: Mapping[int, Collection[str]],
    stored: Mapping[str, Stored],
    groups: Sequence[Group] = (),
    signatures: Mapping[Node, Sequence[bytes]] | None = None,
    aliases: Mapping[str, str] | None = None,
    seen: str = "",
) -> list[Plan]:
    """One plan per article the run touches (`join`, then `plan` for each). `groups`: the
    nodes compared by text, as `peers.alike` takes them."""
    held = held_guids(clusters, stored)
    found = peers.alike(groups, signatures or {}) if groups else []
    plans = [
        plan(
            [c for i in members for c in clusters[i]], [stored[s] for s in ids], aliases, seen=seen
        )  # fmt: skip
        for members, ids in join(len(clusters), matches, found, held)
    ]
    return distinct_ids(plans, stored, aliases)


def held_guids(
    clusters: Sequence[Sequence[Candidate]], stored: Mapping[str, Stored]
) -> dict[Node, Guids]:
    """Each cluster's and stored article's guids, for `join`."""
    held: dict[Node, Guids] = {}
    for i, g in enumerate(clusters):
        if mine := guids(g):
            held[i] = mine
    for sid, s in stored.items():
        if theirs := guids(s.revisions):
            held[sid] = theirs
    return held


def distinct_ids(
    plans: list[Plan], taken: Collection[str], aliases: Mapping[str, str] | None = None
) -> list[Plan]:
    """`plans` with every new article's id its own: one that a stored article (`taken`) or
    an earlier plan has already (an item kept apart from the article its URL names, by its
    guid) is named by its guid key instead."""
    given: set[str] = set()
    out: list[Plan] = []
    for p in plans:
        if p.stored is None and (p.id in given or p.id in taken):
            p = plan(p.members, (), aliases, by_guid=True)
        given.add(p.id)
        out.append(p)
    return out


def anchor_groups(clusters: Sequence[Sequence[Candidate]], limit: int = MAX_PEERS) -> list[Group]:
    """The clusters sharing a GİRİŞ anchor (the first `limit` of each), as `peers` groups:
    every two of a group are compared by text."""
    first: dict[str, int] = {}
    shared: dict[str, list[int]] = {}
    for i, g in enumerate(clusters):
        for a in {c.anchor for c in g} if len(g) > 1 else (g[0].anchor,):
            if a and (j := first.setdefault(a, i)) != i:
                shared.setdefault(a, [j]).append(i)
    return [(ids[:limit], ()) for ids in shared.values()]


def plan(
    members: Sequence[Candidate],
    found: Sequence[Stored],
    aliases: Mapping[str, str] | None = None,
    known_ids: Mapping[str, str] | None = None,
    by_guid: bool = False,
    seen: str = "",
) -> Plan:
    """The decision for one article: this run's `members` and the stored articles `found`
    to be one (the first published keeps its id; the others retire as its aliases).
    `known_ids`: identity key -> article_id(key) already computed (a cold run's staging).
    `by_guid`: a new article named by its earliest revision's guid key (`distinct_ids`).
    `seen`: this run's time (UTC text), the first-seen time of its new revisions."""
    if not found and len(members) == 1 and not by_guid:  # most of a cold run: decided at once
        (only,) = members
        h = only.content_hash
        aid = known_ids.get(only.keys[0], "") if known_ids else ""
        aid = aid or article_id(only.keys[0])
        # by position (keywords cost 1 us): id, members, stored, retired, published, site,
        # fields, best, categories, changed
        return Plan(
            aliases.get(aid, aid) if aliases else aid, (only,), None, (), only.published,
            only.host, Fields(h, h, h, h, h, h), only, only.categories, True,
        )  # fmt: skip
    found = sorted(found, key=lambda s: (s.published, s.id))
    history = [c for s in found for c in s.revisions]
    every = [*_first_seen(members, history, seen), *history]
    site = next((s.site for s in found if s.site), "") or _first_site(every)
    own = [c for c in every if not (c.has_link and site and c.host and c.host != site)] or every
    fields, best, categories = _fields(own, site)
    key = _guid_key(own) if by_guid else identity_key(own)
    aid = (known_ids.get(key, "") if known_ids else "") or article_id(key)
    if len(found) > 1:  # the one holding the earliest revision was published first: it stays
        first = next((s for s in found if s.id == aid), found[0])  # (as a rebuild would name it)
        found = [first, *(s for s in found if s is not first)]
    survivor = found[0] if found else None
    if survivor is not None:
        aid = survivor.id
    elif aliases:
        aid = aliases.get(aid, aid)  # an id once retired maps to its survivor, for good
    published = min(c.published for c in own)
    if found:
        published = min(published, *(s.published for s in found))
    changed = (
        survivor is None
        or len(found) > 1
        or fields != survivor.fields
        or published < survivor.published
    )
    return Plan(
        id=aid, members=tuple(members), stored=survivor,
        retired=tuple(s.id for s in found[1:]), published=published, site=site,
        fields=fields, best=best, categories=categories, changed=changed,
    )  # fmt: skip


def _first_seen(
    members: Sequence[Candidate], history: Sequence[Candidate], seen: str
) -> list[Candidate]:
    """This run's revisions, each seen `seen` unless the store had it already: a repeat
    (a stale cache serving an old text again) keeps its first-seen time, so it never
    outranks a correction seen since, and rerunning the same inputs changes nothing."""
    if not history:
        return list(members)  # all seen at once: the time decides nothing
    first: dict[str, str] = {}
    for c in history:
        if c.content_hash not in first or c.seen < first[c.content_hash]:
            first[c.content_hash] = c.seen
    return [c._replace(seen=first.get(c.content_hash, seen)) for c in members]


def _first_site(revisions: Sequence[Candidate]) -> str:
    """A seeds source's `site:` (a host on a copy without a link), else the host of the
    earliest copy with a URL."""
    hosts = [c for c in revisions if c.host and not c.has_link] or [c for c in revisions if c.host]
    if not hosts:
        return ""
    return min(hosts, key=lambda c: (c.published, c.updated, c.content_hash)).host


def _fields(revisions: Sequence[Candidate], site: str) -> tuple[Fields, Candidate, tuple[str, ...]]:
    if len(revisions) == 1:
        (only,) = revisions
        h = only.content_hash
        return Fields(h, h, h, h, h, h), only, only.categories
    ranked = sorted(revisions, key=lambda c: c.rank, reverse=True)
    best = ranked[0]

    def newest(has: bool, attr: str) -> Candidate:
        if has:
            return best
        return next((c for c in ranked if getattr(c, attr)), best)

    linked = next((c for c in ranked if c.has_link and (not site or c.host == site)), best)
    fullest = max(ranked, key=lambda c: c.body)
    summary_only = best.body < 0 or 2 * best.body < fullest.body
    content = fullest if summary_only and fullest.body > max(best.body, 0) else best
    categories = newest(bool(best.categories), "categories")
    fields = Fields(
        base=best.content_hash,
        link=linked.content_hash,
        content=content.content_hash,
        categories=categories.content_hash,
        authors=newest(best.has_authors, "has_authors").content_hash,
        image=newest(best.has_image, "has_image").content_hash,
    )
    return fields, best, categories.categories


def compose(fields: Fields, records: Mapping[str, Article]) -> Article:
    """The published article: the base revision with each field taken where `fields` says."""
    base = records[fields.base]
    if fields.plain:
        return base
    return replace(
        base,
        link=records[fields.link].link,
        content_html=records[fields.content].content_html,
        categories=records[fields.categories].categories,
        authors=records[fields.authors].authors,
        image=records[fields.image].image,
    )
