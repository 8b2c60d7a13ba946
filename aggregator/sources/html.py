"""HTML listing pages -> article links; article pages -> Articles. Pure (BeautifulSoup + lxml).

Each field is taken from the first place that has it, most explicit first:
configured selector, JSON-LD NewsArticle/Article, OpenGraph/meta, <time datetime>, the
visible text read by the seed-file parser (KAYNAK/GİRİŞ/GÜNCELLEME blocks,
`Giriş Tarihi:`, `1 Ocak 2026 Perşembe 19:18`...), so a page and its scrape agree, then
the visible date labels and datelines and trafilatura's reading (sources/extract.py),
and last a date in the URL path. Bylines pass extract.credited (agencies are the source).
The link (and identity) is the page's <link rel=canonical> or og:url, else its own URL.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any
from urllib.parse import urlsplit

from bs4 import BeautifulSoup, CData, Tag
from bs4.element import NavigableString, PageElement
from soupsieve import SelectorSyntaxError

from aggregator.dedupe import site_host
from aggregator.errors import ParseError
from aggregator.model import Article
from aggregator.normalize import (
    absolute_url,
    canonical_url,
    clean_link,
    collapse,
    fold,
    plain_text,
    sanitize_html,
    shorten,
)
from aggregator.sources.extract import (
    credited,
    dateline_agency,
    day_start,
    is_url,
    labelled_times,
    main_content,
    url_day,
)
from aggregator.sources.feed import parse_time
from aggregator.sources.http import decode_body, on_site, without_userinfo
from aggregator.sources.seedfile import parse_seed

DEFAULT_LINKS = (
    "article a[href], h1 a[href], h2 a[href], h3 a[href], h4 a[href], "
    "[class*=news] a[href], [class*=haber] a[href]"
)
_ARTICLE_TYPES = ("Article", "NewsArticle", "ReportageNewsArticle", "AnalysisNewsArticle",
                  "BlogPosting", "Report", "OpinionNewsArticle")  # fmt: skip
_BLOCKS = ("p", "div", "section", "article", "header", "footer", "main", "aside", "nav",
           "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "br", "tr", "table",
           "blockquote", "figure", "figcaption", "pre", "hr", "dd", "dt", "form")  # fmt: skip
_INVISIBLE = ("script", "style", "noscript", "template", "svg", "iframe", "head", "object")
_AUTHOR_META = ("article:author", "author", "parsely-author", "sailthru.author", "dc.creator")
_CDATA = re.compile(r"^\s*(?://\s*)?<!\[CDATA\[|(?://\s*)?\]\]>\s*$")  # XHTML-era wrapping
_SLUG = re.compile(r"/[^/?#]*[a-z0-9]+-[a-z0-9]+-[^/?#]*", re.IGNORECASE)


@dataclass(slots=True)
class _Fields:
    """What the page says so far; the first source to fill a field wins."""

    title: str = ""
    summary: str = ""
    content_html: str = ""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    published: datetime | None = None
    updated: datetime | None = None
    image: str | None = None
    agency: str = ""

    def fill(self, **values: Any) -> None:
        for key, value in values.items():
            if value and not getattr(self, key):
                setattr(self, key, value)


def _soup(data: bytes, content_type: str) -> BeautifulSoup:
    text = decode_body(data, content_type)
    if "\x00" in text[:8192]:
        raise ParseError("binary data, not an HTML page")
    return BeautifulSoup(text, "lxml")


def _select(soup: BeautifulSoup | Tag, selector: str) -> list[Tag]:
    try:
        return list(soup.select(selector))
    except (SelectorSyntaxError, ValueError) as e:
        raise ParseError(f"invalid CSS selector {selector!r}: {e}") from None


def article_links(
    data: bytes, *, url: str, content_type: str = "", selector: str | None = None,
    limit: int = 20, allow_hosts: Sequence[str] = (),
) -> tuple[str, ...]:  # fmt: skip
    """The article URLs a listing page links to, in page order, at most `limit`: only on the
    listing's host (and port) or one of `allow_hosts`, never with `user:pass@`."""
    soup = _soup(data, content_type)
    base = _base(soup, url)
    found = _links(_select(soup, selector or DEFAULT_LINKS), base, url, allow_hosts)
    if not found and selector is None:
        slugs = [a for a in soup.find_all("a", href=True) if isinstance(a, Tag)]
        found = [link for link in _links(slugs, base, url, allow_hosts)
                 if _SLUG.search(urlsplit(link).path)]  # fmt: skip
    return tuple(found[:limit])


