"""What every part of the store shares: the backend, its errors as StoreError, and
transactions that nest."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from aggregator.errors import StoreError
from aggregator.store.db import Database


class StoreBase:
    def __init__(self, db: Database) -> None:
        self.db = db
        """The backend (store/db.py): for the store package and cluster coordination."""
        self.name = db.name

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _translate(self, doing: str) -> Iterator[None]:
        try:
            yield
        except self.db.errors as e:
            raise StoreError(
                f"{self.name}: state store failed while {doing}: {e}{self.db.hint(e)}"
            ) from e

    @contextmanager
    def transaction(self, *, bulk: bool = False) -> Iterator[None]:
        """All or nothing. Nested use joins the outer transaction (a whole run commits once).
        On PostgreSQL it holds the write lock every node's writers take in turn.

        `bulk`: for a run into an empty store (a first import of a seed archive); SQLite
        then writes through a rollback journal (store/sqlite.py)."""
        if self.db.in_transaction:
            yield
            return
        with self._translate("writing"), self.db.transaction(bulk):
            yield

    def is_empty(self) -> bool:
        with self._translate("reading"):
            return self.db.execute("SELECT 1 FROM articles LIMIT 1").fetchone() is None
