"""Per-source, per-category and named feeds, JSON Feed, OPML, archive pages, the stylesheet,
the cheap "nothing changed" publish, and the operator commands `parse` and `check`."""

from __future__ import annotations

import html
import json
import shutil
import sqlite3
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest
from lxml import etree

from aggregator.cli import EXIT_CONFIG, EXIT_OK, EXIT_PARTIAL, main
from aggregator.config import load_config
from aggregator.pipeline import publish_now
from aggregator.store import Store
from tests.conftest import DATA, SEED_DOC
from tests.seedmaker import tgrt_seed
from tests.test_regenerate import T0, regen, write_config

FEEDS = """feeds:
  - name: ukrayna
    title: Ukrayna haberleri
    match: [ukrayna, Kiev]
  - name: gundem-seeds
    sources: [seeds]
    categories: ["#Gündem"]
"""


def parsed(path: Path) -> feedparser.FeedParserDict:
    result = feedparser.parse(path.read_bytes())
    assert result.bozo == 0, (path, result.get("bozo_exception"))
    return result


@pytest.fixture
def site(tmp_path: Path) -> Path:
    cfg = write_config(tmp_path, extra=FEEDS, max_items=2)
    cfg.write_text(cfg.read_text().replace("  max_items: 2", "  max_items: 2\n  archive: true"))
    for name in ("tgrt_noisy.txt", "oneline_meta.txt", "giris_tarihi.txt", "short_month.txt"):
        shutil.copy(DATA / "layouts" / name, tmp_path / "seeds" / name)
    shutil.copy(SEED_DOC, tmp_path / "seeds" / SEED_DOC.name)
    assert regen(cfg) == EXIT_OK
    return tmp_path


def test_every_feed_in_three_formats_with_the_same_ids(site: Path) -> None:
    out = site / "out"
    folders = ["", "sources/seeds/", "categories/gundem/", "categories/politika/",
               "feeds/ukrayna/", "feeds/gundem-seeds/"]  # fmt: skip
    for folder in folders:
        atom, rss = parsed(out / folder / "atom.xml"), parsed(out / folder / "rss.xml")
        doc = json.loads((out / folder / "feed.json").read_text(encoding="utf-8"))
        assert doc["version"] == "https://jsonfeed.org/version/1.1"
        assert doc["feed_url"] == f"http://127.0.0.1:8080/{folder}feed.json"
        ids = [e.id for e in atom.entries]
        assert ids and ids == [e.id for e in rss.entries] == [i["id"] for i in doc["items"]]
        for entry, item in zip(atom.entries, doc["items"], strict=True):
            assert entry.published == item["date_published"]
            assert entry.updated == item["date_modified"]
            assert entry.content[0].value == item["content_html"]
        assert atom.feed.links[0].href == f"http://127.0.0.1:8080/{folder}atom.xml"
    # Turkish-aware slugs; a named feed's filters all apply
    gundem = parsed(out / "categories/gundem/atom.xml")
    assert gundem.feed.title == "Test Akışı: Gündem"
    assert [e.title for e in gundem.entries] == [
        e.title for e in parsed(out / "feeds/gundem-seeds/atom.xml").entries
    ]
    ukrayna = parsed(out / "feeds/ukrayna/atom.xml")
    assert ukrayna.feed.title == "Test Akışı: Ukrayna haberleri"
    assert all("Ukrayna" in e.title or "Ukrayna" in e.summary for e in ukrayna.entries)
    assert len(ukrayna.entries) == 1


def test_stylesheet_pi_opml_and_index(site: Path) -> None:
    out = site / "out"
    assert b'<?xml-stylesheet type="text/xsl" href="feed.xsl"?>' in (out / "atom.xml").read_bytes()
    assert b'href="../../feed.xsl"' in (out / "categories/gundem/rss.xml").read_bytes()
    etree.XSLT(etree.parse(str(out / "feed.xsl")))  # a valid stylesheet...
    page = etree.XSLT(etree.parse(str(out / "feed.xsl")))(etree.parse(str(out / "atom.xml")))
    assert "akış okuyucunuza" in str(page)  # ...that turns the feed into a page
    urls = etree.parse(str(out / "opml-all.xml")).xpath("//outline/@xmlUrl")
    assert "http://127.0.0.1:8080/categories/gundem/atom.xml" in urls and len(urls) >= 6
    index = (out / "index.html").read_text(encoding="utf-8")
    assert index.count('rel="alternate"') == 3 * len(urls)
    assert "Adresi kopyala" in index and "Gündem" in index and "haber · son güncelleme" in index


