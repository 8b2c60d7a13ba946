"""The Starlette app on its own: types, validators, 304s, gzip, HEAD, and no way out of the
output directory. (The daemon tests cover the same over a real socket.)"""

from __future__ import annotations

import asyncio
import gzip
import html
import os
import random
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import httpx
import pytest

from aggregator.config import SourceConfig
from aggregator.model import SourceState
from aggregator.schedule import first_due, next_state
from aggregator.serve import FeedServer, content_type, create_app
from tests.conftest import DATA, ISTANBUL, SEED_DOC
from tests.test_regenerate import regen, write_config

ATOM = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<feed>' + b"<entry>Haber</entry>" * 100 + b"</feed>"
)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    out = tmp_path / "feeds"
    (out / "articles").mkdir(parents=True)
    (out / "atom.xml").write_bytes(ATOM)
    (out / "rss.xml").write_bytes(b"<rss/>")
    (out / "index.html").write_bytes("<p>Haber Akışı</p>".encode())
    (out / "articles" / "a.html").write_bytes(b"<p>a</p>")
    (out / ".atom.xml.x1.tmp").write_bytes(b"half")
    (tmp_path / "config.yaml").write_text("secret: yes\n")
    (out / "leak.xml").symlink_to(tmp_path / "config.yaml")
    (out / "up").symlink_to(tmp_path)
    os.mkfifo(out / "pipe.xml")  # opening it to read would wait for a writer forever
    return out


