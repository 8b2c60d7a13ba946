"""Real feeds from public feed readers' and parsers' test suites (tests/data/real/feeds/,
origins in ORIGIN.md), each served from a local server as a `feed` source with
`retention: never`: every item feedparser itself finds is published (up to max_items),
with the titles, links and dates feedparser reads, undated items at their first-seen time.
The published titles, links and dates are also kept as a golden file (UPDATE_GOLDEN=1)."""

from __future__ import annotations

import calendar
import email.utils
import functools
import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest

from aggregator.config import load_config
from aggregator.normalize import absolute_url, clean_link, collapse, plain_text
from aggregator.pipeline import run_once
from aggregator.store import Store
from tests.conftest import DATA, ISTANBUL
from tests.localserver import App, Reply, serve_in_thread
from tests.reliability.helpers import write_config

CORPUS = DATA / "real" / "feeds"
FEEDS = sorted(p.name for p in CORPUS.iterdir() if p.suffix != ".md" and p.name != "expected")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=ISTANBUL)
MAX_ITEMS = 50
# an explicit zone in the raw text: feedparser's reading is then the instant itself (without
# one feedparser assumes UTC, where we take the site's zone)
_ZONED = re.compile(r"(?:[+-]\d\d:?\d\d|Z|GMT|UTC?|[ECMP][SD]T)\s*$", re.IGNORECASE)


@pytest.fixture(scope="module")
def server() -> Iterator[App]:
    with serve_in_thread(App()) as app:
        yield app


def found_items(name: str, base: str) -> list[dict[str, Any]]:
    """The items a reader shows (a title, a web link or some text), as feedparser (or, for
    JSON Feed, json) finds them: title, link, and the instant when feedparser has one."""
    data = (CORPUS / name).read_bytes()
    if name.endswith(".json"):
        return [{"title": i.get("title"), "link": i.get("url"), "raw": i.get("date_published"),
                 "when": _json_date(i.get("date_published"))}
                for i in json.loads(data)["items"]]  # fmt: skip
    items = []
    for e in feedparser.parse(data).entries:
        get = functools.partial(dict.get, e)  # FeedParserDict.get maps keys to others
        link = get("link") or ""
        link = link if link.startswith(("http://", "https://", "/")) else ""
        if not (get("title") or link or get("summary") or get("content")):
            continue
        parsed = get("published_parsed") or get("updated_parsed")
        when = datetime.fromtimestamp(calendar.timegm(parsed), UTC) if parsed else None
        items.append({"title": get("title"), "link": link and absolute_url(base, link),
                      "when": when, "raw": get("published") or get("updated")})  # fmt: skip
    return items


def _json_date(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).astimezone(UTC)
    except ValueError:  # some JSON feeds write RFC 822 dates (against the spec)
        return email.utils.parsedate_to_datetime(raw).astimezone(UTC)


def published(out: Path) -> list[feedparser.FeedParserDict]:
    parsed = feedparser.parse((out / "atom.xml").read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return list(parsed.entries)


@pytest.mark.parametrize("name", FEEDS)
def test_every_item_of_a_real_feed_is_published(
    name: str, server: App, tmp_path: Path, golden: Callable[[Path, bytes], None]
) -> None:
    content_type = "application/feed+json" if name.endswith(".json") else "application/xml"
    server.route(f"/{name}", Reply(body=(CORPUS / name).read_bytes(), content_type=content_type))
    url = f"{server.base}/{name}"
    sources = f"  - name: corpus\n    type: feed\n    url: {url}\n"
    cfg = load_config(write_config(tmp_path, sources=sources, max_items=MAX_ITEMS))
    with Store.open(cfg.state) as store:
        report = run_once(cfg, store, None, NOW)
    assert not report.failed_sources, report.failed_sources
    got = published(cfg.output_dir)
    golden(CORPUS / "expected" / f"{name}.json", _golden(got, server.base))
    expected = found_items(name, url)
    titles = {collapse(e.title): e for e in got}
    for item in expected:  # dates: first-seen when none; feedparser's instant when zoned
        entry = titles.get(collapse(plain_text(item["title"] or "")))
        if entry is None:
            continue  # counted below
        when = datetime.fromisoformat(entry.published)
        if item["raw"] is None:
            assert when == NOW, (name, item)
        elif item["when"] and _ZONED.search(item["raw"].strip()) and when != NOW:
            assert when == item["when"], (name, item["raw"], entry.published)
    links = {e.get("link") for e in got}
    assert {clean_link(i["link"]) for i in expected if i["link"]} <= links
    wanted = {collapse(plain_text(i["title"])) for i in expected if i["title"]}
    assert wanted <= set(titles), wanted - set(titles)
    assert len(got) == min(len(expected), MAX_ITEMS), (name, report.rejections)


def _golden(entries: list[feedparser.FeedParserDict], base: str) -> bytes:
    """Title, link and date of each published item."""
    rows = sorted([e.title, _shown_link(e.get("link", ""), base), e.published] for e in entries)
    return (json.dumps(rows, ensure_ascii=False, indent=1) + "\n").encode("utf-8")


def _shown_link(link: str, base: str) -> str:
    """The local server's address as BASE; our own article page (an item without a link)
    as `ARTICLE PAGE`, since its address carries the article id."""
    return (
        "ARTICLE PAGE"
        if "/articles/" in link and "127.0.0.1:8080" in link
        else link.replace(base, "BASE")
    )
