"""RSS 0.9x/1.0/2.0 and Atom 0.3/1.0 (feedparser), JSON Feed 1.x (json) -> Articles. Pure.

Identity: an entry's guid/id. Without one, the fallback key is its link, else
"sha1:" + sha1(title, published) -- stable across fetches of an unchanged entry.
A guid the feed repeats for different items is dropped for those items, so the URL and
title/time keys decide (some feeds give every item the channel URL as its guid).

Times: read from the raw text, not feedparser's `*_parsed` (which assume UTC), so a time
without an offset is in the configured zone; then feedparser's reading; then, for other
languages' day and month names, dateparser (slow: only when the others fail). `updated` is
never earlier than `published`. An entry without a believable date (none readable, or more
than FUTURE_SLACK after the run's `now`) gets `now` with `published_source="seen"`; the
pipeline replaces it with the time the item was first seen (aggregator/firstseen.py).
An entry with a link but neither title nor text is titled from its URL, as readers do.
Safety: feedparser gets a byte stream (never a str/bytes it could take for a path or URL),
its own sanitizer is off because nh3 cleans every HTML field we keep, and a document that
declares XML entities is refused (no external or exponential entity expansion).
"""

from __future__ import annotations

import email.utils
import functools
import hashlib
import html
import io
import json
import re
import xml.parsers.expat
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import feedparser
import feedparser.mixin
import feedparser.namespaces._base
import feedparser.sanitizer

from aggregator.errors import ParseError
from aggregator.model import MAX_NAMES, Article, Rejection
from aggregator.normalize import (
    absolute_url,
    clean_link,
    collapse,
    fold,
    plain_text,
    sanitize_html,
    shorten,
)
from aggregator.sources import fastfeed
from aggregator.sources.http import decode_body
from aggregator.timeparse import FUTURE_SLACK, find_stamp, in_utc_range, parse_foreign, parse_iso


def _memoize_feedparser_uri_joins() -> None:
    """feedparser re-joins the base URI at every element start, always with the same few
    arguments (30% of its time on a typical feed). Both functions are pure: memoized, they
    return the same values, so relative links and guids resolve exactly as before."""
    for name, size in (("make_safe_absolute_uri", 256), ("_urljoin", 4096)):
        original = getattr(feedparser.mixin, name, None)
        if callable(original) and not hasattr(original, "__wrapped__"):
            setattr(feedparser.mixin, name, fastfeed.memo(size)(original))


_memoize_feedparser_uri_joins()


def _bound_feedparser_tags() -> None:
    """feedparser keeps an entry's tags unique by a linear search per tag: N `<category>`
    cost N². An article keeps only the first MAX_NAMES, so later ones are not looked at."""
    mixin = getattr(feedparser.mixin, "_FeedParserMixin", None)
    add = getattr(mixin, "_add_tag", None)
    if mixin is None or add is None or hasattr(add, "__wrapped__"):
        return

    def add_bounded(self: Any, term: Any, scheme: Any, label: Any) -> None:
        if len(self._get_context().get("tags", ())) < MAX_NAMES:
            add(self, term, scheme, label)

    add_bounded.__wrapped__ = add  # type: ignore[attr-defined]
    mixin._add_tag = add_bounded


_bound_feedparser_tags()

MAX_ENTRIES = 2_000  # entries read per feed document: the first ones, as the feed lists them
_SHOWN_REJECTIONS = 3  # more rejected entries than this in one document: one line for all


def _bound_feedparser_entries() -> None:
    """An entry that ends past the first MAX_ENTRIES is dropped at once, so a feed of
    700,000 `<item/>` holds only MAX_ENTRIES parsed entries in memory."""
    namespace = getattr(getattr(feedparser, "namespaces", None), "_base", None)
    base = getattr(namespace, "Namespace", None)
    mixin = getattr(feedparser.mixin, "_FeedParserMixin", None)
    end = getattr(base, "_end_item", None)
    if mixin is None or end is None or hasattr(end, "__wrapped__"):
        return

    def end_bounded(self: Any) -> None:
        end(self)
        if len(self.entries) > MAX_ENTRIES:
            self.entries.pop()

    end_bounded.__wrapped__ = end  # type: ignore[attr-defined]
    mixin._end_item = mixin._end_entry = end_bounded


_bound_feedparser_entries()

