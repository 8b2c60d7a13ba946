"""A reader subscribed while a newsroom edits: the real newsboat, its cache kept between
reloads, reads `atom.xml` after each of several `regenerate` runs over a revision stream
(seed files written, renamed and deleted; the site's own RSS feed carrying some stories
with their URLs). It must never show two items for one story, and each item's title must
be the newest revision's."""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests import revstream
from tests.localserver import XML, App, Reply, Request, serve_in_thread
from tests.reliability.helpers import regenerate, write_config

pytestmark = pytest.mark.skipif(
    shutil.which("newsboat") is None, reason="newsboat is not installed (apt-get install newsboat)"
)


def newsboat_items(work: Path, url: str) -> list[tuple[str, str]]:
    """Reload `url` with newsboat (state in `work`, kept between calls): (guid, title)."""
    (work / "urls").write_text(url + "\n")
    (work / "config").write_text(f'error-log "{work / "error.log"}"\ndownload-timeout 20\n')
    (work / "error.log").write_text("")
    subprocess.run(
        ["newsboat", "-u", str(work / "urls"), "-c", str(work / "cache.db"),
         "-C", str(work / "config"), "-x", "reload"],
        env=dict(os.environ, HOME=str(work)), capture_output=True, timeout=60, check=True,
    )  # fmt: skip
    errors = (work / "error.log").read_text().strip()
    assert not errors, errors
    with sqlite3.connect(work / "cache.db") as db:
        return db.execute(
            "SELECT guid, title FROM rss_item WHERE feedurl = ? AND deleted = 0", (url,)
        ).fetchall()


@pytest.mark.parametrize("seed", [3, 11])
def test_newsboat_sees_one_item_per_story_with_the_newest_title(tmp_path: Path, seed: int) -> None:
    rnd = random.Random(seed)
    events = revstream.stream(rnd, stories=6, events=36)
    feed_items: dict[int, revstream.Revision] = {}
    app = App()

    def rss(_r: Request) -> Reply:
        items = "".join(r.rss_item() for _, r in sorted(feed_items.items()))
        body = f"<rss version='2.0'><channel><title>Site</title>{items}</channel></rss>"
        return Reply(body=body.encode("utf-8"), content_type=XML)

    def atom(_r: Request) -> Reply:
        return Reply(body=(tmp_path / "out" / "atom.xml").read_bytes(), content_type=XML)

    app.route("/rss.xml", rss)
    app.route("/atom.xml", atom)
    work = tmp_path / "newsboat"
    work.mkdir()
    with serve_in_thread(app, fixtures=False):
        cfg = write_config(tmp_path, sources=(
            f"  - {{name: site, type: feed, url: '{app.base}/rss.xml', every: 1s}}\n"
        ))  # fmt: skip
        seeds = tmp_path / "seeds"
        cuts = sorted(rnd.sample(range(1, len(events)), 7)) + [len(events)]
        start = 0
        for cut in cuts:
            for e in events[start:cut]:
                if e.action == "write":
                    assert e.revision is not None
                    (seeds / e.name).write_text(e.revision.seed_text(), encoding="utf-8")
                elif e.action == "delete":
                    (seeds / e.name).unlink()
                else:
                    assert e.revision is not None
                    feed_items[e.revision.story] = e.revision
            start = cut
            done = regenerate(cfg)
            assert done.returncode == 0, done.stderr
            items = newsboat_items(work, f"{app.base}/atom.xml")
            want = revstream.expected(events[:cut])
            assert len(items) == len({guid for guid, _ in items}) == len(want), items
            assert sorted(title for _, title in items) == sorted(t for t, _ in want.values())
