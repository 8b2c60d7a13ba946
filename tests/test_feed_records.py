"""A feed body's staged records (`web._feed_records`: parse -> Articles -> de-duplication
candidate + packed record) stay what they were when tests/data/feed_records.json was frozen:
every feed document under tests/data and a few documents shaped like bench_sources' feeds,
read by the fast path and by feedparser, give the same candidates (keys, hashes, anchors),
the same records (JSON and packed bytes), rejections and ttl. The reference is rewritten
deliberately with UPDATE_GOLDEN=1 (after checking that a change of records is meant).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from datetime import datetime
from typing import Any

import feedparser.urls
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import dedupe, normalize
from aggregator.errors import ParseError
from aggregator.records import unpack_record
from aggregator.sources import fastfeed, feed
from aggregator.sources.web import _feed_records
from tests.conftest import DATA, ISTANBUL

REFERENCE = DATA / "feed_records.json"
URL = "https://haber.test/feeds/son-dakika.xml"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=ISTANBUL)
_SUFFIXES = {".xml", ".rss", ".atom", ".json"}
_WORDS = "ekonomi meclis belediye seçim İzmir ÇAĞ ığdır şampiyon döviz altın".split()


def bench_shaped(index: int) -> bytes:
    """A feed like bench_sources' (HTML descriptions in CDATA), in a few variations."""
    rng = random.Random(index)

    def story() -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 12)))

    items = []
    for j in range(12):
        link = rng.choice([f"https://site{index}.test/haber/{j}-x", f"/haber/{j}",
                           f"http://Site.test:8080/a//b/?utm_source=x&b=2#f{j}"])  # fmt: skip
        guid = rng.choice([f"site{index}-{j}", f"https://site.test/g/{j}", ""])
        desc = rng.choice([
            f"<p>{story()} <b>kısa</b> {story()}.</p><p>{story()}.</p>",
            f"{story()} <i>x</i><br>{story()}",
            f'<p><a href="/a/{j}">{story()}</a> &amp; {story()}</p>',
            f"<p>{story()}</p>\n<p><strong><em>{story()}</em></strong></p>",
            story(),
            f"<p>{story()}<p>{story()}</b></p>",
        ])  # fmt: skip
        date = rng.choice(["Fri, 09 Jan 2026 08:07:00 +0300", "9 Jan 2026 08:07 GMT",
                           "2026-01-09T08:07:00+03:00", "Cuma, 9 Ocak 2026 08:07", ""])  # fmt: skip
        title = rng.choice([f"Haber {j}: {story()}", "", "SON DAKİKA | " + story()])
        items.append(
            f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>"
            f"<pubDate>{date}</pubDate><category>Gündem</category>"
            f"<description><![CDATA[{desc}]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Kaynak {index}</title><link>https://site{index}.test/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode("utf-8")


def documents() -> dict[str, bytes]:
    files = sorted(p for p in DATA.rglob("*") if p.suffix in _SUFFIXES and p != REFERENCE
                   and (p.suffix != ".json" or b"jsonfeed.org" in p.read_bytes()))  # fmt: skip
    docs = {str(p.relative_to(DATA)): p.read_bytes().replace(b"{base}", b"https://haber.test")
            for p in files}  # fmt: skip
    docs.update({f"bench-shaped-{i}": bench_shaped(i) for i in range(24)})
    return docs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def staged_form(name: str, data: bytes) -> dict[str, Any]:
    """What the store would get from this body, as digests (the records in full are large)."""
    kind = "application/feed+json" if name.endswith(".json") else "application/xml"
    try:
        records, rejected, ttl = _feed_records(
            data, url=URL, content_type=kind, source="src", tz=ISTANBUL, language="tr", now=NOW
        )
    except ParseError as e:
        return {"error": str(e)}
    candidates = [[v.hex() if isinstance(v, bytes) else v for v in c] for c, _ in records]
    return {
        "records": len(records),
        "candidates": _sha(json.dumps(candidates, ensure_ascii=False).encode()),
        "json": _sha(b"\n".join(bytes(unpack_record(r)) for _, r in records)),
        "packed": _sha(b"".join(r for _, r in records)),
        "rejected": [str(r) for r in rejected],
        "ttl": ttl,
    }


DOCUMENTS = documents()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        frozen = {name: staged_form(name, data) for name, data in DOCUMENTS.items()}
        REFERENCE.write_text(json.dumps(frozen, ensure_ascii=False, indent=1) + "\n")
    loaded: dict[str, Any] = json.loads(REFERENCE.read_text())
    return loaded


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_feed_document_stages_its_frozen_records(name: str, reference: Any) -> None:
    data = DOCUMENTS[name]
    assert staged_form(name, data) == reference[name]
    with fastfeed.disabled():
        assert staged_form(name, data) == reference[name]


def test_the_reference_covers_every_document(reference: Any) -> None:
    assert sorted(reference) == sorted(DOCUMENTS)
    assert sum(r.get("records", 0) for r in reference.values()) > 300


# -- the fast paths, each against the slow function it stands in for ----------------------
TEXT_PIECES = st.sampled_from([
    "Ankara'da", "İSTANBUL ığdır", " ", "\n", "\t", "  \n\n ", "a < b", "1 > 0", "AT&T", "&amp;",
    "&lt;b&gt;", "\xa0", "\r\n", "\x00", "\x0b", "é", '"alıntı"', "x", "", "&#304;", "\u2028",
])  # fmt: skip
INLINE = ["b", "i", "em", "strong", "u", "s", "small", "code", "sub", "sup", "span"]


@st.composite
def simple_markup(draw: st.DrawFn, depth: int = 0) -> str:
    """Mostly what the fast path takes: nested inline tags, paragraphs, `<br>`."""
    parts = []
    for _ in range(draw(st.integers(0, 4 if depth < 3 else 1))):
        kind = draw(st.sampled_from(["text", "text", "inline", "inline", "p", "br", "odd"]))
        if kind == "text":
            parts.append(draw(TEXT_PIECES))
        elif kind == "br":
            parts.append(draw(st.sampled_from(["<br>", "<br/>", "<br />"])))
        elif kind == "odd":  # what takes nh3's path: stray, misnested, attributes, others
            parts.append(draw(st.sampled_from([
                "</b>", "<p>", "</p>", "<b>", '<a href="/x">y</a>', "<P>Z</P>", "<div>d</div>",
                '<span class="c">', "<script>s</script>", "<!-- c -->", "<img src=x>", "<pre>\nx",
                "<table><b>t</b></table>", "<li>l", "<b><p>q</b></p>",
            ])))  # fmt: skip
        else:
            name = "p" if kind == "p" else draw(st.sampled_from(INLINE))
            parts.append(f"<{name}>{draw(simple_markup(depth + 1))}</{name}>")
    return "".join(parts)


@settings(max_examples=int(os.environ.get("FASTFEED_EXAMPLES", "300")), deadline=None)
@given(simple_markup(), st.sampled_from([None, "https://haber.test/a/b"]))
def test_markup_nh3_would_keep_is_kept_and_read_as_nh3_reads_it(
    fragment: str, base: str | None
) -> None:
    assert normalize.sanitize_html(fragment, base) == normalize._sanitize_nh3(fragment, base)
    if "<" in fragment:
        assert normalize.plain_text(fragment) == normalize._plain_text_nh3(fragment)


@pytest.mark.parametrize("fragment", [
    "\ufeff", "\ufeff<p>x</p>", "\ufeff<b>x</b>", "\ufeffx", "x\ufeff", "<p>\ufeffx</p>",
    "a" * 20_000 + "<b>b</b>", "\ufeff" + "a" * 20_000,
])  # fmt: skip
def test_a_leading_byte_order_mark_and_long_text_are_read_as_nh3_reads_them(
    fragment: str,
) -> None:
    """html5ever drops U+FEFF as the first character only (a BOM pasted from a CMS)."""
    assert normalize.sanitize_html(fragment) == normalize._sanitize_nh3(fragment, None)
    if "<" in fragment:  # text without markup is read by html_to_text, as it always was
        assert normalize.plain_text(fragment) == normalize._plain_text_nh3(fragment)


def test_the_usual_descriptions_skip_nh3() -> None:
    """Not a vacuous equality: paragraphs with bold words are not sent through nh3."""
    for fragment in ("<p>a <b>kısa</b> b.</p><p>c</p>", "x <i>y</i><br>z", "<p>a</p>\n<p>b</p>"):
        assert normalize._simple_markup(fragment), fragment
    # and a long text that fails at its end is looked at once (no regex backtracking)
    assert not normalize._simple_markup("<p>" + "kelime " * 100_000 + "&</p>")


@st.composite
def url(draw: st.DrawFn) -> str:
    """Half plain http(s) URLs, half with everything urllib treats specially mixed in."""
    if draw(st.booleans()):  # the usual kind
        scheme = draw(st.sampled_from(["https://", "http://"]))
        segments = draw(st.lists(st.sampled_from(["", "a", "0-x.html", "%C3", "~!$'()*+,=:@"])))
        return f"{scheme}Site-1.haber.test{''.join('/' + s for s in segments)}"
    scheme = draw(
        st.sampled_from(["https://", "http://", "HTTP://", "ftp://", "//", "", "javascript:"])
    )
    host = draw(st.sampled_from([
        "haber.test", "Haber.TEST", "www.site-1.test", "", "[::1]", "[oops", "u:p@h.test",
        "h.test:8080", "h.test:443", "h.test:99999", "ü.test", "h.test.", "a%2eb.test",
    ]))  # fmt: skip
    segments = draw(st.lists(st.sampled_from([
        "", "a", "haber", "0-ankarada-onemli-gelisme.html", "%C3%BC", ";p", "..", ".", "a b",
        "~x", "!$'()*+,=:@", "\t", "ü", "x\\y",
    ]), max_size=4))  # fmt: skip
    path = "".join("/" + s for s in segments)
    tail = draw(st.sampled_from(["", "?q=1&utm_source=x", "?", "#f", "?b=2&a=1#x"]))
    space = draw(st.sampled_from(["", " ", "\n"]))
    return f"{space}{scheme}{host}{path}{tail}"


BASES = st.sampled_from(
    [
        "https://haber.test/feeds/son-dakika.xml",
        "http://x/feed",
        "",
        "http://[oops/",
        "https://h.test/a/",
    ]
)


@settings(max_examples=int(os.environ.get("FASTFEED_EXAMPLES", "300")) * 3, deadline=None)
@given(url(), BASES)
def test_plain_urls_get_urllibs_answers(link: str, base: str) -> None:
    assert normalize.canonical_url(link) == normalize._canonical_url_parsed(link)
    assert normalize.clean_link(link) == normalize._clean_link_parsed(link)
    assert normalize.absolute_url(base, link) == normalize._absolute_url_parsed(base, link)
    assert normalize.plain_host(link) in (None, dedupe._hostname(link))


def test_the_usual_links_skip_urllib() -> None:
    for link in ("https://site3.test/haber/7-ankarada-onemli-gelisme", "http://Haber.test"):
        assert normalize._PLAIN_URL.fullmatch(link), link


GUIDS = st.sampled_from(["x", "site3-7", "a.b", "~u", "-", "_", ".x", "a:b", "a/b", "..", ""])


@settings(max_examples=int(os.environ.get("FASTFEED_EXAMPLES", "300")) * 3, deadline=None)
@given(url() | GUIDS, (url() | BASES).filter(lambda b: "[" not in b))  # bases it can hold
def test_relative_guids_join_as_feedparser_joins_them(uri: str, base: str) -> None:
    assert fastfeed._urljoin(base, uri) == feedparser.urls._urljoin(base, uri)


@settings(max_examples=int(os.environ.get("FASTFEED_EXAMPLES", "300")) * 3, deadline=None)
@given(st.text() | st.lists(TEXT_PIECES).map("".join))
def test_collapse_is_whitespace_folded_and_xml_safe(text: str) -> None:
    assert normalize.collapse(text) == normalize._collapsed(text)


def test_printable_characters_are_neither_whitespace_nor_dropped() -> None:
    """What collapse's shortcut rests on, for every code point."""
    for c in map(chr, range(0x110000)):
        if c.isprintable() and c != " ":
            assert not c.isspace() and normalize.xml_safe(c) == c, hex(ord(c))


def two(top: int) -> st.SearchStrategy[str]:
    return st.integers(0, top).map("{:02d}".format)


RFC822_DATES = st.builds(
    "{}, {} {} {} {}:{}:{} {}{}{}".format,
    st.sampled_from(["Fri", "Mon", "Sun"]), two(39),
    st.sampled_from(["Jan", "Feb", "Jun", "Dec"]),
    st.sampled_from(["2026", "1999", "9999", "1000", "0099"]),
    two(29), two(69), two(69), st.sampled_from(["+", "-"]), two(30), two(99),
)  # fmt: skip


@settings(max_examples=int(os.environ.get("FASTFEED_EXAMPLES", "300")) * 3, deadline=None)
@given(
    RFC822_DATES
    | st.sampled_from(["Fri, 09 Jan 2026 08:00:00 -0000", "Fri, 9 Jan 2026 08:00 +0300"])
)
def test_usual_rfc822_dates_are_read_as_email_utils_reads_them(raw: str) -> None:
    assert feed.parse_time(raw, ISTANBUL) == feed._parse_time_general(raw, ISTANBUL)
    assert str(feed.parse_time(raw, ISTANBUL)) == str(feed._parse_time_general(raw, ISTANBUL))


@pytest.mark.parametrize("raw", [
    "Fri, 09 Jan 2026 08:07:00 -\u0660\u0660\u0660\u0660",
    "Fri, \u0660\u0669 Jan 2026 08:07:00 +0300",
])  # fmt: skip
def test_rfc822_dates_in_other_digits_are_read_as_email_utils_reads_them(raw: str) -> None:
    assert feed._rfc822(raw) is None  # not the shortcut's
    assert str(feed.parse_time(raw, ISTANBUL)) == str(feed._parse_time_general(raw, ISTANBUL))


def test_the_usual_rfc822_dates_skip_email_utils() -> None:
    assert feed._rfc822("Fri, 09 Jan 2026 08:07:00 +0300") is not None