_ENTITY_DECL = re.compile(rb"<!(?i:ENTITY)")  # "<!" first: a fast scan for it (CDATA has it too)
_XML_DECL_ENCODING = re.compile(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""")
_JSON_FEED = "https://jsonfeed.org/version/1"
_TAG = re.compile(r"<[A-Za-z/!?]")
_HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")


@dataclass(frozen=True, kw_only=True)
class FeedResult:
    """The entries of one feed document; `ttl` (seconds) bounds how often to ask again."""

    articles: tuple[Article, ...]
    rejected: tuple[Rejection, ...] = ()
    ttl: float | None = None


class _Item(NamedTuple):
    """One entry in a format-neutral shape, before dates and HTML are resolved (a tuple: one
    per entry, built at a fraction of a frozen dataclass's cost)."""

    guid: str | None
    link: str | None
    title: str
    summary: str
    content_html: str
    authors: tuple[str, ...]
    categories: tuple[str, ...]
    image: str | None
    published: str | None
    updated: str | None
    fallback_time: tuple[Any, Any]  # feedparser's published_parsed, updated_parsed (_struct_time)
    language: str


def parse_feed(
    data: bytes, *, url: str, content_type: str = "", source: str, tz: tzinfo,
    language: str = "tr", now: datetime | None = None,
) -> FeedResult:  # fmt: skip
    """A feed document -> its articles. Raises ParseError if it is not a feed at all.
    `now`: the run's time, given to undated entries; without it (a one-off parse) they are
    rejected and no date is too far ahead."""
    text = decode_body(data, content_type)
    stripped = text.lstrip("\ufeff \t\r\n")
    if "json" in content_type.lower() or stripped.startswith("{"):
        items, ttl = _json_items(stripped, url, language)
    else:
        # as decoded (UTF-16 hides nothing), the very bytes feedparser reads
        utf8 = _XML_DECL_ENCODING.sub(r'\1"utf-8"', text, count=1).encode("utf-8", "replace")
        _refuse_entities(utf8)
        items, ttl = _xml_items(utf8, url, language)
    articles: list[Article] = []
    rejected: list[Rejection] = []
    for i, item in enumerate(items[:MAX_ENTRIES]):
        try:
            articles.append(_article(item, url=url, source=source, tz=tz, now=now))
        except ParseError as e:
            origin = f"{url} (entry {i + 1}{': ' + item.title[:60] if item.title else ''})"
            rejected.append(Rejection(source=source, origin=origin, reason=str(e)))
    return FeedResult(articles=_split_shared_guids(articles), rejected=_quiet(rejected, url),
                      ttl=ttl)  # fmt: skip


def _quiet(rejected: list[Rejection], url: str) -> tuple[Rejection, ...]:
    """A flood of rejected entries is one line: the count and the first few reasons."""
    if len(rejected) <= _SHOWN_REJECTIONS:
        return tuple(rejected)
    first = "; ".join(f"{r.origin.removeprefix(url + ' (').removesuffix(')')}: {r.reason}"
                      for r in rejected[:_SHOWN_REJECTIONS])  # fmt: skip
    reason = f"{len(rejected)} entries rejected, the first: {first}"
    return (Rejection(source=rejected[0].source, origin=url, reason=reason),)


class _PrologRead(Exception):
    """The root element started: the prolog (where any DOCTYPE must be) is all read."""


def _refuse_entities(data: bytes) -> None:
    """Refuse a document that declares entities (internal, external or parameter), so no
    entity is ever expanded. Found by expat itself, so no comment, processing instruction,
    CDATA or encoding trick hides a declaration or fakes the root element; checked on the
    bytes as given and as feedparser rewrites its DOCTYPE for its parsers. Only the prolog
    is parsed: expat stops at the root element, before any entity could be expanded."""
    if not _ENTITY_DECL.search(data):  # no declaration without these bytes, in either form
        return
    _, rewritten, loose_entities = feedparser.sanitizer.replace_doctype(data)
    if loose_entities:
        raise ParseError("the XML declares entities (<!ENTITY>); refused for safety")

    def declared(name: str, *_: object) -> None:
        raise ParseError(f"the XML declares entities (<!ENTITY {name}>); refused for safety")

    def root(*_: object) -> None:
        raise _PrologRead

    for form in (data, rewritten):
        parser = xml.parsers.expat.ParserCreate(encoding="utf-8")  # whatever it says
        parser.EntityDeclHandler = declared
        parser.UnparsedEntityDeclHandler = declared
        parser.StartElementHandler = root
        try:
            parser.Parse(form.lstrip(b"\xef\xbb\xbf \t\r\n"), True)
        except _PrologRead:
            continue
        except xml.parsers.expat.ExpatError:
            # not well-formed before its root, with `<!ENTITY` somewhere: feedparser's loose
            # parser would read it its own way
            raise ParseError(
                "the XML declares entities (<!ENTITY>) in a malformed prolog; refused for safety"
            ) from None


# -- XML feeds (feedparser) ----------------------------------------------------------------
def _xml_items(utf8: bytes, url: str, language: str) -> tuple[list[_Item], float | None]:
    d = fastfeed.parse(utf8, url)  # None: not sure it reads the document as feedparser does
    try:
        d = d or feedparser.parse(
            io.BytesIO(utf8),
            response_headers={"content-type": "application/xml; charset=utf-8",
                              "content-location": url},
            sanitize_html=False,
            resolve_relative_uris=False,
        )  # fmt: skip
    except Exception as e:  # feedparser's loose parser has its own bugs on hostile input
        raise ParseError(f"unreadable feed ({type(e).__name__}: {e})") from e
    entries = d.get("entries") or []
    if not entries and (d.get("bozo") or not d.get("version")):
        reason = d.get("bozo_exception") or "no RSS/Atom root element"
        raise ParseError(f"not a feed: {collapse(str(reason))[:200]}")
    feed = d.get("feed") or {}
    lang = str(feed.get("language") or language)
    return [_from_feedparser(e, lang) for e in entries], _ttl(feed.get("ttl"))


def _ttl(value: object) -> float | None:
    text = str(value or "").strip()
    return float(text) * 60 if text.isdigit() and 0 < int(text) < 100000 else None


def _fallback_time(parsed: tuple[Any, Any]) -> datetime | None:
    """feedparser's reading of the published (else updated) date, made only when needed."""
    published, updated = (p.parsed() if isinstance(p, fastfeed.Unparsed) else p for p in parsed)
    return _struct_time(published or updated)


def _struct_time(value: Any) -> datetime | None:
    try:
        if not value:
            return None
        y, mo, d, h, mi, sec = (int(v) for v in value[:6])
        return datetime(y, mo, d, h, mi, min(sec, 59), tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def _text_of(value: object, kind: str) -> str:
    text = str(value or "")
    # markup in a "plain" title is still markup to many readers (RSS titles are de facto
    # HTML): `&lt;script&gt;` must not pass through as text we republish
    if _html_kind(kind) or _TAG.search(text):
        return plain_text(text)
    return collapse(text)


@fastfeed.memo(64)  # a feed's few content types, asked for every entry
def _html_kind(kind: str) -> bool:
    return any(t in kind for t in _HTML_TYPES)


def _from_feedparser(e: dict[str, Any], language: str) -> _Item:
    # dict.get: feedparser's FeedParserDict.get maps some keys onto others (`updated` onto
    # `published`), slowly; none of the keys read here is one of them but `updated`
    get: Callable[..., Any] = dict.get
    title = _text_of(get(e, "title"), get(get(e, "title_detail") or {}, "type", "text/html"))
    summary_raw = str(get(e, "summary") or "")
    summary_type = get(get(e, "summary_detail") or {}, "type", "text/html")
    content_html = ""
    for c in get(e, "content") or []:
        value = str(get(c, "value") or "")
        if _html_kind(str(get(c, "type", ""))):
            content_html = value
            break
        content_html = content_html or _paragraphs(value)
    if not content_html and "<" in summary_raw and "html" in summary_type:
        content_html = summary_raw
    authors = [get(a, "name", "") for a in get(e, "authors") or [] if isinstance(a, Mapping)]
    if not any(authors) and get(e, "author"):
        authors = [str(get(e, "author"))]
    categories = [get(t, "term") or get(t, "label") or "" for t in get(e, "tags") or []]
    return _Item(
        guid=_clean_id(get(e, "id")),
        link=_clean_id(get(e, "link")),
        title=title,
        summary=_text_of(summary_raw, summary_type),
        content_html=content_html,
        authors=_names(authors),
        categories=_names(categories),
        image=_image(e),
        published=_clean_id(get(e, "published") or get(e, "created")),
        updated=_clean_id(get(e, "updated")),
        fallback_time=(get(e, "published_parsed"), get(e, "updated_parsed")),
        language=language,
    )


def _image(e: Mapping[str, Any]) -> str | None:
    get: Callable[..., Any] = dict.get
    for key in ("media_content", "media_thumbnail"):
        for m in get(e, key) or []:
            if get(m, "url") and get(m, "medium", "image") == "image":
                return str(m["url"])
    for link in get(e, "links") or []:
        if get(link, "rel") == "enclosure" and str(get(link, "type", "")).startswith("image/"):
            return str(get(link, "href") or "") or None
    return None


# -- JSON Feed -----------------------------------------------------------------------------
def _json_items(text: str, url: str, language: str) -> tuple[list[_Item], float | None]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ParseError(f"not a JSON Feed: invalid JSON ({e})") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(_JSON_FEED):
        raise ParseError("not a JSON Feed: no https://jsonfeed.org/version/1 version")
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError("not a JSON Feed: `items` is not a list")
    lang = str(doc.get("language") or language)
    return [_from_json(i, lang) for i in items[:MAX_ENTRIES] if isinstance(i, dict)], None


def _from_json(item: dict[str, Any], language: str) -> _Item:
    authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
    names = [_string(a.get("name")) if isinstance(a, dict) else "" for a in _list(authors)]
    content = item.get("content_html")
    if not isinstance(content, str):
        content = _paragraphs(_string(item.get("content_text")))
    summary = item.get("summary")
    return _Item(
        guid=_clean_id(item.get("id")),
        link=_clean_id(item.get("url") or item.get("external_url")),
        title=_text_of(_string(item.get("title")), "text"),
        summary=_text_of(summary, "text") if isinstance(summary, str) else "",
        content_html=content,
        authors=_names(names),
        categories=_names(_string(t) for t in _list(item.get("tags"))),
        image=_clean_id(item.get("image") or item.get("banner_image")),
        published=_clean_id(item.get("date_published")),
        updated=_clean_id(item.get("date_modified")),
        fallback_time=(None, None),
        language=str(item.get("language") or language),
    )


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _string(value: object) -> str:
    """A JSON Feed text field: a string, or nothing (a list or object is not a name)."""
    return value if isinstance(value, str) else ""


# -- the mapping to Article ------------------------------------------------------------------
def _clean_id(value: object) -> str | None:
    if type(value) is str:  # nearly always
        return collapse(value) or None
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = collapse(str(value))
    return text or None


def _names(values: Iterable[str]) -> tuple[str, ...]:
    """Author or category names as plain text (`<b>Ad</b>` is `Ad`)."""
    names = []
    for value in values:
        if name := _text_of(value, "text"):
            names.append(name)
    return tuple(dict.fromkeys(names))


def _paragraphs(text: str) -> str:
    return "".join(
        f"<p>{html.escape(p, quote=False)}</p>" for p in re.split(r"\n\s*\n", text) if p.strip()
    )


def parse_time(raw: str | None, tz: tzinfo) -> datetime | None:
    """RFC 822, ISO 8601 or Turkish `1 Ocak 2026 19:16`; naive times get `tz`."""
    if not raw:
        return None
    raw = raw.strip()
    when = _rfc822(raw)
    if when is None:
        return _parse_time_general(raw, tz)
    # its year has four digits: an offset under a day moves it past no edge but 9999's
    return when if when.year < 9999 else in_utc_range(when)


# RFC 822 as nearly every feed writes it, read as email.utils reads it (the weekday is not
# checked, `-0000` is its "zone unknown"); anything else takes the general path
_RFC822 = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" ([1-9]\d{3}) (\d\d):(\d\d):(\d\d) ([+-]\d{4})",
    re.ASCII,  # digits 0-9 only: "-٠٠٠٠" must not pass for a zone email.utils calls unknown
)
_MONTHS = {m: i for i, m in enumerate("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(), 1)}


def _rfc822(raw: str) -> datetime | None:
    m = _RFC822.fullmatch(raw)
    if m is None or m[7] == "-0000":
        return None
    day, month, year, hour, minute, second, zone = m.groups()
    try:
        return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second),
                        tzinfo=_zone(zone))  # fmt: skip
    except ValueError:  # no such day or time, or a zone past a day: the general path says
        return None


@functools.lru_cache(maxsize=64)  # a feed writes one or two zones
def _zone(zone: str) -> timezone:
    offset = abs(int(zone))
    seconds = (offset // 100 * 3600 + offset % 100 * 60) * (-1 if zone[0] == "-" else 1)
    return timezone(timedelta(seconds=seconds))  # ValueError past a day


def _parse_time_general(raw: str, tz: tzinfo) -> datetime | None:
    if re.match(r"^\d{4}-\d", raw):
        return parse_iso(raw, tz)
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        try:
            stamp = find_stamp(raw, tz)
        except ParseError:
            return None
        return _weekday_decides(raw, stamp.when) if stamp else None
    if when.tzinfo is None:  # "-0000" and military letters (RFC 2822): UTC; no zone: tz
        when = when.replace(tzinfo=UTC if _UTC_UNKNOWN.search(raw) else tz)
    return in_utc_range(when)


_UTC_UNKNOWN = re.compile(r"(?:-0000|\s[A-IK-Za-ik-z])$")
_ENGLISH_WEEKDAY = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)", re.IGNORECASE)
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _weekday_decides(raw: str, when: datetime) -> datetime:
    """`Fri, 05/03/2019` (a US site's Drupal): day/month is how Turkish sites write it, but
    an English weekday that only the month/day reading matches decides."""
    m = _ENGLISH_WEEKDAY.match(raw)
    if m is None or when.day > 12:
        return when
    weekday = _WEEKDAYS.index(m.group(1).lower())
    if when.weekday() == weekday:
        return when
    swapped = when.replace(month=when.day, day=when.month)  # both are <= 12: always valid
    return swapped if swapped.weekday() == weekday else when


def _article(item: _Item, *, url: str, source: str, tz: tzinfo, now: datetime | None) -> Article:
    published, updated, warnings = _times(item, tz, now)
    page = absolute_url(url, item.link) if item.link else None
    link = clean_link(page) if page else None
    base = page or url
    content = sanitize_html(item.content_html, base) if item.content_html else ""
    summary = item.summary or (plain_text(content)[:500] if content else "")
    title = item.title or shorten(summary) or (title_from_url(link) if link else "")
    if not title:
        raise ParseError("entry has neither a title nor any text nor a link")
    seen = published is None
    if published is None:
        if now is None:
            raise ParseError("entry has no readable published/updated date")
        published = now
    updated = max(updated or published, published)
    image = absolute_url(base, item.image) if item.image else None
    guid = item.guid or link or _hash_key(title, None if seen else published)
    return Article(
        title=title, summary=summary if summary != title else "", content_html=content,
        authors=item.authors, categories=item.categories, language=item.language,
        link=link, guid=guid, image=image, published=published, updated=updated,
        source=source, origin=url, published_source="seen" if seen else "source",
        warnings=warnings,
    )  # fmt: skip


def _times(
    item: _Item, tz: tzinfo, now: datetime | None
) -> tuple[datetime | None, datetime | None, tuple[str, ...]]:
    """(published, updated, warnings): the believable dates of an entry, None where none.
    Our layouts, then feedparser's reading, then (slow, rare) other languages' names."""
    updated = parse_time(item.updated, tz) or _foreign(item.updated, tz, item.language)
    published = parse_time(item.published, tz) or updated or _fallback_time(item.fallback_time)
    published = published or _foreign(item.published, tz, item.language)
    warnings: list[str] = []
    if now is not None:
        limit = now + FUTURE_SLACK
        for label, value in (("published", published), ("updated", updated)):
            if value is not None and value > limit:
                warnings.append(f"{label} date {value.isoformat()} is in the future; not believed")
        published = published if published is not None and published <= limit else None
        updated = updated if updated is not None and updated <= limit else None
    return published or updated, updated, tuple(warnings)


def _foreign(raw: str | None, tz: tzinfo, language: str) -> datetime | None:
    return parse_foreign(raw, tz, language) if raw else None


def title_from_url(link: str) -> str:
    """What a reader shows for an untitled item: the link's last path segment made readable
    (`/2024/07/yeni-yasa-onay.html` -> `yeni yasa onay`), else host and path."""
    parts = urlsplit(link)
    segments = [unquote(p) for p in parts.path.split("/") if p]
    if segments:
        words = collapse(re.sub(r"[-_+]+", " ", re.sub(r"\.[A-Za-z0-9]{1,5}$", "", segments[-1])))
        if re.search(r"[^\W\d_]", words):
            return words
    return collapse(parts.netloc + unquote(parts.path).rstrip("/")) or link


def _hash_key(title: str, published: datetime | None) -> str:
    """Identity of an entry without guid or link; an undated one's is its title alone."""
    when = published.astimezone(UTC).isoformat() if published else ""
    raw = f"{fold(title)}\x1f{when}"
    return "sha1:" + hashlib.sha1(raw.encode("utf-8")).hexdigest()


def _split_shared_guids(articles: list[Article]) -> tuple[Article, ...]:
    """Drop a guid that the feed gives to different items, so they stay apart."""
    by_guid: dict[str, list[Article]] = {}
    for a in articles:
        if a.guid:
            by_guid.setdefault(a.guid, []).append(a)
    shared = {g for g, group in by_guid.items()  # a guid given once is not folded at all
              if len(group) > 1 and len({(a.link, fold(a.title)) for a in group}) > 1}  # fmt: skip
    return tuple(replace(a, guid=None) if a.guid in shared else a for a in articles)