def _links(anchors: list[Tag], base: str, page: str, allow_hosts: Sequence[str]) -> list[str]:
    seen = {canonical_url(page)}
    links: list[str] = []
    for a in anchors:
        href = a.get("href")
        link = absolute_url(base, href) if isinstance(href, str) else None
        if not link or not on_site(link, page, allow_hosts):
            continue
        link = without_userinfo(link.split("#", 1)[0])
        if (key := canonical_url(link)) not in seen:
            seen.add(key)
            links.append(link)
    return links


def _base(soup: BeautifulSoup, url: str) -> str:
    tag = soup.find("base", href=True)
    href = tag.get("href") if isinstance(tag, Tag) else None
    return (absolute_url(url, href) if isinstance(href, str) else None) or url


def _text(value: str) -> str:
    return plain_text(value) if "<" in value else value


def parse_page(
    data: bytes, *, url: str, content_type: str = "", source: str, tz: tzinfo,
    language: str = "tr", selectors: tuple[tuple[str, str], ...] = (),
    seen: datetime | None = None,
) -> Article:  # fmt: skip
    """One article page -> one Article. Raises ParseError with a reason a user can act on.
    A page with no date anywhere is dated `seen` (the run's time, which the pipeline turns
    into the time the page was first seen) with `published_source="seen"`; without `seen`
    it is rejected."""
    soup = _soup(data, content_type)
    base = _base(soup, url)
    metas = _metas(soup)
    link = _canonical(soup, metas, base) or url
    if site_host(link) != site_host(url):  # a canonical naming another site: not believed
        link = url
    f = _Fields()
    _from_selectors(f, soup, dict(selectors), base, tz)
    node = _jsonld(soup)
    if node is not None:
        _from_jsonld(f, node, base, tz)
    _from_meta(f, soup, metas, base, tz)
    main = main_content(decode_body(data, content_type), url=base)
    f.fill(title=main.title)
    f.fill(title=_headline(soup))
    lang = _attr(soup.find("html"), "lang") or language
    seed_error = ""
    lines: list[str] = []  # the visible text, read when the markup left something out
    turkish = lang.lower().startswith("tr")
    if f.published is None or not f.content_html or not f.title or not f.authors or turkish:
        visible = _visible_text(soup)
        lines = visible.split("\n")
        try:
            seed = parse_seed(visible.encode("utf-8"), origin=url, source=source, tz=tz,
                              language=lang)  # fmt: skip
        except ParseError as e:
            seed_error = str(e)
        else:
            f.fill(title=seed.title, summary=seed.summary, content_html=seed.content_html,
                   authors=seed.authors, categories=seed.categories, agency=seed.agency,
                   published=seed.published, updated=seed.updated)  # fmt: skip
    # a page laid out like a scrape reads like one (so the two agree); others: trafilatura
    f.fill(content_html=main.content_html, authors=main.authors)
    date_only = False
    if f.published is None:
        shown, revised = labelled_times(lines, tz)
        if stamp := shown or revised:
            f.published, date_only = stamp.when, not stamp.has_time
            f.fill(updated=revised.when if revised else None)
    if f.published is None:
        f.published = day_start(main.day, tz) if main.day else url_day(link, tz)
        date_only = f.published is not None
    if not f.content_html and isinstance(article := soup.find("article"), Tag):
        f.content_html = sanitize_html(article.decode_contents(), base)
    published_source = "source"
    if f.published is None and seen is not None:
        f.published, published_source = seen, "seen"
    if f.published is None:
        raise ParseError(f"no publication date on the page ({seed_error or 'none found'})")
    # titles, spots and bylines are text: RSS readers take a title as HTML, so markup from
    # og:title or JSON-LD (unescaped by then) is stripped, not republished
    f.title, f.summary = _text(f.title), _text(f.summary)
    authors, agency = credited(tuple(_text(a) for a in f.authors))
    agency = f.agency or agency or dateline_agency(lines)
    if agency or turkish:
        # a site relaying an agency's story, or a Turkish desk's unsigned copy, names the
        # site itself as the author: that is the publisher, not a byline
        sites = {fold(_meta(metas, "og:site_name")),
                 fold(_first(node.get("publisher"))) if node else ""} - {""}  # fmt: skip
        authors = tuple(a for a in authors if fold(a) not in sites)
    title = f.title or shorten(f.summary)
    if not title:
        raise ParseError("no title on the page")
    updated = max(f.updated or f.published, f.published)
    return Article(
        title=title, summary=f.summary if f.summary != title else "",
        content_html=f.content_html, authors=authors, agency=agency,
        categories=f.categories, language=lang.split("-")[0].lower() or language,
        link=clean_link(link), image=f.image, published=f.published, updated=updated,
        source=source, origin=url, date_only=date_only, published_source=published_source,
    )  # fmt: skip


