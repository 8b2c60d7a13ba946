"""The parse workers' shortcuts (web._feed_records: fastfeed -> Articles -> candidate,
signature, packed record), each against the general path it stands in for: a shortcut
that answered differently would change stored records, keys or signatures.
(tests/test_feed_records.py holds the frozen records of whole documents.)
"""

from __future__ import annotations

import dataclasses
import os

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree  # type: ignore[import-untyped]

from aggregator import model, normalize
from aggregator.model import MAX_NAME, MAX_NAMES, MAX_SUMMARY, MAX_TITLE, Article
from aggregator.sources import fastfeed
from tests.test_fastfeed import NOW, URL, atom_feed, rss_feed
from tests.test_feed_records import bench_shaped

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
