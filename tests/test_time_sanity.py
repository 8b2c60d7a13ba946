"""Dates a reader can believe: undated items keep the time they were first seen (stored once,
never recomputed), dates in other languages are read, and dates far in the future are not
believed (issue 14 row 5, issue 17 items 1-2). Real local server, real store, real seeds."""

from __future__ import annotations

import logging
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator.config import Config, load_config
from aggregator.model import Article
from aggregator.pipeline import run_once
from aggregator.sources import Harvest, staged
from aggregator.sources.feed import parse_time, title_from_url
from aggregator.store import Store
from aggregator.timeparse import parse_foreign
from tests.conftest import ISTANBUL
from tests.localserver import App, Reply, serve_in_thread
from tests.reliability.helpers import regenerate, write_config
from tests.seedmaker import tgrt_seed

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=ISTANBUL)
RSS = "application/rss+xml"


def rss(items: str, build: str = "Mon, 02 Mar 2026 09:00:00 +0300") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="0.91"><channel>'
        f"<title>Kanal</title><link>http://site.test/</link><lastBuildDate>{build}"
        f"</lastBuildDate>{items}</channel></rss>"
    ).encode()


def item(n: int, date: str | None = None) -> str:
    when = f"<pubDate>{date}</pubDate>" if date else ""
    return (f"<item><title>Tarihsiz haber numarası {n} yayında</title>"
            f"<link>http://site.test/haber/{n}</link>{when}</item>")  # fmt: skip


def site(tmp_path: Path, app: App, *names: str, max_items: int = 50) -> Config:
    sources = "".join(
        f"  - name: {n}\n    type: feed\n    url: {app.base}/{n}.xml\n    every: 1s\n"
        for n in names
    )
    return load_config(write_config(tmp_path, sources=sources, max_items=max_items))


def out_files(cfg: Config) -> dict[str, bytes]:
    return {
        str(p.relative_to(cfg.output_dir)): p.read_bytes()
        for p in sorted(cfg.output_dir.rglob("*"))
        if p.is_file()
    }


