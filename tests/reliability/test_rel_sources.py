"""Hostile web sources on local servers: billion laughs, external entities (also declared
after 64 KiB of comment), a gzip bomb, endless and trickling chunked bodies, a server that
accepts and never answers, 100,000 items, invalid UTF-8, a 301 to file:///etc/passwd,
<script>/onerror=/javascript: everywhere. Never a crash, never a hang past the timeouts,
never unsanitized HTML in what we publish; the good source beside them is published."""

from __future__ import annotations

import json
import re
import time
import zlib
from datetime import datetime
from pathlib import Path

import pytest

from aggregator.config import load_config
from aggregator.pipeline import run_once
from aggregator.sources.feed import MAX_ENTRIES
from aggregator.sources.http import HttpSettings, WebClient
from aggregator.store import Store
from tests.conftest import ISTANBUL
from tests.localserver import XML, App, Reply, serve_in_thread
from tests.reliability.helpers import read_feeds, regenerate_measured, write_config
from tests.reliability.hostile_server import hostile_server

PEAK_RSS_LIMIT_MIB = 500.0
ITEM = ("<item><title>Haber {n}</title><link>{base}/h/{n}</link>"
        "<pubDate>Fri, 02 Jan 2026 08:{n:02d}:00 +0300</pubDate></item>")  # fmt: skip
EVIL = ('<p onclick="steal()">Metin<script>alert(1)</script><img src="x.png" onerror="alert(2)">'
        '<a href="javascript:alert(3)">bağ</a><iframe src="http://evil.test/"></iframe>'
        '<a href="data:text/html,<script>alert(4)</script>">d</a>'
        '<svg onload="alert(5)"></svg><style>body{}</style></p>')  # fmt: skip


def _rss(base: str, items: str, doctype: str = "", prolog: str = "") -> bytes:
    head = f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}{doctype}<rss version="2.0">'
    return f"{head}<channel><title>T</title><link>{base}/</link>{items}</channel></rss>".encode()


def _gzip_bomb(megabytes: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1024 * 1024)
    return b"".join([z.compress(b"<rss>")] + [z.compress(zeros) for _ in range(megabytes)]
                    + [z.flush()])  # fmt: skip


def install_hostile_routes(app: App) -> dict[str, str]:
    """Routes on `app`; returns source name -> path."""
    base = app.base
    laughs = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    billion = f'<!DOCTYPE r [<!ENTITY l0 "lol">{laughs}]>'
    xxe = '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    one = ITEM.format(n=1, base=base)
    entity_item = "<item><title>&xxe;</title><description>&xxe;</description>" + one[6:]
    late = "<!--" + "x" * 70_000 + "-->\n"  # past the 64 KiB the entity check looks at
    app.route("/billion.xml", Reply(body=_rss(base, one.replace("Haber 1", "&l9;"), billion),
                                    content_type=XML))  # fmt: skip
    app.route(
        "/billion-late.xml",
        Reply(body=_rss(base, one.replace("Haber 1", "&l9;"), billion, late), content_type=XML),
    )
    app.route("/xxe.xml", Reply(body=_rss(base, entity_item, xxe), content_type=XML))
    app.route("/xxe-late.xml", Reply(body=_rss(base, entity_item, xxe, late), content_type=XML))
    app.route("/gzip-bomb.xml", Reply(body=_gzip_bomb(256), content_type=XML,
                                      headers={"Content-Encoding": "gzip"}))  # fmt: skip
    items = [{"title": f"h{n}", "date_published": "2026-01-02"} for n in range(100_000)]
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": items}
    app.route("/items-100k.json", Reply(body=json.dumps(doc, separators=(",", ":")).encode(),
                                        content_type="application/feed+json"))  # fmt: skip
    bad = _rss(base, ITEM.format(n=2, base=base).replace("Haber 2", "Haber \xff\xfe 2")
               + ITEM.format(n=3, base=base))  # fmt: skip
    app.route("/invalid-utf8.xml", Reply(body=bad.replace(b"\xc3\xbf\xc3\xbe", b"\xff\xfe\xc3"),
                                         content_type=XML))  # fmt: skip
    evil_item = (f"<item><title>&lt;script&gt;alert(6)&lt;/script&gt;Zararlı başlık</title>"
                 f"<link>javascript:alert(7)</link><guid>evil-1</guid>"
                 f"<description><![CDATA[{EVIL}]]></description>"
                 f"<content:encoded><![CDATA[{EVIL}]]></content:encoded>"
                 f"<pubDate>Fri, 02 Jan 2026 09:00:00 +0300</pubDate></item>")  # fmt: skip
    evil = _rss(base, evil_item).replace(
        b'<rss version="2.0">',
        b'<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/">',
    )
    app.route("/evil.xml", Reply(body=evil, content_type=XML))
    app.route("/evil/", Reply(body=b'<html><body><article><a href="/hostile.html">x</a>'
                              b'<a href="javascript:alert(8)">y</a></article></body></html>',
                              content_type="text/html"))  # fmt: skip
    return {
        "good": "/rss.xml", "billion": "/billion.xml", "billion-late": "/billion-late.xml",
        "xxe": "/xxe.xml", "xxe-late": "/xxe-late.xml", "gzip-bomb": "/gzip-bomb.xml",
        "items-100k": "/items-100k.json", "invalid-utf8": "/invalid-utf8.xml",
        "evil-feed": "/evil.xml", "to-file": "/to-file",
    }  # fmt: skip


def _sources_yaml(urls: dict[str, str], html: dict[str, str] | None = None) -> str:
    lines = []
    for name, url in urls.items():
        lines += [f"  - name: {name}", "    type: feed", f"    url: {url}", "    every: 1s"]
    for name, url in (html or {}).items():
        lines += [f"  - name: {name}", "    type: html", f"    url: {url}", "    every: 1s"]
        lines += ["    fetch: {block_private: false}"]  # its pages are on 127.0.0.1 too
    return "\n".join(lines) + "\n"


