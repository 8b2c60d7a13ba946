"""`fulltext: true` feeds against a real local server, a real store and feedparser reading
what we publish: page bodies replace summaries once per new or changed item."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator.config import Config, load_config
from aggregator.errors import ConfigError
from aggregator.model import SourceState
from aggregator.pipeline import run_once
from aggregator.store import FULLTEXT_PAGES_PER_SOURCE, Store
from tests.localserver import HTML, App, Reply, Request, serve_in_thread
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


class ConditionalPage:
    """An article page with an ETag that answers 304 to a matching If-None-Match."""

    def __init__(self, text: str, etag: str) -> None:
        self.text, self.etag = text, etag

    def __call__(self, request: Request) -> Reply:
        if request.headers.get("if-none-match") == self.etag:
            return Reply(304, headers={"ETag": self.etag})
        return Reply(body=page(self.text), content_type=HTML,
                     headers={"ETag": self.etag,
                              "Last-Modified": "Thu, 01 Jan 2026 07:00:00 GMT"})  # fmt: skip


def asked_with(app: App, path: str) -> list[str | None]:
    """The If-None-Match each request for `path` carried, in order."""
    return [r.headers.get("if-none-match") for r in app.requests if r.path == path]


def one_item(app: App, summary: str, day: int = 1) -> None:
    """The feed carries one item, /a/1, with this summary, dated (or corrected) on `day`."""
    ITEMS[:] = [item(app.base, "/a/1", "Birinci haber", day).replace(
        "Özet: Birinci haber.", summary)]  # fmt: skip


def run_at(cfg: Config, minutes: int) -> None:
    with Store.open(cfg.state) as store:
        report = run_once(cfg, store, None, T0 + timedelta(minutes=minutes))
    assert report.sources[0].error is None and report.sources[0].fulltext_failed == 0


def test_a_changed_item_asks_for_its_page_conditionally_and_a_304_keeps_the_page_body(
    app: App, tmp_path: Path
) -> None:
    article = ConditionalPage("Sayfanın ilk metni, özetten uzun bir gövde. " * 10, '"v1"')
    app.route("/a/1", article)
    one_item(app, "İlk özet.")
    cfg = config(tmp_path, source("ozet", "feed", app.base + "/feed.xml", "    fulltext: true\n"))
    run_at(cfg, 0)
    assert asked_with(app, "/a/1") == [None]

    # the feed's text of the item changes; its page does not: asked with the ETag, a 304,
    # and the item publishes the page body kept from the first fetch
    one_item(app, "Düzeltilmiş özet.", 2)
    run_at(cfg, 10)
    assert asked_with(app, "/a/1") == [None, '"v1"']
    got = entries(tmp_path)["Birinci haber"]
    assert got.summary == "Düzeltilmiş özet."
    assert "Sayfanın ilk metni" in body(got) and "Düzeltilmiş" not in body(got)
    if_modified = [r.headers.get("if-modified-since") for r in app.requests if r.path == "/a/1"]
    assert if_modified[-1] == "Thu, 01 Jan 2026 07:00:00 GMT"

    # the page changes too (a new ETag): its new body is published and kept
    article.text, article.etag = "Sayfanın güncellenmiş metni, yine uzun. " * 10, '"v2"'
    one_item(app, "Üçüncü özet.", 3)
    run_at(cfg, 20)
    assert asked_with(app, "/a/1") == [None, '"v1"', '"v1"']
    assert "güncellenmiş metni" in body(entries(tmp_path)["Birinci haber"])
    one_item(app, "Dördüncü özet.", 4)
    run_at(cfg, 30)
    assert asked_with(app, "/a/1")[-1] == '"v2"'
    got = entries(tmp_path)["Birinci haber"]
    assert got.summary == "Dördüncü özet." and "güncellenmiş metni" in body(got)


def test_a_page_without_validators_is_fetched_in_full_each_time_its_item_changes(
    app: App, tmp_path: Path
) -> None:
    one_item(app, "İlk özet.")
    cfg = config(tmp_path, source("ozet", "feed", app.base + "/feed.xml", "    fulltext: true\n"))
    run_at(cfg, 0)
    one_item(app, "Düzeltilmiş özet.", 2)
    run_at(cfg, 10)
    assert asked_with(app, "/a/1") == [None, None]  # nothing to ask conditionally with
    assert "Sayfanın kendi metni" in body(entries(tmp_path)["Birinci haber"])


def test_a_store_from_before_item_pages_were_kept_still_runs_and_then_keeps_them(
    app: App, tmp_path: Path
) -> None:
    app.route("/a/1", ConditionalPage("Sayfanın metni, özetten uzun bir gövde. " * 10, '"v1"'))
    one_item(app, "İlk özet.")
    cfg = config(tmp_path, source("ozet", "feed", app.base + "/feed.xml", "    fulltext: true\n"))
    run_at(cfg, 0)
    with sqlite3.connect(cfg.state) as conn:  # as schema 10 left it: no kept pages
        conn.execute("DROP TABLE fulltext_pages")
        conn.execute("UPDATE schema_meta SET value = '10' WHERE key = 'version'")
    conn.close()
    run_at(cfg, 5)  # the feed unchanged: its item is still known, no page fetched
    assert asked_with(app, "/a/1") == [None]
    one_item(app, "Düzeltilmiş özet.", 2)
    run_at(cfg, 10)  # nothing kept from before: fetched in full, and now kept
    one_item(app, "Üçüncü özet.", 3)
    run_at(cfg, 20)
    assert asked_with(app, "/a/1") == [None, None, '"v1"']
    got = entries(tmp_path)["Birinci haber"]
    assert got.summary == "Üçüncü özet." and "Sayfanın metni" in body(got)


def test_kept_pages_are_bounded_per_source_forgetting_items_the_feed_no_longer_carries(
    tmp_path: Path,
) -> None:
    extra = 5
    pages = [(f"http://127.0.0.1:1/a/{i}", f"item{i}", f'"{i}"', None, f"<p>{i}</p>")
             for i in range(FULLTEXT_PAGES_PER_SOURCE + extra)]  # fmt: skip
    carried = {"item0", "item1", f"item{len(pages) - 1}"}  # the feed still carries these
    with Store.open(tmp_path / "agg.sqlite3") as store:
        for i, row in enumerate(pages):  # answered one after another, oldest first
            store.remember_fulltext_pages("ozet", [row], T0 + timedelta(seconds=i))
        store.save_source_state(SourceState(name="ozet", fulltext_seen=frozenset(carried)))
        kept = store.source_state("ozet").fulltext_pages or {}
        assert len(kept) == FULLTEXT_PAGES_PER_SOURCE
        urls = [url for url, *_ in pages]
        assert {urls[0], urls[1], urls[-1]} <= kept.keys()  # carried: kept however old
        assert not {urls[2], urls[3], urls[4], urls[5], urls[6]} & kept.keys()  # oldest gone
        assert store.fulltext_bodies("ozet", [urls[0], urls[7]]) == {
            urls[0]: "<p>0</p>", urls[7]: "<p>7</p>"}  # fmt: skip
        assert store.source_state("other").fulltext_pages is None


def test_a_304_to_a_request_that_was_not_conditional_keeps_the_feeds_content(
    app: App, tmp_path: Path
) -> None:
    app.route("/a/1", Reply(304, headers={"ETag": '"v1"'}))  # a broken server or proxy
    one_item(app, "İlk özet.")
    cfg = config(tmp_path, source("ozet", "feed", app.base + "/feed.xml", "    fulltext: true\n"))
    with Store.open(cfg.state) as store:
        report = run_once(cfg, store, None, T0)
    assert report.sources[0].fulltext_failed == 1 and report.new == 1
    got = entries(tmp_path)["Birinci haber"]
    assert got.summary == "İlk özet." == plain(body(got))
