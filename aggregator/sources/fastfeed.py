"""A fast reader for well-formed RSS 2.0 and Atom 1.0 (lxml) in front of feedparser.

It returns what `feedparser.parse` returns for the parts `sources/feed.py` reads (entries'
id, link(s), title and summary with their types, content, authors, tags, enclosures, media
images and dates as strings and structs; the feed's language and ttl), as plain dicts
(FeedParserDict's item access maps keys onto others, slowly, and feed.py reads none of
the aliased keys), so dates,
sanitizing and ids stay one code path. It follows feedparser's own rules where they are
odd (a permalink guid is resolved against xml:base, an Atom id is a link when there is no
other, the first non-empty title wins, an RSS "text" that looks like HTML is HTML, a
second description is content) and returns None -- read it with feedparser -- for
anything it is not sure of: malformed XML, a DOCTYPE, RSS 0.9x/1.0, Atom 0.3, a declared
encoding other than UTF-8, XHTML or base64 content, elements feedparser gives a meaning
this reader does not reproduce, a prefix bound to another module's namespace.
Safety: lxml never expands entities or reads the network here.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar, cast

import feedparser.datetimes
import feedparser.html
import feedparser.mixin
import feedparser.urls
from feedparser.util import FeedParserDict
from lxml import etree  # type: ignore[import-untyped]

_F = TypeVar("_F", bound=Callable[..., Any])
MEMO_KEY_CHARS = 2_048  # longest arguments (summed) a memo keeps


def memo(size: int) -> Callable[[_F], _F]:
    """functools.lru_cache for short string arguments only: the few content types, bases
    and links a feed repeats. Longer ones (a feed decides their length) are worked out
    each time, so a memo holds at most `size` x MEMO_KEY_CHARS characters whatever the
    feeds held. For pure functions only: the answer is the same either way."""

    def wrap(fn: _F) -> _F:
        cached = functools.lru_cache(maxsize=size)(fn)

        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            if all(type(a) is str for a in args) and sum(map(len, args)) <= MEMO_KEY_CHARS:
                return cached(*args)
            return fn(*args)

        return cast(_F, call)

    return wrap


_MIXIN = feedparser.mixin._FeedParserMixin
_PREFIXES = {uri.lower(): prefix.lower() for uri, prefix in _MIXIN.namespaces.items()}
_STANDARD_PREFIXES = {p for p in _PREFIXES.values() if p}
_HANDLED = {n[7:].lower() for n in dir(_MIXIN) if n.startswith("_start_")} | {
    n[5:].lower() for n in dir(_MIXIN) if n.startswith("_end_")
}
_ATOM = "http://www.w3.org/2005/Atom"
_XML_NS = "{http://www.w3.org/XML/1998/namespace}"
_XML_BASE = _XML_NS + "base"
# namespaces that make feedparser call a document RSS 0.90/1.0
_OTHER_VERSIONS = {"http://purl.org/rss/1.0/", "http://my.netscape.com/rdf/simple/0.9/"}
_XMLNS = re.compile(rb"""xmlns(?::([\w.-]+))?\s*=\s*["']([^"']*)["']""")
_XML_DECL = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']*)["']""")
_C1_CONTROLS = re.compile("[\x80-\x9f]")
_LATIN1_HIGH = re.compile("[\x80-\xbf]")  # C1 controls and UTF-8's continuation bytes
_HTML_TYPES = {"text/html", "application/xhtml+xml"}
MAX_ENTRIES = 2_000  # more: feedparser's bounded reading decides
# more `<` than this (a 50-item feed has about 1,000): feedparser's streaming reader decides,
# so no tree of more than about this many elements is ever built (a few tens of MB at most)
MAX_MARKUP = 250_000

