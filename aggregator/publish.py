"""Feed sets -> files: Atom 1.0, RSS 2.0 and JSON Feed 1.1 per feed, RFC 5005 archive pages,
article pages, index.html, opml.xml (opml-all.xml) and the feed stylesheet. The only feedgen user.

Every file is written atomically (temporary file in the same folder, fsync, rename) and only
when its bytes change, so HTTP ETag/Last-Modified stay stable and readers never see half a file.
Nothing here reads the clock: an empty feed is dated 1970-01-01, others by their newest entry.
"""

from __future__ import annotations

import html
import itertools
import multiprocessing
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from feedgen.feed import FeedGenerator

from aggregator import __version__, pages
from aggregator.errors import OutputIncomplete, PublishError
from aggregator.model import Article, Entry
from aggregator.normalize import text_only
from aggregator.pages import Site, entry_link, page_path
from aggregator.stylesheet import FEED_XSL
from aggregator.timeparse import printable

__all__ = ["FeedSet", "Site", "atom_bytes", "json_feed_bytes", "publish", "rss_bytes",
           "write_atomic"]  # fmt: skip
EMPTY_FEED_UPDATED = datetime(1970, 1, 1, tzinfo=UTC)
GENERATOR = "haber-aggregator"


@dataclass(frozen=True, kw_only=True)
class FeedSet:
    """One published feed (in three formats) under `folder` ("" for the combined feed,
    else e.g. "sources/<name>/"). `archives`: RFC 5005 pages, oldest first (Atom only)."""

    folder: str
    title: str
    group: str
    entries: Sequence[Entry]
    archive_count: int = 0
    archives: Sequence[tuple[int, Sequence[Entry]]] = field(default=())  # only pages to write
    # (count, newest) of a feed whose files already hold what it would render: not rendered
    kept: tuple[int, datetime | None] | None = None

    @property
    def listing(self) -> tuple[int, datetime | None]:
        return self.kept or (len(self.entries), newest(self.entries))


STYLESHEET = "feed.xsl"


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
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent
        )
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


def _feed_title(site: Site, title: str) -> str:
    """A feed's title: plain text (a category's name is an input's), for every format."""
    return text_only(site.title if title == site.title else f"{site.title}: {title}")


_ARCHIVE_PAGE = re.compile(r"(?:^|/)archive/\d+\.xml$")


def _generator(
    site: Site, entries: Sequence[Entry], feed_name: str, title: str,
    links: Sequence[tuple[str, str]] = (),
) -> FeedGenerator:  # fmt: skip
    # archive pages (`<folder>archive/<n>.xml`) share their feed's id (RFC 5005)
    page = _ARCHIVE_PAGE.search(feed_name)
    folder = feed_name[: page.start()] if page else feed_name.rpartition("/")[0]
    folder = folder.rstrip("/")
    fg = FeedGenerator()
    fg.load_extension("dc", atom=False, rss=True)
    fg.id(site.url + (folder + "/" if folder else ""))  # RFC 5005: archive pages share it
    fg.title(_feed_title(site, title))
    fg.subtitle(f"{_feed_title(site, title)}: Türkçe haberler")
    fg.link(href=site.url + feed_name, rel="self")
    for rel, href in links:
        fg.link(href=href, rel=rel)
    fg.link(href=site.url, rel="alternate", type="text/html")  # last: RSS <link> takes it
    fg.language(site.language)
    fg.author({"name": text_only(site.title)})  # Atom: entries without a byline inherit it
    fg.generator(GENERATOR, version=__version__)
    stamp = newest(entries) or EMPTY_FEED_UPDATED
    fg.updated(printable(stamp))
    fg.lastBuildDate(printable(stamp))
    for entry in entries:
        a = entry.article
        fe = fg.add_entry(order="append")
        fe.id(entry.id)
        fe.guid(entry.id, permalink=False)
        fe.title(text_only(a.title))
        fe.link(href=entry_link(site, entry), rel="alternate", type="text/html")
        fe.published(printable(a.published))
        fe.updated(printable(max(a.updated, a.published)))
        names = _names(a)
        if names:
            fe.author([{"name": name} for name in names])
            fe.dc.dc_creator(names)
        for term in a.categories:
            fe.category(term=text_only(term))
        if a.summary:
            spot = text_only(a.summary)
            fe.summary(spot)  # Atom: plain text
            # RSS readers take <description> as HTML: the spot is text, so escape it once more.
            # (description() also sets Atom content; content() below replaces that.)
            fe.description(html.escape(spot, quote=False))
        fe.content(_content(a.summary, a.content_html), type="html")
    return fg