def entries(cfg: Config) -> list[feedparser.FeedParserDict]:
    parsed = feedparser.parse((cfg.output_dir / "atom.xml").read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return list(parsed.entries)


def test_undated_items_keep_their_first_seen_time_and_feeds_do_not_churn(tmp_path: Path) -> None:
    with serve_in_thread(App()) as app:
        cfg = site(tmp_path, app, "eski")
        app.route("/eski.xml", Reply(body=rss("".join(item(n) for n in range(30))),
                                     content_type=RSS))  # fmt: skip
        with Store.open(cfg.state) as store:
            first = run_once(cfg, store, None, T0)
            assert first.new == 30 and not first.rejections
            before = out_files(cfg)
            # the channel changes (so the items are parsed again), the items do not
            later_body = rss("".join(item(n) for n in range(30)), build="Tue, 03 Mar 2026")
            app.route("/eski.xml", Reply(body=later_body, content_type=RSS))
            second = run_once(cfg, store, None, T0 + timedelta(hours=5))
            assert second.new == 0 and second.updated == 0 and second.unchanged == 30
            assert out_files(cfg) == before  # ids, order and bytes: all the same
            # one more item appears later: it gets the later time, the others keep theirs
            app.route("/eski.xml", Reply(body=rss("".join(item(n) for n in range(31)),
                                                  build="Wed"), content_type=RSS))  # fmt: skip
            run_once(cfg, store, None, T0 + timedelta(hours=6))
            stored = {e.article.title: e.article for e in store.latest(100)}
    assert all(a.published_source == "seen" for a in stored.values())
    assert stored["Tarihsiz haber numarası 30 yayında"].published == T0 + timedelta(hours=6)
    assert stored["Tarihsiz haber numarası 0 yayında"].published == T0
    got = entries(cfg)
    assert got[0].title == "Tarihsiz haber numarası 30 yayında"
    assert {e.published for e in got[1:]} == {T0.astimezone(UTC).isoformat()}


def test_two_regenerate_runs_publish_the_same_bytes_for_undated_items(tmp_path: Path) -> None:
    """`aggregator regenerate` as a user runs it (the real clock): the second run, a while
    later and with the feed's channel changed, rewrites nothing."""
    with serve_in_thread(App()) as app:
        cfg = site(tmp_path, app, "eski")
        app.route("/eski.xml", Reply(body=rss("".join(item(n) for n in range(10))),
                                     content_type=RSS))  # fmt: skip
        first = regenerate(tmp_path / "config.yaml")
        assert first.returncode == 0, first.stderr
        before = out_files(cfg)
        app.route("/eski.xml", Reply(body=rss("".join(item(n) for n in range(10)), build="B"),
                                     content_type=RSS))  # fmt: skip
        time.sleep(1.2)  # the source (every: 1s) is due again
        second = regenerate(tmp_path / "config.yaml")
        assert second.returncode == 0, second.stderr
        assert app.hits["/eski.xml"] == 2  # fetched and parsed again, not skipped
    assert len(entries(cfg)) == 10
    assert out_files(cfg) == before


def test_an_item_with_only_a_link_is_titled_from_its_url(tmp_path: Path) -> None:
    body = rss('<item><link>http://site.test/2024/07/03/meclis-yeni-yasayi-kabul-etti.html'
               '</link></item><item><link>http://site.test/</link></item>')  # fmt: skip
    with serve_in_thread(App()) as app:
        cfg = site(tmp_path, app, "linkler")
        app.route("/linkler.xml", Reply(body=body, content_type=RSS))
        with Store.open(cfg.state) as store:
            report = run_once(cfg, store, None, T0)
    assert not report.rejections
    titles = {e.title: e.link for e in entries(cfg)}
    assert titles == {
        "meclis yeni yasayi kabul etti":
            "http://site.test/2024/07/03/meclis-yeni-yasayi-kabul-etti.html",
        "site.test": "http://site.test/",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("link", "title"),
    [
        ("http://a.test/haber/123456", "a.test/haber/123456"),
        ("http://a.test/g%C3%BCndem/%C3%A7ok-okunan_haber.php?id=3", "çok okunan haber"),
        ("https://a.test/yazi/", "yazi"),
    ],
)
def test_title_from_url(link: str, title: str) -> None:
    assert title_from_url(link) == title


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Seg, 24 Set 2018 19:42:40 -0300", datetime(2018, 9, 24, 22, 42, 40, tzinfo=UTC)),
        ("lun., 03 juil. 2023 10:00:00 +0200", datetime(2023, 7, 3, 8, 0, tzinfo=UTC)),
        ("Di, 04 Aug 2015 12:00:00", datetime(2015, 8, 4, 9, 0, tzinfo=UTC)),  # site's zone
        ("Пн, 24 сен 2018 19:42:40 +0300", datetime(2018, 9, 24, 16, 42, 40, tzinfo=UTC)),
        ("3 hours ago", None),  # relative: would need the clock
        ("24 Set", None),  # no year: would come from the clock
        ("hello 2018", None),
    ],
)
def test_dates_in_other_languages(raw: str, expected: datetime | None) -> None:
    assert parse_foreign(raw, ISTANBUL) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # a US Drupal site: only the month/day reading is a Friday
        ("Fri, 05/03/2019 - 15:21", datetime(2019, 5, 3, 15, 21, tzinfo=ISTANBUL)),
        ("05/03/2019 15:21", datetime(2019, 3, 5, 15, 21, tzinfo=ISTANBUL)),  # Turkish order
        ("Tue, 05/03/2019 15:21", datetime(2019, 3, 5, 15, 21, tzinfo=ISTANBUL)),
        ("Thu, 09 Feb 2006 16:59:45 G", datetime(2006, 2, 9, 16, 59, 45, tzinfo=UTC)),  # RFC 2822
    ],
)
def test_numeric_and_military_forms(raw: str, expected: datetime) -> None:
    assert parse_time(raw, ISTANBUL) == expected


def test_feed_with_portuguese_dates_publishes_them(tmp_path: Path) -> None:
    dates = ["Seg, 24 Set 2018 19:42:40 -0300", "Ter, 25 Set 2018 08:00:00 -0300"]
    body = rss(item(1, dates[0]) + item(2, dates[1])).replace(
        b"<title>Kanal</title>", b"<title>Kanal</title><language>pt-BR</language>"
    )
    with serve_in_thread(App()) as app:
        cfg = site(tmp_path, app, "pt")
        app.route("/pt.xml", Reply(body=body, content_type=RSS))
        with Store.open(cfg.state) as store:
            report = run_once(cfg, store, None, T0)
            sources = {e.article.published_source for e in store.latest(10)}
    assert not report.rejections and sources == {"source"}
    assert sorted(e.published for e in entries(cfg)) == [
        "2018-09-24T19:42:40-03:00",
        "2018-09-25T08:00:00-03:00",
    ]