def page_body(
    data: bytes, *, url: str, content_type: str = "",
    selectors: tuple[tuple[str, str], ...] = (),
) -> str:  # fmt: skip
    """Only the article body of a page (sanitized; "" when none is found), chosen as
    parse_page chooses it: for feeds that carry just a summary."""
    soup = _soup(data, content_type)
    base = _base(soup, url)
    f = _Fields()
    _from_selectors(f, soup, dict(selectors), base, UTC)
    node = _jsonld(soup)
    if node is not None:
        _from_jsonld(f, node, base, UTC)
    _from_meta(f, soup, _metas(soup), base, UTC)
    f.fill(content_html=main_content(decode_body(data, content_type), url=base).content_html)
    return f.content_html


def _attr(tag: object, name: str) -> str:
    value = tag.get(name) if isinstance(tag, Tag) else None
    return collapse(value) if isinstance(value, str) else ""


def _canonical(soup: BeautifulSoup, metas: Mapping[str, str], base: str) -> str | None:
    for tag in soup.find_all("link", href=True):
        rel = tag.get("rel") if isinstance(tag, Tag) else None
        if rel and "canonical" in [str(r).lower() for r in rel]:
            found = absolute_url(base, _attr(tag, "href"))
            if found:
                return found
    og = _meta(metas, "og:url")
    return absolute_url(base, og) if og else None


def _metas(soup: BeautifulSoup) -> dict[str, str]:
    """<meta property|name|itemprop=... content=...>: the first non-empty one per name,
    gathered in one pass (a search per name walked the whole page a dozen times)."""
    found: dict[str, str] = {}
    for tag in soup.find_all("meta", attrs={"content": True}):
        content = _attr(tag, "content")
        for key in ("property", "name", "itemprop"):
            if content and (name := _attr(tag, key)):
                found.setdefault(name, content)
    return found


def _meta(metas: Mapping[str, str], *names: str) -> str:
    for name in names:
        if value := metas.get(name):
            return html.unescape(value)
    return ""


def _from_selectors(f: _Fields, soup: BeautifulSoup, sel: Mapping[str, str], base: str,
                    tz: tzinfo) -> None:  # fmt: skip
    def first(field: str) -> Tag | None:
        found = _select(soup, sel[field]) if field in sel else []
        return found[0] if found else None

    def text(field: str) -> str:
        tag = first(field)
        return collapse(tag.get_text(" ")) if tag else ""

    def when(field: str) -> datetime | None:
        tag = first(field)
        if tag is None:
            return None
        raw = _attr(tag, "datetime") or _attr(tag, "content") or collapse(tag.get_text(" "))
        return parse_time(raw, tz)

    content = first("content")
    author = text("author")
    f.fill(
        title=text("title"), summary=text("summary"),
        authors=(author,) if author else (),
        published=when("published"), updated=when("updated"),
        content_html=sanitize_html(content.decode_contents(), base) if content else "",
    )  # fmt: skip


def _walk(doc: object, depth: int = 0) -> Iterator[dict[str, Any]]:
    if depth > 5:
        return
    if isinstance(doc, list):
        for item in doc:
            yield from _walk(item, depth + 1)
    elif isinstance(doc, dict):
        yield doc
        yield from _walk(doc.get("@graph"), depth + 1)


def _jsonld(soup: BeautifulSoup) -> dict[str, Any] | None:
    for script in soup.find_all("script", attrs={"type": re.compile(r"ld\+json", re.I)}):
        try:
            doc = json.loads(_CDATA.sub("", script.get_text()) or "null", strict=False)
        except (ValueError, RecursionError):
            continue
        for node in _walk(doc):
            kinds = node.get("@type")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if any(isinstance(k, str) and k in _ARTICLE_TYPES for k in kinds):
                return node
    return None