def _names(a: Article) -> list[str]:
    """Bylines as plain text: the authors, else the agency."""
    return [text_only(n) for n in a.authors or ([a.agency] if a.agency else [])]


def _content(summary: str, content_html: str) -> str:
    return content_html or f"<p>{html.escape(summary, quote=False)}</p>"


def _styled(data: bytes, name: str, extra: bytes = b"") -> bytes:
    """Add the `<?xml-stylesheet?>` that makes browsers show a page (readers ignore it).
    Relative, so the stylesheet always comes from the feed's own origin."""
    href = "../" * name.count("/") + STYLESHEET
    declaration, _, rest = data.partition(b"\n")
    pi = f'<?xml-stylesheet type="text/xsl" href="{href}"?>'.encode()
    return b"\n".join((declaration, pi, rest)).replace(b"\n<feed ", b"\n<feed " + extra, 1)


def atom_bytes(site: Site, entries: Sequence[Entry], name: str = "atom.xml",
               title: str = "", links: Sequence[tuple[str, str]] = (),
               archive: bool = False) -> bytes:  # fmt: skip
    """Atom 1.0; `links` (rel, href) such as RFC 5005 prev-archive; `archive` marks an
    archive page (fh:archive)."""
    data: bytes = _generator(site, entries, name, title or site.title, links).atom_str(pretty=True)
    if not archive:
        return _styled(data, name)
    data = _styled(data, name, b'xmlns:fh="http://purl.org/syndication/history/1.0" ')
    return data.replace(b"\n  <entry>", b"\n  <fh:archive/>\n  <entry>", 1) if entries else (
        data.replace(b"</feed>", b"  <fh:archive/>\n</feed>"))  # fmt: skip


def atom_and_rss_bytes(
    site: Site, entries: Sequence[Entry], folder: str, title: str,
    links: Sequence[tuple[str, str]] = (),
) -> tuple[bytes, bytes]:  # fmt: skip
    """Both formats of one feed from one FeedGenerator (building it is most of the cost);
    the same bytes as atom_bytes and rss_bytes."""
    fg = _generator(site, entries, folder + "atom.xml", title or site.title, links)
    atom: bytes = fg.atom_str(pretty=True)
    fg.link([{"href": site.url + folder + "rss.xml", "rel": "self"},
             {"href": site.url, "rel": "alternate", "type": "text/html"}],
            replace=True)  # fmt: skip
    rss: bytes = fg.rss_str(pretty=True)
    return _styled(atom, folder + "atom.xml"), _styled(rss, folder + "rss.xml")


def rss_bytes(site: Site, entries: Sequence[Entry], name: str = "rss.xml",
              title: str = "") -> bytes:  # fmt: skip
    data: bytes = _generator(site, entries, name, title or site.title).rss_str(pretty=True)
    return _styled(data, name)


def json_feed_bytes(site: Site, entries: Sequence[Entry], name: str = "feed.json",
                    title: str = "") -> bytes:  # fmt: skip
    """JSON Feed 1.1 with the same ids, dates and content as the Atom and RSS feeds."""
    feed_title = _feed_title(site, title or site.title)
    items = []
    for entry in entries:
        a = entry.article
        item: dict[str, object] = {
            "id": entry.id,
            "url": entry_link(site, entry),
            "title": text_only(a.title),
            "content_html": _content(a.summary, a.content_html),
        }
        if a.summary:
            item["summary"] = text_only(a.summary)
        if a.image:
            item["image"] = a.image
        item["date_published"] = printable(a.published).isoformat()
        item["date_modified"] = printable(max(a.updated, a.published)).isoformat()
        names = _names(a)
        if names:
            item["authors"] = [{"name": n} for n in names]
        if a.categories:
            item["tags"] = [text_only(c) for c in a.categories]
        if a.language:
            item["language"] = a.language
        items.append(item)
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed_title,
        "home_page_url": site.url,
        "feed_url": site.url + name,
        "description": f"{feed_title}: Türkçe haberler",
        "language": site.language,
        "items": items,
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


