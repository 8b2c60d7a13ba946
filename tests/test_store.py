"""The SQLite store: bounded history, all-or-nothing runs, the lock, schema checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from aggregator import dedupe
from aggregator.errors import LockError, StoreError
from aggregator.model import Article
from aggregator.records import pack_record
from aggregator.store import KEEP_REVISIONS, Store
from tests.conftest import ISTANBUL

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=ISTANBUL)


def revision(minutes: int, title: str = "Köprü trafiğe kapatıldı bugün") -> Article:
    return Article(title=title, summary=f"Sürüm {minutes} için spot metni yazıldı.",
                   published=T0, updated=T0 + timedelta(minutes=minutes),
                   source="seeds", origin=f"{minutes}.txt")  # fmt: skip


def merge(store: Store, articles: list[Article]) -> dedupe.Candidate:
    with store.transaction():
        store.stage_begin()
        cands = [dedupe.candidate(i, a) for i, a in enumerate(articles)]
        store.stage(((c, pack_record(a)) for c, a in zip(cands, articles,
                     strict=True)), T0)  # fmt: skip
        store.merge(dedupe.cluster(cands), T0)
    return dedupe.winner(cands)


def test_history_keeps_the_newest_few_and_always_the_winner(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        for batch in ([1, 9, 3], [2, 8], [4, 5, 6, 7]):
            merge(store, [revision(m) for m in batch])
        (entry,) = store.latest(10)
        history = store.revisions(entry.id)
    assert len(history) == KEEP_REVISIONS
    assert [a.updated for a in history] == [T0 + timedelta(minutes=m) for m in (9, 8, 7, 6, 5)]
    assert entry.article.updated == T0 + timedelta(minutes=9)


def test_a_failed_run_leaves_the_store_as_it_was(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s.sqlite3") as store:
        merge(store, [revision(1)])
        with pytest.raises(RuntimeError), store.transaction():
            store.stage_begin()
            cand = dedupe.candidate(0, revision(30, title="Tamamen başka bir haber başlığı"))
            store.stage([(cand, pack_record(revision(30)))], T0)
            store.merge(dedupe.cluster([cand]), T0)
            raise RuntimeError("killed mid-run")
        assert store.count() == 1
        assert store.latest(5)[0].article.updated == T0 + timedelta(minutes=1)


def test_the_lock_refuses_a_second_writer_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store.open(path):
        with pytest.raises(LockError, match="another aggregator run"):
            Store.open(path)
        with Store.open(path, lock=False, readonly=True) as reader:
            assert reader.count() == 0  # status works while a run holds the lock
    Store.open(path).close()  # released


def test_truncated_store_is_a_store_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as store:
        merge(store, [revision(m, title=f"Başlık numarası {m} burada") for m in range(50)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(StoreError, match=str(path)):
        with Store.open(path) as store:
            store.latest(100)


def test_a_damaged_schema_version_is_a_store_error(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "s.sqlite3"
    Store.open(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_meta SET value = 'zwei' WHERE key = 'version'")
    with pytest.raises(StoreError, match="damaged schema version"):
        Store.open(path)
