"""Real article pages nobody here wrote (tests/data/real/pages/, see ORIGIN.md): every
field is scored and no field may fall below its recorded score, nor below trafilatura's
own metadata on the same pages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.errors import ParseError
from aggregator.sources.html import parse_page
from tests.conftest import ISTANBUL
from tests.realpages import (
    FIELDS,
    PAGES,
    Extracted,
    Page,
    pages,
    right,
    score,
    scored,
    trafilatura_extract,
)

RECORDED = json.loads((PAGES / "scores.json").read_text("utf-8"))


def ours(page: Page) -> Extracted:
    try:
        a = parse_page(page.html, url=page.url, source="real", tz=ISTANBUL)
    except ParseError:
        return Extracted()
    return Extracted(title=a.title, author=", ".join(a.authors),
                     published_day=a.published.date().isoformat(), agency=a.agency)  # fmt: skip


def test_corpus_is_what_origin_md_describes() -> None:
    listed = (PAGES / "ORIGIN.md").read_text("utf-8")
    names = [p.name for p in pages()]
    assert len(names) >= 30
    for name in names:
        assert f"`{name}`" in listed, f"{name} has no origin in ORIGIN.md"


def test_no_field_regresses_below_its_recorded_score() -> None:
    totals, misses = score(ours)
    print("\n".join(misses))
    for field in FIELDS:
        assert totals[field][0] >= RECORDED[field], (field, totals[field], misses)


def test_at_least_trafilaturas_score_on_every_field() -> None:
    mine, _ = score(ours)
    theirs, _ = score(trafilatura_extract)
    print(f"ours {mine}\ntrafilatura {theirs}")
    for field in ("title", "author", "published_day"):
        assert mine[field][0] >= theirs[field][0], (field, mine, theirs)


@pytest.mark.parametrize("page", [p for p in pages() if p.expected.get("turkish")],
                         ids=lambda p: p.name)  # fmt: skip
def test_every_field_right_on_turkish_pages(page: Page) -> None:
    found = ours(page)
    for field in FIELDS:
        if scored(page, field):
            assert right(page, field, found), (field, found)


def test_parse_command_reads_a_saved_page(tmp_path: Path) -> None:
    page = next(p for p in pages() if p.name == "scraperhryt-hurriyet")
    saved = tmp_path / "page.html"
    saved.write_bytes(page.html)
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "parse", str(saved), "--url", page.url, "--json"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    (record,) = json.loads(done.stdout)
    assert record["title"] == page.expected["title"]
    assert record["agency"] == "İHA" and not record.get("authors")
