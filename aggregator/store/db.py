"""What the store needs of a database: the one seam between `Store` and its two backends.

`Store` writes portable SQL (`?` parameters, `ON CONFLICT` upserts, portable types in its
DDL); a backend runs it, owns the connection and its transactions, and names itself in
errors. `sqlite.SQLite` is the default; `postgres.Postgres` is for stores shared by several
nodes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

SCHEMES = ("postgresql://", "postgres://")


class Rows(Protocol):
    """A statement's result (sqlite3's and psycopg's cursors both are one)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Database(Protocol):
    name: str
    """What errors call the store: the file, or the URL without its password."""
    errors: tuple[type[Exception], ...]
    """The driver's exceptions, translated to StoreError by `Store`."""

    @property
    def in_transaction(self) -> bool: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Every row of a query, read a batch at a time, never all at once (a whole table
        for `migrate`; articles until a filter has kept enough)."""
        ...

    def transaction(self, bulk: bool) -> AbstractContextManager[None]:
        """One writing transaction (`Store.transaction` documents `bulk`)."""
        ...

    def tables(self) -> set[str]: ...

    def columns(self, table: str) -> list[str]: ...

    def configure(self, readonly: bool) -> None:
        """Connection settings for a store whose schema was found to be ours."""
        ...

    def limit_cache(self, kib: int) -> None: ...

    def hint(self, error: Exception) -> str:
        """What to do about this error, as a suffix for its message ("" if nothing)."""
        ...

    def close(self) -> None: ...


def is_url(target: Path | str) -> bool:
    """A PostgreSQL store (else a SQLite file)."""
    return isinstance(target, str) and target.startswith(SCHEMES)


def redact(url: str) -> str:
    """The URL as messages show it: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}"))
