"""A publish holds a bounded number of rendered files, however many article pages and archive
pages a feed (the combined feed on a full rebuild with output.archive) or the store holds:
rendered files wait only in the writer's queue (64), not in a render job's result."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from aggregator import pages
from aggregator import publish as P
from aggregator.model import Entry
from aggregator.publish import FeedSet, Site, publish
from tests.test_publish import SITE, seed_entry


def _linkless(n: int, start: int = 0) -> list[Entry]:
    base = seed_entry()
    return [
        Entry(id=f"urn:uuid:00000000-0000-5000-8000-{i:012d}",
              article=replace(base.article, link=None, title=f"Haber {i}",
                              published=base.article.published - timedelta(minutes=i)))
        for i in range(start, start + n)
    ]  # fmt: skip


def test_pages_rendered_in_process_wait_only_in_the_writers_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """workers=1 (the daemon's publisher): 600 article pages and 11 archive pages of the
    combined feed are never all held at once."""
    entries = _linkless(600)
    held, most = 0, 0
    real_page, real_atom, real_write = pages.article_page, P._atom, P.write_atomic

    def page(*args: object) -> bytes:
        nonlocal held, most
        held += 1
        most = max(most, held)
        return real_page(*args)  # type: ignore[arg-type]

    def atom(*args: object) -> bytes:
        nonlocal held, most
        if args[-1]:  # an archive page
            held += 1
            most = max(most, held)
        return real_atom(*args)  # type: ignore[arg-type]

    def write(path: Path, data: bytes) -> bool:
        nonlocal held
        if path.parent.name in ("articles", "archive"):
            held -= 1
        return real_write(path, data)

    monkeypatch.setattr(pages, "article_page", page)
    monkeypatch.setattr(P, "_atom", atom)
    monkeypatch.setattr(P, "write_atomic", write)
    archives = [(k + 1, entries[50 + k * 50 : 100 + k * 50]) for k in range(11)]
    feed = FeedSet(folder="", title=SITE.title, group="", entries=entries[:50],
                   archive_count=11, archives=archives)  # fmt: skip
    written = publish(SITE, tmp_path, [feed], 600, workers=1)
    assert len(list((tmp_path / "articles").glob("*.html"))) == 600
    assert len([w for w in written if w.startswith("archive/")]) == 11
    assert held == 0 and most <= P._Writer.IN_FLIGHT + 2, most


def test_a_render_worker_writes_all_its_files_and_sends_back_only_outcomes(
    tmp_path: Path,
) -> None:
    """A job as the render workers run it: the combined feed's 600 article pages, 11
    archive pages and three feed files are written there as they are rendered; only every
    file's outcome comes back, in order, with the bytes rendering here gives."""
    entries = _linkless(600)
    archives = [(k + 1, entries[50 + k * 50 : 100 + k * 50]) for k in range(11)]
    feed = FeedSet(folder="", title=SITE.title, group="", entries=entries[:50],
                   archive_count=11, archives=archives)  # fmt: skip
    (done,) = P._render_apart(SITE, tmp_path, [P._Job(feed, None)])
    assert done.files == []
    assert [rel for rel, outcome in done.written if outcome is True] == [
        *(pages.page_path(e.id) for e in entries[:50]),
        *(rel for n, page in archives
          for rel in (*(pages.page_path(e.id) for e in page), f"archive/{n}.xml")),
        "atom.xml", "rss.xml", "feed.json",
    ]  # fmt: skip
    rendered = dict(P.render_feed(SITE, feed))
    for rel in ("atom.xml", "rss.xml", "feed.json", *(f"archive/{n}.xml" for n, _ in archives)):
        assert (tmp_path / rel).read_bytes() == rendered[rel]
    assert (tmp_path / pages.page_path(entries[599].id)).read_bytes() == pages.article_page(
        SITE, entries[599]
    )
    # a chunk of jobs (one writer): each job's outcomes are its own files', in order
    other = FeedSet(folder="sources/s/", title="s", group="", entries=_linkless(3, start=600))
    again, second = P._render_apart(SITE, tmp_path, [P._Job(feed, None), P._Job(other, None)])
    assert [rel for rel, _ in again.written] == [rel for rel, _ in done.written]
    assert not any(outcome is True for _, outcome in again.written)  # same bytes: none written
    assert [rel for rel, outcome in second.written if outcome is True] == [
        *(pages.page_path(e.id) for e in other.entries),
        "sources/s/atom.xml", "sources/s/rss.xml", "sources/s/feed.json",
    ]  # fmt: skip
    assert second.newest == P.newest(other.entries)


def test_feeds_rendered_by_workers_write_their_own_article_pages(tmp_path: Path) -> None:
    """Feeds past the first POOL_FEEDS are rendered by worker processes, each with
    link-less articles no earlier feed lists: every page is written, once, with the bytes
    rendering here gives, and the publish names each once."""
    entries = _linkless(5 * (P.POOL_FEEDS + 16))
    feeds = [FeedSet(folder="" if k == 0 else f"sources/s{k}/", title=f"s{k}", group="",
                     entries=entries[5 * k : 5 * k + 5])
             for k in range(P.POOL_FEEDS + 16)]  # fmt: skip
    written = publish(SITE, tmp_path, feeds, len(entries), workers=2)
    assert len(written) == len(set(written)) == len(entries) + 3 * len(feeds) + 4
    for entry in entries[-5 * 16 :]:
        page = tmp_path / pages.page_path(entry.id)
        assert page.read_bytes() == pages.article_page(SITE, entry)


def test_a_pool_started_with_the_publish_writes_what_one_process_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With as many feeds planned as POOL_FEEDS the workers render every feed, the first
    batch too (none is rendered in this process): the files, and the order the publish
    names them in, are those of a publish rendering in one process."""
    entries = _linkless(3 * (P.POOL_FEEDS + 8))
    feeds = [FeedSet(folder="" if k == 0 else f"sources/s{k}/", title=f"s{k}", group="",
                     entries=entries[3 * k : 3 * k + 3])
             for k in range(P.POOL_FEEDS + 8)]  # fmt: skip
    here: list[str] = []  # feeds rendered in this process (the workers import their own)
    real_render = P._render

    def render(site: Site, job: P._Job, put: P.Put) -> object:
        here.append(job.feed.folder)
        return real_render(site, job, put)

    monkeypatch.setattr(P, "_render", render)
    apart = publish(SITE, tmp_path / "pool", feeds, len(entries), workers=2,
                    planned=len(feeds))  # fmt: skip
    assert here == []
    alone = publish(SITE, tmp_path / "one", feeds, len(entries), workers=1)
    assert len(here) == len(feeds)
    assert apart == alone
    for rel in alone:
        assert (tmp_path / "pool" / rel).read_bytes() == (tmp_path / "one" / rel).read_bytes()


def test_the_outcomes_workers_send_back_wait_in_a_bounded_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers write every file of a publish; the outcomes they send back are taken
    out of the main process's queue as they come, not held until the publish ends (each
    costs ~1.7 KB: a rebuild's article pages would pile up)."""
    most = 0
    real_record = P._Writer.record

    def record(self: P._Writer, rel: str, outcome: P.Outcome) -> None:
        nonlocal most
        real_record(self, rel, outcome)
        most = max(most, len(self._pending))

    monkeypatch.setattr(P._Writer, "record", record)
    entries = _linkless(20 * 100)
    feeds = [FeedSet(folder="" if k == 0 else f"sources/s{k}/", title=f"s{k}", group="",
                     entries=entries[20 * k : 20 * k + 20]) for k in range(100)]  # fmt: skip
    written = publish(SITE, tmp_path, feeds, len(entries), workers=2, planned=len(feeds))
    assert len(written) > 2_000
    assert most <= P._Writer.IN_FLIGHT, most


_KILLED_PUBLISHER = """
import sys
from pathlib import Path
from aggregator.publish import FeedSet, publish
from tests.test_publish import SITE
from tests.test_publish_inflight import _linkless

small, big = _linkless(64), _linkless(8 * 1500, start=100_000)
feeds = [FeedSet(folder="" if k == 0 else f"sources/s{k}/", title=f"s{k}", group="",
                 entries=small[k : k + 1]) for k in range(64)]
feeds += [FeedSet(folder=f"sources/b{k}/", title=f"b{k}", group="",
                  entries=big[1500 * k : 1500 * (k + 1)]) for k in range(8)]
publish(SITE, Path(sys.argv[1]), feeds, 10, workers=2)
"""


def _descendants(pid: int) -> set[int]:
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_render_workers_stop_writing_when_the_publishing_process_is_killed(
    tmp_path: Path,
) -> None:
    """A publisher killed with -9 mid-publish (OOM killer, kill -9): its render workers go
    with it, rather than finishing their jobs' article pages over what a publish started
    after it writes (the store's lock is free the moment the publisher dies)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_PUBLISHER, str(out)],
                            cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            workers = _descendants(proc.pid)  # the forkserver and its render workers
            if len(workers) >= 3 and len(list(out.glob("articles/*.html"))) > 1000:
                break
            time.sleep(0.05)
        assert proc.poll() is None and len(workers) >= 3, "the publish ended before workers"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in workers):
            time.sleep(0.05)
        assert not [p for p in workers if _alive(p)], "render workers outlived their publisher"
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in workers:  # orphans of a failed run: reparented, so known only from before
            if _alive(p):
                os.kill(p, signal.SIGKILL)
