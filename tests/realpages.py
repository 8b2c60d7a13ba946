"""The real-page corpus (tests/data/real/pages/) and how an extraction is scored on it.

Each page folder holds `source.html` (or `source.html.gz`) and `expected.json`: the page's
URL, title, author (None: not scored, unless the page is Turkish, where None means "no
author": an agency is the source, not the author), publication day and, for Turkish
pages, the agency. Scoring is forgiving about case, quotes, dashes, spacing and a "By"
before a byline, and strict about everything else.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PAGES = Path(__file__).parent / "data" / "real" / "pages"
FIELDS = ("title", "author", "published_day", "agency")


@dataclass(frozen=True)
class Page:
    name: str
    html: bytes
    expected: dict[str, Any]

    @property
    def url(self) -> str:
        return str(self.expected["url"])


@dataclass(frozen=True)
class Extracted:
    """What an extractor found, as text: authors joined by ", ", the day as YYYY-MM-DD."""

    title: str = ""
    author: str = ""
    published_day: str = ""
    agency: str = ""


def pages() -> Iterator[Page]:
    for folder in sorted(p for p in PAGES.iterdir() if p.is_dir()):
        source = folder / "source.html"
        data = source.read_bytes() if source.exists() else gzip.decompress(
            (folder / "source.html.gz").read_bytes())  # fmt: skip
        expected = json.loads((folder / "expected.json").read_text("utf-8"))
        yield Page(folder.name, data, expected)


_QUOTES = str.maketrans({"‘": "'", "’": "'", "“": '"', "”": '"', "–": "-", "—": "-", "\xa0": " "})
_BY = re.compile(r"^(by|par|por|von|di)\s+", re.IGNORECASE)
_NAME_SPLIT = re.compile(r"\s*(?:,|;|&|\band\b|\bet\b|\by\b|\bund\b|\bve\b)\s*", re.IGNORECASE)


def _norm(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    return " ".join(text.split()).casefold()


def _names(text: str) -> frozenset[str]:
    text = _BY.sub("", _norm(text))
    return frozenset(n for n in _NAME_SPLIT.split(text) if n)


def scored(page: Page, field: str) -> bool:
    """Whether the page has ground truth for this field."""
    turkish = bool(page.expected.get("turkish"))
    if field == "agency":
        return turkish
    if field == "author":
        return turkish or page.expected.get("author") is not None
    return page.expected.get(field) is not None


def right(page: Page, field: str, found: Extracted) -> bool:
    want = page.expected.get(field) or ""
    got = getattr(found, field)
    if field == "author":
        return _names(got) == _names(want)
    return _norm(got) == _norm(want)


def score(extract: Callable[[Page], Extracted]) -> tuple[dict[str, tuple[int, int]], list[str]]:
    """Per field (right, scored) over the corpus, and one line per miss."""
    totals = dict.fromkeys(FIELDS, (0, 0))
    misses: list[str] = []
    for page in pages():
        found = extract(page)
        for field in FIELDS:
            if not scored(page, field):
                continue
            ok = right(page, field, found)
            hit, out_of = totals[field]
            totals[field] = (hit + ok, out_of + 1)
            if not ok:
                want = page.expected.get(field)
                misses.append(f"{page.name} {field}: got {getattr(found, field)!r}, want {want!r}")
    return totals, misses


def trafilatura_extract(page: Page) -> Extracted:
    """trafilatura's own metadata on the same page, for comparison."""
    from trafilatura import bare_extraction

    doc = bare_extraction(page.html, url=page.url, with_metadata=True)
    if doc is None or isinstance(doc, dict):
        return Extracted()
    return Extracted(title=doc.title or "", author=(doc.author or "").replace(";", ","),
                     published_day=(doc.date or "")[:10])  # fmt: skip
