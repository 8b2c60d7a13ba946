"""Entries -> files: Atom 1.0, RSS 2.0, article pages and index.html. The only feedgen user.

Every file is written atomically (temporary file in the same folder, fsync, rename) and only
when its bytes change, so HTTP ETag/Last-Modified stay stable and readers never see half a file.
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from feedgen.feed import FeedGenerator

from aggregator import __version__
from aggregator.errors import PublishError
from aggregator.store import Entry
from aggregator.timeparse import turkish_long

EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)
GENERATOR = "haber-aggregator"


@dataclass(frozen=True, kw_only=True)
class Site:
    title: str
    url: str  # ends with "/"
    language: str
    timezone: tzinfo


def page_path(entry_id: str) -> str:
    """Relative path of the page for an article without a URL of its own."""
    return f"articles/{entry_id.rsplit(':', 1)[-1]}.html"


def entry_link(site: Site, entry: Entry) -> str:
    return entry.article.link or site.url + page_path(entry.id)


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace `path` with `data` unless it already holds exactly that. True if written."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except OSError as e:
        raise PublishError(f"{path}: cannot read: {e.strerror or e}") from e
    tmp_name = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
        tmp_name = None
    except OSError as e:
        raise PublishError(f"{path}: cannot write: {e.strerror or e}") from e
    finally:
        if tmp_name:
            try:
                os.unlink(tmp_name)
            except OSError:
                pass
    return True


def _generator(site: Site, entries: Sequence[Entry], feed_name: str) -> FeedGenerator:
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.id(site.url)
    fg.title(site.title)
    fg.subtitle(f"{site.title}: Türkçe haberler")
    fg.link(href=site.url + feed_name, rel="self")
    fg.link(href=site.url, rel="alternate", type="text/html")  # last: RSS <link> takes it
    fg.language(site.language)
    fg.generator(GENERATOR, version=__version__)
    newest = max((e.article.updated for e in entries), default=EMPTY_FEED_UPDATED)
    fg.updated(newest)
    fg.lastBuildDate(newest)
    for entry in entries:
        a = entry.article
        fe = fg.add_entry(order="append")
        fe.id(entry.id)
        fe.guid(entry.id, permalink=False)
        fe.title(a.title)
        fe.link(href=entry_link(site, entry), rel="alternate", type="text/html")
        fe.published(a.published)
        fe.updated(max(a.updated, a.published))
        if a.authors:
            fe.author([{"name": name} for name in a.authors])
            fe.dc.dc_creator(list(a.authors))
        elif a.agency:
            fe.author({"name": a.agency})
            fe.dc.dc_creator(a.agency)
        for term in a.categories:
            fe.category(term=term)
        if a.summary:
            fe.summary(a.summary)  # also RSS <description>
        fe.content(_content(a.summary, a.content_html), type="html")
    return fg


def _content(summary: str, content_html: str) -> str:
    return content_html or f"<p>{html.escape(summary, quote=False)}</p>"


def atom_bytes(site: Site, entries: Sequence[Entry], name: str = "atom.xml") -> bytes:
    data: bytes = _generator(site, entries, name).atom_str(pretty=True)
    return data


def rss_bytes(site: Site, entries: Sequence[Entry], name: str = "rss.xml") -> bytes:
    data: bytes = _generator(site, entries, name).rss_str(pretty=True)
    return data


_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="alternate" type="application/atom+xml" title="{site} (Atom)" href="{root}atom.xml">
<link rel="alternate" type="application/rss+xml" title="{site} (RSS)" href="{root}rss.xml">
<style>
body {{ font: 18px/1.6 Georgia, "Noto Serif", serif; max-width: 42rem; margin: 2rem auto;
        padding: 0 1rem; color: #1d1d1f; background: #fffdf8; }}
h1 {{ font-size: 1.9rem; line-height: 1.25; margin-bottom: .3rem; }}
h2 {{ font-size: 1.15rem; margin-top: 2rem; letter-spacing: .02em; }}
.spot {{ font-size: 1.15rem; color: #3a3a3c; }}
.meta {{ font: 14px/1.5 system-ui, sans-serif; color: #6e6e73; border-top: 1px solid #ddd;
         border-bottom: 1px solid #ddd; padding: .5rem 0; margin: 1rem 0 1.5rem; }}
nav {{ font: 14px system-ui, sans-serif; }}
</style>
</head>
<body>
<nav><a href="{root}index.html">{site}</a></nav>
<article>
<h1>{title}</h1>
{spot}
<div class="meta">{meta}</div>
{content}
</article>
</body>
</html>
"""