def test_feed_xsl_shows_descriptions_as_text_and_dates_in_turkish(tmp_path: Path) -> None:
    """The styled RSS view showed an item without a spot as literal `<p>` tags, and dates as
    ISO or RFC 822 strings while every other page prints them in Turkish."""
    cfg = write_config(tmp_path)
    shutil.copy(SEED_DOC, tmp_path / "seeds")
    shutil.copy(DATA / "layouts" / "tgrt_bodyonly.txt", tmp_path / "seeds")  # no spot
    shutil.copy(DATA / "layouts" / "markup_text.txt", tmp_path / "seeds")  # "<img ...>" spot
    assert regen(cfg) == EXIT_OK
    out = tmp_path / "out"
    xsl = etree.XSLT(etree.parse(str(out / "feed.xsl")))
    for name in ("rss.xml", "atom.xml"):
        page = etree.HTML(str(xsl(etree.parse(str(out / name)))))
        text = " ".join(page.xpath("//ol//text()"))
        assert "<p>" not in text and "&lt;" not in text and "&amp;" not in text, text
        assert "Deprem bölgesinde yeniden yapılanma" in text  # the spot-less item's text
        assert "\uff1cimg src=x onerror=alert(1)>" in text  # a spot with markup, as text
        assert not page.xpath("//img")
        whens = page.xpath("//div[@class='when']/text()")
        assert any("1 Ocak 2026 Perşembe 19:16" in w for w in whens), whens
        assert any("2 Nisan 2026 Perşembe" in w for w in whens), whens
        assert not any("2026-" in w or "Thu," in w for w in whens), whens


def test_opml_lists_the_combined_and_named_feeds_and_opml_all_every_feed(site: Path) -> None:
    """Source and category feeds repeat the combined feed's ids: newsboat then shows the
    combined feed empty, Miniflux and FreshRSS show each article several times."""
    out = site / "out"
    base = "http://127.0.0.1:8080/"
    urls = etree.parse(str(out / "opml.xml")).xpath("//outline/@xmlUrl")
    assert urls == [base + "atom.xml", base + "feeds/ukrayna/atom.xml",
                    base + "feeds/gundem-seeds/atom.xml"]  # fmt: skip
    every = etree.parse(str(out / "opml-all.xml")).xpath("//outline/@xmlUrl")
    assert set(urls) < set(every) and base + "sources/seeds/atom.xml" in every
    index = (out / "index.html").read_text(encoding="utf-8")
    assert 'href="opml.xml"' in index and 'href="opml-all.xml"' in index


def test_index_shows_the_newest_headlines_linking_to_their_articles(site: Path) -> None:
    out = site / "out"
    newest = parsed(out / "atom.xml").entries[:3]
    index = (out / "index.html").read_text(encoding="utf-8")
    headlines = index[: index.index("<h2>Akışlar</h2>")]  # above the feed list
    for entry in newest:
        assert f'<a href="{entry.link}">{html.escape(entry.title)}</a>' in headlines
    assert "Ocak 2026" in headlines or "Mart 2026" in headlines


def test_archive_pages_cover_everything_and_link_back(site: Path) -> None:
    out = site / "out"
    current = parsed(out / "atom.xml")
    prev = [link.href for link in current.feed.links if link.rel == "prev-archive"]
    assert prev == ["http://127.0.0.1:8080/archive/2.xml"]
    seen = {e.id for e in current.entries}
    for n in (1, 2):
        page = parsed(out / f"archive/{n}.xml")
        assert b"<fh:archive/>" in (out / f"archive/{n}.xml").read_bytes()
        assert page.feed.id == current.feed.id
        seen |= {e.id for e in page.entries}
    with Store.open(site / "state" / "agg.sqlite3") as store:
        assert len(seen) == store.count() == 5


