"""Published files shared through PostgreSQL (aggregator/sharedout.py): real publishes into
real folders, the real server on 127.0.0.1, the tests' own PostgreSQL server. Two nodes
answer with the same bytes and validators, a publish reaches both, a node rides out a
database restart, and a publisher's folder and the table stay equal."""

from __future__ import annotations

import asyncio
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from aggregator.config import Config, load_config
from aggregator.pipeline import run_once
from aggregator.serve import FILE_MAX_BYTES, create_app
from aggregator.sharedout import MARKER, Mirror, SharedFiles, folder_files
from aggregator.store import Store
from tests.conftest import SEED_DOC
from tests.localserver import serve_in_thread
from tests.pgserver import PgServer
from tests.test_daemon import Daemon, add_seed, wait_for
from tests.test_regenerate import write_config

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
PATHS = ("/atom.xml", "/rss.xml", "/feed.json", "/index.html", "/opml.xml",
         "/sources/seeds/atom.xml")  # fmt: skip
SAME = ("etag", "last-modified", "content-type", "cache-control", "vary", "content-length")


class Site:
    """A config, its seeds and its PostgreSQL store: publishes real output into `out`."""

    def __init__(self, root: Path, url: str) -> None:
        write_config(root, state=url)
        shutil.copy(SEED_DOC, root / "seeds" / SEED_DOC.name)
        self.config: Config = load_config(root / "config.yaml")
        self.out = self.config.output_dir
        self.seeds = root / "seeds"

    def publish(self, n: int | None = None, *, out: Path | None = None) -> list[str]:
        """Add seed `n` (if given) and run once, publishing as a node does: into the folder
        (`out` for a node with another one) and the database."""
        if n is not None:
            add_seed(self.seeds, n)
        config = replace(self.config, output_dir=out or self.out)
        assert config.state_url is not None
        with Store.open(config.state_url) as store:
            return list(run_once(config, store, None, NOW).feeds_written)


@contextmanager
def node(url: str, root: Path) -> Iterator[str]:
    """One node's HTTP server (the real ASGI app on 127.0.0.1) serving from the database."""
    app = create_app(root / "not-used")
    shared = SharedFiles(url, app)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning", ws="none"))

    async def main() -> None:
        await shared.start()
        try:
            await server.serve(sockets=[sock])
        finally:
            await shared.close()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    wait_for("the node to listen", lambda: server.started)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def shown(node_url: str) -> dict[str, Any]:
    """What a node's /healthz says of its published files."""
    found: dict[str, Any] = httpx.get(node_url + "/healthz").json()["published_files"]
    return found


@pytest.fixture
def db(pg_server: PgServer) -> str:
    return pg_server.database("shared")


@pytest.fixture
def site(tmp_path: Path, db: str) -> Site:
    (tmp_path / "a").mkdir()
    return Site(tmp_path / "a", db)


def test_two_nodes_answer_with_the_same_bytes_and_validators(
    db: str, site: Site, tmp_path: Path
) -> None:
    site.publish()
    with node(db, tmp_path) as a, node(db, tmp_path) as b:
        for path in PATHS:
            ra, rb = httpx.get(a + path), httpx.get(b + path)
            assert ra.status_code == rb.status_code == 200, path
            assert ra.content == rb.content == (site.out / path[1:]).read_bytes()
            assert {h: ra.headers.get(h) for h in SAME} == {h: rb.headers.get(h) for h in SAME}
            # a reader that fetched from A revalidates against B
            assert httpx.get(b + path, headers={"If-None-Match": ra.headers["etag"]}
                             ).status_code == 304  # fmt: skip
            since = {"If-Modified-Since": ra.headers["last-modified"]}
            assert httpx.get(b + path, headers=since).status_code == 304
        zipped = [httpx.get(u + "/atom.xml", headers={"Accept-Encoding": "gzip"}) for u in (a, b)]
        assert zipped[0].headers["etag"] == zipped[1].headers["etag"]
        assert zipped[0].headers["etag"].endswith('-gz"')
        assert zipped[0].headers["content-encoding"] == "gzip"
        assert zipped[0].content == (site.out / "atom.xml").read_bytes()  # httpx unzipped it
        browser = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
        pages = [httpx.get(u + "/atom.xml", headers=browser) for u in (a, b)]
        assert pages[0].headers["content-type"].startswith("text/html")
        assert pages[0].content == pages[1].content
        assert pages[0].headers["etag"] == pages[1].headers["etag"]
        assert shown(a)["generation"] == shown(b)["generation"] > 0
        head = httpx.head(b + "/atom.xml")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["etag"] == httpx.get(a + "/atom.xml").headers["etag"]
        assert httpx.get(b + "/").content == (site.out / "index.html").read_bytes()
        for bad in ("/../config.yaml", "/%2e%2e/config.yaml", "/" + MARKER, "/nope.xml"):
            assert httpx.get(b + bad).status_code == 404, bad
        assert httpx.post(b + "/atom.xml").status_code == 405


