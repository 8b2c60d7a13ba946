"""The SQLite store: bounded history, all-or-nothing runs, the lock, schema checks."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import dedupe
from aggregator.errors import LockError, StoreError
from aggregator.model import Article
from aggregator.records import pack_record
from aggregator.sources import staged
from aggregator.store import KEEP_REVISIONS, Store
from tests.conftest import ISTANBUL, StoreAt

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=ISTANBUL)


def revision(minutes: int, title: str = "Köprü trafiğe kapatıldı bugün") -> Article:
    return Article(title=title, summary=f"Sürüm {minutes} için spot metni yazıldı.",
                   published=T0, updated=T0 + timedelta(minutes=minutes),
                   source="seeds", origin=f"{minutes}.txt")  # fmt: skip


def merge(store: Store, articles: list[Article], **retention: Any) -> dedupe.Candidate:
    with store.transaction():
        store.stage_begin()
        cands = [dedupe.candidate(i, a) for i, a in enumerate(articles)]
        store.stage(((c, pack_record(a)) for c, a in zip(cands, articles,
                     strict=True)), T0)  # fmt: skip
        store.merge(dedupe.cluster(cands), T0, **retention)
    return dedupe.winner(cands)


def test_history_keeps_the_newest_few_and_always_the_winner(store_at: StoreAt) -> None:
    with Store.open(store_at()) as store:
        for batch in ([1, 9, 3], [2, 8], [4, 5, 6, 7]):
            merge(store, [revision(m) for m in batch])
        (entry,) = store.latest(10)
        history = store.revisions(entry.id)
    assert len(history) == KEEP_REVISIONS
    assert [a.updated for a in history] == [T0 + timedelta(minutes=m) for m in (9, 8, 7, 6, 5)]
    assert entry.article.updated == T0 + timedelta(minutes=9)


def test_a_failed_run_leaves_the_store_as_it_was(store_at: StoreAt) -> None:
    with Store.open(store_at()) as store:
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


def _state(store: Store) -> tuple[set[tuple[str, ...]], set[tuple[str, str]], int]:
    db = store.db
    articles = set(db.execute("SELECT id, published, updated, content_hash FROM articles"))
    revisions = set(db.execute("SELECT article_id, content_hash FROM revisions"))
    orphans = db.execute(
        "SELECT COUNT(*) FROM revisions WHERE article_id IS NULL"
        " OR article_id NOT IN (SELECT id FROM articles)"
    ).fetchone()[0]
    return articles, revisions, orphans


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 6), st.booleans(),
                          st.integers(0, 2)), min_size=1, max_size=14))  # fmt: skip
def test_a_first_run_into_an_empty_store_stores_what_any_run_would(
    store_at: StoreAt, shape: list[tuple[int, int, bool, int]]
) -> None:
    """The empty-store fast path (records staged under the article they would found) must
    end in the same articles and revisions as the general path, with no orphan rows:
    repeats, revisions that join another's article, same text under two guids."""
    articles = []
    for story, minutes, retitled, guid in shape:
        title = f"Haber {story} köprü trafiğe kapatıldı" + (" (güncellendi)" if retitled else "")
        articles.append(Article(
            title=title, summary=f"Haber {story} için spot metni yazıldı bugün.",
            published=T0 + timedelta(hours=story), source="feed", origin=f"{story}.xml",
            updated=T0 + timedelta(hours=story, minutes=minutes), guid=f"g{story}-{guid}",
        ))  # fmt: skip
    long_ago = T0 - timedelta(days=9)
    unrelated = Article(title="Bambaşka bir konuda uzun başlık", source="x", origin="x",
                        published=long_ago, updated=long_ago)  # fmt: skip
    with Store.open(store_at()) as cold, Store.open(store_at()) as warm:
        merge(warm, [unrelated])
        # retention holds out only articles it removed before (none here): cold == warm
        retention = {"expired_before": T0 + timedelta(hours=2), "keep_newest": 0}
        merge(cold, articles, **retention)
        merge(warm, articles, **retention)
        cold_articles, cold_revisions, cold_orphans = _state(cold)
        warm_articles, warm_revisions, warm_orphans = _state(warm)
    (seeded,) = [a for a in warm_articles if a[1] < (T0 - timedelta(days=1)).isoformat()]
    assert cold_orphans == warm_orphans == 0
    assert cold_articles == warm_articles - {seeded}
    assert cold_revisions == {r for r in warm_revisions if r[0] != seeded[0]}