def newest(entries: Sequence[Entry]) -> datetime | None:
    return max((max(e.article.updated, e.article.published) for e in entries), default=None)


_swept: set[Path] = set()  # output folders this process has swept


def sweep_temporaries(output_dir: Path) -> int:
    """Remove write_atomic's temporary files left by a kill mid-write (never served: dotfiles).
    Each name carries its writer's pid: a file of a live process is kept, since two configs
    may share one output folder and publish at once (each under its own store's lock).
    Once per folder and process: a kill ends the process, so only an earlier one can have
    left any, and walking a folder of article pages at every publish costs what the store
    holds, not what changed."""
    folder = output_dir.absolute()
    if folder in _swept:
        return 0
    _swept.add(folder)
    removed = 0
    for root, _dirs, files in os.walk(output_dir):
        for name in files:
            if name.startswith(".") and name.endswith(".tmp") and not _live_writer(name):
                try:
                    os.unlink(os.path.join(root, name))
                    removed += 1
                except OSError:
                    pass
    return removed


_TEMP_PID = re.compile(r"\.(\d+)-[^.]*\.tmp$")


def _live_writer(temp_name: str) -> bool:
    """True when the temporary file's writer is another process that is still running
    (names without a pid come from older versions: stale)."""
    pid = int(m.group(1)) if (m := _TEMP_PID.search(temp_name)) else 0
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # alive, under another user
    except (ProcessLookupError, OverflowError):
        return False
    return True


def render_feed(site: Site, feed: FeedSet) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of one feed's Atom, RSS, JSON Feed and archive pages. Pure."""
    f = feed.folder
    out: list[tuple[str, bytes]] = []
    links: list[tuple[str, str]] = []
    count = feed.archive_count
    for n, page in feed.archives:
        name = f"{f}archive/{n}.xml"
        nav = [("current", site.url + f + "atom.xml")]
        if n > 1:
            nav.append(("prev-archive", f"{site.url}{f}archive/{n - 1}.xml"))
        if n < count:
            nav.append(("next-archive", f"{site.url}{f}archive/{n + 1}.xml"))
        out.append((name, atom_bytes(site, page, name, feed.title, nav, archive=True)))
    if count:
        links.append(("prev-archive", f"{site.url}{f}archive/{count}.xml"))
    atom, rss = atom_and_rss_bytes(site, feed.entries, f, feed.title, links)
    out += [(f + "atom.xml", atom), (f + "rss.xml", rss)]
    out.append((f + "feed.json", json_feed_bytes(site, feed.entries, f + "feed.json", feed.title)))
    return out


INDEX_HEADLINES = 15  # newest articles listed on index.html, above the feeds
POOL_FEEDS = 24  # fewer feeds than this: rendering in this process beats starting workers
RENDER_BATCH = 32  # feeds rendered at a time: only these hold their entries in memory


class _Renderer:
    """Renders feeds in batches as they come; many feeds (one per source and category) use
    every core, in worker processes started only once a publish has POOL_FEEDS to render."""

    def __init__(self, site: Site, workers: int | None = None) -> None:
        self.site = site
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def __call__(self, feeds: Sequence[FeedSet], last: bool) -> Iterator[list[tuple[str, bytes]]]:
        """Rendered files of each feed, in order (lazily, when from the pool)."""
        workers = self.workers
        if self._pool is None and (workers < 2 or (last and len(feeds) < POOL_FEEDS)):
            return (render_feed(self.site, feed) for feed in feeds)
        if self._pool is None:
            context = multiprocessing.get_context("forkserver")
            self._pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        return self._pool.map(render_feed, itertools.repeat(self.site), feeds, chunksize=8)

    def __enter__(self) -> _Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _batches(
    site: Site, feeds: Iterable[FeedSet], listing: list[pages.Listed], headlines: list[Entry]
) -> Iterator[tuple[list[FeedSet], bool]]:
    """The feeds to render, RENDER_BATCH at a time, each batch with whether it is the last;
    every feed joins `listing` as it is reached, and the first one's newest entries are the
    index's `headlines`."""
    batch: list[FeedSet] = []
    for feed in feeds:
        if not listing:
            headlines += feed.entries[:INDEX_HEADLINES]
        count, newest = feed.listing
        listing.append(pages.Listed(folder=feed.folder, title=_feed_title(site, feed.title),
                                    group=feed.group, count=count, newest=newest))  # fmt: skip
        if feed.kept is None:
            batch.append(feed)
            if len(batch) == RENDER_BATCH:
                yield batch, False
                batch = []
    yield batch, True


