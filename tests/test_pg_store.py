"""The PostgreSQL store next to the SQLite one: the same inputs publish the same bytes,
`migrate` copies a store both ways unchanged, a restarted server costs one transaction at
most, the daemon runs on it, and `state:` errors name the key."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator import dedupe
from aggregator.cli import EXIT_CONFIG, EXIT_OK, EXIT_STORE, main
from aggregator.config import load_config
from aggregator.errors import ConfigError, StoreError
from aggregator.model import Article
from aggregator.pipeline import publish_now
from aggregator.records import pack_record
from aggregator.store import Store
from aggregator.store.migrate import data_tables
from tests.conftest import SEED_DOC
from tests.pgserver import PgServer
from tests.reliability.helpers import T0, add_seed, write_config
from tests.test_store import merge, revision


def files(folder: Path) -> dict[str, bytes]:
    """The published files (not dotfiles, such as the shared output's marker: never served)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and not p.name.startswith(".")}  # fmt: skip


def rows(target: Path | str) -> dict[str, list[tuple[object, ...]]]:
    """Every row of every table, sorted (None first, as Python sorts it)."""
    with Store.open(target, lock=False, readonly=True) as store:
        out = {}
        for table in data_tables(store):
            columns = ", ".join(sorted(store.db.columns(table)))
            got = store.db.execute(f"SELECT {columns} FROM {table}").fetchall()
            out[table] = sorted(tuple(r) for r in got)
    return out


def site(root: Path, state: str, seeds: int = 12) -> Path:
    """A site with seeds of several revisions (some articles merged, some updated)."""
    cfg = write_config(root, state=state)
    shutil.copy(SEED_DOC, root / "seeds" / SEED_DOC.name)
    for n in range(seeds):
        add_seed(root / "seeds", n, updates=n % 3)
    return cfg


def regenerate(cfg: Path) -> None:
    assert main(["regenerate", "--config", str(cfg), "-q"]) == EXIT_OK


def test_the_same_inputs_publish_the_same_bytes_on_sqlite_and_postgresql(
    tmp_path: Path, pg_server: PgServer
) -> None:
    outputs = []
    for name, state in (("lite", "state/agg.sqlite3"), ("pg", pg_server.database())):
        cfg = site(tmp_path / name, state)
        regenerate(cfg)
        for n in range(0, 12, 4):  # a second run: corrections of some, new ones
            add_seed(tmp_path / name / "seeds", n, updates=5)
        add_seed(tmp_path / name / "seeds", 40)
        regenerate(cfg)
        outputs.append(files(tmp_path / name / "out"))
    lite, pg = outputs
    assert "atom.xml" in lite and len(lite) > 20
    assert sorted(lite) == sorted(pg)
    assert [rel for rel in lite if lite[rel] != pg[rel]] == []


def test_migrate_copies_a_store_to_postgresql_and_back_unchanged(
    tmp_path: Path, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = site(tmp_path, "state/agg.sqlite3")
    regenerate(cfg)
    original = tmp_path / "state" / "agg.sqlite3"
    url = pg_server.database()
    assert main(["migrate", "--config", str(cfg), "--to", url]) == EXIT_OK
    said = capsys.readouterr().out
    assert "copied 13 rows of articles" in said and f"-> {url}:" in said
    pg_cfg = write_config(tmp_path / "pg", state=url)
    back = tmp_path / "back.sqlite3"
    assert main(["migrate", "--config", str(pg_cfg), "--to", str(back)]) == EXIT_OK
    before = rows(original)
    assert all(before[t] for t in ("revisions", "seed_files", "publish_state", "source_state"))
    assert rows(url) == before
    assert rows(back) == before
    # again: the target holds exactly this data already
    assert main(["migrate", "--config", str(cfg), "--to", url]) == EXIT_OK
    assert "already holds exactly this data; nothing copied" in capsys.readouterr().out
    # the round trip publishes the same bytes as the original store
    config = load_config(cfg)
    for name, target in (("a", original), ("b", back)):
        with Store.open(target) as store:
            publish_now(replace(config, output_dir=tmp_path / name), store, T0)
    assert files(tmp_path / "a") == files(tmp_path / "b")
    assert len(files(tmp_path / "a")) > 20
    # a target holding other data is refused, and left as it was
    add_seed(tmp_path / "seeds", 30)
    regenerate(cfg)
    assert main(["migrate", "--config", str(cfg), "--to", url]) == EXIT_STORE
    refused = capsys.readouterr().err
    assert "not empty (39 rows in article_keys) and not the same data" in refused
    assert rows(url) == before


def test_a_restarted_server_fails_only_the_transaction_it_cut(pg_server: PgServer) -> None:
    url = pg_server.database()
    with Store.open(url) as store:
        merge(store, [revision(1)])
        pg_server.restart()  # while idle: the next transaction reconnects by itself
        merge(store, [revision(2, "İkinci haber bambaşka bir konuda")])
        assert store.count() == 2
        with pytest.raises(StoreError, match="lost; the next transaction reconnects"):
            with store.transaction():
                store.stage_begin()
                cand = dedupe.candidate(0, revision(3, "Üçüncü haber yarıda kaldı bugün"))
                store.stage([(cand, pack_record(revision(3)))], T0)
                pg_server.restart()  # mid-transaction: it is lost, and says so
                store.merge(dedupe.cluster([cand]), T0)
        assert store.count() == 2  # nothing of it; reads reconnect too
        merge(store, [revision(4, "Dördüncü haber yeniden bağlandı")])
    with Store.open(url) as fresh:
        assert fresh.count() == 3
        leftover = fresh.db.execute("SELECT COUNT(*) FROM revisions WHERE article_id IS NULL")
        assert leftover.fetchone()[0] == 0


def test_a_connection_lost_inside_a_transaction_is_never_replaced_within_it(
    pg_server: PgServer,
) -> None:
    """A caller that swallowed the error of a statement cut by a restart goes on in the same
    transaction: every later statement (executemany, stream) fails with StoreError rather
    than running on a new connection outside the transaction, which is not committed."""
    url = pg_server.database()
    with Store.open(url) as store:
        db = store.db
        db.execute("CREATE TABLE probe (n BIGINT)")
        with pytest.raises(StoreError, match="lost inside a transaction"):
            with store.transaction():
                db.execute("INSERT INTO probe VALUES (1)")
                pg_server.restart()
                with pytest.raises(db.errors):
                    db.execute("INSERT INTO probe VALUES (2)")
                with pytest.raises(StoreError, match="lost inside a transaction"):
                    db.executemany("INSERT INTO probe VALUES (?)", [(3,), (4,)])
                with pytest.raises(StoreError, match="lost inside a transaction"):
                    list(db.stream("SELECT n FROM probe"))
        assert db.execute("SELECT n FROM probe").fetchall() == []  # and the next reconnects
        with store.transaction():
            db.executemany("INSERT INTO probe VALUES (?)", [(5,)])
        assert db.execute("SELECT n FROM probe").fetchall() == [(5,)]


def test_a_transaction_with_a_failed_statement_is_never_reported_committed(
    pg_server: PgServer,
) -> None:
    """PostgreSQL answers COMMIT of a transaction in which a statement failed with a silent
    rollback (SQLite would commit the rest): the store says so instead."""
    url = pg_server.database()
    with Store.open(url) as store:
        db = store.db
        db.execute("CREATE TABLE probe (n BIGINT PRIMARY KEY)")
        with pytest.raises(StoreError, match="rolled back rather than committed"):
            with store.transaction():
                db.execute("INSERT INTO probe VALUES (1)")
                with pytest.raises(db.errors):
                    db.execute("INSERT INTO probe VALUES (1)")
        with store.transaction():
            db.execute("INSERT INTO probe VALUES (2)")
        assert db.execute("SELECT n FROM probe").fetchall() == [(2,)]


def story(title: str, minutes: int) -> Article:
    when = T0 + timedelta(minutes=minutes)
    return Article(title=title, summary=f"{title}: spot metni.", published=when, updated=when,
                   source="seeds", origin=f"{title}.txt")  # fmt: skip


def test_writers_on_one_database_take_turns(pg_server: PgServer) -> None:
    """Each merge stages under the next free revision id and decides over the stored
    keys: two nodes' writers at once must each see the other's committed work."""
    url = pg_server.database()
    Store.open(url).close()
    errors: list[BaseException] = []

    def node(n: int) -> None:
        try:
            with Store.open(url) as store:
                for i in range(15):  # a new article, and the same story as the other node's
                    merge(store, [story(f"Düğüm {n} haberi {i} burada", i * 60 + n + 1),
                                  story(f"Ortak haber {i} iki düğümde", i * 60)])  # fmt: skip
        except BaseException as e:  # noqa: BLE001 - reported by the test thread below
            errors.append(e)

    threads = [threading.Thread(target=node, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with Store.open(url) as store:
        assert store.count() == 45  # 15 of each node, and 15 shared ones stored once


def test_the_daemon_and_status_run_on_postgresql(tmp_path: Path, pg_server: PgServer) -> None:
    from tests.test_daemon import Daemon, wait_for
    from tests.test_daemon import add_seed as add_daemon_seed

    url = pg_server.database()
    daemon = Daemon(tmp_path)
    daemon.config.write_text(
        daemon.config.read_text(encoding="utf-8").replace("state/aggregator.sqlite3", url),
        encoding="utf-8",
    )
    daemon.start()
    try:
        wait_for("the seed document", lambda: len(daemon.feed().entries) == 1)
        title = add_daemon_seed(daemon.seeds, 1)
        wait_for("the new seed file in the feed", lambda: title in daemon.titles())
        status = daemon.cli("status")
        assert status.returncode == 0, status.stderr
        assert f"state: {url}\n" in status.stdout and "articles: 2" in status.stdout
        assert "held by: no lock (a PostgreSQL store is shared)" in status.stdout
        assert daemon.stop(signal.SIGTERM)[0] == 0
    finally:
        if daemon.proc and daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()
    assert not (tmp_path / "state").exists()  # nothing went to a SQLite file


def test_a_password_comes_from_the_environment_never_the_config(
    tmp_path: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_server.database()
    cfg = write_config(tmp_path, state=f"{{url: '{url}', password_env: AGG_TEST_PASSWORD}}")
    with pytest.raises(ConfigError, match="state.password_env: the environment variable "
                       "AGG_TEST_PASSWORD is not set"):  # fmt: skip
        load_config(cfg)
    monkeypatch.setenv("AGG_TEST_PASSWORD", "s3cr@t/ş")
    config = load_config(cfg)
    assert config.state_url == url.replace("@", ":s3cr%40t%2F%C5%9F@", 1)
    with Store.open(config.state_url) as store:  # the test server trusts any password
        assert store.count() == 0
        assert "s3cr" not in store.name and ":***@" in store.name
    assert main(["status", "--config", str(cfg)]) == EXIT_OK


@pytest.mark.parametrize(
    ("state", "error"),
    [
        ("postgresql://agg:hunter2@db.example:5432/haber",
         "state: the URL holds a password; never write it in the config"),
        ("postgresql://agg@db.example/haber?password=hunter2",
         "state: the URL holds a password"),
        ("{url: 'postgresql://agg:hunter2@db/haber', password_env: PW}",
         "state.url: the URL holds a password"),
        ("{url: state/agg.sqlite3}", "state.url: expected a postgresql:// URL"),
        ("{url: 'postgresql://db/haber', password: x}", "state.password: unknown key"),
        ("{password_env: PW}", "state.url: required key is missing"),
        ("{url: 'postgresql://db/haber', password_env: 'NO SUCH'}",
         "state.password_env: expected an environment variable name"),
        ("{url: 'postgresql://db.example/haber', password_env: HOME}",
         "state.url: name the database user"),
        ("[a, b]", "state: expected a SQLite file path, a postgresql:// URL, or a mapping"),
        ("'postgresql://agg@db.example:99999/haber'", "state: not a valid URL"),
    ],
)  # fmt: skip
def test_state_errors_name_the_key(tmp_path: Path, state: str, error: str) -> None:
    cfg = write_config(tmp_path, state=state)
    with pytest.raises(ConfigError, match=error.replace("?", r"\?")) as caught:
        load_config(cfg)
    assert "hunter2" not in str(caught.value)
    assert main(["check", "--config", str(cfg)]) == EXIT_CONFIG


def test_an_unreachable_database_is_one_store_error(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, state="postgresql://agg@127.0.0.1:1/haber")
    with pytest.raises(StoreError, match=r"postgresql://agg@127\.0\.0\.1:1/haber: cannot "
                       "connect to the PostgreSQL store"):  # fmt: skip
        Store.open(load_config(cfg).state_url or "")
    assert main(["regenerate", "--config", str(cfg), "-q"]) == EXIT_STORE


def test_a_sqlite_path_still_works_as_before(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, state="state/agg.sqlite3")
    config = load_config(cfg)
    assert config.state_url is None and config.state == tmp_path / "state" / "agg.sqlite3"
    regenerate(cfg)
    with sqlite3.connect(config.state) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_meta").fetchone()[0] == 1


def test_coordination_tables_are_neither_foreign_nor_copied(
    tmp_path: Path, pg_server: PgServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A node serving from the database may create its tables before any store exists; the
    store still opens, and `migrate` back to SQLite copies store data only."""
    import psycopg

    from aggregator import sharedout

    url = pg_server.database()
    with psycopg.connect(url, autocommit=True) as conn:
        sharedout.ensure_schema(conn)
    cfg = site(tmp_path, url)
    regenerate(cfg)
    back = tmp_path / "back.sqlite3"
    assert main(["migrate", "--config", str(cfg), "--to", str(back)]) == EXIT_OK
    said = capsys.readouterr().out
    assert "output_files" not in said and "rows of articles" in said
    assert rows(back) == rows(url)


def atom_entries(folder: Path, feed: str = "atom.xml") -> int:
    return (folder / feed).read_text(encoding="utf-8").count("<entry>")


def table_entries(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT body FROM output_files WHERE path = 'atom.xml'").fetchone()
    return bytes(row[0]).count(b"<entry>")


def test_a_merge_by_another_node_during_a_publish_is_published_next(
    tmp_path: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Node B merges while node A renders: A's publish must not mark B's change published."""
    from aggregator import pipeline

    url = pg_server.database()
    cfg = site(tmp_path, url)
    regenerate(cfg)
    config = load_config(cfg)
    with Store.open(url) as a, Store.open(url) as b:
        add_seed(tmp_path / "seeds", 41)
        pipeline.run_once(config, a, None, T0, publish_feeds=False)
        render = pipeline.publish

        def render_while_b_merges(*args: Any, **kwargs: Any) -> list[str]:
            written = render(*args, **kwargs)
            add_seed(tmp_path / "seeds", 42)
            pipeline.run_once(config, b, None, T0, publish_feeds=False)
            return written

        monkeypatch.setattr(pipeline, "publish", render_while_b_merges)
        pipeline.publish_now(config, a, T0)
        monkeypatch.undo()
        assert a.publish_state("pending") is not None  # B's change is still to publish
        assert pipeline.publish_now(config, a, T0)
        out = tmp_path / "out"
        assert atom_entries(out) == atom_entries(out, "sources/seeds/atom.xml") == a.count()
        assert a.publish_state("pending") is None


def test_a_publisher_killed_before_storing_its_files_leaves_the_publish_to_the_next(
    tmp_path: Path, pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after writing its folder but before the table has the files: the publish is
    still pending, so the next publisher (another machine: the same path, its own folder)
    publishes it and every node serves it."""
    from aggregator import pipeline, sharedout

    url = pg_server.database()
    cfg = site(tmp_path, url)
    regenerate(cfg)
    config = load_config(cfg)
    with Store.open(url) as a:
        add_seed(tmp_path / "seeds", 43)
        pipeline.run_once(config, a, None, T0, publish_feeds=False)
        stored = a.count()

        def killed(self: object, written: object) -> int:
            raise KeyboardInterrupt("killed before the files reached the database")

        monkeypatch.setattr(sharedout.Mirror, "commit", killed)
        with pytest.raises(KeyboardInterrupt):
            pipeline.publish_now(config, a, T0)
        monkeypatch.undo()
        assert table_entries(url) == stored - 1
    shutil.move(tmp_path / "out", tmp_path / "out-of-the-dead-node")
    with Store.open(url) as b:
        assert pipeline.publish_now(config, b, T0)
    assert atom_entries(tmp_path / "out") == table_entries(url) == stored


def test_a_node_that_lost_the_publisher_lock_stores_no_files(
    tmp_path: Path, pg_server: PgServer
) -> None:
    """A cluster node's publish is stored only while its lock session holds the publisher
    lock: one that lost it (cut off, timed out) leaves the table and `pending` to the new
    publisher."""
    import psycopg

    from aggregator import pipeline
    from aggregator.cluster import PUBLISHER_LOCK
    from aggregator.errors import PublishError

    url = pg_server.database()
    cfg = site(tmp_path, url)
    regenerate(cfg)
    config = load_config(cfg)
    with Store.open(url) as store, psycopg.connect(url, autocommit=True) as lock:
        add_seed(tmp_path / "seeds", 44)
        pipeline.run_once(config, store, None, T0, publish_feeds=False)
        before = table_entries(url)
        pid = lock.execute("SELECT pg_backend_pid()").fetchone()[0]
        with pytest.raises(PublishError, match="no longer holds the publisher lock"):
            pipeline.publish_now(config, store, T0, fence=pid)  # the lock is not taken
        assert table_entries(url) == before
        assert store.publish_state("pending") is not None
        lock.execute("SELECT pg_advisory_lock(%s)", (PUBLISHER_LOCK,))
        pipeline.publish_now(config, store, T0, fence=pid)  # its folder's files now stored
        assert table_entries(url) == before + 1 == store.count()
        assert store.publish_state("pending") is None


def test_a_feed_read_in_pages_lists_an_article_once_while_another_node_merges(
    pg_server: PgServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named feed reads its category walk in pages, each its own statement; a merge by
    another node between two pages that moves an article's GİRİŞ earlier must not list it
    twice (found by a review)."""
    from aggregator.feedplan import matcher
    from aggregator.store import articles

    def item(k: int, rev: int = 0, minutes: int | None = None) -> Article:
        word = "ukrayna" if k % 3 == 0 else "ekonomi"
        return Article(title=f"Haber {k} {word} başlığı", summary=f"Spot metni {k} {rev}",
                       published=T0 - timedelta(minutes=k if minutes is None else minutes),
                       updated=T0 + timedelta(minutes=rev), source="s", origin=f"{k}-{rev}.txt",
                       link=f"http://h.test/{k}", guid=f"g{k}", categories=("Gündem",))  # fmt: skip

    url = pg_server.database()
    with Store.open(url) as publisher, Store.open(url) as other:
        merge(publisher, [item(k) for k in range(300)])
        walk, rows_read = articles.ArticleStore._walk, [0]

        def walk_with_a_merge_between_pages(self: Any, *a: Any, **k: Any) -> Any:
            for row in walk(self, *a, **k):
                yield row
                rows_read[0] += 1
                if rows_read[0] == 30:  # the newest article gets an earlier GİRİŞ
                    merge(other, [item(0, rev=1, minutes=100)])

        monkeypatch.setattr(articles.ArticleStore, "_walk", walk_with_a_merge_between_pages)
        ids = [e.id for e in publisher.select(50, categories=["gundem"],
                                              keep=matcher(("ukrayna",)))]  # fmt: skip
    assert len(ids) == len(set(ids))