_TITLE = {"title", "dc_title", "media_title"}
_SUMMARY = {  # key -> default type
    "description": "text/html", "dc_description": "text/html",
    "media_description": "text/html", "summary": "text/plain", "itunes_summary": "text/plain",
}  # fmt: skip
_CONTENT = {"content_encoded": "text/html", "content": "text/plain"}
_AUTHOR = {"author", "dc_creator", "dc_author", "itunes_author", "managingeditor"}
_CATEGORY = {"category", "keywords", "dc_subject", "media_category"}
_KEYWORDS = {"media_keywords": None, "itunes_keywords": "http://www.itunes.com/", "tags": None}
_DATES = {
    "pubdate": "published", "published": "published", "issued": "published",
    "dcterms_issued": "published", "updated": "updated", "modified": "updated",
    "lastbuilddate": "updated", "dc_date": "updated", "dcterms_modified": "updated",
    "created": "created", "dcterms_created": "created",
}  # fmt: skip
# elements feedparser handles without touching anything feed.py reads
_HARMLESS = {
    "cloud", "copyright", "rights", "info", "feedburner_browserfriendly", "generator",
    "subtitle", "tagline", "itunes_subtitle", "itunes_block", "itunes_explicit",
    "itunes_image", "itunes_link", "expirationdate", "dcterms_valid", "newlocation",
    "width", "height", "url", "uri", "homepage", "name", "email", "language",
    "media_credit", "media_rating", "media_restriction", "media_license", "media_player",
    "webmaster", "dc_publisher", "dc_rights", "dc_language",
}  # fmt: skip
# keys feed.py reads: an element feedparser would store under one of them is not ours
_READ_KEYS = {
    "id", "link", "links", "title", "title_detail", "summary", "summary_detail", "content",
    "author", "authors", "author_detail", "tags", "published", "updated", "created",
    "published_parsed", "updated_parsed", "created_parsed", "media_content",
    "media_thumbnail", "guidislink", "language", "ttl",
}  # fmt: skip
_FEED_LEVEL = {"ttl", "language", "dc_language"}
_CONTAINERS = {"item", "entry", "channel", "feed", "rss", "source", "image", "textinput"}


class Unparsed(str):
    """A date's text whose `*_parsed` struct feedparser would give: `parsed()` makes it, so
    the feeds whose dates feed.py reads itself (nearly all) never pay for it."""

    def parsed(self) -> Any:
        return feedparser.datetimes._parse_date(str(self))


class _Unsure(Exception):
    """This document is feedparser's to read."""


_local = threading.local()
_switch = {"on": True}


@contextlib.contextmanager
def disabled() -> Iterator[None]:
    """Every document goes to feedparser meanwhile (the equivalence tests and bench/)."""
    was, _switch["on"] = _switch["on"], False
    try:
        yield
    finally:
        _switch["on"] = was


def _parser() -> etree.XMLParser:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
            remove_comments=True, remove_pis=True,
        )  # fmt: skip
        _local.parser = parser
    return parser


def parse(data: bytes, url: str) -> dict[str, Any] | None:
    """The feedparser result for a UTF-8 RSS 2.0 / Atom 1.0 document at `url`, or None
    when feedparser must read it."""
    if not _switch["on"] or os.environ.get("AGGREGATOR_FASTFEED") == "0":
        return None  # the environment's way out, should this reader ever be wrong
    if not url.startswith(("http://", "https://")):
        return None
    if len(data) > MAX_MARKUP and data.count(b"<") > MAX_MARKUP:  # (never more `<` than bytes)
        return None
    if data.count(b"<item") + data.count(b"<entry") > MAX_ENTRIES:
        return None
    if not _plain_document(data):
        return None
    try:
        root = etree.fromstring(data, _parser())
    except (etree.XMLSyntaxError, ValueError):
        return None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.xml_version != "1.0":
        return None
    try:
        # without these bytes no element's text holds U+0080..U+00BF (in UTF-8 each is
        # \xc2 and a second byte; a character reference starts with "&#")
        latin1_high = b"\xc2" in data or b"&#" in data
        return _read(root, url, bases=b"base" in data, latin1_high=latin1_high)
    except _Unsure:
        return None


def _plain_document(data: bytes) -> bool:
    """UTF-8 (or undeclared), no other RSS version's namespace, no prefix that feedparser
    would map onto another module's handlers."""
    decl = _XML_DECL.match(data)
    if decl and decl.group(1).lower() not in (b"utf-8", b"utf8"):
        return False
    for prefix, uri in _XMLNS.findall(data):
        given = prefix.decode("ascii", "replace").lower()
        low = uri.decode("utf-8", "replace").lower()
        known = _PREFIXES.get(low)
        if low in _OTHER_VERSIONS:
            return False
        if given and given in _STANDARD_PREFIXES and known is not None and known != given:
            return False
    return True


