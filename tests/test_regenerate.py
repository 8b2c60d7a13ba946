"""`aggregator regenerate` end to end: real files, real SQLite, feedparser reading the output."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator.cli import EXIT_CONFIG, EXIT_OK, EXIT_OUTPUT, EXIT_PARTIAL, EXIT_STORE, main
from aggregator.config import load_config
from aggregator.store import Store
from tests.conftest import ISTANBUL, SEED_DOC, StoreAt, sqlite_only, state_setting
from tests.seedmaker import tgrt_seed

T0 = datetime(2026, 1, 10, 9, 30, tzinfo=ISTANBUL)


def write_config(root: Path, extra: str = "", max_items: int = 50,
                 state: str = "state/agg.sqlite3") -> Path:  # fmt: skip
    cfg = root / "config.yaml"
    cfg.write_text(
        f"""site:
  title: Test Akışı
  url: http://127.0.0.1:8080/
  language: tr
  timezone: Europe/Istanbul
output:
  dir: out
  max_items: {max_items}
state: {state}
retention: never
sources:
  - name: seeds
    type: seeds
    path: seeds
    every: 5m
{extra}""",
        encoding="utf-8",
    )
    (root / "seeds").mkdir(exist_ok=True)
    return cfg


def regen(cfg: Path, *args: str) -> int:
    return main(["regenerate", "--config", str(cfg), "-q", *args])


def feed(root: Path, name: str = "atom.xml") -> feedparser.FeedParserDict:
    parsed = feedparser.parse((root / "out" / name).read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


@pytest.fixture
def site(tmp_path: Path, store_at: StoreAt) -> Path:
    """A site with the seed document, its store on each backend."""
    write_config(tmp_path, state=state_setting(store_at()))
    shutil.copy(SEED_DOC, tmp_path / "seeds" / SEED_DOC.name)
    return tmp_path


def test_seed_document_becomes_valid_atom_and_rss(site: Path) -> None:
    assert regen(site / "config.yaml") == EXIT_OK
    atom, rss = feed(site, "atom.xml"), feed(site, "rss.xml")
    assert atom.version == "atom10" and rss.version == "rss20"
    (a,), (r,) = atom.entries, rss.entries
    assert a.id == r.id and a.id.startswith("urn:uuid:")
    assert a.title.startswith("MİT Başkanı İbrahim Kalın")
    assert a.published == "2026-01-01T19:16:00+03:00"
    assert a.updated == "2026-01-01T19:26:00+03:00"
    assert r.published == "Thu, 01 Jan 2026 19:16:00 +0300"
    assert a.author == "Selahattin Demirel" and r.author == "Selahattin Demirel"
    assert "Ankara kritik" in a.content[0].value
    assert a.summary.startswith("MİT Başkanı İbrahim Kalın, Ukrayna")
    assert rss.entries[0].guidislink is False
    page = site / "out" / a.link.removeprefix("http://127.0.0.1:8080/")
    html = page.read_text(encoding="utf-8")
    assert "1 Ocak 2026 Perşembe 19:16" in html and "Selahattin Demirel" in html
    index = (site / "out" / "index.html").read_text(encoding="utf-8")
    assert 'rel="alternate" type="application/atom+xml"' in index
    assert atom.feed.links[0].rel == "self"


def test_second_run_rewrites_nothing_and_reparses_nothing(site: Path, capsys) -> None:
    cfg = site / "config.yaml"
    assert regen(cfg) == EXIT_OK
    stamps = {p: p.stat().st_mtime_ns for p in (site / "out").rglob("*") if p.is_file()}
    time.sleep(0.01)
    assert main(["regenerate", "--config", str(cfg)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "read 0 inputs (1 unchanged)" in out and "wrote 0 files" in out
    assert stamps == {p: p.stat().st_mtime_ns for p in (site / "out").rglob("*") if p.is_file()}


def test_revision_and_rename_keep_the_id_and_move_updated(site: Path) -> None:
    cfg = site / "config.yaml"
    seeds = site / "seeds"
    (seeds / "a.txt").write_text(tgrt_seed(title="Köprüde bakım çalışması başladı",
        spot="Boğaz köprüsünde bakım çalışması nedeniyle şeritler kapatıldı.", giris=T0,
        guncelleme=T0 + timedelta(minutes=5)), encoding="utf-8")  # fmt: skip
    assert regen(cfg) == EXIT_OK
    before = {e.title: e for e in feed(site).entries}
    old = before["Köprüde bakım çalışması başladı"]
    # a later revision with a new title in another file, then the first file renamed
    (seeds / "b.txt").write_text(tgrt_seed(title="Köprüde bakım çalışması başladı: trafik yoğun",
        spot="Boğaz köprüsünde bakım çalışması nedeniyle şeritler kapatıldı.", giris=T0,
        guncelleme=T0 + timedelta(minutes=40)), encoding="utf-8")  # fmt: skip
    (seeds / "a.txt").rename(seeds / "renamed.txt")
    assert regen(cfg) == EXIT_OK
    after = feed(site).entries
    assert len(after) == 2
    new = next(e for e in after if e.title.startswith("Köprüde"))
    assert new.id == old.id
    assert new.title == "Köprüde bakım çalışması başladı: trafik yoğun"
    assert new.updated == (T0 + timedelta(minutes=40)).isoformat()
    assert new.published == T0.isoformat()
    assert before[SEED_TITLE].id == next(e for e in after if e.title == SEED_TITLE).id


SEED_TITLE = (
    "MİT Başkanı İbrahim Kalın ile Ukrayna Savunma Konseyi Sekreteri Rüstem Umerov "
    "Ankara'da görüştü! İşte gündeme gelen konular"
)


def test_a_late_older_revision_never_replaces_the_newer_one(site: Path) -> None:
    cfg = site / "config.yaml"
    newer = tgrt_seed(title="Seçim sonuçları açıklandı kesin", spot="YSK kesin sonuçları duyurdu.",
                      giris=T0, guncelleme=T0 + timedelta(hours=2))  # fmt: skip
    older = tgrt_seed(title="Seçim sonuçları açıklandı", spot="YSK kesin sonuçları duyurdu.",
                      giris=T0, guncelleme=T0 + timedelta(hours=1))  # fmt: skip
    (site / "seeds" / "new.txt").write_text(newer, encoding="utf-8")
    assert regen(cfg) == EXIT_OK
    (site / "seeds" / "old-copy.txt").write_text(older, encoding="utf-8")
    assert regen(cfg) == EXIT_OK
    titles = [e.title for e in feed(site).entries]
    assert "Seçim sonuçları açıklandı kesin" in titles
    assert "Seçim sonuçları açıklandı" not in titles


@sqlite_only
def test_deleting_the_input_keeps_the_article_and_a_rebuilt_store_keeps_ids(site: Path) -> None:
    cfg = site / "config.yaml"
    (site / "seeds" / "x.txt").write_text(tgrt_seed(title="Yeni metro hattı açıldı bugün",
        spot="Yeni hat günde yüz bin yolcu taşıyacak.", giris=T0), encoding="utf-8")  # fmt: skip
    assert regen(cfg) == EXIT_OK
    ids = sorted(e.id for e in feed(site).entries)
    (site / "seeds" / "x.txt").unlink()
    assert regen(cfg) == EXIT_OK
    assert sorted(e.id for e in feed(site).entries) == ids
    # rebuild the store from the same inputs: same ids
    (site / "seeds" / "x.txt").write_text(tgrt_seed(title="Yeni metro hattı açıldı bugün",
        spot="Yeni hat günde yüz bin yolcu taşıyacak.", giris=T0), encoding="utf-8")  # fmt: skip
    shutil.rmtree(site / "state")
    assert regen(cfg) == EXIT_OK
    assert sorted(e.id for e in feed(site).entries) == ids


def test_bad_files_are_named_and_the_rest_is_published(site: Path, capsys) -> None:
    (site / "seeds" / "empty.txt").write_bytes(b"")
    (site / "seeds" / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (site / "seeds" / "nolayout.txt").write_text("Sadece düz metin.\n", encoding="utf-8")
    assert main(["regenerate", "--config", str(site / "config.yaml")]) == EXIT_PARTIAL
    err = capsys.readouterr().err
    for name, reason in (("empty.txt", "empty file"), ("image.txt", "binary"),
                         ("nolayout.txt", "no article layout")):  # fmt: skip
        assert any(name in line and reason in line for line in err.splitlines()), err
    assert len(feed(site).entries) == 1


def test_retention_ages_out_old_articles_but_never_empties_the_feed(
    tmp_path: Path, store_at: StoreAt
) -> None:
    from aggregator.pipeline import run_once

    cfg = write_config(tmp_path, max_items=1, state=state_setting(store_at()))
    cfg.write_text(cfg.read_text().replace("retention: never", "retention: 30d"))
    for i, day in enumerate((datetime(2020, 1, 1, 12, tzinfo=ISTANBUL), T0)):
        (tmp_path / "seeds" / f"{i}.txt").write_text(tgrt_seed(title=f"Eski yeni haber {i} başlığı",
            spot=f"Spot {i} metni burada.", giris=day), encoding="utf-8")  # fmt: skip
    config = load_config(cfg)
    with Store.open(config.store_target) as store:
        assert run_once(config, store, None, T0).expired == 0  # never in the run storing it
        later = run_once(config, store, None, T0 + timedelta(days=31))
        assert later.expired == 1 and store.count() == 1  # the newest stays, though > 30 days


def test_invalid_config_names_the_key(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("every: 5m", "every: often"))
    assert regen(cfg) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "sources[0].every" in err and "often" in err and str(cfg) in err
    cfg.write_text(cfg.read_text().replace("type: seeds", "type: podcast"))
    assert regen(cfg) == EXIT_CONFIG
    assert "sources[0].type" in capsys.readouterr().err


@sqlite_only
def test_corrupt_store_is_one_clear_error_and_not_a_fresh_start(site: Path, capsys) -> None:
    cfg = site / "config.yaml"
    assert regen(cfg) == EXIT_OK
    db = site / "state" / "agg.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    db.write_bytes(b"this is not a database at all" * 100)
    assert regen(cfg) == EXIT_STORE
    err = capsys.readouterr().err
    assert str(db) in err
    assert db.read_bytes().startswith(b"this is not a database")


@sqlite_only
def test_store_from_a_newer_schema_is_refused(site: Path, capsys) -> None:
    cfg = site / "config.yaml"
    assert regen(cfg) == EXIT_OK
    db = site / "state" / "agg.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_meta SET value = '99' WHERE key = 'version'")
    assert regen(cfg) == EXIT_STORE
    assert "newer" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
@sqlite_only
def test_unwritable_output_is_exit_5(site: Path) -> None:
    (site / "out").mkdir()
    (site / "out").chmod(0o500)
    try:
        assert regen(site / "config.yaml") == EXIT_OUTPUT
    finally:
        (site / "out").chmod(0o700)


@sqlite_only
def test_output_path_that_is_a_file_is_exit_5(site: Path, capsys) -> None:
    (site / "out").write_text("not a folder")
    assert regen(site / "config.yaml") == EXIT_OUTPUT
    assert "out" in capsys.readouterr().err


@sqlite_only
def test_python_dash_m_and_help_work(site: Path) -> None:
    for args in (["--help"], ["regenerate", "--help"]):
        done = subprocess.run([sys.executable, "-m", "aggregator", *args],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert done.returncode == 0 and "usage:" in done.stdout
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "regenerate", "--config", str(site / "config.yaml")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "published 1 articles" in done.stdout


def test_ids_are_pinned_for_scheme_v1(tmp_path: Path) -> None:
    """Changing the id derivation changes every id readers hold: it needs a new scheme
    version, never a silent change. These are the v1 ids of three layouts."""
    cfg = write_config(tmp_path)
    shutil.copy(SEED_DOC, tmp_path / "seeds")
    layouts = Path(__file__).parent / "data" / "layouts"
    for name in ("tgrt_nometa.txt", "tgrt_bodyonly.txt"):
        shutil.copy(layouts / name, tmp_path / "seeds")
    assert regen(cfg) == EXIT_OK
    ids = {e.title[:20]: e.id for e in feed(tmp_path).entries}
    assert ids == {
        "MİT Başkanı İbrahim ": "urn:uuid:69afc2f5-dbed-5906-9609-f2defba97b0d",
        "Kar yağışı İstanbul'": "urn:uuid:ac2ffe39-64a4-5dc8-828c-907e8aab7b1c",
        "Deprem bölgesinde ye": "urn:uuid:99859f3f-e4ef-5e43-923a-c1021799fb23",
    }


def test_status_after_regenerate_shows_the_last_success_and_errors(site: Path) -> None:
    cfg = site / "config.yaml"
    assert regen(cfg) == EXIT_OK
    done = subprocess.run([sys.executable, "-m", "aggregator", "status", "--config", str(cfg)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "last success: never" not in done.stdout
    shutil.rmtree(site / "seeds")
    assert regen(cfg) == EXIT_PARTIAL
    config = load_config(cfg)
    with Store.open(config.store_target, lock=False, readonly=True) as store:
        state = store.source_state("seeds")
    assert state.failures == 1 and "does not exist" in (state.last_error or "")
    assert state.last_success is not None
