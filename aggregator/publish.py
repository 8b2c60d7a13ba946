"""Feed sets -> files: Atom 1.0, RSS 2.0 and JSON Feed 1.1 per feed, RFC 5005 archive pages,
article pages, index.html, opml.xml (opml-all.xml) and the feed stylesheet. The only feedgen user.

Every file is written atomically (temporary file in the same folder, fsync, rename) and only
when its bytes change, so HTTP ETag/Last-Modified stay stable and readers never see half a file.
Nothing here reads the clock: an empty feed is dated 1970-01-01, others by their newest entry.
"""

from __future__ import annotations

import functools
import html
import itertools
import multiprocessing
import multiprocessing.connection
import os
import re
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import feedgen.entry
import feedgen.feed
import orjson
from feedgen.entry import FeedEntry
from feedgen.ext.dc import DcEntryExtension, DcExtension
from feedgen.feed import FeedGenerator

from aggregator import __version__, pages
from aggregator.errors import OutputIncomplete, PublishError
from aggregator.model import Article, Entry
from aggregator.normalize import text_only
from aggregator.packed import PackedEntries
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


STYLESHEET = "feed.xsl"

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _rfc822(date: datetime) -> str:
    """feedgen's formatRFC2822 (strftime in the C locale) without its two setlocale calls
    per date, which cost half of it and switch the locale of the whole process under its
    other threads (writers, the daemon's loop). The C locale's names go into the format."""
    names = f"{_DAYS[date.weekday()]}, %d {_MONTHS[date.month - 1]}"
    return date.strftime(names + " %Y %H:%M:%S %z")


feedgen.entry.formatRFC2822 = feedgen.feed.formatRFC2822 = _rfc822


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


class _Item(NamedTuple):
    """What the three formats say of one entry, worked out once for all of them."""

    id: str
    link: str
    title: str
    published: datetime  # printable
    updated: datetime  # printable, never before `published`
    names: list[str]
    terms: list[str]
    spot: str  # the summary as text ("": none)
    content: str
    image: str | None
    language: str


def _items(site: Site, entries: Iterable[Entry]) -> list[_Item]:
    return [
        _Item(
            id=entry.id,
            link=entry_link(site, entry),
            title=text_only(a.title),
            published=printable(a.published),
            updated=printable(max(a.updated, a.published)),
            names=_names(a),
            terms=[text_only(term) for term in a.categories],
            spot=text_only(a.summary) if a.summary else "",
            content=_content(a.summary, a.content_html),
            image=a.image,
            language=a.language,
        )
        for entry in entries
        for a in (entry.article,)
    ]


def _generator(
    site: Site, items: Sequence[_Item], stamp: datetime | None, feed_name: str, title: str,
    links: Sequence[tuple[str, str]] = (),
) -> FeedGenerator:  # fmt: skip
    """One FeedGenerator for both formats (building it is most of their cost). `stamp`: the
    newest entry's time."""
    # archive pages (`<folder>archive/<n>.xml`) share their feed's id (RFC 5005)
    page = _ARCHIVE_PAGE.search(feed_name)
    folder = feed_name[: page.start()] if page else feed_name.rpartition("/")[0]
    folder = folder.rstrip("/")
    fg = FeedGenerator()
    # dc:creator in RSS: the namespace on the feed; the entry extension only on entries
    # with a byline (feedgen skips an extension without an entry class on the others)
    fg.register_extension("dc", DcExtension, None, atom=False, rss=True)
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
    fg.updated(printable(stamp or EMPTY_FEED_UPDATED))
    fg.lastBuildDate(printable(stamp or EMPTY_FEED_UPDATED))
    fg.entry([_feed_entry(item) for item in items])
    return fg


