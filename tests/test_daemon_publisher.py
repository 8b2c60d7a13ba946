"""`aggregator run` publishes in a child process (aggregator/publisher.py), as real
processes: a 304 source run and serving go on while a publish is stuck half way, a
publisher killed mid-publish is replaced and its publish lands, and neither a SIGTERM nor
a kill -9 of the daemon leaves the child running.

A publish is held half way by a FIFO in place of `index.html`, the last file a publish
writes: the publisher blocks reading it (write_atomic compares the old bytes first) after
the feeds are written, until the test writes to the FIFO, or kills the publisher."""

from __future__ import annotations

import html
import os
import re
import signal
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.localserver import XML, App, Reply, Request, serve_in_thread
from tests.test_daemon import CONFIG, Daemon, add_seed, wait_for

pytestmark = pytest.mark.slow
_304_RUN = re.compile(r"source web: 0 new, 0 updated, 0 unchanged in")
_CHANGE = re.compile(r"source \w+: (\d+) new, (\d+) updated(?<!: 0 new, 0 updated)")
FEED = (
    b"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Web</title>"
    b"<link>https://web.test/</link><item><title>Ankara'da toplant\xc4\xb1</title>"
    b"<link>https://web.test/1</link><guid>web-1</guid>"
    b"<pubDate>Fri, 02 Jan 2026 08:00:00 +0300</pubDate></item></channel></rss>"
)


def children(pid: int) -> list[int]:
    """The running (not zombie) child processes of `pid`."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return [c for c in found if running(c)]


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def publisher_of(d: Daemon) -> int:
    assert d.proc is not None
    return wait_for("the publisher process", lambda: (children(d.proc.pid) or [None])[0])


@pytest.fixture
def web_daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon reading the seed folder and a feed that answers 304 after its first fetch
    (both every second)."""
    app = App()

    def feed(r: Request) -> Reply:
        if r.headers.get("if-none-match") == '"v1"':
            return Reply(304, headers={"ETag": '"v1"'})
        return Reply(body=FEED, content_type=XML, headers={"ETag": '"v1"'})

    app.route("/feed.xml", feed)
    with serve_in_thread(app, fixtures=False):
        d = Daemon(tmp_path)
        d.config.write_text(  # debug: a publish that changed nothing is logged too
            CONFIG.replace("log_level: info", "log_level: debug")
            + f"  - name: web\n    type: feed\n    url: {app.base}/feed.xml\n"
            "    every: 1s\n", encoding="utf-8",
        )  # fmt: skip
        d.start()
        try:
            yield d
        finally:
            if d.proc and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()


def settled(d: Daemon) -> bool:
    """No publish is due: one was logged at least PUBLISH_QUIET (1 s) after the last
    merged change (these publishes take milliseconds, so it began after the change)."""
    changed, published = 0.0, 0.0
    for line in d.logs().splitlines():
        when = line.split(" ", 1)[0]
        if _CHANGE.search(line):
            changed = datetime.fromisoformat(when).timestamp()
        elif "feeds published" in line:
            published = datetime.fromisoformat(when).timestamp()
    return published >= changed + 1.0


def hold_next_publish(d: Daemon) -> tuple[Path, str, str | None]:
    """Put a FIFO in place of index.html, add a seed file: the publish of it writes the
    feeds, then blocks on index.html. Returns the FIFO, the new title and the last
    publish /healthz showed before."""
    wait_for("the publishes due to end", lambda: settled(d))
    index = d.root / "feeds" / "index.html"
    before = d.health()[1]["last_publish"]
    index.unlink()
    os.mkfifo(index)
    title = add_seed(d.seeds, 1)
    atom = d.root / "feeds" / "atom.xml"
    wait_for("the feeds of the held publish on disk", lambda: title in atom.read_text(),
             timeout=15.0)  # fmt: skip
    assert d.health()[1]["last_publish"] == before  # not done: index.html is not written
    return index, title, before


def test_a_304_run_and_serving_go_on_while_a_publish_is_held(web_daemon: Daemon) -> None:
    d = web_daemon
    wait_for("a 304 run", lambda: _304_RUN.search(d.logs()))
    index, title, before = hold_next_publish(d)
    runs = len(_304_RUN.findall(d.logs()))
    wait_for("two more 304 runs during the publish",
             lambda: len(_304_RUN.findall(d.logs())) >= runs + 2, timeout=15.0)  # fmt: skip
    assert httpx.get(d.url("/atom.xml"), timeout=5).status_code == 200
    assert d.health()[1]["last_publish"] == before  # still the same publish, held

    def release() -> None:
        with open(index, "wb") as fifo:  # the publisher reads this as the old index.html
            fifo.write(b"old")

    threading.Thread(target=release, daemon=True).start()
    wait_for("the publish to finish", lambda: d.health()[1]["last_publish"] != before,
             timeout=15.0)  # fmt: skip
    assert title in d.titles() and index.is_file()
    assert "publisher process ended" not in d.logs()
    publisher = publisher_of(d)
    rc, _ = d.stop(signal.SIGTERM)
    assert rc == 0, d.logs()
    assert not running(publisher)


def test_a_publisher_killed_mid_publish_is_replaced_and_the_publish_lands(
    web_daemon: Daemon,
) -> None:
    d = web_daemon
    old_titles = d.titles()
    first = publisher_of(d)
    index, title, before = hold_next_publish(d)
    index.unlink()  # the held publisher stays blocked on the FIFO it opened
    os.kill(first, signal.SIGKILL)
    wait_for("the publish to land", lambda: d.health()[1]["last_publish"] != before,
             timeout=20.0)  # fmt: skip
    assert "publisher process ended mid-publish (killed by signal 9); starting a new one" \
        in d.logs()  # fmt: skip
    code, body = d.health()
    assert code == 200 and body["publish_error"] is None
    assert index.is_file() and title in html.unescape(index.read_text(encoding="utf-8"))
    assert old_titles | {title} <= d.titles()
    assert not running(first)
    second = publisher_of(d)
    assert second != first
    add_seed(d.seeds, 2)  # and the new publisher goes on publishing
    wait_for("a later publish", lambda: len(d.titles()) == len(old_titles) + 2, timeout=15.0)
    rc, _ = d.stop(signal.SIGTERM)
    assert rc == 0, d.logs()
    assert not running(second)


def test_a_daemon_killed_with_kill_9_leaves_no_publisher(tmp_path: Path) -> None:
    d = Daemon(tmp_path).start()
    publisher = publisher_of(d)
    rc, _ = d.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    wait_for("the publisher to end with the daemon", lambda: not running(publisher))
