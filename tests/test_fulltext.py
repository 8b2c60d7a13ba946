"""`fulltext: true` feeds against a real local server, a real store and feedparser reading
what we publish: page bodies replace summaries once per new or changed item."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator.config import load_config
from aggregator.errors import ConfigError
from aggregator.pipeline import run_once
from aggregator.store import Store
from tests.localserver import HTML, App, Reply, serve_in_thread
from tests.realpages import pages
from tests.test_web_pipeline import T0, config, source

HURRIYET = next(p for p in pages() if p.name == "scraperhryt-hurriyet")


def item(base: str, path: str, title: str, day: int) -> str:
    return f"""<item><title>{title}</title><link>{base}{path}</link><guid>{path}</guid>
    <pubDate>Thu, {day:02d} Jan 2026 10:00:00 +0300</pubDate>
    <description>Özet: {title}.</description></item>"""


def feed(base: str, *items: str) -> bytes:
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Özet akışı</title><link>{base}/</link>{''.join(items)}"
            f"</channel></rss>").encode()  # fmt: skip


def page(text: str) -> bytes:
    return (
        f"<html><head><title>x</title></head><body><nav><a href='/'>Ana sayfa</a></nav>"
        f"<article><h1>Başlık</h1><p>{text}</p><p>İkinci paragraf, "
        f"<a href='/ic/baglanti'>iç bağlantı</a> ile.</p></article></body></html>"
    ).encode()


ITEMS: list[str] = []  # what /feed.xml carries now


@pytest.fixture
def app() -> Iterator[App]:
    with serve_in_thread(App(), fixtures=False) as app:
        base = app.base
        ITEMS[:] = [
            item(base, "/a/1", "Birinci haber", 1),
            item(base, "/a/hurriyet", "Fon soruşturması", 2),
            item(base, "/a/yok", "Sayfası olmayan haber", 3),
            item(base, "/gizli/4", "Robots dışı haber", 4),
        ]
        app.route("/feed.xml", lambda _r: Reply(body=feed(base, *ITEMS),
                                                content_type="application/rss+xml"))  # fmt: skip
        app.route("/robots.txt", Reply(body=b"User-agent: *\nDisallow: /gizli/\n"))
        long = "Sayfanın kendi metni, özetten çok daha uzun bir gövde. " * 12
        app.route("/a/1", Reply(body=page(long), content_type=HTML))
        app.route("/a/5", Reply(body=page("Beşinci haberin tam metni. " * 20), content_type=HTML))
        app.route("/a/hurriyet", Reply(body=HURRIYET.html, content_type=HTML))
        app.route("/a/yok", Reply(404, b"yok"))
        yield app


def entries(root: Path) -> dict[str, feedparser.FeedParserDict]:
    parsed = feedparser.parse((root / "out" / "atom.xml").read_bytes())
    return {e.title: e for e in parsed.entries}


def plain(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html).strip()


def body(entry: feedparser.FeedParserDict) -> str:
    return str(entry.content[0].value) if entry.get("content") else ""


def test_summary_only_feed_publishes_page_bodies_and_fetches_each_page_once(
    app: App, tmp_path: Path
) -> None:
    cfg = config(tmp_path, source("ozet", "feed", app.base + "/feed.xml", "    fulltext: true\n"))
    with Store.open(cfg.state) as store:
        report = run_once(cfg, store, None, T0)
    (ozet,) = report.sources
    assert ozet.error is None and ozet.read == 4
    assert ozet.fulltext_failed == 2  # the 404 page and the one robots.txt disallows
    got = entries(tmp_path)
    first = got["Birinci haber"]
    assert "Sayfanın kendi metni" in body(first)
    assert f'href="{app.base}/ic/baglanti"' in body(first)  # relative links made absolute
    assert "Ana sayfa" not in body(first)  # the page's navigation is not the article
    assert first.summary == "Özet: Birinci haber."  # the feed's summary stays the summary
    assert "Savcılıktaki ifadeleri" in body(got["Fon soruşturması"])  # a real Hürriyet page
    missing = got["Sayfası olmayan haber"]  # its page is a 404: the feed's text stays
    assert missing.summary == "Özet: Sayfası olmayan haber." == plain(body(missing))
    assert app.hits["/gizli/4"] == 0 and app.hits["/robots.txt"] == 1
    fetched = {p: app.hits[p] for p in ("/a/1", "/a/hurriyet", "/a/yok")}
    assert fetched == {"/a/1": 1, "/a/hurriyet": 1, "/a/yok": 1}

    # the same feed again: nothing to parse, no page fetched
    with Store.open(cfg.state) as store:
        again = run_once(cfg, store, None, T0 + timedelta(minutes=10))
    assert again.sources[0].not_modified
    assert {p: app.hits[p] for p in fetched} == fetched

    # one new item: only its page (and the failed ones, retried) is fetched; the others keep
    # their full text
    ITEMS.append(item(app.base, "/a/5", "Beşinci haber", 5))
    with Store.open(cfg.state) as store:
        third = run_once(cfg, store, None, T0 + timedelta(minutes=20))
    assert third.sources[0].unchanged == 2 and third.new == 1
    assert app.hits["/a/5"] == 1 and app.hits["/a/1"] == 1 and app.hits["/a/hurriyet"] == 1
    got = entries(tmp_path)
    assert "Beşinci haberin tam metni" in body(got["Beşinci haber"])
    assert "Sayfanın kendi metni" in body(got["Birinci haber"])


def test_fulltext_is_a_feed_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"sources\[0\]\.fulltext: only feed sources"):
        config(tmp_path, source("x", "html", "http://127.0.0.1:1/", "    fulltext: true\n"))
    with pytest.raises(ConfigError, match=r"sources\[0\]\.fulltext: expected bool"):
        config(tmp_path, source("x", "feed", "http://127.0.0.1:1/", "    fulltext: evet\n"))
    cfg = config(tmp_path, source("x", "feed", "http://127.0.0.1:1/", "    fulltext: true\n"))
    assert cfg.sources[0].fulltext
    assert load_config(cfg.path).sources[0].fulltext


def test_an_unreachable_robots_txt_allows_no_page_this_run(app: App, tmp_path: Path) -> None:
    app.route("/robots.txt", Reply(500, b"down"))
    cfg = config(tmp_path, source("ozet", "feed", app.base + "/feed.xml", "    fulltext: true\n"))
    with Store.open(cfg.state) as store:
        report = run_once(cfg, store, None, T0)
    assert report.sources[0].fulltext_failed == 4 and report.new == 4
    assert app.hits["/robots.txt"] == 1 and app.hits["/a/1"] == 0
    assert entries(tmp_path)["Birinci haber"].summary == "Özet: Birinci haber."