def _feed_entry(item: _Item) -> FeedEntry:
    fe = FeedEntry()
    fe.id(item.id)  # also the RSS guid, isPermaLink="false"
    fe.title(item.title)
    fe.link(href=item.link, rel="alternate", type="text/html")
    fe.published(item.published)
    fe.updated(item.updated)
    if item.names:
        fe.author([{"name": name} for name in item.names])
        fe.register_extension("dc", DcEntryExtension, atom=False, rss=True)
        fe.dc.dc_creator(item.names)
    if item.terms:
        fe.category([{"term": term} for term in item.terms])
    if item.spot:
        fe.summary(item.spot)  # Atom: plain text
        # RSS readers take <description> as HTML: the spot is text, so escape it once more.
        # (description() also sets Atom content; content() below replaces that.)
        fe.description(html.escape(item.spot, quote=False))
    fe.content(item.content, type="html")
    return fe


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
    return _atom(site, _items(site, entries), newest(entries), name, title, links, archive)


def _atom(site: Site, items: Sequence[_Item], stamp: datetime | None, name: str, title: str,
          links: Sequence[tuple[str, str]], archive: bool) -> bytes:  # fmt: skip
    fg = _generator(site, items, stamp, name, title or site.title, links)
    data: bytes = fg.atom_str(pretty=True)
    if not archive:
        return _styled(data, name)
    data = _styled(data, name, b'xmlns:fh="http://purl.org/syndication/history/1.0" ')
    return data.replace(b"\n  <entry>", b"\n  <fh:archive/>\n  <entry>", 1) if items else (
        data.replace(b"</feed>", b"  <fh:archive/>\n</feed>"))  # fmt: skip


def _atom_and_rss(
    site: Site, items: Sequence[_Item], stamp: datetime | None, folder: str, title: str,
    links: Sequence[tuple[str, str]] = (),
) -> tuple[bytes, bytes]:  # fmt: skip
    """Both formats of one feed from one FeedGenerator: the same bytes as atom_bytes and
    rss_bytes."""
    fg = _generator(site, items, stamp, folder + "atom.xml", title or site.title, links)
    atom: bytes = fg.atom_str(pretty=True)
    fg.link([{"href": site.url + folder + "rss.xml", "rel": "self"},
             {"href": site.url, "rel": "alternate", "type": "text/html"}],
            replace=True)  # fmt: skip
    rss: bytes = fg.rss_str(pretty=True)
    return _styled(atom, folder + "atom.xml"), _styled(rss, folder + "rss.xml")


def rss_bytes(site: Site, entries: Sequence[Entry], name: str = "rss.xml",
              title: str = "") -> bytes:  # fmt: skip
    fg = _generator(site, _items(site, entries), newest(entries), name, title or site.title)
    data: bytes = fg.rss_str(pretty=True)
    return _styled(data, name)


def json_feed_bytes(site: Site, entries: Sequence[Entry], name: str = "feed.json",
                    title: str = "") -> bytes:  # fmt: skip
    """JSON Feed 1.1 with the same ids, dates and content as the Atom and RSS feeds."""
    return _json_feed(site, _items(site, entries), name, title)


def _json_feed(site: Site, items: Sequence[_Item], name: str, title: str) -> bytes:
    feed_title = _feed_title(site, title or site.title)
    out = []
    for item in items:
        entry: dict[str, object] = {
            "id": item.id,
            "url": item.link,
            "title": item.title,
            "content_html": item.content,
        }
        if item.spot:
            entry["summary"] = item.spot
        if item.image:
            entry["image"] = item.image
        entry["date_published"] = item.published.isoformat()
        entry["date_modified"] = item.updated.isoformat()
        if item.names:
            entry["authors"] = [{"name": n} for n in item.names]
        if item.terms:
            entry["tags"] = item.terms
        if item.language:
            entry["language"] = item.language
        out.append(entry)
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed_title,
        "home_page_url": site.url,
        "feed_url": site.url + name,
        "description": f"{feed_title}: Türkçe haberler",
        "language": site.language,
        "items": out,
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
    out: list[tuple[str, bytes]] = []
    files, _ = _render(site, _Job(feed, frozenset()), lambda rel, data: out.append((rel, data)))
    return out + files


class _Job(NamedTuple):
    """A feed to render, with the article pages it writes: those of its link-less entries
    in `pages` (None: all of them), so a page is rendered once however many feeds list it."""

    feed: FeedSet
    pages: frozenset[str] | None


Put = Callable[[str, bytes], object]
"""Takes one rendered file (relative path, bytes) to write."""