def publish(site: Site, output_dir: Path, feeds: Iterable[FeedSet], total: int,
            workers: int | None = None) -> list[str]:  # fmt: skip
    """Write every output file that changed; return the relative paths written.
    The first feed is the combined feed; `total` is the number of stored articles. `feeds`
    may be an iterator that reads each feed's entries as it is reached: a batch of feeds
    is rendered while the next is read, so a publish never holds every feed's entries.

    One file that cannot be written never stops the others: every file is tried. A failure
    in the output folder itself (combined feed, index, OPML) is a PublishError; failures
    only under a derived feed's folder (categories/x/, sources/x/, feeds/x/, articles/)
    are OutputIncomplete, one line per feed. `workers`: processes rendering at once
    (default: one per core; 1 renders in this process, as the daemon's publisher does)."""
    sweep_temporaries(output_dir)
    listing: list[pages.Listed] = []
    headlines: list[Entry] = []
    with _Writer(output_dir) as writer, _Renderer(site, workers) as render:
        done: set[str] = set()
        previous: Iterator[list[tuple[str, bytes]]] = iter(())
        for batch, last in _batches(site, feeds, listing, headlines):
            for feed in batch:
                archived = (e for _, page in feed.archives for e in page)
                for entry in (*feed.entries, *archived):
                    if entry.article.link is None and entry.id not in done:
                        done.add(entry.id)
                        writer.put(page_path(entry.id), pages.article_page(site, entry))
            rendering = render(batch, last)  # rendered while the batch before is written
            for files in previous:
                for rel, data in files:
                    writer.put(rel, data)
            previous = rendering
        for files in previous:
            for rel, data in files:
                writer.put(rel, data)
        writer.put("index.html", pages.index_page(site, listing, total, headlines))
        writer.put(pages.OPML, pages.opml(site, pages.for_readers(listing)))
        writer.put(pages.OPML_ALL, pages.opml(site, listing))
        writer.put(STYLESHEET, FEED_XSL.encode("utf-8"))
    by_folder: dict[str, str] = {}
    for rel, error in writer.failed:
        by_folder.setdefault(rel.rpartition("/")[0], str(error))
    if "" in by_folder:
        raise next(error for rel, error in writer.failed if "/" not in rel)
    if by_folder:
        raise OutputIncomplete(
            writer.written,
            [f"{folder}/: {error}" for folder, error in by_folder.items()],
            tuple(folder + "/" for folder in by_folder),
        )
    return writer.written


class _Writer:
    """write_atomic on a few threads (compare, write, fsync and rename wait on the disk, not
    the CPU), a bounded batch at a time so rendered bytes never pile up in memory."""

    BATCH = 64

    def __init__(self, output_dir: Path) -> None:
        self.output_dir = output_dir
        self.written: list[str] = []
        self.failed: list[tuple[str, PublishError]] = []
        self._pending: list[tuple[str, bytes]] = []
        self._pool = ThreadPoolExecutor(8, "aggregator-write")

    def put(self, rel: str, data: bytes) -> None:
        self._pending.append((rel, data))
        if len(self._pending) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        batch, self._pending = self._pending, []
        for (rel, _), outcome in zip(batch, self._pool.map(self._write, batch), strict=True):
            if isinstance(outcome, PublishError):
                self.failed.append((rel, outcome))
            elif outcome:
                self.written.append(rel)

    def _write(self, item: tuple[str, bytes]) -> bool | PublishError:
        try:
            return write_atomic(self.output_dir / item[0], item[1])
        except PublishError as e:
            return e

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                self.flush()
        finally:
            self._pool.shutdown(wait=True)
