"""The store: articles with bounded revision history, match keys, seed-file and source
state, publish state. One `Store` over two backends: SQLite (`store/sqlite.py`, one file,
the default) and PostgreSQL (`store/postgres.py`, one database for several nodes). Its SQL
is in `articles.py` (staging, merging, retention, reading for publication) and `state.py`
(seed-file and source state); `schema.py` holds the migrations both backends run.

Plain SQL with `?` parameters, no backend-only types and upserts as `ON CONFLICT`; the
backend runs it (translating it for PostgreSQL) and owns connections, locks and
transactions. Every driver error is translated to StoreError naming the store.
"""

from __future__ import annotations

from pathlib import Path

from aggregator.errors import StoreError
from aggregator.store import sqlite
from aggregator.store.articles import KEEP_REVISIONS, ArticleStore, MergeCounts
from aggregator.store.db import Database, is_url, redact
from aggregator.store.schema import BACKFILLS, MIGRATIONS, SCHEMA_VERSION
from aggregator.store.state import FIRST_SEEN_PER_SOURCE, FULLTEXT_PAGES_PER_SOURCE, StateStore

__all__ = [
    "FIRST_SEEN_PER_SOURCE", "FULLTEXT_PAGES_PER_SOURCE", "KEEP_REVISIONS", "MergeCounts",
    "Store", "describe", "exists", "lock_holder",
]  # fmt: skip


def describe(target: Path | str) -> str:
    """A store as messages name it: its file, or its URL without the password."""
    return redact(str(target)) if is_url(target) else str(target)


def exists(target: Path | str) -> bool:
    """The store has been created (a PostgreSQL database: its schema has)."""
    if not is_url(target):
        return Path(target).exists()
    from aggregator.store import postgres  # psycopg is imported only for such a store

    return postgres.exists(str(target))


def lock_holder(target: Path | str) -> tuple[int, str] | None:
    """(pid, what) of the process holding a SQLite store's lock, or None (nobody does; a
    PostgreSQL store has no such lock)."""
    return None if is_url(target) else sqlite.lock_holder(Path(target))


class Store(ArticleStore, StateStore):
    """The one owner of the store's connection. Use `Store.open(target)` as a context
    manager.

    Not thread-safe: callers use it from one thread at a time (the daemon serializes runs)."""

    # -- lifecycle -------------------------------------------------------------------
    @classmethod
    def open(
        cls, target: Path | str, *, lock: bool = True, readonly: bool = False, holder: str = ""
    ) -> Store:
        """`target`: a SQLite file, or a `postgresql://` URL (Config.state_url, with its
        password). `lock` and `holder` are SQLite's: the file lock refuses a second writer,
        and `holder` says who took it, as `status` shows it ("daemon", "regenerate")."""
        db: Database
        if is_url(target):
            from aggregator.store import postgres

            db = postgres.Postgres(str(target), readonly=readonly)
        else:
            db = sqlite.SQLite(Path(target), lock=lock, readonly=readonly, holder=holder)
        store = cls(db)
        try:
            store._prepare(readonly)
        except BaseException:
            store.close()
            raise
        return store

    def _prepare(self, readonly: bool) -> None:
        with self._translate("reading"):
            version = self._version()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.name}: state schema version {version} is newer than this aggregator "
                    f"understands ({SCHEMA_VERSION}); upgrade the aggregator"
                )
            self.db.configure(readonly)
            if version < SCHEMA_VERSION:
                if readonly and version == 0:
                    raise StoreError(f"{self.name}: no state yet (run `aggregator regenerate` "
                                     "first)")  # fmt: skip
                if readonly:
                    raise StoreError(f"{self.name}: state needs migrating; run regenerate once")
                self._migrate()

    def _version(self) -> int:
        tables = self.db.tables()
        if "schema_meta" not in tables:
            if tables:
                raise StoreError(f"{self.name}: not an aggregator state store (unknown tables)")
            return 0
        row = self.db.execute("SELECT value FROM schema_meta WHERE key = 'version'").fetchone()
        try:
            return int(row[0]) if row else 0
        except ValueError:
            raise StoreError(
                f"{self.name}: damaged schema version {row[0]!r} (restore a backup)"
            ) from None

    def _migrate(self) -> None:
        with self.transaction():
            version = self._version()  # again, now that this writer has the store alone
            if version == 0:
                self.db.execute("CREATE TABLE IF NOT EXISTS schema_meta (key TEXT PRIMARY KEY,"
                                " value TEXT)")  # fmt: skip
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[target].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                if target in BACKFILLS:
                    BACKFILLS[target](self.db)
            self.db.execute(
                "INSERT INTO schema_meta (key, value) VALUES ('version', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )

    def limit_cache(self, kib: int) -> None:
        """Cap the connection's cache: a daemon would otherwise keep SQLite's full for good
        (a bulk `regenerate` wants the larger default)."""
        with self._translate("configuring"):
            self.db.limit_cache(kib)

    @staticmethod
    def importing(target: Path | str) -> bool:
        """A first run into this empty SQLite store is under way, or was killed (see
        `sqlite.importing`); never for PostgreSQL, whose readers do not wait for it."""
        return not is_url(target) and sqlite.importing(Path(target))
