"""`aggregator migrate --to TARGET`: the store copied into another, row for row, either way
between SQLite and PostgreSQL: every id, revision, key, alias, seed-file, source and
publish state unchanged, so the target publishes the same bytes.

The target must be empty, or hold exactly the same rows (a migrate run again: nothing is
copied). The copy is read inside one writing transaction of the source, so no writer
changes it midway, and written in one transaction of the target: all or nothing.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator

from aggregator.errors import StoreError
from aggregator.store import Store

BATCH = 1000


def data_tables(store: Store) -> list[str]:
    """The store's tables, without its schema version (the target has its own)."""
    return sorted(store.db.tables() - {"schema_meta"})


def copy_store(source: Store, target: Store) -> dict[str, int] | None:
    """Rows copied per table; None when the target already held exactly these rows."""
    with source.transaction():
        tables = data_tables(source)
        missing = set(tables) - set(data_tables(target))
        if missing:
            raise StoreError(f"{target.name}: has no table {sorted(missing)[0]} (is it an "
                             "older aggregator's store?)")  # fmt: skip
        held = {t: _count(target, t) for t in tables}
        if any(held.values()):
            if all(_digests(source, t) == _digests(target, t) for t in tables):
                return None
            table = next(t for t in tables if held[t])
            raise StoreError(
                f"{target.name}: not empty ({held[table]} rows in {table}) and not the same "
                "data; migrate copies only into an empty store"
            )
        copied: dict[str, int] = {}
        with target.transaction():
            for table in tables:
                columns = ", ".join(source.db.columns(table))
                insert = (f"INSERT INTO {table} ({columns}) VALUES"
                          f" ({', '.join('?' * len(source.db.columns(table)))})")  # fmt: skip
                rows = source.db.stream(f"SELECT {columns} FROM {table}")
                copied[table] = 0
                for batch in _batches(rows):
                    target.db.executemany(insert, batch)
                    copied[table] += len(batch)
    return copied


def _count(store: Store, table: str) -> int:
    return int(store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _digests(store: Store, table: str) -> list[bytes]:
    """The table's rows as a sorted list of hashes: equal lists, equal rows (either backend
    gives ints, strs, bytes and None alike)."""
    columns = ", ".join(sorted(store.db.columns(table)))
    rows = store.db.stream(f"SELECT {columns} FROM {table}")
    return sorted(hashlib.sha256(repr(row).encode()).digest() for row in rows)


def _batches(rows: Iterator[tuple[object, ...]]) -> Iterator[list[tuple[object, ...]]]:
    while batch := list(itertools.islice(rows, BATCH)):
        yield batch
