"""A fuzz campaign with a large example budget (slow): the seed parser, the HTML page and
listing extractor and the feed parser get arbitrary bytes, seed-like text in several
encodings, random HTML trees and random feed documents. Each must return a record or raise
our ParseError, never anything else; every record it returns can be stored and published
(aware dates with a UTC equivalent, updated >= published, sanitized content).
Examples are derandomized so CI sees the same campaign every run."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator import dedupe
from aggregator.errors import ParseError
from aggregator.model import Article
from aggregator.records import pack_record, utc_text
from aggregator.sources.feed import parse_feed
from aggregator.sources.html import article_links, parse_page
from aggregator.sources.seedfile import parse_seed
from tests.conftest import ISTANBUL

pytestmark = pytest.mark.slow
TRIED: Counter[str] = Counter()
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "1500"))  # per test; raise it for a long campaign
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))  # fmt: skip
BASE = "http://haber.test"
UNSAFE_TAG = re.compile(
    r"^<\s*/?\s*(?:script|iframe|style|object|embed|svg)\b|\son\w+\s*=|(?:href|src)\s*=\s*"
    r"[\"']?\s*(?!https?:)[a-z][a-z0-9+.-]*:",
    re.IGNORECASE,
)


def check(article: Article) -> None:
    """Everything a record must be for the later stages."""
    assert article.title
    assert article.published.tzinfo is not None and article.updated.tzinfo is not None
    assert article.updated >= article.published
    utc_text(article.published), utc_text(article.updated)  # no OverflowError later
    dedupe.candidate(0, article)
    pack_record(article)
    for tag in re.findall(r"<[^>]*>", article.content_html):  # real tags, not escaped text
        assert not UNSAFE_TAG.search(tag), (tag, article.content_html[:300])


def total(parse: object, data: bytes, kind: str) -> None:
    TRIED[kind] += 1
    assert callable(parse)
    try:
        article = parse(data)
    except ParseError as e:
        assert str(e)
        return
    check(article)


def seed(data: bytes) -> Article:
    return parse_seed(data, origin="f.txt", source="s", tz=ISTANBUL)


def page(data: bytes) -> Article:
    return parse_page(data, url=BASE + "/a/b", source="web", tz=ISTANBUL)


# -- seed files ------------------------------------------------------------------------------
_year = st.sampled_from(["0001", "1899", "1900", "1969", "1970", "2026", "2100", "2150", "9999"])
_date = st.builds(lambda d, m, y: f"{d}.{m}.{y}", st.integers(0, 40), st.integers(0, 14), _year)
_time = st.builds(lambda h, m: f"{h}:{m:02d}", st.integers(0, 30), st.integers(0, 70))
_line = st.one_of(
    st.sampled_from([
        " date 2026-01-01 Menü Kapat", " date 0001-01-01", " date 9999-12-31", "KAYNAK:",
        "GİRİŞ:", "GÜNCELLEME:", "|", "Giriş: 01.01.2026 - 19:16 Güncelleme:", "Avatar",
        " | Ad Soyad", "BÜYÜK BAŞLIK", "Bir paragraf metni.", "", "#Gündem #Spor",
        "1 Ocak 2026 Perşembe 19:18", "Giriş Tarihi: 03 Ocak 2026 17:47", "Yayınlanma:",
        "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "\x00", "\ufeff", "İıIi",
        "saat ikonu 21:01", "SON DAKİKA!", "İstanbul", "12°C", "Paylaş", "\u202e\u200b",
    ]),
    _date, _time, st.builds(lambda d, t: f"GİRİŞ: {d} {t}", _date, _time),
    st.text(max_size=60),
)  # fmt: skip
_seedish = st.lists(_line, max_size=50).map("\n".join)
_codec = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1254", "iso8859-9", "latin-1"])


@FUZZ
@given(st.binary(max_size=4000))
def test_seed_parser_on_arbitrary_bytes(data: bytes) -> None:
    total(seed, data, "seed bytes")


@FUZZ
@given(_seedish, _codec, st.sampled_from(["\n", "\r\n", "\r"]))
def test_seed_parser_on_seed_like_text_in_any_encoding(text: str, codec: str, end: str) -> None:
    total(seed, text.replace("\n", end).encode(codec, errors="replace"), "seed text")


@FUZZ
@given(st.lists(st.tuples(_seedish, _codec), min_size=2, max_size=4))
def test_seed_parser_on_mixed_encodings_in_one_file(parts: list[tuple[str, str]]) -> None:
    data = b"\n".join(t.encode(c, errors="replace").removeprefix(b"\xef\xbb\xbf")
                      for t, c in parts)  # fmt: skip
    total(seed, data, "seed mixed encodings")


# -- HTML pages and listings -------------------------------------------------------------------
_attr = st.sampled_from([
    'href="javascript:alert(1)"', 'href="/haber/bir-iki-uc"', 'href="//evil.test/x"',
    'src="x.png" onerror="alert(1)"', 'onclick="x()"', 'itemprop="articleBody"',
    'property="og:title" content="Başlık"', 'property="article:published_time" '
    'content="2026-01-02T10:00:00+03:00"', 'content="0001-01-01T00:00:00+05:00" '
    'property="article:published_time"', 'datetime="9999-12-31T23:59:59-05:00"',
    'rel="canonical" href="javascript:x"', 'type="application/ld+json"', "",
    'style="background:url(javascript:x)"', 'href="data:text/html,<script>x</script>"',
])  # fmt: skip
_tag = st.sampled_from(["div", "p", "article", "main", "a", "script", "style", "time", "meta",
                        "h1", "h2", "span", "iframe", "svg", "img", "link", "title", "b",
                        "template", "noscript", "table", "td", "li"])  # fmt: skip
_texty = st.one_of(_line, st.sampled_from([
    '{"@type":"NewsArticle","headline":"H","datePublished":"2026-01-02T10:00:00+03:00",'
    '"articleBody":"<p onclick=x>Metin</p><script>alert(1)</script>"}',
    '{"@graph":[{"@type":"Article","datePublished":"0001-01-01T00:00:00+05:00"}]}',
    "[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]", "&lt;script&gt;alert(1)&lt;/script&gt;",
]))  # fmt: skip
_html = st.recursive(
    _texty,
    lambda children: st.builds(
        lambda tag, attr, kids: f"<{tag} {attr}>{''.join(kids)}</{tag}>",
        _tag, _attr, st.lists(children, max_size=4),
    ),
    max_leaves=40,
)  # fmt: skip


@FUZZ
@given(st.lists(_html, max_size=6).map("".join), st.sampled_from(["", "<html><body>"]))
def test_html_extractor_on_random_trees(body: str, prefix: str) -> None:
    data = (prefix + body).encode("utf-8", errors="surrogatepass")
    total(page, data, "html page")
    TRIED["html listing"] += 1
    try:
        links = article_links(data, url=BASE + "/")
    except ParseError:
        return
    assert all(link.startswith(("http://", "https://")) for link in links)


@FUZZ
@given(st.binary(max_size=3000))
def test_html_extractor_on_arbitrary_bytes(data: bytes) -> None:
    total(page, data, "html bytes")


@pytest.mark.parametrize(("tag", "depth"), [("div", 100_000), ("b", 100_000),
                                          ("template", 100_000), ("article", 20_000)])  # fmt: skip
def test_deeply_nested_html(tag: str, depth: int) -> None:
    """Regression: 100,000 nested <div>s took about ten minutes (the visible-text pass
    inserted a newline per block, each insert walking the whole subtree): now seconds."""
    head = "<html><body><h1>Derin sayfa başlığı</h1><time datetime='2026-01-02T10:00'></time>"
    data = f"{head}{f'<{tag}>' * depth}metin{f'</{tag}>' * depth}</body></html>".encode()
    started = time.monotonic()
    total(page, data, "deep html")
    assert time.monotonic() - started < 30
    nested = '<script type="application/ld+json">' + "[" * depth + "]" * depth + "</script>"
    total(page, nested.encode(), "deep json-ld")


# -- feeds -----------------------------------------------------------------------------------
_feed_text = st.one_of(_texty, st.sampled_from([
    "2026-01-02T10:00:00+03:00", "Fri, 02 Jan 2026 08:00:00 +0300", "0001-01-01T00:00:00+05:00",
    "Fri, 31 Dec 9999 23:59:59 -0500", "<![CDATA[<script>alert(1)</script>]]>",
]))  # fmt: skip
_rss_item = st.builds(
    lambda t, d, g, link, desc: (f"<item><title>{t}</title><pubDate>{d}</pubDate><guid>{g}</guid>"
                                 f"<link>{link}</link><description>{desc}</description></item>"),
    _feed_text, _feed_text, _feed_text, _feed_text, _feed_text,
)  # fmt: skip


@FUZZ
@given(st.lists(_rss_item, max_size=5))
def test_feed_parser_on_random_rss(items: list[str]) -> None:
    doc = f'<?xml version="1.0"?><rss version="2.0"><channel><title>T</title>{"".join(items)}'
    _feed((doc + "</channel></rss>").encode("utf-8", errors="surrogatepass"), "rss")


@FUZZ
@given(st.lists(st.dictionaries(
    st.sampled_from(["id", "url", "title", "summary", "content_html", "content_text",
                     "date_published", "date_modified", "authors", "tags", "image"]),
    st.one_of(_feed_text, st.integers(), st.none(), st.lists(_feed_text, max_size=2))),
    max_size=5))  # fmt: skip
def test_feed_parser_on_random_json_feeds(items: list[dict[str, object]]) -> None:
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": items}
    _feed(json.dumps(doc).encode(), "json feed", "application/feed+json")


@FUZZ
@given(st.binary(max_size=3000))
def test_feed_parser_on_arbitrary_bytes(data: bytes) -> None:
    _feed(data, "feed bytes")


def _feed(data: bytes, kind: str, content_type: str = "") -> None:
    TRIED[kind] += 1
    try:
        result = parse_feed(data, url=BASE + "/f", content_type=content_type, source="f",
                            tz=ISTANBUL)  # fmt: skip
    except ParseError as e:
        assert str(e)
        return
    for article in result.articles:
        check(article)


def test_zz_report_examples_tried() -> None:
    """Runs last in this module (pytest keeps file order): prints the campaign's size."""
    print(f"fuzz examples tried: {sum(TRIED.values())} {dict(TRIED)}")
