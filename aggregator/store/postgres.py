"""The PostgreSQL backend (psycopg 3): one database shared by every node of a cluster.

The store's portable SQL is translated once per statement (`?` -> `%s`; in DDL, BLOB ->
BYTEA, INTEGER -> BIGINT, TEXT -> TEXT COLLATE "C" so that ordering and range scans are
byte order, as in SQLite, and every node publishes the same bytes as a SQLite store would).
Every writing transaction first takes one transaction-scoped advisory lock (WRITE_LOCK):
staging and merging read the stored state (the next revision id, stored keys) to decide, so
writers of all nodes take turns; readers never wait for it. A lost connection (the server
restarted) fails the statement or transaction it was in with StoreError; the next one
reconnects. Reconnecting happens only between transactions: inside one, a lost connection
fails every later statement of it (never a new connection running the rest outside it),
and a transaction in which a statement failed is never reported committed. There is no
file lock: many nodes share the database.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.pq import TransactionStatus

from aggregator.errors import StoreError
from aggregator.store.db import Rows, redact

WRITE_LOCK = 0x4861626572  # "Haber": the key of the advisory lock every writer takes
_DDL = (
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
    (re.compile(r"\s*\bWITHOUT ROWID\b"), ""),
)
_cursor_names = itertools.count(1)
_MANY_ROWS = re.compile(  # an insert of one row of values, kept or skipped on a conflict
    r"(?P<head>\s*INSERT INTO \w+ \([^)]*\) VALUES )(?P<row>\((?:\?, )*\?\))"
    r"(?P<tail>(?: ON CONFLICT(?: \([^)]*\))? DO NOTHING)?\s*)",
    re.IGNORECASE,
)
ROWS_PER_INSERT = 500
"""Rows a batched insert sends in one statement (far below PostgreSQL's 65,535 parameters
for the store's widest row): one round trip instead of one per row."""
T = TypeVar("T")


@functools.lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """The store's portable SQL as psycopg takes it."""
    out = sql.replace("%", "%%").replace("?", "%s")
    if out.lstrip().upper().startswith(("CREATE", "ALTER")):
        for pattern, replacement in _DDL:
            out = pattern.sub(replacement, out)
    return out


class Postgres:
    errors: tuple[type[Exception], ...] = (psycopg.Error,)

    def __init__(self, url: str, *, readonly: bool = False) -> None:
        self.url = url
        self.name = redact(url)
        self._readonly = readonly
        self._in_transaction = False
        self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[Any]:
        options: dict[str, Any] = {}
        if self._readonly:
            options["options"] = "-c default_transaction_read_only=on"
        try:
            return psycopg.connect(
                self.url, autocommit=True, connect_timeout=10, application_name="aggregator",
                # a dead server or a cut network is noticed within about a minute
                keepalives=1, keepalives_idle=30, keepalives_interval=10, keepalives_count=3,
                **options,
            )  # fmt: skip
        except psycopg.Error as e:
            raise StoreError(f"{self.name}: cannot connect to the PostgreSQL store: {e}") from e

    def _connection(self) -> psycopg.Connection[Any]:
        """The connection, made anew if the last one was lost."""
        if self._conn.closed or self._conn.broken:
            self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _current(self) -> psycopg.Connection[Any]:
        """The connection for the next statement: inside a transaction only the one it
        began on (a new one would run the rest of it outside), else one made anew if lost."""
        if not self._in_transaction:
            return self._connection()
        if self._conn.closed or self._conn.broken:
            raise StoreError(
                f"{self.name}: the connection to the database was lost inside a transaction,"
                " which is rolled back; the next one reconnects"
            )
        return self._conn

    def _outside(self, action: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run a statement outside a transaction; a connection found lost is made anew and
        the statement tried once more (nothing ran on the lost one)."""
        try:
            return action(self._connection())
        except psycopg.OperationalError:
            if not (self._conn.closed or self._conn.broken):
                raise
        return action(self._connection())

    @property
    def in_transaction(self) -> bool:
        return self._in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        query, args = translate(sql), tuple(params)
        if self._in_transaction:
            return self._current().execute(query, args)
        return self._outside(lambda conn: conn.execute(query, args))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """In batches taken from `rows` before each is sent: making a row may run a query
        (`Store._composed`), which must not land inside psycopg's pipeline. A plain insert
        (or one skipping conflicts) sends each batch as one statement of many rows."""
        rows = iter(rows)
        many = _MANY_ROWS.fullmatch(sql)
        with self._current().cursor() as cursor:
            while batch := list(itertools.islice(rows, ROWS_PER_INSERT)):
                if many is None:
                    cursor.executemany(translate(sql), batch)
                else:  # as the rows one by one would: a later duplicate is skipped or fails
                    values = ", ".join([translate(many["row"])] * len(batch))  # uncached:
                    query = translate(many["head"]) + values + translate(many["tail"])  # 500 sizes
                    cursor.execute(query, [value for row in batch for value in row])

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        conn = self._current()
        with contextlib.ExitStack() as stack:
            if not self._in_transaction:  # a server-side cursor lives in a transaction
                stack.enter_context(conn.transaction())
            cursor = stack.enter_context(conn.cursor(name=f"agg_stream_{next(_cursor_names)}"))
            cursor.itersize = 2000
            cursor.execute(translate(sql), tuple(params))
            yield from cursor

    @contextmanager
    def transaction(self, bulk: bool) -> Iterator[None]:
        self._outside(lambda conn: conn.execute("BEGIN"))
        self._in_transaction = True
        try:
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            yield
            if self._current().info.transaction_status == TransactionStatus.INERROR:
                # a statement failed and its error was handled: COMMIT would roll back
                raise StoreError(
                    f"{self.name}: a statement of this transaction failed, so it is rolled"
                    " back rather than committed"
                )
            self._conn.execute("COMMIT")
        except BaseException:
            if not (self._conn.closed or self._conn.broken):
                with contextlib.suppress(psycopg.Error):
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            self._in_transaction = False

    def tables(self) -> set[str]:
        rows = self.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        return {r[0] for r in rows}

    def columns(self, table: str) -> list[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [r[0] for r in rows]

    def configure(self, readonly: bool) -> None:
        pass  # the server's own settings hold

    def limit_cache(self, kib: int) -> None:
        pass  # the cache is the server's

    def hint(self, error: Exception) -> str:
        if self._conn.closed or self._conn.broken:
            return " (the connection to the database was lost; the next transaction reconnects)"
        return ""

    def close(self) -> None:
        self._conn.close()


def exists(url: str) -> bool:
    """The database holds a store (a run created its schema)."""
    db = Postgres(url, readonly=True)
    try:
        return "schema_meta" in db.tables()
    except psycopg.Error as e:
        raise StoreError(f"{db.name}: cannot read the PostgreSQL store: {e}") from e
    finally:
        db.close()
