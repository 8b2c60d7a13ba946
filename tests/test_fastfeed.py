"""The lxml fast path gives the very records feedparser gives, or declines the document.

Every XML feed under tests/data (the real-world corpus included; AGGREGATOR_EXTRA_FEEDS
names another folder of feeds to add) and generated RSS 2.0 / Atom 1.0 documents are read
both ways and compared record by record.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.sources import fastfeed
from aggregator.sources.feed import FeedResult, parse_feed
from tests.conftest import DATA, ISTANBUL

URL = "https://haber.test/feeds/son-dakika.xml"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=ISTANBUL)  # undated entries get it; later is future
_XML_SUFFIXES = {".xml", ".rss", ".atom"}
_ROOTS = re.compile(rb"<(rss|feed|rdf:RDF)[\s>]")


def corpus() -> list[Path]:
    roots = [DATA]
    if os.environ.get("AGGREGATOR_EXTRA_FEEDS"):
        roots.append(Path(os.environ["AGGREGATOR_EXTRA_FEEDS"]))
    files = {p for root in roots for p in root.rglob("*") if p.suffix in _XML_SUFFIXES}
    return sorted(p for p in files if _ROOTS.search(p.read_bytes()))


def read(data: bytes, url: str = URL) -> FeedResult | str:
    try:
        return parse_feed(data, url=url, source="src", tz=ISTANBUL, now=NOW)
    except ParseError as e:
        return f"ParseError: {e}"


def both_ways(data: bytes, url: str = URL) -> tuple[FeedResult | str, FeedResult | str]:
    fast = read(data, url)
    with fastfeed.disabled():
        slow = read(data, url)
    return fast, slow


def body(path: Path) -> bytes:
    return path.read_bytes().replace(b"{base}", b"https://haber.test")


@pytest.mark.parametrize("path", corpus(), ids=lambda p: p.name)
def test_every_corpus_feed_gives_feedparsers_records(path: Path) -> None:
    fast, slow = both_ways(body(path))
    assert fast == slow


def test_the_fast_path_reads_our_own_and_the_usual_feeds() -> None:
    """Not a vacuous equality: plain RSS 2.0 and Atom 1.0 are read without feedparser."""
    for name in ("web/rss.xml", "web/atom.xml", "golden/rss.xml", "golden/atom.xml"):
        assert fastfeed.parse(body(DATA / name), URL) is not None, name


def test_the_fast_path_declines_what_it_is_not_sure_of() -> None:
    declined = [
        b'<?xml version="1.0"?><rss version="0.91"><channel><item><title>a</title></item>'
        b"</channel></rss>",  # RSS 0.91
        b'<?xml version="1.0" encoding="iso-8859-9"?><rss version="2.0"><channel/></rss>',
        b'<!DOCTYPE rss><rss version="2.0"><channel/></rss>',
        b'<rss version="2.0"><channel><item><title>a &amp b</title></item></channel></rss>',
        b'<rss version="2.0"><channel><item><description><p>x</p></description></item>'
        b"</channel></rss>",  # markup as elements: feedparser rebuilds it its own way
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="xhtml">'
        b'<div xmlns="http://www.w3.org/1999/xhtml">x</div></content></entry></feed>',
        b'<rss version="2.0" xmlns:content="http://search.yahoo.com/mrss/"><channel/></rss>',
    ]
    for doc in declined:
        assert fastfeed.parse(doc, URL) is None, doc
        fast, slow = both_ways(doc)
        assert fast == slow


def test_floods_are_left_to_feedparsers_bounded_reading() -> None:
    """Past MAX_ENTRIES entries, or MAX_MARKUP tags, no lxml tree is built at all."""
    item = "<item><title>t</title><link>https://haber.test/a</link></item>"
    flood = f'<rss version="2.0"><channel>{item * (fastfeed.MAX_ENTRIES + 1)}</channel></rss>'
    tags = f'<rss version="2.0"><channel>{"<x/>" * fastfeed.MAX_MARKUP}</channel></rss>'
    for doc in (flood.encode(), tags.encode()):
        assert fastfeed.parse(doc, URL) is None
    fast, slow = both_ways(flood.encode())
    assert fast == slow


# -- generated feeds ---------------------------------------------------------------------
# XML text as a feed writes it: escaped markup, entities, CDATA, Turkish, odd spacing
TEXT = st.lists(
    st.sampled_from([
        "Ankara'da", "İSTANBUL", "ğüşıöç ĞÜŞİÖÇ", "&lt;b&gt;kalın&lt;/b&gt;", "&amp;",
        "AT&amp;T", "a &lt; b", "&lt;script&gt;alert(1)&lt;/script&gt;", "&#304;zmir",
        "&#x15F;", "  boşluk  ", "1 &gt; 0", "&quot;alıntı&quot;", "&amp;amp;", "&amp;nbsp;",
        "<![CDATA[<p>CDATA & <i>içerik</i></p>]]>", "<![CDATA[a < b]]>", "Ã¼", "é",
        "&lt;p&gt;paragraf&lt;/p&gt;", "\n\n", "&lt;img src=\"/resim.jpg\"&gt;", "x",
    ]),
    max_size=6,
).map(" ".join)  # fmt: skip
NAME = st.sampled_from(["Ayşe Yılmaz", "editor@haber.test (Ayşe Yılmaz)", "Ali", "", "  "])
LINK = st.sampled_from([
    "https://haber.test/gundem/1", "/gundem/2?utm_source=rss", "haber/3.html", "",
    "https://haber.test/a?b=1&amp;c=2", "../ust/4", "#bolum",
])  # fmt: skip
BASE = st.sampled_from(["", "https://cdn.haber.test/arsiv/", "/alt/", "bolum/"])
RFC822 = st.sampled_from([
    "Thu, 01 Jan 2026 19:16:00 +0300", "Fri, 09 Jan 2026 08:00:00 GMT", "1 Jan 2026 10:00 +0000",
    "Thu, 01 Jan 2026 19:16:00", "Pazartesi, 5 Ocak 2026 10:00", "bozuk tarih", "",
])  # fmt: skip
ISO = st.sampled_from([
    "2026-01-02T08:00:00+03:00", "2026-01-02T05:00:00Z", "2026-01-02T08:00:00",
    "2026-01-02", "2026-13-40T99:00:00Z", "",
])  # fmt: skip


def maybe(strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str | None]:
    return st.none() | strategy


def base_attr(base: str) -> str:
    return f' xml:base="{base}"' if base else ""


@st.composite
def rss_item(draw: st.DrawFn) -> str:
    parts = []
    for tag, value in (
        ("title", draw(maybe(TEXT))),
        ("link", draw(maybe(LINK))),
        ("description", draw(maybe(TEXT))),
        ("content:encoded", draw(maybe(TEXT))),
        ("pubDate", draw(maybe(RFC822 | ISO))),
        ("dc:date", draw(maybe(ISO))),
        ("author", draw(maybe(NAME))),
        ("dc:creator", draw(maybe(NAME))),
    ):
        if value is not None:
            parts.append(f"<{tag}>{value}</{tag}>")
    guid = draw(maybe(st.sampled_from(["haber-1", "https://haber.test/g/1", "/g/2", ""])))
    if guid is not None:
        permalink = draw(st.sampled_from(["", ' isPermaLink="false"', ' isPermaLink="true"']))
        parts.insert(draw(st.integers(0, len(parts))), f"<guid{permalink}>{guid}</guid>")
    categories = st.sampled_from(["Gündem", "Spor", "spor", "", "&lt;b&gt;Ekonomi&lt;/b&gt;"])
    for category in draw(st.lists(categories, max_size=3)):
        domain = draw(st.sampled_from(["", ' domain="https://haber.test/k"']))
        parts.append(f"<category{domain}>{category}</category>")
    image = draw(maybe(st.sampled_from(["https://img.haber.test/1.jpg", "/img/2.png"])))
    if image is not None:
        kind = draw(st.sampled_from(["enclosure", "media:content", "media:thumbnail"]))
        parts.append(f'<{kind} url="{image}" type="image/jpeg"/>')
    extras = {
        "media": f"<media:title>{draw(TEXT)}</media:title>",
        "group": '<media:group><media:content url="https://img.haber.test/g.jpg" medium="image">'
        f'<media:title type="plain">{draw(TEXT)}</media:title></media:content>'
        f"<media:description>{draw(TEXT)}</media:description></media:group>",
        "subject": f"<dc:subject>{draw(TEXT)}</dc:subject>",
        "itunes": f"<itunes:summary>{draw(TEXT)}</itunes:summary>"
        f"<itunes:author>{draw(NAME)}</itunes:author>",
        "atom": f'<atom:link rel="enclosure" type="image/png" href="{draw(LINK)}"/>'
        f"<atom:summary>{draw(TEXT)}</atom:summary>",
        "source": f'<source url="https://kaynak.test/rss">{draw(TEXT)}</source>',
        "unknown": f'<slash:comments>3</slash:comments><x:y a="1">{draw(TEXT)}</x:y>',
        "image": "<image>https://img.haber.test/3.jpg</image>",
        "keywords": "<media:keywords>seçim, Ankara,,spor</media:keywords>"
        "<itunes:keywords>a,b</itunes:keywords>",
    }
    parts += [extra for name, extra in extras.items() if draw(st.booleans())]
    parts = draw(st.permutations(parts))
    return f"<item{base_attr(draw(BASE))}>{''.join(parts)}</item>"


@st.composite
def rss_feed(draw: st.DrawFn) -> bytes:
    items = "".join(draw(st.lists(rss_item(), min_size=1, max_size=4)))
    ttl = draw(st.sampled_from(["", "<ttl>15</ttl>", "<ttl>yok</ttl>"]))
    lang = draw(st.sampled_from(["", "<language>tr</language>", "<language>en-US</language>"]))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/"'
        ' xmlns:atom="http://www.w3.org/2005/Atom" xmlns:x="https://x.test/ns"'
        ' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"'
        ' xmlns:slash="http://purl.org/rss/1.0/modules/slash/">'
        f"<channel{base_attr(draw(BASE))}><title>Haber</title><link>https://haber.test/</link>"
        f'{ttl}{lang}<atom:link rel="self" href="{URL}"/>{items}</channel></rss>'
    ).encode()


@st.composite
def atom_entry(draw: st.DrawFn) -> str:
    parts = []
    entry_id = draw(maybe(st.sampled_from(["urn:uuid:1", "tag:haber.test,2026:1", "/e/1", "e2"])))
    if entry_id is not None:
        parts.append(f"<id>{entry_id}</id>")
    for tag in ("title", "summary", "content"):
        value = draw(maybe(TEXT))
        if value is not None:
            kind = draw(st.sampled_from(["", ' type="text"', ' type="html"']))
            parts.append(f"<{tag}{kind}>{value}</{tag}>")
    for tag in ("published", "updated"):
        value = draw(maybe(ISO | RFC822))
        if value is not None:
            parts.append(f"<{tag}>{value}</{tag}>")
    for _ in range(draw(st.integers(0, 2))):
        rel = draw(st.sampled_from(["", ' rel="alternate"', ' rel="enclosure" type="image/png"',
                                    ' rel="related"']))  # fmt: skip
        parts.append(f'<link{rel} href="{draw(LINK)}"{base_attr(draw(BASE))}/>')
    for _ in range(draw(st.integers(0, 2))):
        name = draw(maybe(NAME))
        email = draw(maybe(st.sampled_from(["a@haber.test", ""])))
        inner = (f"<name>{name}</name>" if name is not None else "") + (
            f"<email>{email}</email>" if email is not None else ""
        )
        parts.append(f"<author>{inner}</author>")
    if draw(st.booleans()):
        parts.append(f"<contributor><name>{draw(NAME)}</name></contributor>")
    if draw(st.booleans()):
        parts.append(f"<source><title>{draw(TEXT)}</title><id>urn:k</id></source>")
    for term in draw(st.lists(st.sampled_from(["gundem", "Spor", ""]), max_size=2)):
        label = draw(st.sampled_from(["", ' label="Gündem"']))
        parts.append(f'<category term="{term}"{label}/>')
    parts = draw(st.permutations(parts))
    return f"<entry{base_attr(draw(BASE))}>{''.join(parts)}</entry>"


@st.composite
def atom_feed(draw: st.DrawFn) -> bytes:
    entries = "".join(draw(st.lists(atom_entry(), min_size=1, max_size=4)))
    lang = draw(st.sampled_from(["", ' xml:lang="tr"', ' xml:lang="en"']))
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<feed xmlns="http://www.w3.org/2005/Atom"{lang}{base_attr(draw(BASE))}>'
        f"<title>Haber</title><id>{URL}</id><updated>2026-01-02T08:00:00Z</updated>"
        f'<link href="https://haber.test/"/>{entries}</feed>'
    ).encode()


@settings(max_examples=int(os.environ.get("FASTFEED_EXAMPLES", "300")), deadline=None)
@given(rss_feed() | atom_feed())
def test_generated_feeds_give_feedparsers_records(doc: bytes) -> None:
    assert fastfeed.parse(doc, URL) is not None  # the generated subset is the fast path's
    fast, slow = both_ways(doc)
    assert fast == slow


# -- element soup: any nesting of the elements feedparser gives a meaning ---------------
SOUP_NAMES = [
    "title", "link", "guid", "description", "content:encoded", "pubDate", "dc:date",
    "author", "dc:creator", "name", "email", "category", "dc:subject", "media:content",
    "media:thumbnail", "media:title", "media:description", "media:group", "media:keywords",
    "enclosure", "source", "image", "comments", "x:y", "atom:link", "atom:summary",
    "itunes:summary", "language", "url",
]  # fmt: skip
SOUP_ATTRS = st.sampled_from([
    "", ' isPermaLink="false"', ' href="/h"', ' url="https://img.haber.test/s.jpg"',
    ' type="html"', ' rel="enclosure" type="image/jpeg"', ' domain="d"', ' term="t"',
    ' xml:base="/b/"', ' medium="image"',
])  # fmt: skip


@st.composite
def soup(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4 if depth < 2 else 0))):
        name = draw(st.sampled_from(SOUP_NAMES))
        inner = draw(soup(depth + 1)) if draw(st.booleans()) else draw(TEXT | RFC822 | LINK)
        parts.append(f"<{name}{draw(SOUP_ATTRS)}>{inner}</{name}>")
    return "".join(parts)


@settings(max_examples=int(os.environ.get("FASTFEED_EXAMPLES", "300")), deadline=None)
@given(st.lists(soup(), min_size=1, max_size=3))
def test_any_nesting_gives_feedparsers_records_or_is_declined(items: list[str]) -> None:
    entries = "".join(f"<item>{item}</item>" for item in items)
    doc = (
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:media="http://search.yahoo.com/mrss/"'
        ' xmlns:atom="http://www.w3.org/2005/Atom" xmlns:x="https://x.test/ns"'
        ' xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd">'
        f"<channel><title>Haber</title>{entries}</channel></rss>"
    ).encode()
    fast, slow = both_ways(doc)
    assert fast == slow