def test_a_publish_reaches_every_node(db: str, site: Site, tmp_path: Path) -> None:
    with node(db, tmp_path) as a, node(db, tmp_path) as b:
        assert httpx.get(a + "/atom.xml").status_code == 404  # nothing published yet
        site.publish()
        wait_for("the first publish", lambda: httpx.get(b + "/atom.xml").status_code == 200)
        held = {u: httpx.get(u + "/atom.xml").headers["etag"] for u in (a, b)}
        index = httpx.get(a + "/index.html").headers["etag"]
        written = site.publish(1)
        assert "atom.xml" in written and "index.html" in written

        def served(u: str) -> bool:
            r = httpx.get(u + "/atom.xml", headers={"If-None-Match": held[u]})
            return r.status_code == 200 and "İzmir'de 1. gün" in r.text

        wait_for("node A to serve the publish", lambda: served(a), timeout=5)
        wait_for("node B to serve the publish", lambda: served(b), timeout=5)
        # the index changed in the same publish: served with it, never the old one
        for u in (a, b):
            assert httpx.get(u + "/index.html").headers["etag"] != index
            assert httpx.get(u + "/atom.xml").content == (site.out / "atom.xml").read_bytes()


def test_a_node_serves_what_it_holds_while_the_database_is_down(
    pg_server: PgServer, db: str, site: Site, tmp_path: Path
) -> None:
    site.publish()
    with node(db, tmp_path) as a:
        before = httpx.get(a + "/atom.xml")
        pg_server.stop()
        try:
            again = httpx.get(a + "/atom.xml", headers={"If-None-Match": before.headers["etag"]})
            assert again.status_code == 304
            assert httpx.get(a + "/atom.xml").content == before.content
            lost = httpx.get(a + "/sources/seeds/rss.xml")  # not held, and nobody to ask
            assert lost.status_code == 503 and lost.headers["retry-after"]
            wait_for("/healthz to tell", lambda: shown(a)["database_unreachable_since"])
            assert shown(a)["database_unreachable_for"] >= 0
        finally:
            pg_server.start()
        site.publish(1)

        def caught_up() -> bool:
            return "İzmir'de 1. gün" in httpx.get(a + "/atom.xml").text

        wait_for("the node to catch up after the restart", caught_up, timeout=15)
        assert (
            shown(a)["database_unreachable_since"] is shown(a)["database_unreachable_for"] is None
        )
        assert httpx.get(a + "/sources/seeds/rss.xml").status_code == 200


def test_a_new_publisher_folder_is_brought_up_to_the_table(
    db: str, site: Site, tmp_path: Path
) -> None:
    site.publish()
    site.publish(1)
    other = tmp_path / "b-out"
    other.mkdir()
    (other / "robots.txt").write_text("User-agent: *\n")  # put there by hand
    site.publish(out=other)  # a node taking over publishing, with a folder of its own
    with psycopg.connect(db) as conn:
        (generation,) = conn.execute("SELECT generation FROM output_generation").fetchone() or ()
    names = set(folder_files(site.out))
    assert set(folder_files(other)) == names | {"robots.txt"}
    for name in names:
        assert (other / name).read_bytes() == (site.out / name).read_bytes(), name
    assert (other / MARKER).read_text().split() == [str(generation), "in-step"]
    with node(db, tmp_path) as a:
        assert httpx.get(a + "/robots.txt").text == "User-agent: *\n"
    # the first folder is behind now (the robots.txt upload): it gets the file too
    site.publish()
    assert (site.out / "robots.txt").is_file()