class Client:
    """httpx over ASGI, to the app itself (no server)."""

    def __init__(self, app: FeedServer) -> None:
        self.app = app

    def request(self, method: str, path: str, headers: dict[str, str] | None) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.request(method, path, headers=headers)

        return asyncio.run(go())

    def get(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("GET", path, headers)

    def head(self, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
        return self.request("HEAD", path, headers)


@pytest.fixture
def client(site: Path) -> Client:
    def health() -> tuple[int, dict[str, Any]]:
        return 503, {"status": "unavailable"}

    return Client(create_app(site, health))


def test_content_types_carry_charset(client: Client) -> None:
    assert client.get("/atom.xml").headers["content-type"] == "application/atom+xml; charset=utf-8"
    assert client.get("/rss.xml").headers["content-type"] == "application/rss+xml; charset=utf-8"
    index = client.get("/")
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    assert "Haber Akışı" in index.text
    assert client.get("/articles/a.html").status_code == 200
    assert content_type("feed.json") == "application/feed+json; charset=utf-8"
    assert content_type("subscriptions.opml").startswith("text/x-opml")
    assert content_type("opml.xml").startswith("text/x-opml")
    assert content_type("style.xsl").startswith("text/xsl")


BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
READER = {"Accept": "application/atom+xml,application/rss+xml,application/xml;q=0.9"}


@pytest.fixture
def published(tmp_path: Path) -> Path:
    """A real published site: the seed document (1 January) and a noisy scrape (5 March)."""
    cfg = write_config(tmp_path)
    shutil.copy(SEED_DOC, tmp_path / "seeds" / SEED_DOC.name)
    shutil.copy(DATA / "layouts" / "tgrt_noisy.txt", tmp_path / "seeds")
    assert regen(cfg) == 0
    return tmp_path / "out"


def test_a_browser_gets_an_html_view_of_each_feed(published: Path) -> None:
    client = Client(create_app(published, timezone=ISTANBUL))
    for path in ("/atom.xml", "/rss.xml", "/categories/gundem/atom.xml"):
        feed = feedparser.parse((published / path.lstrip("/")).read_bytes())
        shown = client.get(path, BROWSER)
        assert shown.status_code == 200
        assert shown.headers["content-type"] == "text/html; charset=utf-8"
        assert "Accept" in shown.headers["vary"]
        page = shown.text
        assert "<script" not in page and "xml-stylesheet" not in page
        assert f'value="http://127.0.0.1:8080{path}"' in page  # the subscribe box
        positions = [page.index(html.escape(e.title)) for e in feed.entries]
        newest_first = sorted(feed.entries, key=lambda e: e.published_parsed, reverse=True)
        assert [page.index(html.escape(e.title)) for e in newest_first] == sorted(positions)
        assert re.search(r"\d{1,2} (Ocak|Mart) 2026 \w+ \d\d:\d\d", page)  # Turkish dates
        assert "&lt;p&gt;" not in page and "<p><p>" not in page
        # readers keep getting the feed itself, with its own validators
        raw = client.get(path, READER)
        assert raw.headers["content-type"].startswith(("application/atom+xml",
                                                        "application/rss+xml"))  # fmt: skip
        assert raw.content == (published / path.lstrip("/")).read_bytes()
        assert raw.headers["etag"] != shown.headers["etag"]
        again = client.get(path, {**BROWSER, "If-None-Match": shown.headers["etag"]})
        assert again.status_code == 304
        assert (
            client.get(path, {**READER, "If-None-Match": shown.headers["etag"]}).status_code == 200
        )
    assert "Perşembe" in client.get("/atom.xml", BROWSER).text  # 1 Ocak 2026 Perşembe
    # a reader that also takes HTML, below its feed types, still gets the feed
    picky = {"Accept": "application/atom+xml, application/rss+xml;q=0.9, text/html;q=0.5"}
    assert client.get("/atom.xml", picky).headers["content-type"].startswith("application/atom")
    assert client.get("/atom.xml", {"Accept": "*/*"}).content.startswith(b"<?xml")


def test_conditional_get_and_head(client: Client) -> None:
    first = client.get("/atom.xml", headers={"Accept-Encoding": "identity"})
    assert first.status_code == 200 and first.content == ATOM
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["cache-control"] == "public, max-age=300"
    again = client.get("/atom.xml", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"]
    since = client.get("/atom.xml", headers={"If-Modified-Since": modified})
    assert since.status_code == 304
    other = client.get("/atom.xml", headers={"If-None-Match": '"nope"'})
    assert other.status_code == 200
    head = client.head("/atom.xml", headers={"Accept-Encoding": "identity"})
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(ATOM))


def test_gzip_when_asked_with_its_own_etag(client: Client) -> None:
    plain = client.get("/atom.xml", headers={"Accept-Encoding": "identity"})
    zipped = client.get("/atom.xml", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.headers["vary"] == "Accept-Encoding, Accept"
    assert zipped.content == ATOM  # httpx decodes it
    assert zipped.headers["etag"] != plain.headers["etag"]
    assert int(zipped.headers["content-length"]) < len(ATOM)
    assert gzip.decompress(gzip.compress(ATOM)) == ATOM
    for tag in (zipped.headers["etag"], plain.headers["etag"]):
        r = client.get("/atom.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": tag})
        assert r.status_code == 304
    refused = client.get("/atom.xml", headers={"Accept-Encoding": "gzip;q=0"})
    assert "content-encoding" not in refused.headers


def test_a_changed_file_gets_a_new_etag(client: Client, site: Path) -> None:
    etag = client.get("/atom.xml").headers["etag"]
    tmp = site / "new.tmp"
    tmp.write_bytes(ATOM + b"\n")
    os.replace(tmp, site / "atom.xml")
    changed = client.get("/atom.xml", headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


@pytest.mark.parametrize(
    "path",
    ["/leak.xml", "/up/config.yaml", "/.atom.xml.x1.tmp", "/articles/", "/articles",
     "/nope.xml", "/%2e%2e/config.yaml", "/" + "a" * 300 + ".xml", "/atom.xml/x",
     "/pipe.xml"],
)  # fmt: skip
def test_nothing_outside_the_output_dir(client: Client, path: str) -> None:
    assert client.get(path).status_code == 404


def test_healthz_passes_the_status_through(client: Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 503 and r.json() == {"status": "unavailable"}
    assert r.headers["cache-control"] == "no-store"


SOURCE = SourceConfig(name="s", type="seeds", every=60.0, path=Path("."))
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_next_state_keeps_the_policy_due_time_jittered() -> None:
    rng = random.Random(1)
    asked = SourceState(name="s", failures=3, next_due=T0 + timedelta(hours=2))  # Retry-After
    later = next_state(asked, SOURCE, T0, rng)
    assert later.failures == 3
    assert later.next_due is not None
    assert T0 + timedelta(hours=2) <= later.next_due <= T0 + timedelta(hours=2, seconds=6)


def test_first_runs_are_staggered_and_saved_due_times_kept() -> None:
    rng = random.Random(1)
    fresh = SourceState(name="s")
    dues = [first_due(fresh, SOURCE, i, 4, T0, rng) for i in range(4)]
    assert dues == sorted(dues) and dues[0] < T0 + timedelta(seconds=1)
    assert dues[3] >= T0 + timedelta(seconds=45)
    saved = SourceState(name="s", next_due=T0 + timedelta(minutes=30))
    assert first_due(saved, SOURCE, 0, 1, T0, rng) == T0 + timedelta(minutes=30)


def test_a_publish_reloads_held_files_and_unchanged_ones_keep_answering_304(
    published: Path,
) -> None:
    # revalidate: never on its own, so only the publish notification can refresh the copy
    app = create_app(published, timezone=ISTANBUL, revalidate=3600.0)
    client = Client(app)
    gz = {"Accept-Encoding": "gzip"}
    before = {p: client.get(p, gz) for p in ("/atom.xml", "/rss.xml", "/opml.xml")}
    view = client.get("/atom.xml", {**BROWSER, **gz})
    shutil.copy(DATA / "layouts" / "tgrt_bodyonly.txt", published.parent / "seeds")
    assert regen(published.parent / "config.yaml") == 0  # rewrites what changed, atomically
    newest = feedparser.parse((published / "atom.xml").read_bytes()).entries
    assert len(newest) == 3

    asyncio.run(app.published([str(p.relative_to(published)) for p in published.rglob("*")]))

    for path in ("/atom.xml", "/rss.xml"):
        now = client.get(path, gz)
        assert now.content == (published / path.lstrip("/")).read_bytes()
        assert now.headers["etag"] != before[path].headers["etag"]
        stale = client.get(path, {**gz, "If-None-Match": before[path].headers["etag"]})
        assert stale.status_code == 200 and len(feedparser.parse(stale.content).entries) == 3
        fresh = client.get(path, {**gz, "If-None-Match": now.headers["etag"]})
        assert fresh.status_code == 304
    # the same bytes, however often rewritten, keep their ETag: still 304
    same = client.get("/opml.xml", {**gz, "If-None-Match": before["/opml.xml"].headers["etag"]})
    assert same.status_code == 304
    page = client.get("/atom.xml", {**BROWSER, **gz})
    assert page.headers["etag"] != view.headers["etag"]
    assert all(html.escape(e.title) in page.text for e in newest)


def test_without_a_notification_each_request_checks_the_disk(site: Path) -> None:
    client = Client(create_app(site))  # revalidate=0: the app on its own, as tests and tools use it
    assert client.get("/rss.xml").content == b"<rss/>"
    (site / "rss.xml").unlink()
    assert client.get("/rss.xml").status_code == 404
    (site / "rss.xml").write_bytes(b"<rss version='2.0'/>")
    assert client.get("/rss.xml").content == b"<rss version='2.0'/>"


def test_only_get_and_head_are_answered(client: Client) -> None:
    for method in ("POST", "PUT", "DELETE"):
        r = client.request(method, "/atom.xml", None)
        assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert client.head("/healthz").content == b""
    assert client.get("/metrics").status_code == 404  # no metrics given to this app