def article_page(site: Site, entry: Entry) -> bytes:
    a = entry.article
    esc = html.escape
    meta = []
    if a.authors:
        meta.append(f"Yazar: {esc(', '.join(a.authors))}")
    if a.agency:
        meta.append(f"Kaynak: {esc(a.agency)}")
    stamp = (
        f"{a.published.astimezone(site.timezone):%d.%m.%Y}" if a.date_only
        else turkish_long(a.published, site.timezone)
    )  # fmt: skip
    meta.append(f'Giriş: <time datetime="{a.published.isoformat()}">{stamp}</time>')
    if a.updated > a.published:
        meta.append(
            f'Güncelleme: <time datetime="{a.updated.isoformat()}">'
            f"{turkish_long(a.updated, site.timezone)}</time>"
        )
    if a.categories:
        meta.append(f"Kategori: {esc(', '.join(a.categories))}")
    text = _PAGE.format(
        lang=esc(a.language or site.language),
        title=esc(a.title),
        site=esc(site.title),
        root=esc(site.url),
        spot=f'<p class="spot">{esc(a.summary)}</p>' if a.summary else "",
        meta=" · ".join(meta),
        content=a.content_html,
    )
    return text.encode("utf-8")


def index_page(site: Site, feeds: Sequence[tuple[str, str, str]], count: int,
               newest: datetime | None) -> bytes:  # fmt: skip
    """`feeds`: (title, relative path, MIME type)."""
    esc = html.escape
    links = "\n".join(
        f'<link rel="alternate" type="{mime}" title="{esc(title)}" href="{esc(site.url + path)}">'
        for title, path, mime in feeds
    )
    items = "\n".join(
        f'<li><a href="{esc(path)}">{esc(title)}</a> <code>{esc(site.url + path)}</code></li>'
        for title, path, _ in feeds
    )
    when = turkish_long(newest, site.timezone) if newest else "henüz yok"
    text = f"""<!DOCTYPE html>
<html lang="{esc(site.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(site.title)}</title>
{links}
<style>body {{ font: 17px/1.6 system-ui, sans-serif; max-width: 46rem; margin: 2rem auto;
padding: 0 1rem; }} code {{ color: #555; font-size: .85em; }}</style>
</head>
<body>
<h1>{esc(site.title)}</h1>
<p>{count} haber · son güncelleme: {esc(when)}</p>
<ul>
{items}
</ul>
</body>
</html>
"""
    return text.encode("utf-8")


def publish(site: Site, output_dir: Path, entries: Sequence[Entry], total: int) -> list[str]:
    """Write every output file that changed; return the relative paths written."""
    written: list[str] = []

    def put(rel: str, data: bytes) -> None:
        if write_atomic(output_dir / rel, data):
            written.append(rel)

    for entry in entries:
        if entry.article.link is None:
            put(page_path(entry.id), article_page(site, entry))
    put("atom.xml", atom_bytes(site, entries))
    put("rss.xml", rss_bytes(site, entries))
    feeds = [
        (f"{site.title} (Atom)", "atom.xml", "application/atom+xml"),
        (f"{site.title} (RSS)", "rss.xml", "application/rss+xml"),
    ]
    newest = max((e.article.updated for e in entries), default=None)
    put("index.html", index_page(site, feeds, total, newest))
    return written
