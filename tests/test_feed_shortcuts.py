"""The parse workers' shortcuts (web._feed_records: fastfeed -> Articles -> candidate,
signature, packed record), each against the general path it stands in for: a shortcut
that answered differently would change stored records, keys or signatures.
(tests/test_feed_records.py holds the frozen records of whole documents.)
"""

from __future__ import annotations

import dataclasses
import os
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]

from aggregator import dedupe, model, normalize, records, signature
from aggregator.model import MAX_NAME, MAX_NAMES, MAX_SUMMARY, MAX_TITLE, Article
from aggregator.signature import SIGNATURE_HTML
from aggregator.sources import fastfeed, staged
from tests.test_fastfeed import NOW, URL, atom_feed, rss_feed
from tests.test_feed_records import bench_shaped, simple_markup

EXAMPLES = int(os.environ.get("FASTFEED_EXAMPLES", "300"))

# what feeds hold, and what the repairs and checks look for: Latin-1 letters, the bytes of
# UTF-8 read as Latin-1 (Ã¼ is ü), C1 controls, Turkish letters beyond Latin-1, spaces
TEXT_PIECES = st.sampled_from([
    "Ankara", "Gündem", "ığdır", "İSTANBUL", "Ã¼", "Ã", "¼", "Ä±", "\x80", "\x85", "\x9f",
    "\xa0", "«", "»", "©", "é", "ß", "\u2019", " ", "  ", "\t", "\n", "\r\n", "\x00", "\x0b",
    "\ufffe", "\ud800", "\u2028", "x", "1", ".", "<b>", "&amp;",
])  # fmt: skip
TEXTS = st.text() | st.lists(TEXT_PIECES, max_size=12).map("".join)


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(TEXTS)
def test_element_text_is_repaired_as_feedparser_repairs_it(raw: str) -> None:
    """fastfeed._text returns text without U+0080..U+00BF as it is: _repaired would too."""
    assert fastfeed._text(raw) == fastfeed._repaired(raw.strip())


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(TEXTS)
def test_collapsed_text_drops_what_xml_cannot_carry(text: str) -> None:
    assert normalize._collapsed(text) == normalize.xml_safe(" ".join(text.split()))


@settings(max_examples=EXAMPLES, deadline=None)
@given(rss_feed() | atom_feed())
def test_document_wide_shortcuts_read_what_the_general_path_reads(doc: bytes) -> None:
    """fastfeed.parse asks no element for a base when the bytes "base" are nowhere, and
    repairs no text when no text can hold U+0080..U+00BF: _read with neither shortcut
    gives the same entries."""
    root = etree.fromstring(doc, fastfeed._parser())
    try:
        general = fastfeed._read(root, URL, bases=True, latin1_high=True)
    except fastfeed._Unsure:
        general = None
    assert fastfeed.parse(doc, URL) == general


def test_the_usual_feeds_take_the_document_wide_shortcuts() -> None:
    doc = bench_shaped(3)
    assert b"base" not in doc and b"\xc2" not in doc and b"&#" not in doc


NAMES = st.lists(st.text(max_size=3) | st.just("x" * MAX_NAME) | st.just("y" * (MAX_NAME + 1)),
                 max_size=MAX_NAMES + 2)  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.integers(MAX_TITLE - 1, MAX_TITLE + 1), st.integers(MAX_SUMMARY - 1, MAX_SUMMARY + 1),
       NAMES, NAMES)  # fmt: skip
def test_articles_within_their_bounds_are_cut_as_the_general_path_cuts(
    title: int, summary: int, categories: list[str], authors: list[str]
) -> None:
    """Article skips model._cut when every bound holds: _cut would cut nothing then."""
    fields = dict(title="t" * title, summary="s" * summary, categories=tuple(categories),
                  authors=tuple(authors), published=NOW, updated=NOW, source="s",
                  origin="o")  # fmt: skip
    article = Article(**fields)  # type: ignore[arg-type]
    general = object.__new__(Article)
    for name, value in {
        **{f.name: f.default for f in dataclasses.fields(Article)},
        **fields,
    }.items():
        object.__setattr__(general, name, value)
    model._cut(general)
    assert article == general and article.warnings == general.warnings


# texts where folding to case, labels, NUL and entities make a difference
FOLD_PIECES = st.sampled_from([
    "İzmir", "IŞIK", "ısı", "Ankara'da", "“bugün”", "–", "...", ". ", "  ", "\t", "\n", "\x00",
    "\xa0", "_", "&amp;", "&lt;b&gt;", "|", ":", "SON DAKİKA", "Son dakika:", "FLAŞ ", "Canlı |",
    "o\u0308", "\u0307", "ﬁ", "ς", "Σ", "ΑΣ", "12", "a", "s", " ", "<b>", "</b>", "<p>", "</p>",
    "<br>", '<a href="/x">', "<", ">",
])  # fmt: skip
FOLD_TEXTS = st.lists(FOLD_PIECES, max_size=10).map("".join) | st.text(max_size=20)