def test_records_stored_zlib_compressed_by_earlier_versions_still_publish(
    store_at: StoreAt,
) -> None:
    import zlib

    from aggregator.records import record_bytes

    with Store.open(store_at()) as store:
        merge(store, [revision(1)])
        (before,) = store.latest(1)
        with store.transaction():  # what version 0.1.0 wrote: zlib'd JSON
            store.db.execute(
                "UPDATE revisions SET record = ?", (zlib.compress(record_bytes(revision(1)), 1),)
            )
        (after,) = store.latest(1)
    assert after == before


def _journal_mode(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def test_a_bulk_first_run_skips_the_log_and_leaves_it_on_after(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as store:
        assert store.is_empty()
        with store.transaction(bulk=True):
            merge(store, [revision(0), revision(5, "Yeni köprü açıldı bu sabah erken")])
            # a rollback journal: no write-ahead log file while the transaction runs
            assert not path.with_name("s.sqlite3-wal").exists()
        assert not store.is_empty()
        assert _journal_mode(path) == "wal"
        assert store.count() == 2
    assert not path.with_name("s.sqlite3-journal").exists()


def test_a_bulk_run_with_a_reader_connected_keeps_the_log_and_still_commits(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as store:
        reader = sqlite3.connect(path)  # `aggregator status`, say
        try:
            reader.execute("SELECT COUNT(*) FROM articles").fetchone()
            with store.transaction(bulk=True):
                merge(store, [revision(0)])
        finally:
            reader.close()
        assert store.count() == 1
    assert _journal_mode(path) == "wal"


def test_a_failed_bulk_run_leaves_the_store_empty_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as store:
        with pytest.raises(RuntimeError), store.transaction(bulk=True):
            merge(store, [revision(0)])
            raise RuntimeError("crash in the middle of a first run")
        assert store.is_empty()
    assert _journal_mode(path) == "wal"


def test_status_reads_a_store_whose_first_run_was_killed_mid_write(tmp_path: Path) -> None:
    """A first run writes through a rollback journal; killed after it began writing pages,
    it leaves a hot journal that a read-only `status` cannot roll back. Status says so
    instead of failing, and the next run rolls it back and goes on."""
    import subprocess
    import sys
    import textwrap

    from aggregator.config import load_config
    from aggregator.daemon import status_text
    from tests.reliability.helpers import add_seed, write_config

    cfg_path = write_config(tmp_path)
    add_seed(tmp_path / "seeds", 1)
    config = load_config(cfg_path)
    child = textwrap.dedent(f"""
        import os
        from pathlib import Path
        from aggregator.store import Store
        store = Store.open(Path({str(config.state)!r}))
        with store.transaction(bulk=store.is_empty()):
            store.db.conn.executemany(  # past the page cache: pages reach the file
                "INSERT INTO publish_state (key, value) VALUES (?, ?)",
                ((str(i), "x" * 1_000_000) for i in range(100)))
            os._exit(9)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, timeout=60)
    assert done.returncode == 9, done.stderr
    assert Store.importing(config.state)
    text = status_text(config, T0)
    assert "articles: 0" in text and "first run" in text
    with Store.open(config.state) as store:  # a writer rolls the journal back
        assert store.is_empty()
    assert not Store.importing(config.state)
    assert _journal_mode(config.state) == "wal"
    assert "first run" not in status_text(config, T0)


def test_a_bulk_run_that_cannot_switch_back_to_the_log_retries_at_the_next_transaction(
    tmp_path: Path,
) -> None:
    """The daemon keeps its connection: a failed switch back (a reader mid-read for the
    whole busy timeout) must not leave it on the rollback journal for good."""
    path = tmp_path / "s.sqlite3"

    class RefusesWalOnce:
        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn, self.refused = conn, False

        def execute(self, sql: str, *args: Any) -> Any:
            if sql == "PRAGMA journal_mode=WAL" and not self.refused:
                self.refused = True
                raise sqlite3.OperationalError("database is locked")
            return self.conn.execute(sql, *args)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

    with Store.open(path) as store:
        real = store.db.conn
        store.db.conn = RefusesWalOnce(real)  # type: ignore[assignment]
        with store.transaction(bulk=True):
            merge(store, [revision(0)])
        assert _journal_mode(path) == "delete"
        merge(store, [revision(5)])  # the next transaction switches back first
        assert _journal_mode(path) == "wal"
        assert real.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        store.db.conn = real


def test_a_schema_12_store_gets_category_walks_and_counts_without_changing_a_feed(
    store_at: StoreAt,
) -> None:
    """Migration 13 on a store written before it: each category row takes its article's
    GİRİŞ, the counts (per category, and of articles) are made from the rows, and every
    category feed selects what it did; later merges keep the counts right."""
    topics = ("Gündem", "Ekonomi", "Spor", "#gündem")
    articles = [
        Article(title=f"Haber {k} başlığı yazıldı", summary=f"Spot {k} metni burada yazıldı.",
                published=T0 - timedelta(minutes=k % 7), updated=T0, source="s",
                origin=f"{k}.txt", categories=(topics[k % 4], topics[(k + 1) % 3]))
        for k in range(30)
    ]  # fmt: skip
    target = store_at()
    with Store.open(target) as store:
        merge(store, articles)
        categories, count = store.categories(), store.count()
        feeds = [store.select_versions(10, categories=[slug]) for slug, _, _ in categories]
        with store.transaction():  # what schema 12 had
            for sql in (
                "DROP INDEX article_categories_by_feed",
                "ALTER TABLE article_categories DROP COLUMN published",
                "DROP TABLE category_names",
                "DROP TABLE store_counts",
                "CREATE INDEX article_categories_by_slug ON article_categories (slug, article_id)",
                "CREATE INDEX article_categories_by_name ON article_categories (slug, name)",
                "UPDATE schema_meta SET value = '12' WHERE key = 'version'",
            ):
                store.db.execute(sql)
    with Store.open(target) as store:
        assert store.categories() == categories
        assert store.count() == count == len(store.ids_oldest_first()) > 10
        assert [slug for slug, _, _ in categories] == ["ekonomi", "gundem", "spor"]
        assert [store.select_versions(10, categories=[s]) for s, _, _ in categories] == feeds
        merge(store, [revision(1, title=f"Yeni haber {k} yazıldı") for k in range(3)])
        assert store.count() == len(store.ids_oldest_first()) > count


def _signed_run(store: Store, articles: list[Article]) -> None:
    """A run's records as web sources stage them: each with its text signature."""
    rows = staged(articles)
    with store.transaction():
        store.stage_begin()
        cands = [c._replace(ref=i) for i, (c, _) in enumerate(rows)]
        store.stage([(c, record) for c, (_, record) in zip(cands, rows, strict=True)], T0)
        store.merge(dedupe.cluster([c._replace(signature=None) for c in cands]), T0)


def test_a_record_staged_twice_in_a_first_run_is_one_revision_and_still_compared_by_text(
    store_at: StoreAt,
) -> None:
    body = "".join(f"<p>{' '.join(f'kelime{i}{j}' for j in range(12))}.</p>" for i in range(4))
    item = Article(title="Belediye yeni otoparkı hizmete açtı", summary="Otopark açıldı.",
                   content_html=body, link="https://a.test/otopark", guid="a-1",
                   published=T0, updated=T0, source="a", origin="https://a.test/feed")  # fmt: skip
    copy = Article(title="Yeni otopark bugün açıldı", summary="Belediyeden açıklama geldi.",
                   content_html="<p>Ajans bildirdi.</p>" + body,  # no key in common
                   link="https://b.test/haber/otopark", guid="b-9",
                   published=T0, updated=T0, source="b", origin="https://b.test/rss")  # fmt: skip
    with Store.open(store_at()) as twice, Store.open(store_at()) as once:
        _signed_run(twice, [item, copy, item])  # the same feed item in two harvests
        _signed_run(once, [item, copy])
        (entry,) = twice.latest(5)  # one article: the copy joined it by text
        assert [e.id for e in once.latest(5)] == [entry.id]
        assert len(twice.revisions(entry.id)) == len(once.revisions(entry.id)) == 2
