"""The published site in a real headless browser (Debian's chromium): the index page, one
article page, the daemon's HTML view of a feed (no XSLT, so no deprecation banner), and
feed.xsl on a static host. Screenshots land in the test's tmp dir for a person to look at.
Skipped, with the reason, without chromium."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.cli import EXIT_OK
from aggregator.serve import create_app
from tests.conftest import DATA, ISTANBUL, SEED_DOC
from tests.localserver import XML, Reply, serve_in_thread
from tests.test_regenerate import regen, write_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (.ci/run installs Debian's chromium)"
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The published site, served by our own server (aggregator.serve), as `aggregator run`
    serves it: browsers get feeds as application/xml, so feed.xsl applies."""
    cfg = write_config(tmp_path)
    shutil.copy(SEED_DOC, tmp_path / "seeds" / SEED_DOC.name)
    shutil.copy(DATA / "layouts" / "tgrt_noisy.txt", tmp_path / "seeds")
    shutil.copy(DATA / "layouts" / "tgrt_bodyonly.txt", tmp_path / "seeds")  # no spot
    (tmp_path / "out").mkdir()
    app = create_app(tmp_path / "out", timezone=ISTANBUL)
    with serve_in_thread(app, fixtures=False) as app:  # type: ignore[arg-type]
        base = app.base + "/"
        cfg.write_text(cfg.read_text().replace("http://127.0.0.1:8080/", base))
        assert regen(cfg) == EXIT_OK
        yield base, tmp_path


def chromium(tmp: Path, *args: str) -> str:
    assert CHROMIUM is not None
    done = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--hide-scrollbars", f"--user-data-dir={tmp / 'profile'}", *args],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_index_article_and_feed_views_render(served: tuple[str, Path]) -> None:
    base, tmp = served
    index = chromium(tmp, "--dump-dom", base + "index.html")
    assert "Test Akışı" in index and "Adresi kopyala" in index and "Gündem" in index
    assert "Son haberler" in index and "opml-all.xml" in index
    pages = (tmp / "out" / "articles").glob("*.html")
    article = next(p.name for p in pages if "Umerov" in p.read_text(encoding="utf-8"))
    page = chromium(tmp, "--dump-dom", f"{base}articles/{article}")
    assert "Giriş:" in page and "<script" not in page
    assert "Perşembe" in page  # Turkish long dates
    for name in ("atom.xml", "rss.xml"):
        feed = chromium(tmp, "--dump-dom", base + name)
        assert "akış okuyucunuza" in feed, feed[:500]  # a page, not the raw XML
        assert "MİT Başkanı İbrahim Kalın" in feed and "<entry" not in feed
        assert "xslt-warning-banner" not in feed and "<script" not in feed
        assert f'value="{base}{name}"' in feed  # the subscribe box
        assert "1 Ocak 2026 Perşembe 19:16" in feed and "&lt;p&gt;" not in feed
    for name, url in (("index", base + "index.html"), ("atom", base + "atom.xml"),
                      ("rss", base + "rss.xml"),
                      ("article", f"{base}articles/{article}")):  # fmt: skip
        shot = tmp / f"{name}.png"
        chromium(tmp, f"--screenshot={shot}", "--window-size=1000,1200", url)
        assert shot.stat().st_size > 5000


def test_feed_xsl_on_a_static_host_shows_text_and_turkish_dates(
    served: tuple[str, Path],
) -> None:
    """Any web server serving `.xml` as application/xml: the browser applies feed.xsl. Items
    without a spot showed their HTML as literal tags; dates were ISO or RFC 822."""
    _, tmp = served
    out = tmp / "out"
    with serve_in_thread(fixtures=False) as static:
        static.prefix("/", lambda r: Reply(body=(out / r.path.lstrip("/")).read_bytes(),
                                           content_type=XML))  # fmt: skip
        for name in ("rss.xml", "atom.xml"):
            page = chromium(tmp, "--dump-dom", f"{static.base}/{name}")
            assert "akış okuyucunuza" in page, page[:500]  # feed.xsl applied
            assert "&lt;p&gt;" not in page and "&lt;h2&gt;" not in page
            assert "1 Ocak 2026 Perşembe 19:16" in page and "Thu, 01 Jan" not in page
            assert "T19:16" not in page
        shot = tmp / "rss-xslt.png"
        chromium(tmp, f"--screenshot={shot}", "--window-size=1000,1200", static.base + "/rss.xml")
        assert shot.stat().st_size > 5000