@st.composite
def articles(draw: st.DrawFn) -> Article:
    when = draw(st.sampled_from([NOW, NOW.replace(year=2025)]))
    body = draw(st.sampled_from(["", "<p>", "<p>a</p><p>", "x" * SIGNATURE_HTML]))
    body += draw(FOLD_TEXTS) + draw(st.sampled_from(["", "</p>", "<p>y</p>"]))
    # a summary that is the body's text (the candidate's body check), or not
    summary = draw(FOLD_TEXTS | st.sampled_from([normalize.html_to_text(body),
                                                 normalize.plain_text(body)]))  # fmt: skip
    return Article(
        title=draw(FOLD_TEXTS), summary=summary, published=when,
        updated=draw(st.sampled_from([when, NOW])), source="s", origin="o", content_html=body,
        link=draw(st.sampled_from([None, "https://haber.test/a"])),
        guid=draw(st.sampled_from([None, "g1"])), date_only=draw(st.booleans()),
        published_source=draw(st.sampled_from(["source", "source", "seen"])),
    )  # fmt: skip


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.lists(articles(), max_size=4))
def test_staged_records_are_what_candidate_and_signatures_make_alone(
    batch: list[Article],
) -> None:
    """staged() folds each article's texts to case once for its match keys and signature,
    and gives the candidate the signature's body text: the same as making each alone."""
    general = tuple(
        (dedupe.candidate(-1, a)._replace(signature=s), records.pack_record(a))
        for a, s in zip(batch, signature.signatures(batch), strict=True)
    )
    assert staged(batch) == general


def test_staged_records_of_the_odd_cases_are_what_candidate_and_signatures_make_alone() -> None:
    odd = [("SON DAKİKA: İzmir'de", "&lt;b&gt;kalın&lt;/b&gt; yazı"), ("ΑΣ ς", "o\u0308 ﬁ"),
           ("a\x00b", "<p>x</p>"), ("Canlı | Ankara", "<p><b>A</b>'da</p>")]  # fmt: skip
    batch = [
        Article(
            title=title,
            summary=text,
            content_html=html,
            published=NOW,
            updated=NOW,
            source="s",
            origin="o",
            date_only=date_only,
        )  # fmt: skip
        for title, html in odd
        for text in (normalize.html_to_text(html), normalize.plain_text(html), "x")
        for date_only in (False, True)
    ]
    general = tuple(
        (dedupe.candidate(-1, a)._replace(signature=s), records.pack_record(a))
        for a, s in zip(batch, signature.signatures(batch), strict=True)
    )
    assert staged(batch) == general


# the check as first written: the whole fragment matched by one regex, then its tags walked
_SIMPLE_MARKUP = re.compile(
    f"(?:{normalize._PLAIN_CHARS}++|</?(?:p|{normalize._INLINE_TAGS})>|<br>)*+"
)


def _simple_markup_by_regex(fragment: str) -> bool:
    if fragment.startswith("\ufeff") or _SIMPLE_MARKUP.fullmatch(fragment) is None:
        return False
    open_tags: list[str] = []
    for closing, name in normalize._SIMPLE_TAG.findall(fragment):
        if closing:
            if not open_tags or open_tags.pop() != name:
                return False
        elif name == "br":
            continue
        elif (name == "p" and open_tags) or len(open_tags) >= normalize._SIMPLE_DEPTH:
            return False
        else:
            open_tags.append(name)
    return not open_tags


MARKUP_PIECES = st.sampled_from([
    "<p>", "</p>", "<b>", "</b>", "<br>", "</br>", "<span>", "</span>", "<div>", "<P>", "<b",
    "b>", "<>", "</>", "<sb>", "&", "&amp;", "\r", "\n", "\t", "\xa0", "\x00", "\x0b", "\ufeff",
    "\ud800", "\ufffe", "\u2028", "x", "İ", " ", "<i>", "</i>", "<br/>", "<<b>>",
])  # fmt: skip


@settings(max_examples=EXAMPLES * 3, deadline=None)
@given(st.lists(MARKUP_PIECES, max_size=16).map("".join) | simple_markup() | st.text())
def test_simple_markup_is_told_as_the_regex_tells_it(fragment: str) -> None:
    assert normalize._simple_markup_checked(fragment) == _simple_markup_by_regex(fragment)


def test_memos_keep_nothing_of_a_long_argument() -> None:
    """The parse path's memos (content types, bases, joined links) are bounded by size:
    ten feeds each naming a 2 MB content type leave nothing behind once parsed."""
    import gc
    import tracemalloc
    from datetime import UTC

    from aggregator.sources import feed

    def document(i: int) -> bytes:
        kind = f"text/plain; v={i:02d}" + "x" * 2_000_000
        return (
            '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
            "<title>f</title><id>urn:f</id><updated>2026-03-01T10:00:00Z</updated>"
            f'<entry><title type="{kind}">Ankara haber</title><id>urn:e{i}</id>'
            f'<link href="https://haber.test/a/{i}"/><updated>2026-03-01T10:00:00Z</updated>'
            "</entry></feed>"
        ).encode()

    tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(10):
            feed.parse_feed(document(i), url="https://haber.test/rss", source="s", tz=UTC)
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1_000_000, kept
    assert fastfeed.memo(4)(str.lower)("A" * (fastfeed.MEMO_KEY_CHARS + 1)) == "a" * (
        fastfeed.MEMO_KEY_CHARS + 1
    )
