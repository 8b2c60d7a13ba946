"""The published site in a real headless browser (Debian's chromium): the index page, one
article page and atom.xml styled by feed.xsl render with the expected text. Screenshots land
in the test's tmp dir for a person to look at. Skipped, with the reason, without chromium."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.cli import EXIT_OK
from aggregator.serve import create_app
from tests.conftest import DATA, SEED_DOC
from tests.localserver import serve_in_thread
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
    (tmp_path / "out").mkdir()
    with serve_in_thread(create_app(tmp_path / "out"), fixtures=False) as app:  # type: ignore[arg-type]
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


def test_index_article_and_styled_feed_render(served: tuple[str, Path]) -> None:
    base, tmp = served
    index = chromium(tmp, "--dump-dom", base + "index.html")
    assert "Test Akışı" in index and "Adresi kopyala" in index and "Gündem" in index
    article = next((tmp / "out" / "articles").glob("*.html")).name
    page = chromium(tmp, "--dump-dom", f"{base}articles/{article}")
    assert "Giriş:" in page and "<script" not in page
    assert "Perşembe" in page  # Turkish long dates
    feed = chromium(tmp, "--dump-dom", base + "atom.xml")
    assert "akış okuyucunuza" in feed, feed[:500]  # feed.xsl turned the XML into a page
    assert "MİT Başkanı İbrahim Kalın" in feed and "<entry" not in feed
    for name, url in (("index", base + "index.html"), ("atom", base + "atom.xml"),
                      ("article", f"{base}articles/{article}")):  # fmt: skip
        shot = tmp / f"{name}.png"
        chromium(tmp, f"--screenshot={shot}", "--window-size=1000,1200", url)
        assert shot.stat().st_size > 5000