def test_nothing_changed_publishes_nothing_and_a_change_publishes_again(site: Path) -> None:
    config = load_config(site / "config.yaml")
    with Store.open(config.state) as store:
        assert publish_now(config, store, T0) == []
    (site / "seeds" / "new.txt").write_text(tgrt_seed(title="Kiev'de yeni görüşme turu başladı",
        spot="Heyetler Kiev'de bir araya geldi.", giris=T0 + timedelta(days=400)),
        encoding="utf-8")  # fmt: skip
    assert regen(site / "config.yaml") == EXIT_OK
    titles = [e.title for e in parsed(site / "out/feeds/ukrayna/atom.xml").entries]
    assert titles[0] == "Kiev'de yeni görüşme turu başladı"


def test_a_version_1_store_gets_its_categories_backfilled(site: Path) -> None:
    db = site / "state" / "agg.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("DROP TABLE article_categories")
        conn.execute("DROP TABLE publish_state")
        conn.execute("UPDATE schema_meta SET value = '1' WHERE key = 'version'")
    shutil.rmtree(site / "out")
    assert regen(site / "config.yaml") == EXIT_OK
    assert len(parsed(site / "out/categories/gundem/atom.xml").entries) == 1


def test_feed_config_errors_name_the_key(tmp_path: Path, capsys) -> None:
    for extra, key in (
        ("feeds:\n  - name: x\n", "feeds[0]: give at least one"),
        ("feeds:\n  - name: x\n    sources: [nope]\n", "feeds[0].sources"),
        ("feeds:\n  - name: x\n    match: 3\n", "feeds[0].match"),
        ("feeds:\n  - name: x\n    colour: red\n", "feeds[0].colour"),
    ):
        cfg = write_config(tmp_path, extra=extra)
        assert regen(cfg) == EXIT_CONFIG
        assert key in capsys.readouterr().err
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("max_items: 50", "max_items: 50\n  archive: yes-ish"))
    assert regen(cfg) == EXIT_CONFIG
    assert "output.archive" in capsys.readouterr().err


def test_parse_prints_records_and_names_rejected_files(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("düz metin\n", encoding="utf-8")
    noisy = DATA / "layouts" / "tgrt_noisy.txt"
    assert main(["parse", str(noisy), str(DATA / "web" / "cp1254.html")]) == EXIT_OK
    out = capsys.readouterr().out
    assert "5 Mart 2026 Perşembe 21:01" in out and "Politika, Gündem" in out
    assert "Kıymalı Böreği" in out
    assert main(["parse", "--json", str(noisy), str(bad)]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    (record,) = json.loads(captured.out)
    assert record["categories"] == ["Politika", "Gündem"] and record["file"] == str(noisy)
    assert "bad.txt" in captured.err and "no article layout" in captured.err


def test_parse_dates_an_undated_page_now_and_says_so(tmp_path: Path, capsys) -> None:
    page = tmp_path / "tarihsiz.html"
    page.write_text("<html><body><h1>Tarihsiz sayfa</h1><p>Metin.</p></body></html>")
    assert main(["parse", str(page), "--url", "https://haber.test/tarihsiz"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "Tarihsiz sayfa" in out and "[first seen: no date on the page" in out
    assert main(["parse", "--json", str(page)]) == EXIT_OK
    (record,) = json.loads(capsys.readouterr().out)
    assert record["published_source"] == "seen"


def test_check_reports_sources_and_missing_folders(site: Path, capsys) -> None:
    cfg = site / "config.yaml"
    assert main(["check", "--config", str(cfg)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "valid" in out and "(5 .txt files)" in out and "feeds/ukrayna/" in out
    shutil.rmtree(site / "seeds")
    assert main(["check", "--config", str(cfg), "-q"]) == EXIT_PARTIAL
    captured = capsys.readouterr()
    assert captured.out == "" and "seed folder" in captured.err
