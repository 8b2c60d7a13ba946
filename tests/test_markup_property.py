"""Issue 14 row 7: markup is text everywhere. Arbitrary markup (tags, handlers, comments,
CDATA, escaped and twice-escaped tags, stray `<`) goes into every text field of an RSS feed,
a JSON Feed and a seed file, and into the site, category and source feed titles; everything
published is then read the way readers read it. A strict XML parser, feedparser and html5lib
must find no element the input brought: plain-text fields hold no element even read as HTML
(RSS titles are HTML to many readers), and HTML fields only sanitized ones."""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from html import escape
from pathlib import Path

import feedparser
import html5lib
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.model import Article, Entry
from aggregator.normalize import path_slug
from aggregator.publish import FeedSet, Site, publish
from aggregator.sources.feed import parse_feed
from aggregator.sources.seedfile import parse_seed
from aggregator.store.schema import category_slugs
from tests.conftest import ISTANBUL

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
PIECES = [
    "<b>", "</b>", "<i>kalın</i>", "<img src=x onerror=alert(1)>", "<script>alert(2)</script>",
    "&lt;img src=x onerror=alert(3)&gt;", "&amp;lt;b&amp;gt;", "&lt;/title&gt;&lt;script&gt;",
    "<svg onload=alert(4)>", "<!--", "-->", "<![CDATA[x]]>", "<?pi x?>", "<!DOCTYPE html>",
    '<a href="javascript:alert(5)">', "</title>", "<iframe src=//x>", "<<b>i>", "<", ">", "&",
    '"', "'", "&amp;", "&#60;b&#62;", "<xmp>", "</p>", "<style>p{}</style>", "<math>",
]  # fmt: skip
WORDS = ["Gündem", "İstanbul", "ışık", "haber", " ", "5 < 10", "a>b"]
# elements our own templates and formats use; the input's markup must add none to text fields
FORMAT_ELEMENTS = {
    "feed", "id", "title", "updated", "link", "subtitle", "author", "name", "generator",
    "entry", "published", "category", "summary", "content", "rss", "channel", "description",
    "item", "guid", "pubDate", "creator", "lastBuildDate", "language", "docs", "opml", "head",
    "body", "outline", "archive", "encoded",
}  # fmt: skip
UNSAFE = {"script", "svg", "iframe", "xmp", "style", "math", "title", "object"}
SITE_URL = "http://127.0.0.1:8080/"

markup = st.lists(st.sampled_from(PIECES + WORDS), min_size=1, max_size=6).map("".join)


def _rss(title: str, author: str, category: str, summary: str) -> bytes:
    t, a, c, s = (escape(v, quote=False) for v in (title, author, category, summary))
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title>K</title>'
        f"<link>http://127.0.0.1/</link><item><title>{t}</title><dc:creator>{a}</dc:creator>"
        f"<category>{c}</category><description>{s}</description>"
        "<link>http://127.0.0.1/h/1</link><pubDate>Fri, 02 Jan 2026 08:00:00 +0300</pubDate>"
        "</item></channel></rss>"
    ).encode()


def _json_feed(title: str, author: str, category: str, summary: str) -> bytes:
    item = {"id": "j1", "url": "http://127.0.0.1/j/1", "title": title, "summary": summary,
            "content_html": summary, "authors": [{"name": author}], "tags": [category],
            "date_published": "2026-01-02T09:00:00+03:00"}  # fmt: skip
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "items": [item]}).encode()


def _seed(title: str, author: str, category: str, summary: str) -> bytes:
    one_line = [" ".join(v.split()) or "x" for v in (title, author, category, summary)]
    t, a, c, s = one_line
    head = f" date 2026-01-02 Menü Kapat\n {a}\n\n{t}\n\n{s}\n\n{t}\nKAYNAK:\n{a}\n|\n"
    return f"{head}GİRİŞ:\n02.01.2026\n10:00\n\nMetin {s}\n\n#{c.replace('#', '')}\n".encode()


def _articles(fields: tuple[str, str, str, str]) -> list[Article]:
    out: list[Article] = []
    for data, kind in ((_rss(*fields), "application/rss+xml"),
                       (_json_feed(*fields), "application/feed+json")):  # fmt: skip
        out += parse_feed(data, url="http://127.0.0.1/f", content_type=kind, source="f",
                          tz=ISTANBUL).articles  # fmt: skip
    out.append(parse_seed(_seed(*fields), origin="s.txt", source="seeds", tz=ISTANBUL))
    return out


def _no_element(text: str, where: str) -> None:
    """Read as HTML (a reader that renders the field), `text` is text only."""
    fragment = html5lib.parseFragment(text, namespaceHTMLElements=False)
    assert len(fragment) == 0, f"{where}: {text!r} holds <{fragment[0].tag}>"


