"""`aggregator run` as a real subprocess on a free port: feeds served and kept fresh, 304s,
no way out of the output dir, /healthz, the lock, SIGTERM, kill -9 and restart, and real
feed readers (feedparser; newsboat where installed)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import feedparser
import httpx
import pytest

from tests.conftest import ISTANBUL, SEED_DOC
from tests.seedmaker import tgrt_seed

REPO = Path(__file__).resolve().parent.parent
T = TypeVar("T")
pytestmark = pytest.mark.slow

CONFIG = """\
site:
  title: Test Haberleri
  url: http://127.0.0.1/
output:
  dir: feeds
state: state/aggregator.sqlite3
server:
  host: 127.0.0.1
  port: 0
log_level: info
sources:
  - name: tgrt
    type: seeds
    path: seeds
    every: 1s
"""


def wait_for(what: str, check: Callable[[], T | None], timeout: float = 10.0) -> T:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def add_seed(folder: Path, n: int) -> str:
    """Write seed file `n` atomically (as a scraper should) and return its title."""
    title = f"İzmir'de {n}. gün: kurtarma çalışmaları sürüyor"
    giris = datetime(2026, 1, 2, 8, 0, tzinfo=ISTANBUL) + timedelta(minutes=7 * n)
    body = (f"Haberin {n}. metni burada.", "SON DURUM", "Açıklama bekleniyor.")
    text = tgrt_seed(title=title, spot=f"Bölgede {n}. gün çalışmalar devam ediyor.",
                     giris=giris, guncelleme=giris + timedelta(minutes=5), body=body)  # fmt: skip
    tmp = folder / f".{n:03d}.txt.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / f"{n:03d}_test.txt")
    return title


class Daemon:
    """One `aggregator run` subprocess with its own config, seeds, state and output."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.seeds = root / "seeds"
        self.config = root / "config.yaml"
        self.log = root / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        if not self.config.exists():
            self.seeds.mkdir()
            shutil.copy(SEED_DOC, self.seeds / SEED_DOC.name)
            self.config.write_text(CONFIG, encoding="utf-8")

    def start(self, *options: str) -> Daemon:
        offset = self.log.stat().st_size if self.log.exists() else 0
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "aggregator", "run", "--config", str(self.config),
                 *options],
                cwd=REPO, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip

        def port() -> int | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.logs()}")
            m = re.search(r"at http://127\.0\.0\.1:(\d+)/", self.logs()[offset:])
            return int(m.group(1)) if m else None

        self.port = wait_for("the daemon to listen", port)
        # on a fresh store, after every source ran once (schedule.FIRST_PASS_MAX_WAIT: 10 s)
        wait_for("a first publish", lambda: self.health()[0] == 200, timeout=20.0)
        return self

    def logs(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            r = httpx.get(self.url("/healthz"), timeout=5)
        except httpx.TransportError:
            return 0, {}
        return r.status_code, r.json()

    def feed(self) -> Any:
        parsed = feedparser.parse(self.url("/atom.xml"))
        assert parsed.get("status") in (200, 304), parsed.get("bozo_exception")
        return parsed

    def titles(self) -> set[str]:
        return {e.title for e in self.feed().entries}

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> tuple[int, float]:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        rc = self.proc.wait(timeout=timeout)
        return rc, time.monotonic() - started

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "aggregator", *args, "--config", str(self.config)],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    d = Daemon(tmp_path).start()
    wait_for("the seed document in the feed", lambda: len(d.feed().entries) == 1)
    yield d
    if d.proc and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def raw_status(port: int, target: str) -> int:
    """Send the request target byte for byte (httpx would normalize dot segments)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = s.recv(64).decode("latin-1")
    return int(head.split()[1])


def test_serves_the_feed_and_a_new_seed_file_shows_up(daemon: Daemon) -> None:
    first = daemon.feed()
    assert first.version == "atom10" and first.feed.title == "Test Haberleri"
    assert "Umerov" in first.entries[0].title
    started = time.monotonic()
    title = add_seed(daemon.seeds, 1)
    wait_for("the new seed file in the served feed", lambda: title in daemon.titles())
    assert time.monotonic() - started < 5.0  # every: 1s, plus the 1 s publish debounce
    rss = httpx.get(daemon.url("/rss.xml"))
    assert rss.headers["content-type"] == "application/rss+xml; charset=utf-8"

    def in_rss() -> bool:  # rss.xml is written just after atom.xml
        return title in {e.title for e in feedparser.parse(daemon.url("/rss.xml")).entries}

    wait_for("the new seed file in rss.xml", in_rss)
    index = httpx.get(daemon.url("/"))
    assert index.status_code == 200 and index.headers["content-type"].startswith("text/html")
    assert "atom.xml" in index.text
    assert re.search(r"tgrt: 2 new|tgrt: 1 new", daemon.logs())
    assert "feeds published" in daemon.logs()


def test_conditional_get_gets_304(daemon: Daemon) -> None:
    full = httpx.get(daemon.url("/atom.xml"))
    assert full.status_code == 200
    assert full.headers["content-type"] == "application/atom+xml; charset=utf-8"
    etag = full.headers["etag"]
    again = httpx.get(daemon.url("/atom.xml"), headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    modified = full.headers["last-modified"]
    since = httpx.get(daemon.url("/atom.xml"), headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    zipped = httpx.get(daemon.url("/atom.xml"), headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip" and zipped.content == full.content
    head = httpx.head(daemon.url("/atom.xml"))
    assert head.status_code == 200 and head.content == b""
    # feedparser sends the validators back itself, as a feed reader does
    again_fp = feedparser.parse(daemon.url("/atom.xml"), etag=etag)
    assert again_fp.status == 304


def test_nothing_outside_the_output_dir_is_served(daemon: Daemon) -> None:
    out = daemon.root / "feeds"
    (out / "leak.yaml").symlink_to(daemon.config)
    (out / "outside").symlink_to(daemon.root)
    for target in ("/../config.yaml", "/%2e%2e/config.yaml", "/%2E%2E/%2E%2E/etc/passwd",
                   "/..%2fconfig.yaml", "/articles/../../config.yaml", "/leak.yaml",
                   "/outside/config.yaml", "/outside/state/aggregator.sqlite3",
                   "/articles/", "/state/aggregator.sqlite3", "/.atom.xml.tmp"):  # fmt: skip
        assert raw_status(daemon.port, target) == 404, target
    assert raw_status(daemon.port, "/atom.xml") == 200


def test_healthz_status_and_the_lock(daemon: Daemon) -> None:
    code, body = daemon.health()
    assert code == 200 and body["status"] == "ok" and body["last_publish"]
    [source] = body["sources"]
    assert source["name"] == "tgrt" and source["last_success"] and source["next_due"]
    assert source["last_error"] is None and source["failures"] == 0

    status = daemon.cli("status")
    assert status.returncode == 0, status.stderr
    assert "tgrt (seeds, every 1s): 1 articles" in status.stdout
    assert "last success: 20" in status.stdout and "next due:" in status.stdout

    regen = daemon.cli("regenerate")
    assert regen.returncode == 4
    assert "another aggregator run (daemon or regenerate) is using this state" in regen.stderr
    second = daemon.cli("run")
    assert second.returncode == 4 and "another aggregator run" in second.stderr


def test_a_failing_source_shows_in_healthz_and_backs_off(daemon: Daemon) -> None:
    shutil.rmtree(daemon.seeds)

    def failing() -> dict[str, Any] | None:
        code, body = daemon.health()
        source = body["sources"][0]
        return body if code == 200 and source["failures"] >= 1 else None

    body = wait_for("the seed folder failure in /healthz", failing)
    assert body["status"] == "degraded" and "does not exist" in body["sources"][0]["last_error"]
    assert "source tgrt: failed (1 in a row" in daemon.logs()


def test_sigterm_exits_0_quickly_and_releases_the_lock(daemon: Daemon) -> None:
    add_seed(daemon.seeds, 2)
    wait_for("the new file merged", lambda: daemon.logs().count("tgrt: 1 new") == 2)
    rc, seconds = daemon.stop(signal.SIGTERM)  # within the publish debounce: published on exit
    assert rc == 0 and seconds < 10, daemon.logs()
    assert "SIGTERM received" in daemon.logs() and "stopped" in daemon.logs()
    feed = feedparser.parse(str(daemon.root / "feeds" / "atom.xml"))
    assert len(feed.entries) == 2
    regen = daemon.cli("regenerate")
    assert regen.returncode == 0, regen.stderr


def test_sigint_exits_0(daemon: Daemon) -> None:
    rc, seconds = daemon.stop(signal.SIGINT)
    assert rc == 0 and seconds < 10, daemon.logs()


def test_kill_9_then_restart_keeps_every_article(daemon: Daemon) -> None:
    for n in range(3, 6):
        add_seed(daemon.seeds, n)
    wait_for("four articles", lambda: len(daemon.feed().entries) == 4)
    before = {e.id: e.title for e in daemon.feed().entries}
    add_seed(daemon.seeds, 6)  # may or may not be merged before the kill
    rc, _ = daemon.stop(signal.SIGKILL)
    assert rc == -signal.SIGKILL
    with sqlite3.connect(daemon.root / "state" / "aggregator.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    daemon.start()
    wait_for("five articles after the restart", lambda: len(daemon.feed().entries) == 5)
    after = {e.id: e.title for e in daemon.feed().entries}
    assert before.items() <= after.items()
    assert daemon.stop()[0] == 0


@pytest.mark.skipif(shutil.which("newsboat") is None,
                    reason="newsboat is not installed (apt-get install newsboat)")  # fmt: skip
def test_newsboat_reads_the_served_feed(daemon: Daemon, tmp_path: Path) -> None:
    add_seed(daemon.seeds, 7)
    wait_for("two articles", lambda: len(daemon.feed().entries) == 2)
    expected = {e.id: e.title for e in daemon.feed().entries}
    work = tmp_path / "newsboat"
    work.mkdir()
    url = daemon.url("/atom.xml")
    (work / "urls").write_text(url + "\n")
    (work / "config").write_text(f'error-log "{work / "error.log"}"\ndownload-timeout 20\n')
    subprocess.run(
        ["newsboat", "-u", str(work / "urls"), "-c", str(work / "cache.db"),
         "-C", str(work / "config"), "-x", "reload"],
        env=dict(os.environ, HOME=str(work)), capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    errors = (work / "error.log").read_text() if (work / "error.log").exists() else ""
    assert not errors.strip(), errors
    with sqlite3.connect(work / "cache.db") as db:
        rows = db.execute("SELECT guid, title FROM rss_item WHERE feedurl = ?", (url,)).fetchall()
    assert dict(rows) == expected


def newsboat_items(work: Path, opml: str) -> dict[str, set[str]]:
    """Subscribe a fresh newsboat through an OPML file, reload every feed, and return the
    titles newsboat shows per feed URL."""
    work.mkdir()
    (work / "subscriptions.opml").write_text(opml, encoding="utf-8")
    (work / "urls").write_text("")
    (work / "config").write_text(f'error-log "{work / "error.log"}"\ndownload-timeout 20\n')
    env = dict(os.environ, HOME=str(work))
    base = ["newsboat", "-u", str(work / "urls"), "-c", str(work / "cache.db"),
            "-C", str(work / "config")]  # fmt: skip
    subprocess.run([*base, "-i", str(work / "subscriptions.opml")], env=env,
                   capture_output=True, timeout=60, check=True)  # fmt: skip
    subprocess.run([*base, "-x", "reload"], env=env, capture_output=True, timeout=60, check=True)
    errors = (work / "error.log").read_text() if (work / "error.log").exists() else ""
    assert not errors.strip(), errors
    shown: dict[str, set[str]] = {}
    with sqlite3.connect(work / "cache.db") as db:
        for url, title in db.execute("SELECT feedurl, title FROM rss_item WHERE deleted = 0"):
            shown.setdefault(url, set()).add(title)
    return shown


@pytest.mark.skipif(shutil.which("newsboat") is None,
                    reason="newsboat is not installed (apt-get install newsboat)")  # fmt: skip
def test_newsboat_subscribed_through_opml_shows_the_articles_in_the_combined_feed(
    daemon: Daemon, tmp_path: Path
) -> None:
    """newsboat keeps one item per guid across feeds: with source and category feeds in
    opml.xml, the combined feed came out empty."""
    add_seed(daemon.seeds, 8)
    wait_for("two articles", lambda: len(daemon.feed().entries) == 2)
    titles = daemon.titles()
    opml = httpx.get(daemon.url("/opml.xml")).text
    shown = newsboat_items(tmp_path / "newsboat", opml.replace("http://127.0.0.1/", daemon.url()))
    assert shown.get(daemon.url("/atom.xml")) == titles, shown


def test_a_busy_port_is_one_clear_error(tmp_path: Path) -> None:
    d = Daemon(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        d.config.write_text(CONFIG.replace("port: 0", f"port: {port}"), encoding="utf-8")
        r = d.cli("run")
    assert r.returncode == 3
    assert f"server.port: cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "state").exists()  # no empty state store left behind


def test_a_slow_web_source_does_not_hold_up_the_seed_folder(tmp_path: Path) -> None:
    """The network runs off the store's thread: a feed that takes 12 s to answer must not
    delay a new seed file (every: 1s) reaching the served feed."""
    from tests.localserver import Reply, serve_in_thread

    with serve_in_thread(fixtures=False) as server:
        server.route(
            "/stuck.xml",
            Reply(
                body=b"<rss version='2.0'><channel/></rss>",
                content_type="application/rss+xml",
                delay=12.0,
            ),
        )
        d = Daemon(tmp_path)  # writes the seed folder and the default config
        d.config.write_text(
            CONFIG + f"  - name: stuck\n    type: feed\n    url: {server.base}/stuck.xml\n"
            "    every: 1s\n",
            encoding="utf-8",
        )  # fmt: skip
        d.start()
        try:
            wait_for("the seed document", lambda: len(d.feed().entries) == 1)
            time.sleep(1.5)  # the stuck source's first fetch is now in flight
            started = time.monotonic()
            title = add_seed(d.seeds, 1)
            wait_for("the new seed file", lambda: title in d.titles(), timeout=8.0)
            assert time.monotonic() - started < 8.0
            assert server.hits["/stuck.xml"] >= 1
        finally:
            rc, _ = d.stop()
            assert rc == 0