def assert_sanitized(out: Path) -> int:
    """No script, handler or javascript:/data: URL in any published file, raw or escaped,
    and nothing read from /etc/passwd. Returns how many files were checked."""
    checked = 0
    for path in sorted(out.rglob("*")):
        if not path.is_file() or path.name == "feed.xsl":  # our own static stylesheet
            continue
        text = path.read_text(encoding="utf-8")
        for escaped in (text, text.replace("&lt;", "<").replace("&gt;", ">").replace(
                "&quot;", '"').replace("&amp;", "&")):  # fmt: skip
            lower = escaped.lower()
            for bad in ("<script", "onerror", "onclick", "onload", "javascript:", "data:text",
                        "<iframe", "<svg", "body{}", "root:x:0:0", "alert("):  # fmt: skip
                if bad == "<script" and path.name == "index.html":
                    continue  # the index page's own copy-the-URL button script
                assert bad not in lower, f"{path.relative_to(out)} contains {bad!r}"
        checked += 1
    return checked


def test_hostile_sources_beside_a_good_one(tmp_path: Path) -> None:
    with serve_in_thread(App()) as app, hostile_server() as raw:
        paths = install_hostile_routes(app)
        urls = {name: app.base + path for name, path in paths.items()}
        urls["endless"] = raw + "/endless"
        cfg = write_config(
            tmp_path, sources=_sources_yaml(urls, {"evil-html": app.base + "/evil/"})
        )
        started = time.monotonic()
        proc, peak = regenerate_measured(cfg, tmp_path, timeout=120)
        seconds = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr  # published; some sources failed
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    failed = dict(re.findall(r"^source failed: ([\w.-]+): (.*)$", proc.stderr, re.MULTILINE))
    expected = {
        "billion": "declares entities", "xxe": "declares entities",
        "gzip-bomb": "byte limit", "endless": "byte limit", "to-file": "non-http(s)",
    }  # fmt: skip
    for name, reason in expected.items():
        assert reason in failed.get(name, ""), (name, failed)
    assert set(failed) <= set(expected) | {"billion-late", "xxe-late"}, failed
    ids = read_feeds(tmp_path / "out")
    titles = set(ids.values())
    with Store.open(tmp_path / "state" / "agg.sqlite3", lock=False, readonly=True) as store:
        assert store.count("good") >= 1  # the good feed made it
        assert store.count("items-100k") == MAX_ENTRIES  # the first ones of the 100,000
        assert store.count("evil-html") == 1
    assert "Zararlı başlık" in titles
    assert "Haber 3" in titles  # the invalid UTF-8 feed's valid item
    checked = assert_sanitized(tmp_path / "out")
    assert peak < PEAK_RSS_LIMIT_MIB, f"peak RSS {peak:.0f} MiB"
    assert seconds < 60
    print(f"hostile sources: {len(urls) + 1} sources, {len(failed)} failed, {len(ids)} "
          f"published, {checked} files checked, peak {peak:.0f} MiB, {seconds:.1f}s")  # fmt: skip


@pytest.mark.parametrize("path", ["/never", "/trickle"])
def test_silent_and_trickling_servers_stop_at_the_timeouts(tmp_path: Path, path: str) -> None:
    settings = HttpSettings(connect_timeout=1.0, read_timeout=1.0, total_timeout=2.5)
    with serve_in_thread() as app, hostile_server() as raw:
        cfg = write_config(tmp_path, sources=_sources_yaml(
            {"good": app.base + "/rss.xml", "bad": raw + path}))  # fmt: skip
        config = load_config(cfg)
        now = datetime(2026, 1, 5, 12, 0, tzinfo=ISTANBUL)
        with WebClient(settings) as client, Store.open(config.state) as store:
            started = time.monotonic()
            report = run_once(config, store, client, now)
            seconds = time.monotonic() - started
    assert seconds < settings.total_timeout + 2.0, seconds
    [bad] = report.failed_sources
    assert bad.name == "bad" and ("timed out" in str(bad.error) or "no complete answer"
                                  in str(bad.error)), bad.error  # fmt: skip
    assert report.published >= 1 and read_feeds(config.output_dir)


def test_markup_in_plain_titles_and_summaries_is_stripped() -> None:
    """Regression: `&lt;script&gt;` in an RSS title (or a JSON Feed title or summary) was
    kept as text and republished, escaped once, where RSS readers take titles as HTML."""
    from aggregator.sources.feed import parse_feed

    base = "http://haber.test"
    evil_item = ("<item><title>&lt;script&gt;alert(6)&lt;/script&gt;Zararlı &lt;b&gt;başlık"
                 "&lt;/b&gt; a &lt; b</title><link>http://haber.test/1</link>"
                 "<pubDate>Fri, 02 Jan 2026 09:00:00 +0300</pubDate></item>")  # fmt: skip
    [a] = parse_feed(_rss(base, evil_item), url=base + "/rss", source="s", tz=ISTANBUL).articles
    assert a.title == "Zararlı başlık a < b"
    doc = {"version": "https://jsonfeed.org/version/1.1", "items": [{
        "id": "1", "title": "<img src=x onerror=alert(1)>Başlık",
        "summary": "<script>alert(2)</script>Özet", "date_published": "2026-01-02T10:00:00Z",
    }]}  # fmt: skip
    [j] = parse_feed(json.dumps(doc).encode(), url=base + "/f.json", source="s",
                     content_type="application/feed+json", tz=ISTANBUL).articles  # fmt: skip
    assert (j.title, j.summary) == ("Başlık", "Özet")
