"""The parse workers' shortcuts (web._feed_records: fastfeed -> Articles -> candidate,
signature, packed record), each against the general path it stands in for: a shortcut
that answered differently would change stored records, keys or signatures.
(tests/test_feed_records.py holds the frozen records of whole documents.)
"""

from __future__ import annotations

import os

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import normalize
from aggregator.sources import fastfeed

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
