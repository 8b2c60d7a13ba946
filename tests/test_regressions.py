"""Defects found in review, each pinned by the smallest test that showed it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import feedparser

from aggregator import dedupe
from aggregator.cli import EXIT_BUG, EXIT_CONFIG, main
from aggregator.config import load_config
from aggregator.model import Article, SourceState
from aggregator.normalize import absolute_url, canonical_url, collapse
from aggregator.serve import _accepts_gzip, content_type
from aggregator.sources.feed import parse_feed, parse_time
from aggregator.sources.html import parse_page
from aggregator.sources.http import Response
from aggregator.sources.web import succeeded
from tests.conftest import ISTANBUL
from tests.test_regenerate import regen, write_config

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=ISTANBUL)


def test_malformed_urls_are_rejected_not_raised() -> None:
    assert absolute_url("http://haber.test/", "http://[oops/a") is None
    assert absolute_url("http://haber.test/", "http://e.com:99999/x") is None
    assert canonical_url("https://e.com:99999/x") == "https://e.com:99999/x"
    a = Article(title="Port numarası bozuk bir bağlantı", link="https://e.com:99999/haber/1",
                published=T0, updated=T0, source="s", origin="o")  # fmt: skip
    assert dedupe.candidate(0, a).keys  # no ValueError inside the run's transaction


def test_a_page_with_a_malformed_link_still_parses() -> None:
    html = (
        b"<html><head><title>Bozuk linkli sayfa haberi</title>"
        b'<link rel="canonical" href="http://[oops/">'
        b'<meta property="article:published_time" content="2026-01-01T10:00:00+03:00">'
        b"</head><body><p>Metin.</p></body></html>"
    )
    a = parse_page(html, url="http://haber.test/x", content_type="text/html", source="s",
                   tz=ISTANBUL, language="tr", selectors=())  # fmt: skip
    assert a.title == "Bozuk linkli sayfa haberi"


def test_control_characters_never_reach_a_feed(tmp_path: Path) -> None:
    assert collapse("Ba\x01lık\x0b") == "Balık"
    feed = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T",
                       "items": [{"id": "1", "title": "Ba\u0001lık haberi",
                                  "date_published": "2026-01-01T10:00:00+03:00",
                                  "content_text": "x"}]}).encode()  # fmt: skip
    result = parse_feed(feed, url="http://haber.test/f", content_type="application/feed+json",
                        source="s", tz=ISTANBUL)  # fmt: skip
    assert result.articles[0].title == "Balık haberi"


def test_rfc2822_minus_0000_is_utc() -> None:
    assert parse_time("Thu, 01 Jan 2026 07:00:00 -0000", ISTANBUL) == datetime(
        2026, 1, 1, 7, 0, tzinfo=UTC
    )
    assert parse_time("Thu, 01 Jan 2026 10:00:00 +0300", ISTANBUL) == T0


def test_a_year_long_max_age_does_not_park_a_source(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path, extra="  - name: f\n    type: feed\n"
                                   "    url: http://haber.test/f\n    every: 5m\n"))  # fmt: skip
    source = cfg.sources[1]
    r = Response(url="http://haber.test/f", status=200, body=b"", content_type="",
                 max_age=365 * 86400.0)  # fmt: skip
    state = succeeded(SourceState(name="f"), source, r, T0)
    assert state.next_due is not None
    assert (state.next_due - T0).total_seconds() <= 6 * 3600


def test_entities_cannot_hide_in_utf16() -> None:
    doc = ('<?xml version="1.0" encoding="utf-16"?><!DOCTYPE rss [<!ENTITY a "AAAA">]>'
           '<rss version="2.0"><channel><title>T</title><item><title>&a;</title>'
           "<pubDate>Thu, 01 Jan 2026 10:00:00 +0300</pubDate></item></channel></rss>")  # fmt: skip
    try:
        result = parse_feed(doc.encode("utf-16"), url="http://haber.test/f", content_type="",
                            source="s", tz=ISTANBUL)  # fmt: skip
    except Exception as e:  # refused: fine
        assert "entities" in str(e)
    else:
        assert all("AAAA" not in a.title for a in result.articles)


def test_gzip_refused_explicitly_wins_over_star() -> None:
    assert not _accepts_gzip("*, gzip;q=0")
    assert _accepts_gzip("gzip, deflate")
    assert _accepts_gzip("*")
    assert not _accepts_gzip("identity")


def test_archive_pages_are_atom() -> None:
    assert content_type("sources/x/archive/3.xml").startswith("application/atom+xml")
    assert content_type("archive/1.xml").startswith("application/atom+xml")


def test_sources_whose_names_end_in_archive_keep_their_own_feed_id(tmp_path: Path) -> None:
    extra = "".join(f"  - name: {n}\n    type: seeds\n    path: seeds\n"
                    for n in ("x", "xarchive", "archive"))  # fmt: skip
    cfg = write_config(tmp_path, extra=extra)
    (tmp_path / "seeds" / "a.txt").write_text(
        " date 2026-01-01\nBir başlık burada yazıyor\nGİRİŞ:\n01.01.2026\n10:00\n\nMetin.\n",
        encoding="utf-8",
    )
    assert regen(cfg) in (0, 1)
    ids = {feedparser.parse((tmp_path / "out" / "sources" / n / "atom.xml").read_bytes()).feed.id
           for n in ("x", "xarchive", "archive")}  # fmt: skip
    assert len(ids) == 3


def test_a_bug_exits_70_and_a_bad_url_in_config_names_the_key(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("http://127.0.0.1:8080/", "http://[bad/"))
    assert main(["check", "--config", str(cfg)]) == EXIT_CONFIG
    assert "site.url" in capsys.readouterr().err
    code = (
        "import sys; from aggregator import cli; cli.regenerate = None; "
        f"sys.exit(cli.main(['regenerate', '--config', {str(write_config(tmp_path))!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == EXIT_BUG, done.stderr
    assert "internal error" in done.stderr


def test_a_closing_kaynak_line_does_not_eat_a_body_only_scrape() -> None:
    from aggregator.sources.seedfile import parse_seed
    from tests.conftest import DATA

    data = (DATA / "layouts" / "tgrt_bodyonly.txt").read_bytes() + b"\n\nKaynak: AA\n"
    a = parse_seed(data, origin="x", source="s", tz=ISTANBUL)
    assert a.title == "Deprem bölgesinde yeniden yapılanma çalışmaları sürüyor"
    assert a.content_html.count("<p>") == 3 and a.agency == "AA"


def test_a_seed_cut_mid_character_stays_utf8() -> None:
    from aggregator.sources.seedfile import parse_seed
    from tests.conftest import SEED_DOC

    a = parse_seed(SEED_DOC.read_bytes() + "ş".encode()[:1], origin="x", source="s", tz=ISTANBUL)
    assert a.title.startswith("MİT Başkanı İbrahim Kalın")


def test_a_seed_file_name_that_is_not_utf8_is_named_and_skipped(tmp_path: Path, capsys) -> None:
    import os
    import shutil

    from tests.conftest import SEED_DOC

    cfg = write_config(tmp_path)
    shutil.copy(SEED_DOC, tmp_path / "seeds")
    with open(os.path.join(os.fsencode(tmp_path / "seeds"), b"haber_\xfe.txt"), "wb") as f:
        f.write(SEED_DOC.read_bytes())
    assert main(["regenerate", "--config", str(cfg)]) == 1  # published, one input rejected
    assert "not UTF-8" in capsys.readouterr().err
    assert regen(cfg) == 1  # and again: the run goes on, nothing is stuck
    parsed = feedparser.parse((tmp_path / "out" / "atom.xml").read_bytes())
    assert len(parsed.entries) == 1


def test_state_paths_with_uri_characters_open_the_right_file(tmp_path: Path) -> None:
    from aggregator.store import Store

    path = tmp_path / "haber%23ler" / "state?v2.sqlite3"
    with Store.open(path):
        pass
    assert path.exists()


def test_an_expired_item_a_source_keeps_serving_does_not_come_back(tmp_path: Path) -> None:
    from tests.seedmaker import tgrt_seed

    cfg = write_config(tmp_path, max_items=1)
    cfg.write_text(cfg.read_text().replace("retention: never", "retention: 30d"))
    old = datetime(2020, 1, 1, 12, tzinfo=ISTANBUL)
    for i, day in enumerate((old, T0)):
        (tmp_path / "seeds" / f"{i}.txt").write_text(
            tgrt_seed(title=f"Eski yeni haber {i} başlığı", spot=f"Spot {i}.", giris=day),
            encoding="utf-8",
        )
    assert regen(cfg) == 0
    (tmp_path / "seeds" / "0.txt").write_text(  # the old one changes: it is read again
        tgrt_seed(title="Eski yeni haber 0 başlığı", spot="Spot 0, düzeltildi.", giris=old),
        encoding="utf-8",
    )
    done = subprocess.run([sys.executable, "-m", "aggregator", "regenerate", "--config",
                           str(cfg)], capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "0 new" in done.stdout and "wrote 0 files" in done.stdout