def _read(root: Any, url: str, *, bases: bool = True, latin1_high: bool = True) -> dict[str, Any]:
    """`bases`: False when no element can carry `xml:base` or `base` (the bytes "base" are
    nowhere in the document), so no entry element is asked for one. `latin1_high`: False
    when no text in the document holds U+0080..U+00BF, so entries' texts need no repair."""
    feed: dict[str, Any] = {}
    lang = _attr(root, "lang")
    if lang:
        feed["language"] = lang.replace("_", "-")
    base = _safe_base(url, _attr(root, "base") or url)
    if _key(root) == "rss":
        if not root.get("version", "").startswith("2."):
            raise _Unsure
        channels = list(root)
        if len(channels) != 1 or _key(channels[0]) != "channel":
            raise _Unsure
        channel, version, entry_key = channels[0], "rss20", "item"
        base = _base(channel, base)
    elif root.tag == f"{{{_ATOM}}}feed":
        channel, version, entry_key = root, "atom10", "entry"
    else:
        raise _Unsure
    entries: list[dict[str, Any]] = []
    for child in channel:
        key = _key(child)
        if key == entry_key:
            entries.append(_Entry(version, bases, latin1_high).read(child, base))
        else:
            _feed_element(child, key, feed, base)
    return dict(
        feed=feed, entries=entries, bozo=False, version=version, encoding="utf-8",
        namespaces={},
    )  # fmt: skip


def _feed_element(el: Any, key: str, feed: dict[str, Any], base: str) -> None:
    """Only the feed's language, ttl, title and link are kept; anything that could reach
    entries (content state, nested entries, odd places for the kept fields) is unsure."""
    for sub in el.iter():
        sub_key = _key(sub)
        if sub_key in _CONTAINERS - {"image", "textinput"} or sub_key in _CONTENT:
            raise _Unsure
        if sub is not el and sub_key in _FEED_LEVEL:
            raise _Unsure
    if key in _FEED_LEVEL:
        feed["language" if key == "dc_language" else key] = _text(_leaf(el))
    elif key == "title" and "title" not in feed:
        feed["title"] = _text(_leaf(el))
    elif key == "link" and "link" not in feed and el.get("rel", "alternate") == "alternate":
        href = el.get("href")
        feed["link"] = _text(_leaf(el) if href is None else href, uri=_base(el, base))


_ENTITY_NAME = re.compile("&([A-Za-z0-9_]+);")


