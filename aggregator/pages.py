"""What people open in a browser: article pages, index.html, the browser view of a feed, and
opml.xml / opml-all.xml for readers.

Every text from an article is escaped; `content_html` was sanitized when it was read.
Article pages carry no script; the index has one tiny script for its copy buttons.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from itertools import groupby
from xml.etree import ElementTree

import nh3

from aggregator.model import Entry
from aggregator.normalize import path_slug, text_only
from aggregator.timeparse import printable, turkish_long

FORMATS = (
    ("atom.xml", "application/atom+xml", "Atom"),
    ("rss.xml", "application/rss+xml", "RSS"),
    ("feed.json", "application/feed+json", "JSON Feed"),
)
_esc = html.escape


@dataclass(frozen=True, kw_only=True)
class Site:
    title: str
    url: str  # ends with "/"
    language: str
    timezone: tzinfo


@dataclass(frozen=True, kw_only=True)
class Listed:
    """A published feed as the index and the OPML file list it."""

    folder: str
    title: str
    group: str
    count: int
    newest: datetime | None


def page_path(entry_id: str) -> str:
    """Relative path of the page for an article without a URL of its own."""
    return f"articles/{entry_id.rsplit(':', 1)[-1]}.html"


def entry_link(site: Site, entry: Entry) -> str:
    return entry.article.link or site.url + page_path(entry.id)


# the look of article pages, shared by the browser view of a feed (feed_view)
_PAGE_STYLE = """
:root { color-scheme: light dark; --ink: #1d1d1f; --soft: #5f5f66; --line: #e3ded3;
         --paper: #fffdf8; --accent: #a4161a; }
@media (prefers-color-scheme: dark) { :root { --ink: #ecebe8; --soft: #a8a8ad;
         --line: #3a3a3c; --paper: #18181a; --accent: #ff6b6b; } }
body { font: 19px/1.65 Georgia, "Noto Serif", "DejaVu Serif", serif; max-width: 40rem;
        margin: 0 auto; padding: 1.5rem 1.1rem 4rem; color: var(--ink);
        background: var(--paper); hyphens: auto; }
nav { font: 15px system-ui, sans-serif; margin-bottom: 2rem; }
nav a { color: var(--accent); text-decoration: none; font-weight: 600; }
.kicker { font: 600 13px system-ui, sans-serif; letter-spacing: .08em;
           text-transform: uppercase; color: var(--accent); margin: 0; }
h1 { font-size: 2rem; line-height: 1.22; margin: .3rem 0 .8rem; }
h2 { font: 700 1.05rem/1.4 system-ui, sans-serif; margin-top: 2.2rem; letter-spacing: .01em; }
.spot { font-size: 1.18rem; color: var(--soft); margin-top: 0; }
.meta { font: 14px/1.7 system-ui, sans-serif; color: var(--soft);
         border-top: 1px solid var(--line); border-bottom: 1px solid var(--line);
         padding: .6rem 0; margin: 1.2rem 0 1.8rem; }
.meta b { color: var(--ink); font-weight: 600; }
.meta span { display: inline-block; margin-right: 1.1rem; }
img { max-width: 100%; height: auto; }
blockquote { border-left: 3px solid var(--line); margin-left: 0; padding-left: 1rem; }
a { color: var(--accent); }
footer { font: 14px system-ui, sans-serif; color: var(--soft); margin-top: 3rem; }
"""

_ARTICLE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | {site}</title>
<link rel="alternate" type="application/atom+xml" title="{site} (Atom)" href="{root}atom.xml">
<link rel="alternate" type="application/rss+xml" title="{site} (RSS)" href="{root}rss.xml">
<style>{style}</style>
</head>
<body>
<nav><a href="{root}index.html">← {site}</a></nav>
<article>
{kicker}
<h1>{title}</h1>
{spot}
<div class="meta">{meta}</div>
{content}
</article>
{footer}
</body>
</html>
"""


def _when(value: datetime, tz: tzinfo, date_only: bool = False) -> str:
    text = f"{value.astimezone(tz):%d.%m.%Y}" if date_only else turkish_long(value, tz)
    return f'<time datetime="{printable(value).isoformat()}">{text}</time>'


def article_page(site: Site, entry: Entry) -> bytes:
    """A readable page for an article without a URL of its own (seed scrapes)."""
    a = entry.article
    meta = []
    if a.authors:
        meta.append(f"<span><b>Yazar:</b> {_esc(', '.join(a.authors))}</span>")
    if a.agency:
        meta.append(f"<span><b>Kaynak:</b> {_esc(a.agency)}</span>")
    meta.append(f"<span><b>Giriş:</b> {_when(a.published, site.timezone, a.date_only)}</span>")
    if a.updated > a.published:
        meta.append(f"<span><b>Güncelleme:</b> {_when(a.updated, site.timezone)}</span>")
    names = [c.lstrip("#") for c in a.categories if c.lstrip("#")]
    links = [
        f'<a href="{_esc(site.url)}categories/{path_slug(n)}/atom.xml">{_esc(n)}</a>'
        for n in dict.fromkeys(names)
    ]
    footer = f"<footer>Kategoriler: {', '.join(links)}</footer>" if links else ""
    text = _ARTICLE.format(
        lang=_esc(a.language or site.language),
        title=_esc(a.title),
        site=_esc(site.title),
        root=_esc(site.url),
        style=_PAGE_STYLE,
        kicker=f'<p class="kicker">{_esc(names[0])}</p>' if names else "",
        spot=f'<p class="spot">{_esc(a.summary)}</p>' if a.summary else "",
        meta="\n".join(meta),
        content=a.content_html,
        footer=footer,
    )
    return text.encode("utf-8")


_INDEX_STYLE = """
:root { color-scheme: light dark; --soft: #6e6e73; --line: #e5e5ea; --accent: #a4161a; }
body { font: 17px/1.55 system-ui, sans-serif; max-width: 52rem; margin: 0 auto;
       padding: 1.5rem 1rem 4rem; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; font-size: 1.2rem; }
.lead, .when { color: var(--soft); }
ul { list-style: none; padding: 0; }
li { border-top: 1px solid var(--line); padding: .7rem 0; }
.name { font-weight: 600; } .when { font-size: .9rem; }
.formats a { margin-right: .8rem; color: var(--accent); }
.headlines li { padding: .5rem 0; } .headlines a { font-weight: 600; color: inherit; }
.headlines .when { display: block; }
input { width: 60%; font: 13px ui-monospace, monospace; padding: .2rem; }
button { font: 13px system-ui, sans-serif; padding: .2rem .6rem; cursor: pointer; }
"""
_COPY_SCRIPT = """
document.querySelectorAll("button[data-url]").forEach(function (b) {
  b.addEventListener("click", function () {
    var done = function () { b.textContent = "Kopyalandı"; };
    if (navigator.clipboard) { navigator.clipboard.writeText(b.dataset.url).then(done); }
    else { b.previousElementSibling.select(); document.execCommand("copy"); done(); }
  });
});
"""


def _headlines(site: Site, entries: Sequence[Entry]) -> str:
    items = [
        f'<li><a href="{_esc(entry_link(site, e))}">{_esc(e.article.title)}</a> '
        f'<span class="when">{_when(e.article.published, site.timezone, e.article.date_only)}'
        "</span></li>"
        for e in entries
    ]
    if not items:
        return ""
    return '<h2>Son haberler</h2>\n<ol class="headlines">\n' + "\n".join(items) + "\n</ol>"


def index_page(site: Site, feeds: Sequence[Listed], total: int,
               headlines: Sequence[Entry] = ()) -> bytes:  # fmt: skip
    """The newest headlines (each linking to its article), then every feed with its item
    count and last update, autodiscovery links and copy buttons."""
    links = "\n".join(
        f'<link rel="alternate" type="{mime}" title="{_esc(f.title)} ({label})" '
        f'href="{_esc(site.url + f.folder + name)}">'
        for f in feeds for name, mime, label in FORMATS
    )  # fmt: skip
    sections = []
    for group, members in groupby(feeds, key=lambda f: f.group):
        items = []
        for f in members:
            when = turkish_long(f.newest, site.timezone) if f.newest else "henüz haber yok"
            url = site.url + f.folder + "atom.xml"
            formats = " ".join(
                f'<a href="{_esc(f.folder + name)}">{label}</a>' for name, _, label in FORMATS
            )
            items.append(
                f'<li><div class="name">{_esc(f.title)}</div>'
                f'<div class="when">{f.count} haber · son güncelleme: {_esc(when)}</div>'
                f'<div class="formats">{formats}</div>'
                f'<input readonly value="{_esc(url)}" aria-label="Akış adresi"> '
                f'<button type="button" data-url="{_esc(url)}">Adresi kopyala</button></li>'
            )
        sections.append(f"<h2>{_esc(group)}</h2>\n<ul>\n" + "\n".join(items) + "\n</ul>")
    newest = max((f.newest for f in feeds if f.newest), default=None)
    when = turkish_long(newest, site.timezone) if newest else "henüz yok"
    text = f"""<!DOCTYPE html>
<html lang="{_esc(site.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(site.title)}</title>
{links}
<style>{_INDEX_STYLE}</style>
</head>
<body>
<h1>{_esc(site.title)}</h1>
<p class="lead">{total} haber · son güncelleme: {_esc(when)}</p>
{_headlines(site, headlines)}
<h2>Akışlar</h2>
<p class="lead">Bir akışı okuyucunuza eklemek için adresini kopyalayın. Hepsine birden abone
olmak için okuyucunuza <a href="{OPML}">{OPML}</a> dosyasını aktarın: tüm haberler ve seçili
akışlar, her haber bir kez. <a href="{OPML_ALL}">{OPML_ALL}</a> kaynak ve kategori akışlarını da
listeler; onlar aynı haberleri taşıdığı için okuyucunuz bir haberi birkaç kez gösterebilir ya
da (newsboat gibi) birleşik akışı boş gösterebilir.</p>
{chr(10).join(sections)}
<script>{_COPY_SCRIPT}</script>
</body>
</html>
"""
    return text.encode("utf-8")


OPML, OPML_ALL = "opml.xml", "opml-all.xml"


def for_readers(feeds: Sequence[Listed]) -> list[Listed]:
    """The combined feed and the named feeds: what opml.xml lists. Source and category feeds
    carry the combined feed's entries with the same ids; readers that keep one item per id
    across feeds (newsboat) then show the combined feed empty, others show articles twice."""
    return [f for f in feeds if f.folder == "" or f.folder.startswith("feeds/")]


def opml(site: Site, feeds: Sequence[Listed]) -> bytes:
    """OPML 2.0 listing every feed (Atom), grouped, for a reader's "import subscriptions"."""

    def q(text: str) -> str:  # readers show these as text, some as HTML: no tag either way
        return _esc(text_only(text))

    body = []
    for group, members in groupby(feeds, key=lambda f: f.group):
        body.append(f'    <outline text="{q(group)}" title="{q(group)}">')
        for f in members:
            body.append(
                f'      <outline type="rss" text="{q(f.title)}" title="{q(f.title)}"'
                f' xmlUrl="{q(site.url + f.folder)}atom.xml" htmlUrl="{q(site.url)}"/>'
            )
        body.append("    </outline>")
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<opml version="2.0">\n  <head>\n'
        f"    <title>{q(site.title)}</title>\n  </head>\n  <body>\n"
        + "\n".join(body)
        + "\n  </body>\n</opml>\n"
    )
    return text.encode("utf-8")


_ATOM = "{http://www.w3.org/2005/Atom}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_VIEW_STYLE = """
.subscribe { font: 15px/1.5 system-ui, sans-serif; border: 1px solid var(--line);
             border-radius: 8px; padding: .8rem 1rem; margin: 0 0 1.5rem; }
.subscribe input { width: 100%; box-sizing: border-box; font: 14px ui-monospace, monospace;
                   padding: .3rem; margin-top: .4rem; }
ol.entries { list-style: none; padding: 0; }
ol.entries li { border-top: 1px solid var(--line); padding: 1rem 0; }
ol.entries .headline { font-size: 1.2rem; font-weight: 700; color: var(--ink);
                       text-decoration: none; }
ol.entries .when { font: 14px system-ui, sans-serif; color: var(--soft); margin: .2rem 0; }
ol.entries p { margin: .3rem 0 0; }
"""
VIEW_SUMMARY_CHARS = 400  # an entry without a spot shows this much of its text


@dataclass(frozen=True, kw_only=True)
class _Viewed:
    title: str
    link: str
    published: datetime | None
    byline: str
    summary: str


def _text(markup: str) -> str:
    """Plain text of an HTML fragment (script and style bodies dropped), shortened."""
    spaced = markup.replace("<", " <")  # paragraphs end in a tag: keep their words apart
    text = " ".join(html.unescape(nh3.clean(spaced, tags=set())).split())
    cut = text[:VIEW_SUMMARY_CHARS]
    return cut if cut == text else cut.rsplit(" ", 1)[0] + " …"


def _child(node: ElementTree.Element, tag: str) -> str:
    return (node.findtext(tag) or "").strip()


def _parse_atom(root: ElementTree.Element) -> tuple[str, str, str, list[_Viewed]]:
    def link(node: ElementTree.Element, rel: str) -> str:
        for el in node.findall(_ATOM + "link"):
            if el.get("rel", "alternate") == rel:
                return el.get("href", "")
        return ""

    items = []
    for e in root.findall(_ATOM + "entry"):
        when = _child(e, _ATOM + "published") or _child(e, _ATOM + "updated")
        names = [_child(a, _ATOM + "name") for a in e.findall(_ATOM + "author")]
        summary = _child(e, _ATOM + "summary") or _text(_child(e, _ATOM + "content"))
        items.append(_Viewed(title=_child(e, _ATOM + "title"), link=link(e, "alternate"),
                             published=_iso(when), byline=", ".join(n for n in names if n),
                             summary=summary))  # fmt: skip
    title = _child(root, _ATOM + "title")
    return title, link(root, "self"), link(root, "alternate"), items


def _parse_rss(root: ElementTree.Element) -> tuple[str, str, str, list[_Viewed]]:
    channel = root.find("channel")
    if channel is None:
        return "", "", "", []
    items = []
    for i in channel.findall("item"):
        creators = [(c.text or "").strip() for c in i.findall(_DC + "creator")]
        items.append(_Viewed(title=_child(i, "title"), link=_child(i, "link"),
                             published=_rfc822(_child(i, "pubDate")),
                             byline=", ".join(c for c in creators if c),
                             summary=_text(_child(i, "description"))))  # fmt: skip
    self_url = next((el.get("href", "") for el in channel.findall(_ATOM + "link")
                     if el.get("rel") == "self"), "")  # fmt: skip
    return _child(channel, "title"), self_url, _child(channel, "link"), items


def _web(url: str) -> str:
    """Only http(s) addresses become links (never `javascript:` and the like)."""
    return url if url.lower().startswith(("http://", "https://")) else ""


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _rfc822(text: str) -> datetime | None:
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def feed_view(data: bytes, tz: tzinfo | None = None) -> bytes:
    """The HTML page a browser gets for one of our Atom or RSS feeds (served instead of
    XSLT, which browsers are dropping): the article page's look, Turkish dates (in `tz`, else
    the feed's own offsets), newest first, and the feed's address to subscribe. No script."""
    root = ElementTree.fromstring(data)
    kind, parse = ("Atom", _parse_atom) if root.tag == _ATOM + "feed" else ("RSS", _parse_rss)
    title, self_url, home, items = parse(root)
    oldest = datetime.min.replace(tzinfo=UTC)
    items.sort(key=lambda v: v.published or oldest, reverse=True)
    rows = []
    for v in items:
        when = _when(v.published, tz or v.published.tzinfo or UTC) if v.published else ""
        meta = " · ".join(x for x in (when, _esc(v.byline)) if x)
        rows.append(
            f'<li><a class="headline" href="{_esc(_web(v.link))}">{_esc(v.title)}</a>'
            f'<div class="when">{meta}</div>' + (f"<p>{_esc(v.summary)}</p>" if v.summary else "")
            + "</li>"
        )  # fmt: skip
    listing = ('<ol class="entries">\n' + "\n".join(rows) + "\n</ol>" if rows
               else "<p>Bu akışta henüz haber yok.</p>")  # fmt: skip
    mime = "application/atom+xml" if kind == "Atom" else "application/rss+xml"
    text = f"""<!DOCTYPE html>
<html lang="tr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)} (akış)</title>
<link rel="alternate" type="{mime}" title="{_esc(title)}" href="{_esc(self_url)}">
<style>{_PAGE_STYLE}{_VIEW_STYLE}</style>
</head>
<body>
<nav><a href="{_esc(_web(home) or "./")}">← Tüm akışlar</a></nav>
<h1>{_esc(title)}</h1>
<div class="subscribe">Bu sayfa bir haber akışıdır ({kind}). Haberleri takip etmek için bu
adresi akış okuyucunuza ekleyin:
<input readonly value="{_esc(self_url)}" aria-label="Akış adresi"></div>
{listing}
</body>
</html>
"""
    return text.encode("utf-8")