def _render(site: Site, job: _Job, put: Put) -> tuple[list[tuple[str, bytes]], datetime | None]:
    """A job's feed files (Atom, RSS, JSON Feed) and its feed's newest time. Its article
    pages and archive pages (as many as the store holds on a full rebuild) go to `put` one
    at a time as they are rendered, an archive page's entries decoded only for it, so a
    job holds a bounded number of files whatever its feed holds. Each entry is decoded and
    worked out once, for every format and page it goes into."""
    feed, f = job.feed, job.feed.folder
    paged: set[str] = set()

    def article_pages(entries: list[Entry]) -> None:
        for entry in entries:
            if (
                entry.article.link is None
                and entry.id not in paged
                and (job.pages is None or entry.id in job.pages)
            ):
                paged.add(entry.id)
                put(page_path(entry.id), pages.article_page(site, entry))

    entries = list(feed.entries)  # entries the store hands over packed are decoded here
    article_pages(entries)
    count = feed.archive_count
    for n, packed in feed.archives:
        page = list(packed)
        article_pages(page)
        name = f"{f}archive/{n}.xml"
        nav = [("current", site.url + f + "atom.xml")]
        if n > 1:
            nav.append(("prev-archive", f"{site.url}{f}archive/{n - 1}.xml"))
        if n < count:
            nav.append(("next-archive", f"{site.url}{f}archive/{n + 1}.xml"))
        stamp = newest(page)
        put(name, _atom(site, _items(site, page), stamp, name, feed.title, nav, True))
    links: list[tuple[str, str]] = []
    if count:
        links.append(("prev-archive", f"{site.url}{f}archive/{count}.xml"))
    items = _items(site, entries)
    stamp = newest(entries)
    atom, rss = _atom_and_rss(site, items, stamp, f, feed.title, links)
    files = [(f + "atom.xml", atom), (f + "rss.xml", rss)]
    files.append((f + "feed.json", _json_feed(site, items, f + "feed.json", feed.title)))
    return files, stamp


Outcome = bool | PublishError
"""What writing one file came to: written, already held those bytes, or the error."""


class RenderedFeed(NamedTuple):
    """A rendered job: the files a render worker wrote itself (all of its files) with their
    outcomes, the feed files still to write (a job rendered in this process), the feed's
    newest time."""

    written: list[tuple[str, Outcome]]
    files: list[tuple[str, bytes]]
    newest: datetime | None


WORKER_IN_FLIGHT = 16  # files a render worker has rendered and not yet written, at most
WORKER_THREADS = 4  # a render worker's writer threads (its feeds' files wait on the disk)


def _render_apart(site: Site, output_dir: Path, jobs: Sequence[_Job]) -> list[RenderedFeed]:
    """_render in a worker process, every file written there as it is rendered: only the
    outcomes travel back (bytes pickled back to the main process would cost it their
    copying and writing, and pile up there: up to two batches of jobs are in flight).
    A chunk of jobs shares one writer, so a job's files are written while the next one
    renders."""
    ends: list[tuple[int, datetime | None]] = []  # files put once each job was rendered
    with _Writer(output_dir, WORKER_IN_FLIGHT, _worker_threads()) as writer:
        for job in jobs:
            files, stamp = _render(site, job, writer.put)
            for rel, data in files:
                writer.put(rel, data)
            ends.append((writer.put_count, stamp))
    starts = [0, *(end for end, _ in ends)]
    return [RenderedFeed(writer.outcomes[start:end], [], stamp)
            for start, (end, stamp) in zip(starts, ends, strict=False)]  # fmt: skip


_threads: ThreadPoolExecutor | None = None  # a render worker's writer threads, kept for its life


def _worker_threads() -> ThreadPoolExecutor:
    global _threads
    if _threads is None:
        _threads = ThreadPoolExecutor(WORKER_THREADS, "aggregator-write")
    return _threads