class _Entry:
    """One entry, built the way feedparser's handlers build it."""

    def __init__(self, version: str, bases: bool = True, latin1_high: bool = True) -> None:
        self.rss = not version.startswith("atom")
        self.bases = bases
        self.repairs = latin1_high
        self.d: dict[str, Any] = {}
        self.depths: dict[str, int] = {}
        self.title_depth = -1
        self.has_content = False

    def read(self, el: Any, base: str) -> dict[str, Any]:
        names = el.keys()
        if any(name[0] == "{" and not name.startswith(_XML_NS) for name in names) or any(
            name.lower() in ("href", "lastmod") for name in names
        ):
            raise _Unsure  # rdf:about, href, lastmod: feedparser reads them as fields
        base = _base(el, base) if names else base
        for child in el:
            self.visit(child, 1, base)
        return self.d

    def visit(self, el: Any, depth: int, parent_base: str) -> None:
        key = _key(el)
        base = _base(el, parent_base) if self.bases else parent_base
        if key in _TITLE:
            self.title(el, key, depth, base)
        elif key in _SUMMARY:
            self.summary(el, key, depth, base)
        elif key in _CONTENT:
            self.content(el, _CONTENT[key], base)
        elif key in ("guid", "id"):
            self.guid(el, depth, base)
        elif key == "link":
            self.link(el, base)
        elif key == "enclosure":
            self.enclosure(el, depth, base)
        elif key in _AUTHOR:
            self.author(el, depth, base)
        elif key == "contributor":
            for sub in el:
                if _key(sub) not in ("name", "email", "uri") or len(sub):
                    raise _Unsure
        elif key in _CATEGORY:
            self.category(el, key)
        elif key in _DATES:
            name = _DATES[key]
            value = self.text(_leaf(el))
            self.store(name, value, depth)
            self.d[name + "_parsed"] = Unparsed(value)  # read only if feed.py needs it
        elif key in ("media_content", "media_group"):
            if key == "media_content":
                self.d.setdefault("media_content", []).append(_attrs(el))
            for child in el:
                self.visit(child, depth + 1, base)
        elif key == "media_thumbnail":
            thumbnail = _attrs(el)
            self.d.setdefault("media_thumbnail", []).append(thumbnail)
            text = _text(_leaf(el), uri=base)
            if text and "url" not in thumbnail:
                thumbnail["url"] = text
        elif key == "source":
            self.source(el, depth)
        elif key in _KEYWORDS:
            self.keywords(el, key, depth)
        elif key == "image" and not len(el):  # an item's picture, as some feeds give it
            self.title_depth = -1  # feedparser's image handler resets the first-title mark
        elif key in _HARMLESS:
            for sub in el.iter():
                if sub is not el and _key(sub) in _HANDLED:
                    raise _Unsure
        elif key in _HANDLED or key in _READ_KEYS:
            raise _Unsure
        else:  # feedparser keeps it under its own name; what is inside still counts
            for child in el:
                self.visit(child, depth + 1, base)

    def text(self, raw: str) -> str:
        """_text(raw): stripped, repaired only where a repair can apply."""
        return _text(raw) if self.repairs else raw.strip()

    def store(self, key: str, value: str, depth: int, detail: dict[str, Any] | None = None) -> None:
        """feedparser keeps a field's shallowest occurrence, the last of equals; its
        `_detail` always follows the latest."""
        old = self.depths.get(key)
        if old is None or depth <= old:
            self.depths[key] = depth
            self.d[key] = value
        if detail is not None:
            detail["value"] = value
            self.d[key + "_detail"] = detail

    def source(self, el: Any, depth: int) -> None:
        """What an entry's `<source>` holds is the source's, not the entry's; but it leaves
        feedparser's first-title mark where its own last title was."""
        self.title_depth = -1
        for sub in el.iter():
            key = _key(sub)
            if key in _CONTAINERS - {"source"} or key in _CONTENT or key in _SUMMARY:
                raise _Unsure
            if sub is not el and key in ("title", "dc_title") and _leaf(sub).strip():
                if sub.getparent() is not el:
                    raise _Unsure
                self.title_depth = depth + 1

    def pushed(self, el: Any, default_type: str, base: str) -> tuple[str, dict[str, Any]]:
        """An element read as text with a content type: (text, its parameters)."""
        if el.keys():
            kind = _content_type(_attr_lower(el, "type") or default_type)
            if el.get("mode") or not kind.startswith("text/") or el.get("src") is not None:
                raise _Unsure  # base64, XHTML or out-of-line content
        else:
            kind = _content_type(default_type)
            if not kind.startswith("text/"):
                raise _Unsure
        raw = _leaf(el).strip()
        # looks_like_html wants a close tag or an entity reference: "</" or "&" at least
        maybe_html = "</" in raw or "&" in raw
        if self.rss and kind == "text/plain" and maybe_html and _MIXIN.looks_like_html(raw):
            kind = "text/html"
        return self.text(raw), {"type": kind, "base": base}

    def title(self, el: Any, key: str, depth: int, base: str) -> None:
        value, detail = self.pushed(el, "text/plain", base)
        if not -1 < self.title_depth <= depth:
            self.store("title", value, depth, detail)
        if value and key != "media_title":
            self.title_depth = depth

    def summary(self, el: Any, key: str, depth: int, base: str) -> None:
        if "summary" in self.d and not self.has_content:
            self.content(el, "text/plain", base)  # feedparser: a second summary is content
            return
        value, detail = self.pushed(el, _SUMMARY[key], base)
        self.store("summary", value, depth, detail)

    def content(self, el: Any, default_type: str, base: str) -> None:
        self.has_content = True
        value, detail = self.pushed(el, default_type, base)
        detail["value"] = value
        self.d.setdefault("content", []).append(detail)
        if detail["type"] in _HTML_TYPES | {"text/plain"}:
            self.d.setdefault("summary", value)

    def guid(self, el: Any, depth: int, base: str) -> None:
        names = el.keys()
        is_link = not names or el.get("isPermaLink", el.get("ispermalink", "true")) == "true"
        if any(name.lower() != "ispermalink" for name in names):
            raise _Unsure
        value = _text(_leaf(el), uri=base if is_link else None)
        self.store("id", value, depth)
        self.d.setdefault("guidislink", is_link and "link" not in self.d)
        if is_link:
            self.d.setdefault("link", value)

    def link(self, el: Any, base: str) -> None:
        attrs = _attrs(el)
        attrs.setdefault("rel", "alternate")
        attrs.setdefault("type", "application/atom+xml" if attrs["rel"] == "self" else "text/html")
        _enforce_href(attrs)
        if len(el):
            raise _Unsure  # what a link holds, feedparser reads as the entry's
        links = self.d.setdefault("links", [])
        if "href" in attrs:
            attrs["href"] = _urljoin(base, attrs["href"])
            links.append(attrs)
            if (
                attrs["rel"] == "alternate"
                and _MIXIN.map_content_type(attrs["type"]) in _HTML_TYPES
            ):
                self.d["link"] = attrs["href"]
            return
        links.append(attrs)
        value = _text(_leaf(el), uri=base)
        if "&" in value:
            value = _ENTITY_NAME.sub(r"&\g<1>", value.replace("&amp;", "&"))
        self.d["link"] = value
        if value:
            links[-1]["href"] = value

    def enclosure(self, el: Any, depth: int, base: str) -> None:
        attrs = _enforce_href(_attrs(el))
        attrs["rel"] = "enclosure"
        self.d.setdefault("links", []).append(attrs)
        for child in el:
            self.visit(child, depth + 1, base)

    def author(self, el: Any, depth: int, base: str) -> None:
        authors = self.d.setdefault("authors", [])
        authors.append(FeedParserDict())
        if len(el) == 0:
            self.store("author", self.text(_leaf(el)), depth)
            self._sync_author_detail()
            return
        if (el.text or "").strip():
            raise _Unsure
        for sub in el:
            key = _key(sub)
            if key not in ("name", "email", "uri") or (sub.tail or "").strip():
                raise _Unsure
            raw = _leaf(sub).strip()
            if key == "uri":
                self.save_author("href", _text(raw, uri=_base(sub, base)))
            else:  # feedparser does not repair these: they are read as "no text expected"
                self.save_author(key, raw)
        self.store("author", "", depth)
        self._sync_author_detail()

    def save_author(self, key: str, value: str) -> None:
        _MIXIN._save_author(self, key, value)

    def _get_context(self) -> dict[str, Any]:  # for feedparser's own author and tag helpers
        return self.d

    def _sync_author_detail(self, key: str = "author") -> None:
        _MIXIN._sync_author_detail(self, key)

    def category(self, el: Any, key: str) -> None:
        attrs = _attrs(el)
        if key == "media_category":
            attrs.setdefault("scheme", "http://search.yahoo.com/mrss/category_schema")
        if attrs:
            self.add_tag(
                attrs.get("term"), attrs.get("scheme", attrs.get("domain")), attrs.get("label")
            )
        else:  # what _add_tag(None, None, None) does
            self.d.setdefault("tags", [])
        value = self.text(_leaf(el))
        if not value:
            return
        tags = self.d["tags"]
        if tags and not tags[-1]["term"]:
            tags[-1]["term"] = value
        else:
            self.add_tag(value, None, None)

    def keywords(self, el: Any, key: str, depth: int) -> None:
        """Comma-separated tags; feedparser keeps media:keywords' text as a field too."""
        if el.attrib and key != "tags":
            raise _Unsure  # feedparser would not collect its text, and then fail on it
        value = self.text(_leaf(el))
        if key == "media_keywords":
            self.store(key, value, depth)
        for term in value.split(","):
            if term.strip() or key == "tags":
                self.add_tag(term.strip(), _KEYWORDS[key], None)

    def add_tag(self, term: str | None, scheme: str | None, label: str | None) -> None:
        _MIXIN._add_tag(self, term, scheme, label)  # as bounded by feed.py, if it is


