"""What people open in a browser: article pages, index.html, and opml.xml for readers.

Every text from an article is escaped; `content_html` was sanitized when it was read.
Article pages carry no script; the index has one tiny script for its copy buttons.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from itertools import groupby

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


_ARTICLE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} | {site}</title>
<link rel="alternate" type="application/atom+xml" title="{site} (Atom)" href="{root}atom.xml">
<link rel="alternate" type="application/rss+xml" title="{site} (RSS)" href="{root}rss.xml">
<style>
:root {{ color-scheme: light dark; --ink: #1d1d1f; --soft: #5f5f66; --line: #e3ded3;
         --paper: #fffdf8; --accent: #a4161a; }}
@media (prefers-color-scheme: dark) {{ :root {{ --ink: #ecebe8; --soft: #a8a8ad;
         --line: #3a3a3c; --paper: #18181a; --accent: #ff6b6b; }} }}
body {{ font: 19px/1.65 Georgia, "Noto Serif", "DejaVu Serif", serif; max-width: 40rem;
        margin: 0 auto; padding: 1.5rem 1.1rem 4rem; color: var(--ink);
        background: var(--paper); hyphens: auto; }}
nav {{ font: 15px system-ui, sans-serif; margin-bottom: 2rem; }}
nav a {{ color: var(--accent); text-decoration: none; font-weight: 600; }}
.kicker {{ font: 600 13px system-ui, sans-serif; letter-spacing: .08em;
           text-transform: uppercase; color: var(--accent); margin: 0; }}
h1 {{ font-size: 2rem; line-height: 1.22; margin: .3rem 0 .8rem; }}
h2 {{ font: 700 1.05rem/1.4 system-ui, sans-serif; margin-top: 2.2rem; letter-spacing: .01em; }}
.spot {{ font-size: 1.18rem; color: var(--soft); margin-top: 0; }}
.meta {{ font: 14px/1.7 system-ui, sans-serif; color: var(--soft);
         border-top: 1px solid var(--line); border-bottom: 1px solid var(--line);
         padding: .6rem 0; margin: 1.2rem 0 1.8rem; }}
.meta b {{ color: var(--ink); font-weight: 600; }}
.meta span {{ display: inline-block; margin-right: 1.1rem; }}
img {{ max-width: 100%; height: auto; }}
blockquote {{ border-left: 3px solid var(--line); margin-left: 0; padding-left: 1rem; }}
a {{ color: var(--accent); }}
footer {{ font: 14px system-ui, sans-serif; color: var(--soft); margin-top: 3rem; }}
</style>
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


def index_page(site: Site, feeds: Sequence[Listed], total: int) -> bytes:
    """Every feed with its item count and last update, autodiscovery links and copy buttons."""
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
<p class="lead">{total} haber · son güncelleme: {_esc(when)} ·
<a href="opml.xml">tüm akışlar (OPML)</a></p>
<p class="lead">Bir akışı okuyucunuza eklemek için adresini kopyalayın.</p>
{chr(10).join(sections)}
<script>{_COPY_SCRIPT}</script>
</body>
</html>
"""
    return text.encode("utf-8")


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
