"""Articles: staging parsed records, merging them as `dedupe` decides, retention, and
reading what publishing needs (with the publish state that says which feeds are current)."""

from __future__ import annotations

import heapq
import itertools
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aggregator import dedupe, peers
from aggregator.dedupe import Candidate, article_id
from aggregator.model import Article, Entry
from aggregator.packed import PackedEntries, Row, entry_from_row
from aggregator.records import (
    article_from_json,
    pack_record,
    parse_time,
    unpack_record,
    utc_text,
)
from aggregator.signature import is_current as signature_is_current
from aggregator.signature import signatures
from aggregator.store.base import StoreBase
from aggregator.store.db import Database
from aggregator.store.schema import category_slugs

KEEP_REVISIONS = 5


@dataclass(slots=True)
class MergeCounts:
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    merged: int = 0  # stored articles merged into another by a bridging revision


class ArticleStore(StoreBase):
    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self._cold = False
        self._founds: dict[str, str] = {}  # cold staging: first key -> the id it founds
        # the text signatures staged records came with (by revision id), for the merge: kept
        # as they came (the harvests that brought them held them until staged)
        self._staged_signatures: dict[int, bytes] = {}
        self._any_expired: bool | None = None  # does `expired` hold anything (None: unknown)
        self._revived = False  # a merge brought back an article retention had removed
        self._feeds_published = True  # a feed is marked published (read by each merge)

    # -- staging: parsed records go straight into `revisions`, owner to be decided ---------
    def stage_begin(self) -> None:
        """Start staging; call inside `transaction()` so a crash leaves nothing half-merged."""
        with self._translate("staging"):
            self.db.execute("DELETE FROM revisions WHERE article_id IS NULL")
            self._staged_signatures = {}
            row = self.db.execute("SELECT COALESCE(MAX(id), 0) FROM revisions").fetchone()
            self._stage_base = int(row[0]) + 1
            # An empty store (a first run over a big seed archive): a record is staged
            # already owned by the article it would found alone, which it does unless a
            # revision of another joins it; `merge` moves only those (rewriting a staged
            # row is half of a cold merge).
            self._cold = self.is_empty()
            self._founds = {}
            self._any_expired = None  # another node may have expired articles since

    def stage(self, rows: Iterable[tuple[Candidate, bytes]], now: datetime) -> None:
        """Park (candidate, packed record) rows until `merge` decides their article, with
        the candidates' signatures when they carry one. Every candidate staged must be in
        the clusters given to the next `merge`."""
        seen = utc_text(now)
        rows = list(rows)
        with self._translate("staging"), dedupe.collector_paused():
            self.db.executemany(
                "INSERT INTO revisions (id, article_id, content_hash, updated, origin, record,"
                # a repeat of a record staged already (same article, same content): skipped
                " seen) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (article_id, content_hash) DO NOTHING",
                (
                    (self._stage_base + c.ref, self._founding_id(c) if self._cold else None,
                     c.content_hash, c.updated, c.origin, record, seen)
                    for c, record in rows
                ),
            )  # fmt: skip
            self._staged_signatures.update(
                (self._stage_base + c.ref, c.signature) for c, _ in rows if c.signature is not None
            )

    def _founding_id(self, c: Candidate) -> str:
        aid = self._founds.get(c.keys[0])
        if aid is None:
            aid = self._founds[c.keys[0]] = article_id(c.keys[0])
        return aid

    # -- merging clusters into articles -------------------------------------------------
    def merge(
        self,
        clusters: Sequence[Sequence[Candidate]],
        now: datetime,
        *,
        expired_before: datetime | None = None,
        keep_newest: int = 0,
    ) -> MergeCounts:
        """Fold each cluster into its stored article (or a new one) as `dedupe` decides.
        Never goes backwards: the stored history is part of every decision. An article
        retention removed and would remove again (see `_expired`) is not added back."""
        counts = MergeCounts()
        seen = utc_text(now)
        try:
            with self.transaction(), dedupe.collector_paused():
                self._feeds_published = (  # else no feed is marked published: none to touch
                    self.db.execute(
                        "SELECT 1 FROM publish_state WHERE key >= 'feed:' AND key < 'feed;' LIMIT 1"
                    ).fetchone()
                    is not None
                )
                fresh: list[dedupe.Plan] = []
                for plan in self._decide(clusters, seen):
                    if plan.stored is not None:
                        moved = plan.changed or bool(plan.retired)
                        if moved:  # the feeds they were in, then those they are in
                            self._touch_feeds_of([plan.id, *plan.retired])
                        self._apply(plan, seen, counts)
                        if moved:
                            self._touch_feeds_of([plan.id])
                    elif self._expired(plan.members, expired_before, keep_newest):
                        self._insert_revisions(((None, c) for c in plan.members), seen)  # deleted
                    else:
                        fresh.append(plan)
                self._insert_new(fresh, seen)
                self._touch_feeds_of([p.id for p in fresh])
                counts.new = len(fresh)
                self._count_articles(counts.new - counts.merged)
                # repeats of a revision the article already has
                self.db.execute("DELETE FROM revisions WHERE article_id IS NULL")
                if counts.new or counts.updated or counts.merged:
                    self._mark_publish_pending()
        finally:  # merged, or rolled back with the staged rows: nothing staged any more
            self._staged_signatures = {}
            self._cold, self._founds = False, {}  # staged from now on: unowned until merged
        return counts

    # -- gathering what deciding needs ---------------------------------------------------
    def _decide(self, clusters: Sequence[Sequence[Candidate]], seen: str) -> list[dedupe.Plan]:
        """Read what the decision needs (stored articles sharing a key or a GİRİŞ anchor,
        text signatures of anchor peers), then let `dedupe` decide (`seen`: this run)."""
        if not clusters:
            return []
        warm = self.db.execute("SELECT 1 FROM article_keys LIMIT 1").fetchone() is not None
        matches = self._key_matches(clusters) if warm else {}
        groups = dedupe.anchor_groups(clusters)
        if warm:
            groups += self._stored_peers(clusters, matches)
        aliases = self._aliases()
        if not matches and not groups:  # nothing stored or alike: each cluster is new
            plans = [dedupe.plan(g, (), aliases, self._founds) for g in clusters]
            plans = dedupe.distinct_ids(plans, (), aliases)
            return self._survivors(plans, aliases, seen) if aliases else plans
        signatures = self._signatures(clusters, groups) if groups else {}
        # the pairs of one article by text (a stored peer sharing a key is joined by it)
        alike = [p for p in peers.alike(groups, signatures) if not _shares_key(p, matches)]
        # every stored article a cluster could join (by a key, or by text): their guids decide
        near = {sid for ids in matches.values() for sid in ids}
        near |= {b for _, b in alike if isinstance(b, str)}
        stored = self._stored(sorted(near)) if near else {}
        if matches or alike:
            held = dedupe.held_guids(clusters, stored)
            joined = dedupe.join(len(clusters), matches, alike, held)
            plans = [
                dedupe.plan([c for i in members for c in clusters[i]], [stored[s] for s in ids],
                            aliases, self._founds, seen=seen)
                for members, ids in joined
            ]  # fmt: skip
        else:  # nothing joins: each cluster is its own new article
            plans = [dedupe.plan(g, (), aliases, self._founds) for g in clusters]
        plans = dedupe.distinct_ids(plans, stored, aliases)
        return self._survivors(plans, aliases, seen) if aliases else plans

    def _survivors(
        self, plans: list[dedupe.Plan], aliases: dict[str, str], seen: str
    ) -> list[dedupe.Plan]:
        """New articles whose id is a retired one's survivor: inputs of the retired id. They
        join the survivor when it is still stored, else each other (one id, one article)."""
        targets = set(aliases.values())
        kept: list[dedupe.Plan] = []
        joined: dict[str, list[Candidate]] = {}
        for plan in plans:
            if plan.stored is None and plan.id in targets:
                joined.setdefault(plan.id, []).extend(plan.members)
            else:
                kept.append(plan)
        for aid, members in joined.items():
            survivor = self._stored([aid]).get(aid)
            kept.append(dedupe.plan(members, [survivor] if survivor else [], aliases, seen=seen))
        return kept

    def _key_matches(self, clusters: Sequence[Sequence[Candidate]]) -> dict[int, set[str]]:
        """Cluster index -> ids of the stored articles sharing a match key, in one query."""
        self.db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS batch_keys (match_key TEXT, cluster INTEGER)"
        )
        self.db.execute("DELETE FROM batch_keys")
        self.db.executemany(
            "INSERT INTO batch_keys (match_key, cluster) VALUES (?, ?)",
            ((k, i) for i, g in enumerate(clusters) for c in g for k in c.keys),
        )
        found: dict[int, set[str]] = {}
        for cluster_index, aid in self.db.execute(
            "SELECT b.cluster, a.id FROM batch_keys b"
            " JOIN article_keys k ON k.match_key = b.match_key"
            " JOIN articles a ON a.id = k.article_id"
        ):
            found.setdefault(cluster_index, set()).add(aid)
        self.db.execute("DELETE FROM batch_keys")
        return found

    def _stored_peers(
        self, clusters: Sequence[Sequence[Candidate]], matches: dict[int, set[str]]
    ) -> list[peers.Group]:
        """The clusters and stored articles sharing a GİRİŞ anchor (at most dedupe.MAX_PEERS
        of each), as `peers` groups (every cluster with every stored article): compared by
        text, but for pairs sharing a key. A node in none but such pairs is left out (a
        stored article's missing signature is made, and kept, only when compared)."""
        anchors: dict[str, list[int]] = {}
        for i, g in enumerate(clusters):
            for a in {c.anchor for c in g if c.anchor}:
                anchors.setdefault(a, []).append(i)
        if not anchors:
            return []
        self.db.execute(
            "CREATE TEMP TABLE IF NOT EXISTS batch_anchors (anchor TEXT, lo TEXT, hi TEXT)"
        )
        self.db.execute("DELETE FROM batch_anchors")
        self.db.executemany(
            "INSERT INTO batch_anchors (anchor, lo, hi) VALUES (?, ?, ?)",
            ((a, *dedupe.anchor_range(a)) for a in anchors),
        )
        near: dict[str, list[str]] = {}
        for a, aid in self.db.execute(
            "SELECT b.anchor, a.id FROM batch_anchors b"
            " JOIN articles a ON a.published >= b.lo AND a.published < b.hi"
            " ORDER BY b.anchor, a.published, a.id"
        ):
            ids = near.setdefault(a, [])
            if len(ids) < dedupe.MAX_PEERS:
                ids.append(aid)
        self.db.execute("DELETE FROM batch_anchors")
        groups: list[peers.Group] = []
        for a, ids in near.items():
            mine = anchors[a][: dedupe.MAX_PEERS]
            ids = [s for s in ids if any(s not in matches.get(i, ()) for i in mine)]
            mine = [i for i in mine if any(s not in matches.get(i, ()) for s in ids)]
            if mine:
                groups.append((mine, ids))
        return groups

    def _signatures(
        self, clusters: Sequence[Sequence[Candidate]], groups: Sequence[peers.Group]
    ) -> dict[peers.Node, list[bytes]]:
        """Text signatures of the peers: a cluster's staged with its records (computed from
        a record staged without one), a stored article's from its column (computed, and
        kept, when missing or made by an older signature format)."""
        nodes = {n for nodes, others in groups for n in itertools.chain(nodes, others)}
        out: dict[peers.Node, list[bytes]] = {}
        staged = {self._stage_base + c.ref: i for i in nodes if isinstance(i, int)
                  for c in clusters[i]}  # fmt: skip
        given = self._staged_signatures
        unsigned: list[int] = []
        maybe_repeats: list[int] = []
        for rid, i in staged.items():
            if rid not in given:
                unsigned.append(rid)
            elif self._cold and len(clusters[i]) > 1:
                # a repeat a cold run staged (the article and content of one staged before)
                # has no row, and gives no signature: only a cluster of several holds one
                maybe_repeats.append(rid)
            else:
                out.setdefault(i, []).append(given[rid])
        for k in range(0, len(maybe_repeats), 500):
            chunk = maybe_repeats[k : k + 500]
            for (rid,) in self.db.execute(
                f"SELECT id FROM revisions WHERE id IN ({', '.join('?' * len(chunk))})", chunk
            ):
                out.setdefault(staged[rid], []).append(given[rid])
        for k in range(0, len(unsigned), 500):
            chunk = unsigned[k : k + 500]
            rows = self.db.execute(
                f"SELECT id, record FROM revisions WHERE id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            signed = signatures([article_from_json(unpack_record(record)) for _, record in rows])
            for (rid, _), sig in zip(rows, signed, strict=True):
                out.setdefault(staged[rid], []).append(sig)
        stored_ids = [n for n in nodes if isinstance(n, str)]
        for k in range(0, len(stored_ids), 500):
            ids = stored_ids[k : k + 500]
            rows = self.db.execute(
                "SELECT a.id, a.signature, COALESCE(a.record, r.record) FROM articles a"
                " JOIN revisions r ON r.article_id = a.id AND r.content_hash = a.content_hash"
                f" WHERE a.id IN ({', '.join('?' * len(ids))})",
                ids,
            ).fetchall()
            made = iter(signatures([article_from_json(unpack_record(record))
                                    for _, sig, record in rows if not _current(sig)]))  # fmt: skip
            kept: list[tuple[bytes, str]] = []
            for aid, sig, _ in rows:
                if not _current(sig):  # missing, or an older format: made again, and kept
                    sig = next(made)
                    kept.append((sig, aid))
                out[aid] = [sig]
            self.db.executemany("UPDATE articles SET signature = ? WHERE id = ?", kept)
        return out

    def _stored(self, ids: Sequence[str]) -> dict[str, dedupe.Stored]:
        """These stored articles with their kept history, as deciding needs them. No
        revision ranks above the article's stored `updated` (a date mended since it was
        stored, such as a future one not believed, is the one that counts); each carries
        when it was first seen, which breaks ties of `updated` (`Candidate.rank`)."""
        heads: dict[str, tuple[str, str, dedupe.Fields, str]] = {}
        history: dict[str, list[Candidate]] = {}
        for k in range(0, len(ids), 500):
            chunk = ids[k : k + 500]
            marks = ", ".join("?" * len(chunk))
            for aid, published, updated, site, fields, content_hash in self.db.execute(
                "SELECT id, published, updated, site, fields, content_hash FROM articles"
                f" WHERE id IN ({marks})",
                chunk,
            ):
                heads[aid] = (published, site or "", _fields(fields, content_hash), updated)
            for aid, record, seen in self.db.execute(
                f"SELECT article_id, record, seen FROM revisions WHERE article_id IN ({marks})",
                chunk,
            ):
                c = dedupe.candidate(-1, article_from_json(unpack_record(record)))
                c = c._replace(updated=min(c.updated, heads[aid][3]), seen=seen)
                history.setdefault(aid, []).append(c)
        return {
            aid: dedupe.Stored(id=aid, published=published, site=site, fields=fields,
                               revisions=tuple(history.get(aid, ())))
            for aid, (published, site, fields, _) in heads.items()
        }  # fmt: skip

    def _aliases(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT alias, article_id FROM article_aliases"))

    def merges(self) -> int:
        """Articles merged into another (their ids kept as aliases)."""
        with self._translate("counting"):
            row = self.db.execute("SELECT COUNT(*) FROM article_aliases").fetchone()
        return int(row[0])

    # -- applying decisions --------------------------------------------------------------
    def _expired(
        self, group: Sequence[Candidate], before: datetime | None, keep_newest: int
    ) -> bool:
        """A new cluster that is an article retention removed (a match key of it is
        remembered in `expired`) and would remove again: first seen before `before` and not
        among the newest `keep_newest`. It stays out, or a feed or file still offering it
        would add it back and see it expire again every run."""
        if self._any_expired is None:
            self._any_expired = (
                self.db.execute("SELECT 1 FROM expired LIMIT 1").fetchone() is not None
            )
        if not self._any_expired:
            return False
        keys = sorted({k for c in group for k in c.keys})
        row = self.db.execute(
            "SELECT MIN(e.first_seen) FROM expired_keys k JOIN expired e"
            f" ON e.article_id = k.article_id WHERE k.match_key IN ({', '.join('?' * len(keys))})",
            keys,
        ).fetchone()
        if row[0] is None:
            return False
        if before is None or row[0] >= utc_text(before):
            self._revived = True  # back: expire() restores its first_seen
            return False
        earliest = min(c.published for c in group)
        row = self.db.execute(
            "SELECT COUNT(*) FROM articles WHERE published > ?", (earliest,)
        ).fetchone()
        if int(row[0]) < keep_newest:
            self._revived = True
            return False
        return True

    def _insert_new(self, plans: Sequence[dedupe.Plan], seen: str) -> None:
        """Articles no stored key points to: plain batched inserts (the cold-start path)."""
        self.db.executemany(
            "INSERT INTO articles (id, published, updated, has_link, content_hash, source,"
            " first_seen, last_changed, site, fields, record)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                (p.id, p.published, best.updated, int(best.has_link), best.content_hash,
                 best.source, seen, seen, p.site or None,
                 *((None, None) if p.fields.plain else self._composed(p)))
                for p in plans for best in (p.best,)
            ),
        )  # fmt: skip
        self.db.executemany(
            "INSERT INTO article_keys (match_key, article_id) VALUES (?, ?)"
            " ON CONFLICT DO NOTHING",
            ((k, p.id) for p in plans for k in _keys_of(p.members)),
        )  # fmt: skip
        founds = self._founds if self._cold else {}  # every record a cold run staged
        pairs = (
            (p.id, c) for p in plans  # in a cold run, not those staged under the id they found
            for c in p.members if founds.get(c.keys[0]) != p.id
        )  # fmt: skip
        self._insert_revisions(pairs, seen)
        self._set_categories([(p.id, p.published, p.categories) for p in plans])
        for p in plans:
            if len(p.members) > KEEP_REVISIONS:
                self._prune(p.id, p.fields)

    def _composed(self, plan: dedupe.Plan) -> tuple[str | None, bytes | None]:
        """(fields column, published record) of a plan: both None when one revision gives
        every field (its own record is published)."""
        if plan.fields.plain:
            return None, None
        wanted = set(plan.fields)
        records: dict[str, Article] = {}
        refs = [self._stage_base + c.ref for c in plan.members if c.content_hash in wanted] or [0]
        rows = self.db.execute(
            f"SELECT content_hash, record FROM revisions WHERE id IN ({', '.join('?' * len(refs))})"
            " OR article_id = ?",
            (*refs, plan.id if plan.stored is not None else None),
        )
        for content_hash, record in rows:
            if content_hash in wanted:
                records[content_hash] = article_from_json(unpack_record(record))
        return " ".join(plan.fields), pack_record(dedupe.compose(plan.fields, records))

    def _apply(self, plan: dedupe.Plan, seen: str, counts: MergeCounts) -> None:
        """Merge this run's revisions (and any bridged articles) into a stored article."""
        aid = plan.id
        for old in plan.retired:
            self.db.execute("UPDATE article_keys SET article_id = ? WHERE article_id = ?",
                               (aid, old))  # fmt: skip
            self.db.execute(
                "DELETE FROM revisions WHERE article_id = ? AND content_hash IN"
                " (SELECT content_hash FROM revisions WHERE article_id = ?)",
                (old, aid),
            )
            self.db.execute("UPDATE revisions SET article_id = ? WHERE article_id = ?",
                               (aid, old))  # fmt: skip
            self._drop_categories("?", (old,))
            self.db.execute("DELETE FROM articles WHERE id = ?", (old,))
            self.db.execute("UPDATE article_aliases SET article_id = ? WHERE article_id = ?",
                               (aid, old))  # fmt: skip
            self.db.execute(
                "INSERT INTO article_aliases (alias, article_id) VALUES (?, ?)", (old, aid)
            )
            counts.merged += 1
        self.db.executemany(
            "INSERT INTO article_keys (match_key, article_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            ((k, aid) for k in _keys_of(plan.members)),
        )
        self._insert_revisions(((aid, c) for c in plan.members), seen)
        if plan.changed:
            fields, record = self._composed(plan)
            best = plan.best
            self.db.execute(
                "UPDATE articles SET published = ?, updated = ?, has_link = ?, content_hash = ?,"
                " source = ?, site = ?, fields = ?, record = ?, last_changed = ?,"
                " signature = CASE WHEN content_hash = ? THEN signature END WHERE id = ?",
                (plan.published, best.updated, int(best.has_link), best.content_hash,
                 best.source, plan.site or None, fields, record, seen, best.content_hash,
                 aid),
            )  # fmt: skip
            self._set_categories([(aid, plan.published, plan.categories)], replace=True)
            counts.updated += 1
        else:
            if plan.site and plan.stored is not None and not plan.stored.site:
                self.db.execute("UPDATE articles SET site = ? WHERE id = ?", (plan.site, aid))
            counts.unchanged += 1
        self._prune(aid, plan.fields)

    def _insert_revisions(self, rows: Iterable[tuple[str | None, Candidate]], seen: str) -> None:
        """Give staged revisions their article (None: none); a repeat of a revision the
        article has is left unowned, and deleted at the end of the merge."""
        self.db.executemany(
            "UPDATE revisions SET seen = ?, article_id = CASE WHEN EXISTS ("
            " SELECT 1 FROM revisions WHERE article_id = ? AND content_hash = ?)"
            " THEN NULL ELSE ? END WHERE id = ?",
            ((seen, aid, c.content_hash, aid, self._stage_base + c.ref) for aid, c in rows),
        )

    def _prune(self, aid: str, fields: dedupe.Fields) -> None:
        """Keep the newest KEEP_REVISIONS revisions (by `updated`, then first seen), and
        always those published fields come from."""
        kept = sorted(set(fields))
        self.db.execute(
            "DELETE FROM revisions WHERE article_id = ?"
            f" AND content_hash NOT IN ({', '.join('?' * len(kept))})"
            " AND content_hash NOT IN (SELECT content_hash FROM revisions WHERE article_id = ?"
            " ORDER BY updated DESC, seen DESC, content_hash DESC LIMIT ?)",
            (aid, *kept, aid, KEEP_REVISIONS),
        )

    # -- reading for publication ---------------------------------------------------------
    def latest(self, limit: int) -> list[Entry]:
        """The newest `limit` articles by GİRİŞ, newest first (ties by id, stable)."""
        with self._translate("reading articles"):
            rows = self.db.execute(_ENTRY_SELECT + " LIMIT ?", (limit,)).fetchall()
        return [entry_from_row(*r) for r in rows]

    def revisions(self, aid: str) -> list[Article]:
        with self._translate("reading revisions"):
            rows = self.db.execute(
                "SELECT record FROM revisions WHERE article_id = ?"
                " ORDER BY updated DESC, content_hash DESC",
                (aid,),
            ).fetchall()
        return [article_from_json(unpack_record(r[0])) for r in rows]

    def count(self, source: str | None = None) -> int:
        """Stored articles (of `source`): the total is kept, not counted (every publish
        shows it)."""
        with self._translate("counting"):
            if source is None:
                row = self.db.execute(
                    "SELECT COALESCE(SUM(value), 0) FROM store_counts WHERE name = 'articles'"
                ).fetchone()
            else:
                row = self.db.execute(
                    "SELECT COUNT(*) FROM articles WHERE source = ?", (source,)
                ).fetchone()
        return int(row[0])

    def _count_articles(self, change: int) -> None:
        if change:
            self.db.execute(
                "INSERT INTO store_counts (name, value) VALUES ('articles', ?)"
                " ON CONFLICT (name) DO UPDATE SET value = store_counts.value + excluded.value",
                (change,),
            )

    # -- retention: counted from first_seen; what it removed is remembered ------------------
    _DOOMED = (
        "SELECT id FROM articles WHERE first_seen < ?"
        " AND id NOT IN (SELECT id FROM articles ORDER BY published DESC, id DESC LIMIT ?)"
    )

    def expire(self, before: datetime | None, keep_newest: int, now: datetime) -> int:
        """Remove articles first seen before `before` (None: none), never the newest
        `keep_newest` by GİRİŞ, never one stored by this run (first seen now). Each is
        remembered in `expired` (its match keys, first_seen and inputs), so a feed or file
        still offering it does not add it back while it would expire again, and raising
        retention can bring it back (`reopen_expired`). Articles the merge brought back get
        their first_seen again. Returns how many were removed."""
        with self.transaction():
            if self._revived:
                self._restore_first_seen()
            if before is None:
                return 0
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS doomed (id TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM doomed")
            doomed = self.db.execute(
                "INSERT INTO doomed (id) " + self._DOOMED, (utc_text(before), keep_newest)
            ).rowcount
            if doomed:
                self._remember_expired(utc_text(now))
                self._touch_feeds_of_selected("SELECT id FROM doomed")
                self._drop_categories("SELECT id FROM doomed")
                for table, column in (("articles", "id"), ("article_keys", "article_id"),
                                      ("revisions", "article_id")):  # fmt: skip
                    self.db.execute(
                        f"DELETE FROM {table} WHERE {column} IN (SELECT id FROM doomed)"
                    )
                self.db.execute("DELETE FROM doomed")
                self._count_articles(-doomed)
                self._mark_publish_pending()
        return doomed

    def _remember_expired(self, now: str) -> None:
        """Tombstones for the articles in `doomed`; those expired over a year ago are
        forgotten (the bound on this table: an input still offering one then adds it anew)."""
        self.db.execute(
            "DELETE FROM expired_keys WHERE article_id IN"
            " (SELECT article_id FROM expired WHERE expired_at < ?)", (_year_before(now),)
        )  # fmt: skip
        self.db.execute("DELETE FROM expired WHERE expired_at < ?", (_year_before(now),))
        origins: dict[str, list[str]] = {}
        for aid, origin in self.db.execute(
            "SELECT DISTINCT article_id, origin FROM revisions"
            " WHERE article_id IN (SELECT id FROM doomed)"
        ):
            origins.setdefault(aid, []).append(origin)
        self.db.executemany(
            "INSERT INTO expired (article_id, first_seen, expired_at, origins)"
            " SELECT id, first_seen, ?, ? FROM articles WHERE id = ?"
            " ON CONFLICT (article_id) DO UPDATE SET expired_at = excluded.expired_at,"
            " origins = excluded.origins",
            ((now, "\n".join(sorted(o)), aid) for aid, o in origins.items()),
        )
        self.db.execute(
            "INSERT INTO expired_keys (match_key, article_id) SELECT match_key, article_id"
            " FROM article_keys WHERE article_id IN (SELECT id FROM doomed)"
            " ON CONFLICT (match_key) DO UPDATE SET article_id = excluded.article_id"
        )
        self._any_expired = True

    def _restore_first_seen(self) -> None:
        """Articles stored again whose keys were remembered as expired: their first_seen is
        the original one (retention counts from it), and the tombstone goes."""
        self.db.execute(
            "UPDATE articles SET first_seen = (SELECT MIN(e.first_seen) FROM article_keys k"
            " JOIN expired_keys x ON x.match_key = k.match_key"
            " JOIN expired e ON e.article_id = x.article_id WHERE k.article_id = articles.id)"
            " WHERE id IN (SELECT k.article_id FROM article_keys k"
            " JOIN expired_keys x ON x.match_key = k.match_key)"
        )
        self.db.execute(
            "DELETE FROM expired WHERE article_id IN (SELECT x.article_id FROM expired_keys x"
            " JOIN article_keys k ON k.match_key = x.match_key)"
        )
        self.db.execute(
            "DELETE FROM expired_keys WHERE article_id NOT IN (SELECT article_id FROM expired)"
        )
        self._revived = False

    def reopen_expired(self, before: datetime | None, setting: str) -> int:
        """When the retention setting differs from the last run's: forget how the inputs of
        the expired articles it would keep were last seen (their seed files' state; every
        web source's validators and due time), so this run reads them again and brings the
        articles back. Returns how many such articles there are."""
        if self.publish_state("retention") == setting:
            return 0
        with self.transaction():
            rows = self.db.execute(
                "SELECT origins FROM expired WHERE first_seen >= ?",
                (utc_text(before) if before is not None else "",),
            ).fetchall()
            paths = [(o,) for (origins,) in rows for o in origins.split("\n")]
            self.db.executemany("DELETE FROM seed_files WHERE path = ?", paths)
            if rows:
                self.db.execute(
                    "UPDATE source_state SET etag = NULL, last_modified = NULL,"
                    " feed_digest = NULL, next_due = NULL"
                )
            self.set_publish_state({"retention": setting})
        return len(rows)

    def expired_count(self) -> int:
        """Articles retention removed (and remembered, up to a year)."""
        with self._translate("counting"):
            return int(self.db.execute("SELECT COUNT(*) FROM expired").fetchone()[0])

    def would_expire(self, before: datetime, keep_newest: int) -> int:
        """How many stored articles `expire(before, keep_newest)` would remove."""
        with self._translate("counting"):
            row = self.db.execute(
                "SELECT COUNT(*) FROM (" + self._DOOMED + ") AS doomed",
                (utc_text(before), keep_newest),
            ).fetchone()
        return int(row[0])

    # -- categories and publishing (per-category feeds, "nothing changed" skip) -------------
    def _set_categories(
        self, rows: Sequence[tuple[str, str, tuple[str, ...]]], replace: bool = False
    ) -> None:
        """(article id, its GİRİŞ, its published categories) -> article_categories rows,
        counted in category_names. Without `replace` the articles have no rows yet."""
        if replace:
            for i in range(0, len(rows), 500):
                chunk = [aid for aid, _, _ in rows[i : i + 500]]
                self._drop_categories(", ".join("?" * len(chunk)), chunk)
        slugs: dict[tuple[str, ...], list[tuple[str, str]]] = {}  # a feed's few category sets
        for _, _, categories in rows:
            if categories not in slugs:
                slugs[categories] = category_slugs(categories)
        added = [(aid, slug, name, published) for aid, published, categories in rows
                 for slug, name in slugs[categories]]  # fmt: skip
        self.db.executemany(
            "INSERT INTO article_categories (article_id, slug, name, published)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            added,
        )
        self._count_names(Counter((slug, name) for _, slug, name, _ in added))

    def _drop_categories(self, ids_sql: str, ids: Sequence[str] = ()) -> None:
        """Delete the category rows of these articles, and their counts."""
        counts = {
            (slug, name): -int(n) for slug, name, n in self.db.execute(
                "SELECT slug, name, COUNT(*) FROM article_categories"
                f" WHERE article_id IN ({ids_sql}) GROUP BY slug, name", ids)
        }  # fmt: skip
        if counts:
            self.db.execute(f"DELETE FROM article_categories WHERE article_id IN ({ids_sql})", ids)
            self._count_names(counts)
            self.db.execute("DELETE FROM category_names WHERE articles <= 0")

    def _count_names(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Add these to category_names' article counts (a name's first row made)."""
        self.db.executemany(
            "INSERT INTO category_names (slug, name, articles) VALUES (?, ?, ?)"
            " ON CONFLICT (slug, name) DO UPDATE"
            " SET articles = category_names.articles + excluded.articles",
            ((slug, name, n) for (slug, name), n in counts.items()),
        )

    def categories(self) -> list[tuple[str, str, int]]:
        """(slug, display name, article count) of every category, by slug: from the kept
        counts (as many rows as categories, whatever the store holds)."""
        with self._translate("reading categories"):
            rows = self.db.execute(
                "SELECT slug, MIN(name), SUM(articles) FROM category_names"
                " GROUP BY slug ORDER BY slug"
            ).fetchall()
        return [(slug, name, int(n)) for slug, name, n in rows]

    def select(
        self, limit: int, *, sources: Sequence[str] = (), categories: Sequence[str] = (),
        keep: Callable[[Article], bool] | None = None,
    ) -> list[Entry]:  # fmt: skip
        """The newest `limit` articles from any of `sources` and in any of the category
        slugs (each only when given) that `keep` accepts, newest first. With `keep`, rows
        are read until `limit` are kept (a rare match reads many)."""
        found: list[Entry] = []
        with self._translate("reading articles"):
            rows = self._newest(sources, categories, limit)
            batch = limit if keep is None else max(limit, 100)  # keep: records read in batches
            while len(found) < limit:
                ids = [aid for _, aid, _ in itertools.islice(rows, batch)]
                if not ids:
                    break
                entries = self._entries_by_ids(ids)
                found += entries if keep is None else [e for e in entries if keep(e.article)]
        return found[:limit]

    def select_versions(
        self, limit: int, *, sources: Sequence[str] = (), categories: Sequence[str] = ()
    ) -> list[tuple[str, str, str]]:
        """(id, GİRİŞ, version) of what `select` would return, without reading a record:
        the version (content hash and field sources) changes whenever the published
        record does."""
        with self._translate("reading articles"):
            rows = itertools.islice(self._newest(sources, categories, limit), limit)
            return [(aid, published, version) for published, aid, version in rows]

    def versions_and_entries(
        self, limit: int, *, sources: Sequence[str] = (), categories: Sequence[str] = ()
    ) -> tuple[list[tuple[str, str, str]], PackedEntries]:
        """`select_versions` and `entries_by_ids` of its ids in one index walk (a feed sure
        to be rendered: one statement instead of two)."""
        versions: list[tuple[str, str, str]] = []
        rows: list[Row] = []
        with self._translate("reading articles"):
            newest = self._newest(sources, categories, limit, records=True)
            for published, aid, version, record, revision in itertools.islice(newest, limit):
                versions.append((aid, published, version))
                if revision is not None:  # as _rows_by_ids: the record's revision is there
                    rows.append((aid, published, record))
        return versions, PackedEntries(rows)

    def _newest(
        self, sources: Sequence[str], categories: Sequence[str], page: int,
        records: bool = False,
    ) -> Iterator[tuple[Any, ...]]:  # fmt: skip
        """(GİRİŞ, id, version) of the articles from any of `sources` in any of `categories`,
        newest first: one index walk per category (else per source), merged. Each reads
        `page` rows, then twice as many each time more are wanted, so a feed of `page`
        entries costs about `page` rows whatever the store or the category holds (with both
        sources and categories, a category's rows of other sources are skipped on the way).
        `records`: each row also has the packed record and its revision's article id (None:
        no such revision)."""
        by_category, by_source, by_any = _WITH_RECORDS if records else _WALKS
        if categories:
            of_sources = f" AND a.source IN ({', '.join('?' * len(sources))})" if sources else ""
            walks = [self._walk(by_category, of_sources, [slug, *sources], page)
                     for slug in dict.fromkeys(categories)]  # fmt: skip
        elif sources:
            walks = [self._walk(by_source, "", [s], page) for s in dict.fromkeys(sources)]
        else:
            walks = [self._walk(by_any, "", [], page)]
        # once each: an article in two of the categories, or one that a merge committed
        # between two pages of a walk moved (each page is its own statement)
        seen: set[str] = set()
        for row in heapq.merge(*walks, key=lambda r: (r[0], r[1]), reverse=True):
            if row[1] not in seen:
                seen.add(row[1])
                yield row

    def _walk(
        self, sql: str, where: str, params: list[str], page: int
    ) -> Iterator[tuple[Any, ...]]:
        after: tuple[str, ...] = ()
        while True:
            rows = self.db.execute(
                sql.format(where + (_AFTER[sql] if after else "")), (*params, *after, page)
            ).fetchall()
            yield from (tuple(r) for r in rows)
            if len(rows) < page:
                return
            after, page = (rows[-1][0], rows[-1][1]), min(2 * page, 5_000)

    def ids_oldest_first(self) -> list[tuple[str, str]]:
        """(id, content hash) of every article, oldest GİRİŞ first: archive page boundaries."""
        with self._translate("reading articles"):
            return [(r[0], r[1]) for r in self.db.execute(
                "SELECT id, content_hash || COALESCE(fields, '') FROM articles"
                " ORDER BY published, id")]  # fmt: skip

    def entries_by_ids(self, ids: Sequence[str]) -> PackedEntries:
        """These articles, in the order given, as stored: decoded where they are read."""
        with self._translate("reading articles"):
            return PackedEntries(self._rows_by_ids(ids))

    def _entries_by_ids(self, ids: Sequence[str]) -> list[Entry]:
        return [entry_from_row(*row) for row in self._rows_by_ids(ids)]

    def _rows_by_ids(self, ids: Sequence[str]) -> list[Row]:
        got: dict[str, Row] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            sql = _ENTRY_SELECT.partition(" ORDER BY")[0]  # put in order here
            sql += f" WHERE a.id IN ({', '.join('?' * len(chunk))})"
            got.update((r[0], (r[0], r[1], r[2])) for r in self.db.execute(sql, chunk))
        return [got[i] for i in ids if i in got]

    def publish_state(self, key: str) -> str | None:
        with self._translate("reading publish state"):
            row = self.db.execute(
                "SELECT value FROM publish_state WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else str(row[0])

    def set_publish_state(self, values: dict[str, str | None]) -> None:
        """Set (or, with None, delete) publish-state keys in one transaction."""
        with self.transaction():
            for key, value in values.items():
                self.db.execute("DELETE FROM publish_state WHERE key = ?", (key,))
                if value is not None:
                    self.db.execute(
                        "INSERT INTO publish_state (key, value) VALUES (?, ?)", (key, value)
                    )

    def publish_states(self, prefix: str) -> dict[str, str]:
        """Every publish-state key starting with `prefix` (without it) -> its value."""
        with self._translate("reading publish state"):
            rows = self.db.execute(
                "SELECT substr(key, ?), value FROM publish_state WHERE key >= ? AND key < ?",
                (len(prefix) + 1, prefix, prefix + "\U0010ffff"),
            ).fetchall()
        return {str(key): str(value) for key, value in rows}

    def forget_published_feeds(self) -> None:
        """Every feed is rebuilt by the next publish (settings or code changed)."""
        with self.transaction():
            self.db.execute(
                "DELETE FROM publish_state WHERE key LIKE 'feed:%' OR key LIKE 'digest:%'"
            )

    def _touch_feeds_of(self, ids: Sequence[str]) -> None:
        if not self._feeds_published:
            return
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            self._touch_feeds_of_selected(", ".join("?" * len(chunk)), chunk)

    def _touch_feeds_of_selected(self, ids_sql: str, ids: Sequence[str] = ()) -> None:
        """Forget that the source and category feeds of these articles are published (in
        the merge's or expiry's transaction): the next publish rebuilds those feeds, and
        only those, and a crash before it has published them leaves them to the one after."""
        self.db.execute(
            "DELETE FROM publish_state WHERE key IN ("
            f"SELECT 'feed:sources/' || source || '/' FROM articles WHERE id IN ({ids_sql})"
            " UNION SELECT 'feed:categories/' || slug || '/' FROM article_categories"
            f" WHERE article_id IN ({ids_sql}))",
            (*ids, *ids),
        )

    def _mark_publish_pending(self) -> None:
        """A new token for every change: a publish clears only the token it started from,
        so a merge committed while it renders (another node's) is published next time."""
        self.db.execute("DELETE FROM publish_state WHERE key = 'pending'")
        self.db.execute(
            "INSERT INTO publish_state (key, value) VALUES ('pending', ?)", (secrets.token_hex(8),)
        )

    def finish_publish(
        self, started: str | None, values: dict[str, str | None], *, done: bool = True
    ) -> None:
        """Save a publish's state. It began when `pending` was `started`; `done`: it wrote
        everything, so `pending` is cleared. If a merge came in meanwhile, `pending` stays and
        the feeds' marks of being published (`feed:`) are left out: the next publish reads
        those feeds again (their digests say which really changed)."""
        with self.transaction():
            if self.publish_state("pending") != started:
                values = {k: v for k, v in values.items() if not k.startswith("feed:")}
            elif done:
                values = {"pending": None, **values}
            self.set_publish_state(values)


_VERSION = "a.content_hash || COALESCE(a.fields, '')"
_BY_CATEGORY = (
    f"SELECT c.published, c.article_id, {_VERSION} FROM article_categories c"
    " JOIN articles a ON a.id = c.article_id WHERE c.slug = ?{}"
    " ORDER BY c.published DESC, c.article_id DESC LIMIT ?"
)
_BY_SOURCE = (
    f"SELECT a.published, a.id, {_VERSION} FROM articles a WHERE a.source = ?{{}}"
    " ORDER BY a.published DESC, a.id DESC LIMIT ?"
)
_BY_ANY = _BY_SOURCE.replace(" WHERE a.source = ?{}", " WHERE 1 = 1{}")
_AFTER = {  # a walk's next page: the rows after the last one read, in its index's order
    _BY_CATEGORY: " AND (c.published, c.article_id) < (?, ?)",
    _BY_SOURCE: " AND (a.published, a.id) < (?, ?)",
    _BY_ANY: " AND (a.published, a.id) < (?, ?)",
}
_WALKS = (_BY_CATEGORY, _BY_SOURCE, _BY_ANY)


def _with_records(sql: str) -> str:
    """A walk that also reads each row's packed record (as _ENTRY_SELECT does)."""
    columns, _, rest = sql.partition(" FROM ")
    tables, _, where = rest.partition(" WHERE ")
    return (
        f"{columns}, COALESCE(a.record, r.record), r.article_id FROM {tables}"
        " LEFT JOIN revisions r ON r.article_id = a.id AND r.content_hash = a.content_hash"
        f" WHERE {where}"
    )


_WITH_RECORDS = tuple(_with_records(sql) for sql in _WALKS)
_AFTER.update({_with_records(sql): _AFTER[sql] for sql in _WALKS})

_ENTRY_SELECT = (
    "SELECT a.id, a.published, COALESCE(a.record, r.record) FROM articles a"
    " JOIN revisions r ON r.article_id = a.id AND r.content_hash = a.content_hash"
    " ORDER BY a.published DESC, a.id DESC"
)


def _keys_of(members: Sequence[Candidate]) -> Iterable[str]:
    """The match keys of these revisions, each once (one revision's are distinct: one of
    each kind)."""
    return members[0].keys if len(members) == 1 else {k for c in members for k in c.keys}


def _shares_key(pair: tuple[peers.Node, peers.Node], matches: dict[int, set[str]]) -> bool:
    a, b = pair
    return isinstance(a, int) and isinstance(b, str) and b in matches.get(a, ())


def _current(sig: bytes | None) -> bool:
    return sig is not None and signature_is_current(sig)


def _fields(column: str | None, content_hash: str) -> dedupe.Fields:
    """The stored `fields` column: None (every field from the one published revision)."""
    if column is None:
        return dedupe.Fields(*(content_hash,) * 6)
    return dedupe.Fields(*column.split(" "))


def _year_before(when: str) -> str:
    return utc_text(parse_time(when) - timedelta(days=365))