_KEYS: dict[str, str] = {}


def _key(el: Any) -> str:
    """feedparser's name for an element: its module's standard prefix, `_`, the local name."""
    tag = el.tag
    known = _KEYS.get(tag)
    if known is not None:
        return known
    if not isinstance(tag, str):
        raise _Unsure  # an entity reference left in place
    key = _key_of(tag, el.prefix)
    if tag[0] != "{" or tag[1:].split("}", 1)[0].lower() in _PREFIXES:
        if len(_KEYS) < 4096:
            _KEYS[tag] = key  # its namespace decides, not the prefix the document chose
    return key


def _key_of(tag: str, given: str | None) -> str:
    if tag[0] != "{":
        return tag.lower()
    uri, local = tag[1:].split("}", 1)
    low = uri.lower()
    if "backend.userland.com/rss" in low:
        return local.lower()
    prefix = _PREFIXES.get(low)
    if prefix is None:
        prefix = (given or "").lower()
        if not prefix:
            raise _Unsure  # an unknown default namespace
    return f"{prefix}_{local.lower()}" if prefix else local.lower()


def _leaf(el: Any) -> str:
    """The text of an element that feedparser reads as text: element children would be
    markup it rebuilds its own way."""
    if len(el):
        raise _Unsure
    return str(el.text or "")


