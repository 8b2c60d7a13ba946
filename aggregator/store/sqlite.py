"""The SQLite backend: one file, one writer at a time (a file lock), the write-ahead log,
and a rollback journal for a first bulk import. The default store."""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aggregator.errors import LockError, StoreError
from aggregator.store.db import Rows

log = logging.getLogger("aggregator.store")


class SQLite:
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(self, path: Path, *, lock: bool, readonly: bool, holder: str) -> None:
        """`holder`: who takes the lock, as `status` shows it ("daemon", "regenerate")."""
        self.path = path
        self.name = str(path)
        self._lock_fd = None
        self._wal_pending = False  # a bulk run could not switch back to the log yet
        try:
            if not readonly:
                path.parent.mkdir(parents=True, exist_ok=True)
            elif not path.exists():
                raise StoreError(f"{path}: no state yet (run `aggregator regenerate` first)")
            if lock:
                self._lock_fd = _take_lock(path, holder)
            uri = path.absolute().as_uri() + ("?mode=ro" if readonly else "")
            self.conn = sqlite3.connect(  # a reader waits only for a first run's lock (`bulk`)
                uri, uri=True, timeout=2 if readonly else 30, isolation_level=None,
                check_same_thread=False,
            )  # fmt: skip
            self.conn.execute("PRAGMA foreign_keys=ON")
        except OSError as e:
            _release(self._lock_fd)
            raise StoreError(f"{path}: cannot open the state store: {e.strerror or e}") from e
        except sqlite3.Error as e:
            _release(self._lock_fd)
            raise StoreError(f"{path}: cannot open the state store: {e}") from e

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self.conn.execute(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self.conn.executemany(sql, rows)

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        return iter(self.conn.execute(sql, params))

    def tables(self) -> set[str]:
        rows = self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        return {r[0] for r in rows}

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def configure(self, readonly: bool) -> None:
        if not readonly:  # only now: switching to WAL rewrites a foreign file's header
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA cache_size=-65536")

    def limit_cache(self, kib: int) -> None:
        """Cap SQLite's page cache: a daemon would otherwise keep it full for good (a bulk
        `regenerate` wants the larger default)."""
        self.conn.execute(f"PRAGMA cache_size=-{int(kib)}")

    def hint(self, error: Exception) -> str:
        if getattr(error, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
            return " (the file is damaged: restore it from a backup or move it away to rebuild)"
        return ""

    @contextmanager
    def transaction(self, bulk: bool) -> Iterator[None]:
        """`bulk`: for a run into an empty store (a first import of a seed archive). It runs
        with a rollback journal instead of the write-ahead log: pages the store did not
        have are written once, where the log writes them twice (the log, then its
        checkpoint). Just as safe: a crash rolls back, and synchronous=FULL. The log is
        back once the transaction ends (else at the next transaction). Skipped when another
        connection has the store open (switching needs it alone). Readers wait for such a
        run; `importing()` tells them."""
        if self._wal_pending:
            self._write_ahead_log()
        journal = self._rollback_journal() if bulk else False
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
                self.conn.execute("COMMIT")
            except BaseException:
                if self.conn.in_transaction:  # SQLite may have rolled back already
                    self.conn.execute("ROLLBACK")
                raise
        finally:
            if journal:
                self._write_ahead_log()

    def _rollback_journal(self) -> bool:
        try:
            mode = self.conn.execute("PRAGMA journal_mode=DELETE").fetchone()[0]
        except sqlite3.OperationalError:  # "database is locked": a reader is connected
            return False
        if mode != "delete":
            return False
        try:
            self.conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error:
            self._write_ahead_log()
            return False
        return True

    def _write_ahead_log(self) -> None:
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._wal_pending = False
        except sqlite3.Error as e:  # a reader mid-read for 30 s: the next transaction retries
            self._wal_pending = True
            log.warning("%s: could not switch back to the write-ahead log: %s", self.path, e)

    def close(self) -> None:
        try:
            self.conn.close()
        finally:
            _release(self._lock_fd)
            self._lock_fd = None


def importing(path: Path) -> bool:
    """A first run into this (empty) store is under way, or was killed: its rollback
    journal exists. Readers cannot read the store until a writer has ended or rolled
    it back; nothing of it was committed."""
    return path.with_name(path.name + "-journal").exists()


def _take_lock(path: Path, holder: str = "") -> int:
    """The store's lock; `holder` (e.g. "daemon") is written in it for `lock_holder`."""
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LockError(
            f"{path}: another aggregator run (daemon or regenerate) is using this state; "
            "wait for it to finish or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {holder or 'run'}\n".encode(), 0)
    return fd


def lock_holder(path: Path) -> tuple[int, str] | None:
    """(pid, what) of the process holding the store's lock, or None if nobody does."""
    try:
        fd = os.open(path.with_name(path.name + ".lock"), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, _, what = os.pread(fd, 200, 0).decode("utf-8", "replace").partition(" ")
            return (int(pid) if pid.isdigit() else 0), what.strip() or "run"
        return None
    finally:
        os.close(fd)


def _release(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)
