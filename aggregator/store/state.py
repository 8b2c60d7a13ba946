"""Per-source state: seed files as last read, web sources' validators and back-off,
`fulltext` item pages kept for conditional GET, and first-seen dates of undated items."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from aggregator.model import SeedFileState, SourceState
from aggregator.records import (
    pack_text,
    parse_time,
    unpack_record,
    utc_text,
)
from aggregator.store.base import StoreBase

FIRST_SEEN_PER_SOURCE = 10_000
"""First-seen times kept per source: far more than one feed document serves at once, so an
item still served keeps its time; the table stays bounded however many ids a feed invents."""
FULLTEXT_PAGES_PER_SOURCE = 2_500
"""Item pages kept per `fulltext` source (validators and body, for conditional GET): beyond
this many, those of items the feed no longer carries are forgotten, least recently answered
first. More than one feed document carries (sources/feed.py MAX_ENTRIES, 2,000), so every
item it still serves keeps its page and the bound always holds."""


class StateStore(StoreBase):
    # -- seed files ----------------------------------------------------------------------
    def seed_files(self, source: str) -> dict[str, SeedFileState]:
        """What each file of the folder was when last read (rejected ones too: a file that
        has not changed since it was rejected is not read, nor reported, again)."""
        with self._translate("reading seed-file state"):
            return {
                path: SeedFileState(size, mtime, digest)
                for path, size, mtime, digest in self.db.execute(
                    "SELECT path, size, mtime_ns, digest FROM seed_files WHERE source = ?",
                    (source,),
                )
            }

    def remember_seed_files(
        self, source: str, rows: Iterable[tuple[str, SeedFileState]], now: datetime,
        rejected: str | None = None,
    ) -> None:  # fmt: skip
        """`rejected`: these files were rejected for this reason (listed by `status`)."""
        seen = utc_text(now)
        with self.transaction():
            self.db.executemany(
                "INSERT INTO seed_files (path, source, size, mtime_ns, digest, seen, rejected)"
                " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (path) DO UPDATE SET"
                " source = excluded.source, size = excluded.size, mtime_ns = excluded.mtime_ns,"
                " digest = excluded.digest, seen = excluded.seen, rejected = excluded.rejected",
                ((p, source, s.size, s.mtime_ns, s.digest, seen, rejected) for p, s in rows),
            )

    def rejected_files(self, source: str) -> list[tuple[str, str, datetime]]:
        """(path, reason, when) of the files of a seed folder rejected as they are now."""
        with self._translate("reading seed-file state"):
            return [
                (path, reason, parse_time(seen))
                for path, reason, seen in self.db.execute(
                    "SELECT path, rejected, seen FROM seed_files"
                    " WHERE source = ? AND rejected IS NOT NULL ORDER BY path",
                    (source,),
                )
            ]

    # -- per-source state ----------------------------------------------------------------
    def source_state(self, name: str) -> SourceState:
        with self._translate("reading source state"):
            row = self.db.execute(
                "SELECT etag, last_modified, last_success, last_error, last_error_at, failures,"
                " next_due, feed_digest FROM source_state WHERE name = ?",
                (name,),
            ).fetchone()
            seen = frozenset(item for (item,) in self.db.execute(
                "SELECT item FROM fulltext_seen WHERE source = ?", (name,)))  # fmt: skip
            pages = {url: (etag, lm) for url, etag, lm in self.db.execute(
                "SELECT url, etag, last_modified FROM fulltext_pages WHERE source = ?",
                (name,))}  # fmt: skip
        if row is None:
            return SourceState(name=name, fulltext_seen=seen or None,
                               fulltext_pages=pages or None)  # fmt: skip
        etag, lm, ok, err, err_at, failures, due, digest = row
        return SourceState(
            name=name, etag=etag, last_modified=lm,
            last_success=parse_time(ok) if ok else None, last_error=err,
            last_error_at=parse_time(err_at) if err_at else None, failures=int(failures),
            next_due=parse_time(due) if due else None, feed_digest=digest,
            fulltext_seen=seen or None, fulltext_pages=pages or None,
        )  # fmt: skip

    def save_source_state(self, state: SourceState) -> None:
        def opt(value: datetime | None) -> str | None:
            return utc_text(value) if value else None

        with self.transaction():
            self.db.execute(
                "INSERT INTO source_state (name, etag, last_modified, last_success,"
                " last_error, last_error_at, failures, next_due, feed_digest)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET"
                " etag = excluded.etag, last_modified = excluded.last_modified,"
                " last_success = excluded.last_success, last_error = excluded.last_error,"
                " last_error_at = excluded.last_error_at, failures = excluded.failures,"
                " next_due = excluded.next_due, feed_digest = excluded.feed_digest",
                (state.name, state.etag, state.last_modified, opt(state.last_success),
                 state.last_error, opt(state.last_error_at), state.failures,
                 opt(state.next_due), state.feed_digest),
            )  # fmt: skip
            if state.fulltext_seen is not None:
                self.db.execute("DELETE FROM fulltext_seen WHERE source = ?", (state.name,))
                self.db.executemany(
                    "INSERT INTO fulltext_seen (source, item) VALUES (?, ?)",
                    ((state.name, item) for item in sorted(state.fulltext_seen)),
                )
                self._bound_fulltext_pages(state.name)

    # -- `fulltext` item pages kept for conditional GET (sources/fulltext.py) -------------
    def fulltext_bodies(self, source: str, urls: Sequence[str]) -> dict[str, str]:
        """The kept page body (extracted HTML) of each of these pages of `source` that has one."""
        bodies: dict[str, str] = {}
        with self._translate("reading full-text pages"):
            for i in range(0, len(urls), 500):
                chunk = urls[i : i + 500]
                for url, body in self.db.execute(
                    "SELECT url, body FROM fulltext_pages WHERE source = ?"
                    f" AND url IN ({', '.join('?' * len(chunk))})",
                    (source, *chunk),
                ):
                    raw = unpack_record(body)
                    bodies[url] = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        return bodies

    def remember_fulltext_pages(
        self, source: str,
        pages: Iterable[tuple[str, str, str | None, str | None, str | None]], now: datetime,
    ) -> None:  # fmt: skip
        """(url, item, etag, last_modified, body) of pages just answered: body None (a 304)
        keeps the stored body. Bounded when the source's state is saved."""
        with self.transaction():
            for url, item, etag, lm, body in pages:
                if body is None:
                    self.db.execute(
                        "UPDATE fulltext_pages SET item = ?, etag = ?, last_modified = ?,"
                        " fetched = ? WHERE source = ? AND url = ?",
                        (item, etag, lm, utc_text(now), source, url),
                    )
                    continue
                self.db.execute(
                    "INSERT INTO fulltext_pages (source, url, item, etag, last_modified, body,"
                    " fetched) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (source, url) DO UPDATE"
                    " SET item = excluded.item, etag = excluded.etag, last_modified ="
                    " excluded.last_modified, body = excluded.body, fetched = excluded.fetched",
                    (source, url, item, etag, lm, pack_text(body), utc_text(now)),
                )

    def _bound_fulltext_pages(self, source: str) -> None:
        (count,) = self.db.execute(
            "SELECT COUNT(*) FROM fulltext_pages WHERE source = ?", (source,)
        ).fetchone()
        if count > FULLTEXT_PAGES_PER_SOURCE:
            self.db.execute(
                "DELETE FROM fulltext_pages WHERE source = ? AND url IN (SELECT url FROM"
                " fulltext_pages p WHERE source = ? AND item NOT IN (SELECT item FROM"
                " fulltext_seen WHERE source = ?) ORDER BY fetched, url LIMIT ?)",
                (source, source, source, count - FULLTEXT_PAGES_PER_SOURCE),
            )

    # -- first-seen dates of undated items (aggregator/firstseen.py) ----------------------
    def first_seen_times(
        self, source: str, keys: Sequence[str], now: datetime
    ) -> dict[str, datetime]:
        """When each of these items of `source` was first seen: `now` for a new one, else
        the time stored then (never recomputed). All of them are marked served `now`; beyond
        FIRST_SEEN_PER_SOURCE rows a source's least recently served are forgotten."""
        served = utc_text(now)
        with self.transaction():
            self.db.executemany(
                "INSERT INTO first_seen (source, item_key, seen, served) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (source, item_key) DO UPDATE SET served = excluded.served",
                ((source, k, served, served) for k in keys),
            )
            times: dict[str, datetime] = {}
            for i in range(0, len(keys), 500):
                chunk = keys[i : i + 500]
                times.update(
                    (k, parse_time(seen))
                    for k, seen in self.db.execute(
                        "SELECT item_key, seen FROM first_seen WHERE source = ?"
                        f" AND item_key IN ({', '.join('?' * len(chunk))})",
                        (source, *chunk),
                    )
                )
            (count,) = self.db.execute(
                "SELECT COUNT(*) FROM first_seen WHERE source = ?", (source,)
            ).fetchone()
            if count > FIRST_SEEN_PER_SOURCE:
                self.db.execute(
                    "DELETE FROM first_seen WHERE source = ? AND item_key NOT IN (SELECT item_key"
                    " FROM first_seen WHERE source = ? ORDER BY served DESC, seen DESC LIMIT ?)",
                    (source, source, FIRST_SEEN_PER_SOURCE),
                )
        return times