def _safe_html(text: str, where: str) -> None:
    """An HTML field (content, RSS description): only sanitized elements, no handlers."""
    for el in html5lib.parseFragment(text, namespaceHTMLElements=False).iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        assert tag not in UNSAFE, f"{where}: <{tag}> in {text!r}"
        assert not any(k.lower().startswith("on") for k in el.attrib), f"{where}: {text!r}"
        assert "javascript:" not in el.attrib.get("href", ""), f"{where}: {text!r}"


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _check_xml(path: Path, rel: str) -> None:
    root = ET.fromstring(path.read_bytes())  # strict: no recovery
    is_rss = _local(root.tag) == "rss"
    for el in root.iter():
        name = _local(el.tag)
        assert name in FORMAT_ELEMENTS, f"{rel}: element <{name}> from the input"
        text = el.text or ""
        if name in ("content", "encoded") or (is_rss and name == "description"):
            _safe_html(text, f"{rel} <{name}>")  # HTML by the format: sanitized elements only
        else:
            _no_element(text, f"{rel} <{name}>")
        for attr in ("term", "text", "title", "label"):
            if attr in el.attrib:
                _no_element(el.attrib[attr], f"{rel} <{name} {attr}>")


def _check_feedparser(path: Path, rel: str) -> None:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, f"{rel}: {parsed.get('bozo_exception')}"
    _no_element(parsed.feed.get("title", ""), f"{rel} feed title")
    for e in parsed.entries:
        _no_element(e.get("title", ""), f"{rel} entry title")
        for a in e.get("authors", []):
            _no_element(a.get("name", ""), f"{rel} author")
        for t in e.get("tags", []):
            _no_element(t.get("term") or "", f"{rel} tag")


def _check_json(path: Path, rel: str) -> None:
    doc = orjson.loads(path.read_bytes())
    _no_element(doc["title"], f"{rel} title")
    _no_element(doc["description"], f"{rel} description")
    for item in doc["items"]:
        for key in ("title", "summary"):
            _no_element(item.get(key, ""), f"{rel} {key}")
        _safe_html(item["content_html"], f"{rel} content_html")
        for a in item.get("authors", []):
            _no_element(a["name"], f"{rel} author")
        for t in item.get("tags", []):
            _no_element(t, f"{rel} tag")


def _check_page(path: Path, rel: str) -> None:
    doc = html5lib.parse(path.read_bytes(), namespaceHTMLElements=False)
    scripts = [el for el in doc.iter("script")]
    assert len(scripts) == (1 if rel == "index.html" else 0), rel  # the index's copy button
    for el in doc.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        assert tag not in UNSAFE - {"script", "style", "title"}, f"{rel}: <{tag}>"
        assert not any(k.lower().startswith("on") for k in el.attrib), f"{rel}: <{tag}>"
    # where the input's plain text is shown: text only
    for el in doc.iter():
        css = el.attrib.get("class", "")
        if el.tag in ("title", "h1", "h2", "time") or css in ("kicker", "spot", "name"):
            assert len(el) == 0, f"{rel}: <{el.tag} class={css!r}> holds <{el[0].tag}>"
    for footer in doc.iter("footer"):
        assert all(el.tag == "a" and len(el) == 0 for el in footer), rel


def _published(root: Path) -> Iterator[tuple[Path, str]]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "feed.xsl":
            yield path, path.relative_to(root).as_posix()


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])  # fmt: skip
@given(title=markup, author=markup, category=markup, summary=markup, site_title=markup)
def test_markup_in_every_field_is_text_in_every_output(
    title: str, author: str, category: str, summary: str, site_title: str
) -> None:
    articles = _articles((title, author, category, summary))
    entries = [Entry(id=f"urn:uuid:00000000-0000-5000-8000-{n:012d}", article=a)
               for n, a in enumerate(articles)]  # fmt: skip
    site = Site(title=site_title.strip() or "x", url=SITE_URL, language="tr", timezone=ISTANBUL)
    feeds = [
        FeedSet(folder="", title=site.title, group="Tüm <b>haberler</b>", entries=entries),
        FeedSet(folder="sources/f/", title=title, group="Kaynaklar", entries=entries[:2]),
    ]
    for slug, name in category_slugs(c for a in articles for c in a.categories):
        feeds.append(FeedSet(folder=f"categories/{slug}/", title=name, group=category,
                             entries=entries))  # fmt: skip
        assert slug == path_slug(name)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        publish(site, out, feeds, len(entries))
        checked = 0
        for path, rel in _published(out):
            if path.suffix == ".xml":
                _check_xml(path, rel)
                if path.name != "opml.xml":
                    _check_feedparser(path, rel)
            elif path.suffix == ".json":
                _check_json(path, rel)
            else:
                _check_page(path, rel)
            checked += 1
        assert checked >= 9  # three formats of two feeds, the index, OPML, an article page