def _end_with_publisher() -> None:
    """Render-worker start: the worker exits the moment the publishing process is gone
    (killed mid-publish), where it would go on writing the article pages of its jobs over
    those a later publish has written meanwhile. Its parent is the forkserver, so no
    parent-death signal would tell; the process that asked for it is its `parent_process`."""
    publisher = multiprocessing.parent_process()
    if publisher is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([publisher.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="aggregator-publisher-watch", daemon=True).start()


def _ready() -> None:
    """A render worker's first task: it starts (and imports this module) before any job."""


INDEX_HEADLINES = 15  # newest articles listed on index.html, above the feeds
POOL_FEEDS = 64  # fewer feeds than this: rendering in this process beats starting workers
RENDER_BATCH = 32  # feeds rendered at a time: only these hold their entries in memory
RENDER_CHUNK = 8  # feeds of a batch a render worker takes at once


class _Renderer:
    """Renders feeds in batches as they come; many feeds (one per source and category) use
    every core, in worker processes started only once a publish has had POOL_FEEDS to
    render (the batches before are rendered here, the first while the workers start), or
    at once when it has that many `planned` (they start while the first feeds are read).
    A job rendered here has its files go to `writer`; one rendered in a worker, all of
    them written by that worker."""

    def __init__(self, site: Site, writer: _Writer, workers: int | None = None,
                 planned: int = 0) -> None:  # fmt: skip
        self.site = site
        self.writer = writer
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None
        self._feeds = 0  # feeds this publish has had to render so far
        if self.workers > 1 and planned >= POOL_FEEDS:
            self._start()

    def _start(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context("forkserver")
        pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context,
                                   initializer=_end_with_publisher)  # fmt: skip
        for _ in range(self.workers):  # each submit with no worker idle starts one
            pool.submit(_ready)
        self._pool = pool
        return pool

    def __call__(self, jobs: Sequence[_Job]) -> Iterator[RenderedFeed]:
        """Each job's files and newest time, in order (lazily)."""
        workers = self.workers
        self._feeds += len(jobs)
        if self._pool is None and (workers < 2 or self._feeds < POOL_FEEDS):
            return (RenderedFeed([], *_render(self.site, job, self.writer.put)) for job in jobs)
        pool = self._pool or self._start()
        apart = functools.partial(_render_apart, self.site, self.writer.output_dir)
        chunks = [jobs[k : k + RENDER_CHUNK] for k in range(0, len(jobs), RENDER_CHUNK)]
        return itertools.chain.from_iterable(pool.map(apart, chunks))

    def __enter__(self) -> _Renderer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _batches(
    site: Site, feeds: Iterable[FeedSet], listing: list[pages.Listed], headlines: list[Entry]
) -> Iterator[list[tuple[int, FeedSet]]]:
    """The feeds to render with their place in `listing`, RENDER_BATCH at a time; every
    feed joins `listing` as it is reached (a rendered one's newest time is filled in once
    rendered), and the first one's newest entries are the index's `headlines`."""
    batch: list[tuple[int, FeedSet]] = []
    for feed in feeds:
        if not listing:
            headlines += feed.entries[:INDEX_HEADLINES]
        count, newest = feed.kept or (len(feed.entries), None)
        listing.append(pages.Listed(folder=feed.folder, title=_feed_title(site, feed.title),
                                    group=feed.group, count=count, newest=newest))  # fmt: skip
        if feed.kept is None:
            batch.append((len(listing) - 1, feed))
            if len(batch) == RENDER_BATCH:
                yield batch
                batch = []
    yield batch


def _ids(entries: Sequence[Entry]) -> list[str]:
    return entries.ids if isinstance(entries, PackedEntries) else [e.id for e in entries]


Listener = Callable[[FeedSet, datetime | None], object]
"""Called with each feed rendered and its newest entry's time, as its files are written."""


def publish(site: Site, output_dir: Path, feeds: Iterable[FeedSet], total: int,
            workers: int | None = None, listed: Listener | None = None,
            planned: int = 0) -> list[str]:  # fmt: skip
    """Write every output file that changed; return the relative paths written.
    The first feed is the combined feed; `total` is the number of stored articles. `feeds`
    may be an iterator that reads each feed's entries as it is reached: a batch of feeds
    is rendered while the next is read, so a publish never holds every feed's entries.

    One file that cannot be written never stops the others: every file is tried. A failure
    in the output folder itself (combined feed, index, OPML) is a PublishError; failures
    only under a derived feed's folder (categories/x/, sources/x/, feeds/x/, articles/)
    are OutputIncomplete, one line per feed. `workers`: processes rendering at once
    (default: one per core; 1 renders in this process, as the daemon's publisher does).
    `planned`: how many of `feeds` are sure to be rendered (not kept), if known."""
    sweep_temporaries(output_dir)
    listing: list[pages.Listed] = []
    headlines: list[Entry] = []
    paged: set[str] = set()  # ids whose article page a job of this publish writes
    with _Writer(output_dir) as writer, _Renderer(site, writer, workers, planned) as render:

        def write(rendered: Iterable[tuple[tuple[int, FeedSet], RenderedFeed]]) -> None:
            for (place, feed), (done, files, newest) in rendered:
                listing[place] = replace(listing[place], newest=newest)
                if listed is not None:
                    listed(feed, newest)
                for rel, outcome in done:
                    writer.record(rel, outcome)
                for rel, data in files:
                    writer.put(rel, data)

        previous: Iterable[tuple[tuple[int, FeedSet], RenderedFeed]] = ()
        for batch in _batches(site, feeds, listing, headlines):
            jobs = []
            for _, feed in batch:
                ids = dict.fromkeys(itertools.chain(
                    _ids(feed.entries), *(_ids(page) for _, page in feed.archives)))  # fmt: skip
                fresh = [i for i in ids if i not in paged]
                paged.update(fresh)
                jobs.append(_Job(feed, None if len(fresh) == len(ids) else frozenset(fresh)))
            # rendered while the batch before is written
            rendering = zip(batch, render(jobs), strict=True)
            write(previous)
            previous = rendering
        write(previous)
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
    the CPU), at most `in_flight` files at a time so rendered bytes never pile up in memory;
    `outcomes` (and `written`) in the order the files were put."""

    IN_FLIGHT = 64
    THREADS = 8

    def __init__(self, output_dir: Path, in_flight: int = IN_FLIGHT,
                 threads: ThreadPoolExecutor | None = None) -> None:  # fmt: skip
        """`threads`: a pool to share (a render worker's, for all its chunks of jobs), else
        one of its own."""
        self.output_dir = output_dir
        self.in_flight = in_flight
        self.outcomes: list[tuple[str, Outcome]] = []
        self._pending: deque[tuple[str, Future[Outcome]]] = deque()
        self._own = threads is None
        self._pool = threads or ThreadPoolExecutor(self.THREADS, "aggregator-write")

    def put(self, rel: str, data: bytes) -> None:
        self._pending.append((rel, self._pool.submit(self._write, self.output_dir / rel, data)))
        while len(self._pending) > self.in_flight:
            self._collect()

    def record(self, rel: str, outcome: Outcome) -> None:
        """A file written elsewhere (by a render worker), in its place among those put."""
        done: Future[Outcome] = Future()
        done.set_result(outcome)
        self._pending.append((rel, done))
        while len(self._pending) > self.in_flight:  # a worker's outcomes are bounded too
            self._collect()

    @property
    def put_count(self) -> int:
        """Files put (or recorded) so far."""
        return len(self.outcomes) + len(self._pending)

    @property
    def written(self) -> list[str]:
        return [rel for rel, outcome in self.outcomes if outcome is True]

    @property
    def failed(self) -> list[tuple[str, PublishError]]:
        return [(rel, e) for rel, e in self.outcomes if isinstance(e, PublishError)]

    def _collect(self) -> None:
        rel, future = self._pending.popleft()
        self.outcomes.append((rel, future.result()))

    @staticmethod
    def _write(path: Path, data: bytes) -> Outcome:
        try:
            return write_atomic(path, data)
        except PublishError as e:
            return e

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        try:
            if exc_type is None:
                while self._pending:
                    self._collect()
        finally:
            if self._own:
                self._pool.shutdown(wait=True)
            else:  # a failure: wait for what is still being written
                for _, future in self._pending:
                    future.exception()