def test_files_removed_from_the_folder_leave_the_table(db: str, site: Site, tmp_path: Path) -> None:
    site.publish()
    with node(db, tmp_path) as a:
        assert httpx.get(a + "/opml-all.xml").status_code == 200
        (site.out / "opml-all.xml").unlink()
        with psycopg.connect(db, autocommit=True) as conn:  # the hourly look is due
            conn.execute("UPDATE output_generation SET swept = NULL")
        site.publish()
        with psycopg.connect(db) as conn:
            paths = {r[0] for r in conn.execute("SELECT path FROM output_files")}
        assert paths == set(folder_files(site.out))
        wait_for("the node to drop it", lambda: httpx.get(a + "/opml-all.xml").status_code == 404,
                 timeout=10)  # fmt: skip


def test_a_publish_cut_off_before_its_commit_is_stored_by_the_next(
    db: str, site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    site.publish()

    def killed(*_: object) -> None:
        raise KeyboardInterrupt  # the process dies here: files written, none stored

    with monkeypatch.context() as m:
        m.setattr(Mirror, "commit", killed)
        with pytest.raises(KeyboardInterrupt):
            site.publish(1)
    assert (site.out / MARKER).read_text().split()[1] == "publishing"
    site.publish()
    with psycopg.connect(db) as conn:
        rows = dict(conn.execute("SELECT path, body FROM output_files").fetchall())
    assert set(rows) == set(folder_files(site.out))
    for name, body in rows.items():
        assert bytes(body) == (site.out / name).read_bytes(), name
    assert "İzmir'de 1. gün" in bytes(rows["atom.xml"]).decode()


def test_a_node_never_mixes_two_publishes(db: str, site: Site, tmp_path: Path) -> None:
    """A file first asked for after a newer publish than the node serves makes the node
    take that publish whole first (here the node hears of no publish by itself)."""
    site.publish()
    app = create_app(tmp_path / "not-used")
    shared = SharedFiles(url=db, server=app)
    app.use(shared)  # no listener: only requests make this node look at the database

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
            old = (await c.get("/atom.xml")).content
            site.publish(1)  # the combined feed and the source's feed both change
            assert (await c.get("/atom.xml")).content == old  # still the publish it serves
            source = await c.get("/sources/seeds/atom.xml")  # not held: from the new one
            assert "İzmir'de 1. gün" in source.text
            # ...so the held combined feed moved with it, never older than the source's
            assert (await c.get("/atom.xml")).content == (site.out / "atom.xml").read_bytes()
        await shared.close()

    asyncio.run(scenario())


def test_a_file_over_the_bound_is_fetched_for_each_request_never_held(
    db: str, site: Site, tmp_path: Path
) -> None:
    big = b"<p>" + b"x" * FILE_MAX_BYTES + b"</p>"
    (site.out).mkdir(parents=True, exist_ok=True)
    (site.out / "big.html").write_bytes(big)  # put there by hand: stored with the output
    site.publish()
    app = create_app(tmp_path / "not-used")
    shared = SharedFiles(url=db, server=app)

    async def scenario() -> None:
        await shared.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://node") as c:
            for _ in range(2):
                r = await c.get("/big.html")
                assert r.status_code == 200 and r.content == big
            assert "/big.html" not in app.held()
            assert "/atom.xml" in app.held()  # preloaded at start
        await shared.close()

    asyncio.run(scenario())


NODE_CONFIG = """\
site:
  title: Test Haberleri
  url: http://127.0.0.1/
output:
  dir: feeds
state: {url}
server:
  host: 127.0.0.1
  port: 0
log_level: info
fetch:
  block_private: false  # the test's feed server is on 127.0.0.1
sources:
  - name: tgrt
    type: seeds
    path: {seeds}
    every: 1s
  - name: web
    type: feed
    url: {base}/rss.xml
    every: 1s
"""
SHARED = ("/atom.xml", "/categories/gundem/atom.xml", "/index.html")


@contextmanager
def two_nodes(url: str, tmp_path: Path) -> Iterator[tuple[Path, dict[str, Daemon]]]:
    """Daemons `a` and `b` on the database `url`, both reading one seed folder (yielded
    with them) and one local feed; killed on the way out if still running."""
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    shutil.copy(SEED_DOC, seeds / SEED_DOC.name)
    with serve_in_thread() as web:
        daemons: dict[str, Daemon] = {}
        try:
            for name in "ab":
                (tmp_path / name).mkdir()
                (tmp_path / name / "config.yaml").write_text(
                    NODE_CONFIG.format(url=url, seeds=seeds, base=web.base), encoding="utf-8"
                )
                daemons[name] = Daemon(tmp_path / name).start()
            yield seeds, daemons
        finally:
            for d in daemons.values():
                if d.proc and d.proc.poll() is None:
                    d.proc.kill()
                    d.proc.wait()


def test_two_daemons_on_one_database_serve_the_same_bytes(
    pg_server: PgServer, tmp_path: Path
) -> None:
    with two_nodes(pg_server.database("nodes"), tmp_path) as (seeds, daemons):
        a, b = (d.url() for d in daemons.values())

        def answers() -> list[tuple[bytes, str, str]] | None:
            got = []
            for node_url, path in ((n, p) for p in SHARED for n in (a, b)):
                r = httpx.get(node_url + path[1:])
                if r.status_code != 200:
                    return None
                got.append((r.content, r.headers["etag"], r.headers["last-modified"]))
            return got if all(got[i] == got[i + 1] for i in range(0, len(got), 2)) else None

        first = wait_for("both nodes to serve the same bytes", answers, timeout=30)
        for i, path in enumerate(SHARED):
            _, etag, modified = first[2 * i]
            assert httpx.get(b + path[1:], headers={"If-None-Match": etag}).status_code == 304
            since = {"If-Modified-Since": modified}
            assert httpx.get(a + path[1:], headers=since).status_code == 304
        title = add_seed(seeds, 1)

        def updated() -> list[tuple[bytes, str, str]] | None:
            now = answers()
            return now if now and title.encode() in now[0][0] else None

        later = wait_for("both nodes to serve the next publish", updated, timeout=15)
        assert later[0][1] != first[0][1]
        assert daemons["a"].stop()[0] == 0  # SIGTERM: a clean exit; the other serves on
        assert httpx.get(b + "atom.xml").content == later[0][0]


def test_the_publisher_killed_another_node_publishes_and_serves_the_same_bytes(
    pg_server: PgServer, tmp_path: Path
) -> None:
    with two_nodes(pg_server.database("failover"), tmp_path) as (seeds, daemons):
        wait_for("a publish", lambda: all(d.health()[0] == 200 for d in daemons.values()),
                 timeout=30)  # fmt: skip
        # the node holding the publisher lock (with one node alone publishing), else a
        names = {d.health()[1].get("node"): key for key, d in daemons.items()}
        killed_key = names.get(daemons["a"].health()[1].get("publisher"), "a")
        killed = daemons[killed_key]
        survivor = daemons["b" if killed_key == "a" else "a"]
        assert killed.proc is not None
        killed.proc.kill()
        killed.proc.wait()
        title = add_seed(seeds, 1)

        def served() -> bytes | None:
            r = httpx.get(survivor.url("/atom.xml"))
            return r.content if title.encode() in r.content else None

        body = wait_for("the survivor to publish and serve", served, timeout=30)
        # its own folder became the complete output before it published into it
        assert (survivor.root / "feeds" / "atom.xml").read_bytes() == body
        index = httpx.get(survivor.url("/index.html"))
        assert index.content == (survivor.root / "feeds" / "index.html").read_bytes()
