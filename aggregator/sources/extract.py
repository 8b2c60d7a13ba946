"""The layers of page extraction that are not the page's own markup (pure).

- `main_content`: trafilatura (with its htmldate) for the article body and its metadata
  guesses, used where the page says nothing explicit (html.py puts JSON-LD, OpenGraph and
  the Turkish visible labels first: they score better on tests/data/real/pages/).
- `credited`: a byline that names an agency (AA, DHA, İHA, `Haber Merkezi`...) is the
  story's source, not its author; a byline that is a URL (a profile page in
  `article:author`) is nobody's name.
- `labelled_times`: Turkish pages' visible date labels (`05.04.2025 - Güncelleme :
  05.04.2025`, `Yayınlanma: ...`, `Oluşturulma Tarihi: ...`), for pages whose markup has no
  date; `dateline_agency`: the agency of a Turkish dateline (`ANKARA (AA) - ...`).
- `url_day`: the last resort for a date, one in the URL path (`/2024/07/03/`).
"""

from __future__ import annotations

import html
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, tzinfo

from lxml import etree  # type: ignore[import-untyped]

from aggregator.errors import ParseError
from aggregator.normalize import collapse, fold, sanitize_html
from aggregator.timeparse import Stamp, find_stamp

MAX_TAGS = 200_000
"""A page with more tags than this gets no trafilatura pass (its cost grows with them)."""

_AGENCIES = {  # by their fold(): Turkish lower case, no punctuation
    "aa": "AA", "anadolu ajansı": "AA", "anadolu ajansi": "AA",
    "dha": "DHA", "demirören haber ajansı": "DHA",
    "iha": "İHA", "ıha": "İHA", "ihlas haber ajansı": "İHA",
    "anka": "ANKA", "anka haber ajansı": "ANKA",
    "reuters": "Reuters", "afp": "AFP", "associated press": "AP",
}  # fmt: skip
_NEWSROOM = re.compile(r"\bhaber merkezi$")
LABEL_LINES = 400
"""Visible lines searched for date labels and datelines (they sit near the top)."""
_UPDATED = re.compile(r"(?i)(son\s+)?g(ü|u)ncelle(me|nme)(\s+tarihi)?\s*:?")
_PUBLISHED = re.compile(
    r"(?i)(yay(ı|i)nlanma|yay(ı|i)n\s+tarihi|olu(ş|s)turulma(\s+tarihi)?|giri(ş|s)(\s+tarihi)?"
    r"|eklenme(\s+tarihi)?|haber\s+giri(ş|s))\s*:?"
)
_DATELINE = re.compile(r"^[A-ZÇĞİÖŞÜ][A-ZÇĞİÖŞÜa-zçğıöşü .'/-]{1,40}\s*\(([^()]{2,30})\)\s*[-–—]")
_URL_DAY = re.compile(
    r"/((?:19|20)\d\d)([/-])(0?[1-9]|1[0-2])\2(0?[1-9]|[12]\d|3[01])(?:/|$|[-_.])"
)


@dataclass(frozen=True, slots=True)
class MainContent:
    """trafilatura's reading of a page; empty strings where it found nothing."""

    content_html: str = ""
    title: str = ""
    authors: tuple[str, ...] = ()
    day: date | None = None


def main_content(text: str, *, url: str) -> MainContent:
    """The article body (sanitized, links absolute against `url`) and metadata guesses."""
    # imported here: trafilatura's import costs a quarter second, and seed-only runs
    # never read a page
    from trafilatura import bare_extraction
    from trafilatura.htmlprocessing import convert_to_html

    if text.count("<") > MAX_TAGS:
        return MainContent()
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # misses are our decision
    try:
        doc = bare_extraction(
            text, url=url, with_metadata=True, include_formatting=True, include_links=True,
            include_images=True, include_comments=False,
        )  # fmt: skip
    except Exception as e:  # noqa: BLE001 - a heuristic's crash (htmldate asserts on an
        # <svg>-rooted page) means "found nothing", never a lost page: our layers still read it
        logging.getLogger(__name__).debug("trafilatura failed on %s: %r", url, e)
        return MainContent()
    if doc is None or isinstance(doc, dict):
        return MainContent()
    body = ""
    if doc.body is not None and len(doc.body):
        tree = convert_to_html(doc.body)
        inner = tree.find("body")
        parts = inner if inner is not None else tree
        body = html.escape(parts.text or "", quote=False) + "".join(
            etree.tostring(child, encoding="unicode") for child in parts)  # fmt: skip
    authors = tuple(a for a in (collapse(n) for n in (doc.author or "").split(";")) if a)
    return MainContent(
        content_html=sanitize_html(body, url) if body else "",
        title=collapse(doc.title or ""),
        authors=authors,
        day=_iso_day(doc.date),
    )


def _iso_day(raw: str | None) -> date | None:
    try:
        return date.fromisoformat(raw[:10]) if raw else None
    except ValueError:
        return None


def agency_of(name: str) -> str:
    """The agency (or newsroom) a byline names, or ""."""
    key = fold(name)
    if key in _AGENCIES:
        return _AGENCIES[key]
    if _NEWSROOM.search(key):
        return collapse(name)
    return ""


def is_url(name: str) -> bool:
    return bool(re.match(r"(?i)^(https?:)?//|^www\.", name)) or (" " not in name and "/" in name)


def credited(names: tuple[str, ...]) -> tuple[tuple[str, ...], str]:
    """(authors, agency) from bylines: agencies go to the second, URLs nowhere."""
    authors: list[str] = []
    agency = ""
    for name in names:
        if is_url(name):
            continue
        if found := agency_of(name):
            agency = agency or found
        else:
            authors.append(name)
    return tuple(dict.fromkeys(authors)), agency


def url_day(url: str, tz: tzinfo) -> datetime | None:
    """Midnight (in `tz`) of a date in the URL's path, e.g. `/2024/07/03/slug`."""
    path = url.split("?", 1)[0].split("#", 1)[0]
    match = _URL_DAY.search(path)
    if not match:
        return None
    try:
        day = date(int(match[1]), int(match[3]), int(match[4]))
    except ValueError:
        return None
    return datetime.combine(day, time(), tzinfo=tz)


def day_start(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz)


def _stamp(text: str, tz: tzinfo) -> Stamp | None:
    try:
        return find_stamp(text, tz)
    except ParseError:
        return None


def labelled_times(lines: list[str], tz: tzinfo) -> tuple[Stamp | None, Stamp | None]:
    """(published, updated) from the first visible line with a date label: what precedes
    a `Güncelleme` label (or follows a `Yayınlanma`/`Oluşturulma`/`Giriş` one) is the
    publication, what follows `Güncelleme` the update."""
    published: Stamp | None = None
    updated: Stamp | None = None
    for line in lines[:LABEL_LINES]:
        if len(line) > 200:
            continue
        update = _UPDATED.search(line)
        if update:
            updated = updated or _stamp(line[update.end() :], tz)
            published = published or _stamp(line[: update.start()], tz)
        elif label := _PUBLISHED.search(line):
            published = published or _stamp(line[label.end() :], tz)
        if published and updated:
            break
    return published, updated


def dateline_agency(lines: list[str]) -> str:
    """The agency of the first `CITY (AA) -` dateline among the visible lines, or ""."""
    for line in lines[:LABEL_LINES]:
        if (m := _DATELINE.match(line)) and (found := agency_of(m.group(1))):
            return found
    return ""