def test_future_dated_items_do_not_pin_the_combined_feed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """50 items dated 2099 took every slot of the combined feed, for good."""
    future = "".join(item(n, "Thu, 01 Jan 2099 00:00:00 +0000") for n in range(50))
    real = "".join(item(100 + n, f"Mon, 02 Mar 2026 08:{n:02d}:00 +0300") for n in range(5))
    with serve_in_thread(App()) as app:
        cfg = site(tmp_path, app, "gelecek", "gercek")
        cfg_path = tmp_path / "config.yaml"
        cfg_path.write_text(cfg_path.read_text().replace("retention: never", "retention: 2d"))
        cfg = load_config(cfg_path)
        app.route("/gelecek.xml", Reply(body=rss(future), content_type=RSS))
        app.route("/gercek.xml", Reply(body=rss(real), content_type=RSS))
        with Store.open(cfg.state) as store, caplog.at_level(logging.WARNING):
            run_once(cfg, store, None, T0)
            assert "2099" not in (cfg.output_dir / "atom.xml").read_text()
            assert len(entries(cfg)) == 50
            # an hour later the real source has news: it comes first
            later = "".join(item(200 + n, f"Mon, 02 Mar 2026 10:{n:02d}:00 +0300")
                            for n in range(50))  # fmt: skip
            app.route("/gercek.xml", Reply(body=rss(later + real, build="x"), content_type=RSS))
            run_once(cfg, store, None, T0 + timedelta(hours=2))
            assert entries(cfg)[0].title == "Tarihsiz haber numarası 249 yayında"
            # the source drops them: they age out like any other article (retention keeps
            # the newest max_items, and they are no longer the newest)
            app.route("/gelecek.xml", Reply(body=rss("", build="y"), content_type=RSS))
            run_once(cfg, store, None, T0 + timedelta(days=3))
            titles = [e.title for e in entries(cfg)]
    assert len(titles) == 50
    assert all(int(t.split()[3]) >= 200 for t in titles)
    warnings = [r.getMessage() for r in caplog.records if "in the future" in r.getMessage()]
    assert len(warnings) == 50 and all(w.startswith("source gelecek: ") for w in warnings)


def seed(title: str, giris: datetime, guncelleme: datetime | None, body: str) -> str:
    return tgrt_seed(title=title, spot="Bakanlık açıklama yaptı.", giris=giris,
                     guncelleme=guncelleme, body=(body,))  # fmt: skip


def test_a_future_guncelleme_does_not_beat_later_corrections(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = load_config(write_config(tmp_path))
    path = tmp_path / "seeds" / "haber.txt"
    title = "Bakanlık yeni düzenlemeyi bugün açıkladı"
    path.write_text(seed(title, T0, datetime(2099, 1, 1, 12, 0, tzinfo=ISTANBUL), "İlk sürüm."))
    with Store.open(cfg.state) as store, caplog.at_level(logging.WARNING):
        run_once(cfg, store, None, T0 + timedelta(minutes=5))
        (first,) = store.latest(10)
        assert first.article.updated == T0
        path.write_text(seed(title, T0, T0 + timedelta(hours=2), "Düzeltilmiş sürüm."))
        run_once(cfg, store, None, T0 + timedelta(hours=3))
        (second,) = store.latest(10)
    assert second.id == first.id
    assert "Düzeltilmiş sürüm." in second.article.content_html
    assert second.article.updated == T0 + timedelta(hours=2)
    assert any("GÜNCELLEME 01.01.2099 12:00 is in the future" in r.getMessage()
               for r in caplog.records)  # fmt: skip


def test_a_future_giris_falls_back_to_the_scrape_day(tmp_path: Path) -> None:
    cfg = load_config(write_config(tmp_path))
    text = seed("Gelecek tarihli haber ama bugün kazındı", T0, None, "Metin.")
    text = text.replace(f"{T0:%d.%m.%Y}", "01.01.2099", 1)  # GİRİŞ only, not the scrape date
    (tmp_path / "seeds" / "a.txt").write_text(text)
    with Store.open(cfg.state) as store:
        run_once(cfg, store, None, T0 + timedelta(hours=1))
        (entry,) = store.latest(10)
    assert entry.article.published == datetime(2026, 3, 2, tzinfo=ISTANBUL)
    assert entry.article.date_only


def test_a_store_holding_future_dates_from_before_is_mended_on_open(tmp_path: Path) -> None:
    """A store written before the rule: its 2099 article is given its first-seen time, so it
    drops to its place and a real correction wins."""
    cfg = load_config(write_config(tmp_path))
    future = datetime(2099, 1, 1, tzinfo=UTC)
    old = Article(title="Eskiden kalma gelecek tarihli haber", published=future,
                  updated=future, source="eski", origin="http://site.test/f",
                  link="http://site.test/haber/9", guid="9")  # fmt: skip
    with Store.open(cfg.state) as store:
        run_once(cfg, store, None, T0, harvests=[Harvest(name="eski", records=staged([old]))])
    with sqlite3.connect(cfg.state) as conn:  # as the previous schema version left it
        conn.execute("DROP TABLE first_seen")
        conn.execute("UPDATE schema_meta SET value = '5' WHERE key = 'version'")
    conn.close()
    fixed = Article(title="Eskiden kalma haber, düzeltildi", published=T0, updated=T0,
                    source="eski", origin="http://site.test/f",
                    link="http://site.test/haber/9", guid="9")  # fmt: skip
    with Store.open(cfg.state) as store:
        (mended,) = store.latest(10)
        assert mended.article.published == T0
        run_once(cfg, store, None, T0 + timedelta(hours=1),
                 harvests=[Harvest(name="eski", records=staged([fixed]))])  # fmt: skip
        (after,) = store.latest(10)
    assert after.id == mended.id and after.article.title == "Eskiden kalma haber, düzeltildi"