def _texts(value: object) -> tuple[str, ...]:
    """A JSON-LD person/thing/list/string -> its names or values as text."""
    items = value if isinstance(value, list) else [value]
    out: list[str] = []
    for item in items:
        if isinstance(item, dict):
            item = item.get("name") or item.get("url")
        if isinstance(item, str | int | float) and not isinstance(item, bool):
            out.append(collapse(html.unescape(str(item))))
    return tuple(dict.fromkeys(t for t in out if t))


def _names(value: object) -> tuple[str, ...]:
    """A JSON-LD author (person, organization, list, string) -> names; a profile URL
    is not a name."""
    items = value if isinstance(value, list) else [value]
    names = (item.get("name") if isinstance(item, dict) else item for item in items)
    return _texts([n for n in names if isinstance(n, str) and not is_url(n)])


def _first(value: object) -> str:
    found = _texts(value)
    return found[0] if found else ""


def _from_jsonld(f: _Fields, node: dict[str, Any], base: str, tz: tzinfo) -> None:
    raw_body = node.get("articleBody")
    body = html.unescape(raw_body) if isinstance(raw_body, str) else ""
    keywords = node.get("keywords")
    if isinstance(keywords, str):
        keywords = keywords.split(",")
    image = _first(node.get("image"))
    f.fill(
        title=_first(node.get("headline") or node.get("name")),
        summary=_first(node.get("description")),
        authors=_names(node.get("author")),
        categories=_texts(node.get("articleSection")) + _texts(keywords),
        published=parse_time(_first(node.get("datePublished")), tz),
        updated=parse_time(_first(node.get("dateModified")), tz),
        image=absolute_url(base, image) if image else None,
        content_html=sanitize_html(body, base) if "<" in body else _paragraphs(body),
    )  # fmt: skip


def _paragraphs(text: str) -> str:
    parts = (collapse(p) for p in re.split(r"\n+", text))
    return "".join(f"<p>{html.escape(p, quote=False)}</p>" for p in parts if p)


def _from_meta(f: _Fields, soup: BeautifulSoup, metas: Mapping[str, str], base: str,
               tz: tzinfo) -> None:  # fmt: skip
    times = [t for t in soup.find_all("time") if _attr(t, "datetime")]
    modified = [t for t in times if "modified" in _attr(t, "itemprop").lower()]
    image = _meta(metas, "og:image", "twitter:image")
    body = soup.select_one("[itemprop=articleBody]")
    section = _meta(metas, "article:section")
    f.fill(
        title=_meta(metas, "og:title", "twitter:title"),
        summary=_meta(metas, "og:description", "description", "twitter:description"),
        authors=tuple(a for a in (_meta(metas, name) for name in _AUTHOR_META)
                      if a and not is_url(a))[:1],
        categories=(section,) if section else (),
        published=parse_time(_meta(metas, "article:published_time", "datePublished"), tz)
        or (parse_time(_attr(times[0], "datetime"), tz) if times else None),
        updated=parse_time(_meta(metas, "article:modified_time", "og:updated_time",
                                 "dateModified"), tz)  # fmt: skip
        or (parse_time(_attr(modified[0], "datetime"), tz) if modified else None),
        image=absolute_url(base, image) if image else None,
        content_html=sanitize_html(body.decode_contents(), base) if isinstance(body, Tag) else "",
    )  # fmt: skip


def _headline(soup: BeautifulSoup) -> str:
    for name in ("h1", "title"):
        if isinstance(tag := soup.find(name), Tag) and (text := collapse(tag.get_text(" "))):
            return text
    return ""


def _visible_text(soup: BeautifulSoup) -> str:
    """The page as a scrape would see it: one line per block element. One pass over the
    tree without changing it (inserting a newline per block made deep nesting quadratic:
    100,000 nested <div>s took minutes)."""
    root = soup.find("main") or soup.find("body") or soup
    assert isinstance(root, Tag)
    parts: list[str] = []
    stack: list[PageElement | None] = [root]  # None: the end of a block element
    while stack:
        node = stack.pop()
        if node is None:
            parts.append("\n")
        elif isinstance(node, Tag):
            if node.name in _INVISIBLE:
                continue
            if node.name in _BLOCKS:
                parts.append("\n")
                stack.append(None)
            stack.extend(reversed(node.contents))
        elif type(node) in (NavigableString, CData):
            parts.append(str(node))
    lines = (collapse(line) for line in " ".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)