def _text(raw: str, uri: str | None = None) -> str:
    """What feedparser makes of an element's text: stripped, resolved if it is a URI,
    UTF-8 read as Latin-1 repaired, C1 controls read as Windows-1252."""
    out = raw.strip()
    if uri is not None and out:
        out = _urljoin(uri, out)
    # nothing in U+0080..U+00BF: no UTF-8 sequence to repair (each needs a continuation
    # byte) and no C1 control, so _repaired would return it as it is
    if out.isascii() or not _LATIN1_HIGH.search(out):
        return out
    return _repaired(out)


def _repaired(out: str) -> str:
    try:
        out = out.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        pass
    if _C1_CONTROLS.search(out):
        out = out.translate(feedparser.html._cp1252)
    return out


_content_type = memo(64)(_MIXIN.map_content_type)


def _attr(el: Any, name: str) -> str | None:
    value = el.get(f"{_XML_NS}{name}", el.get(name))
    return str(value) if value else None


def _attr_lower(el: Any, name: str) -> str | None:
    value = el.get(name)
    return str(value).lower() if value is not None else None


def _attrs(el: Any) -> dict[str, str]:
    """An element's attributes as feedparser's handlers see them: names lowercased, `rel`
    and `type` values too."""
    out: dict[str, str] = {}
    for name, value in el.items():
        if name[0] == "{":
            if not name.startswith(_XML_NS):
                raise _Unsure  # feedparser would see it under two names
            name = "xml:" + name[len(_XML_NS) :]
        name = name.lower()
        out[name] = value.lower() if name in ("rel", "type") else value
    return out


def _enforce_href(attrs: dict[str, str]) -> dict[str, str]:
    href = attrs.get("url", attrs.get("uri", attrs.get("href")))
    if href:
        attrs.pop("url", None)
        attrs.pop("uri", None)
        attrs["href"] = href
    return attrs


def _base(el: Any, base: str) -> str:
    """The base URI inside `el`, as feedparser tracks it (only absolute, safe bases)."""
    given = el.get(_XML_BASE) or el.get("base")
    # feedparser re-joins the base with itself at every element: a no-op once it is joined
    return _safe_base(base, given) if given else base


@memo(1024)
def _safe_base(base: str, given: str) -> str:
    joined = feedparser.urls.make_safe_absolute_uri(base, given) or base
    if not joined.startswith(("http://", "https://")):
        raise _Unsure
    return str(joined)


# an absolute http(s) URL that feedparser's join returns unchanged (nothing to normalize)
_PLAIN_URL = re.compile(
    r"https?://[A-Za-z0-9][A-Za-z0-9.-]*(?::[0-9]+)?(?:/[^\s?#;]*)?(?:\?[^\s#]+)?(?:#\S+)?\Z"
)


# one relative path segment (a guid like `site3-7`): joined, it replaces the base's last
# segment, so the join is the base's join with any segment, cut, plus this one
_SEGMENT = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9._~-]*\Z")


def _urljoin(base: str, uri: str) -> str:
    if _PLAIN_URL.match(uri):
        return uri
    if _SEGMENT.match(uri) and (folder := _joined(base, "x")).endswith("x"):
        return folder[:-1] + uri
    return _joined(base, uri)


@memo(4096)
def _joined(base: str, uri: str) -> str:
    return str(feedparser.urls._urljoin(base, uri))
