"""Benchmark: parsing the same feed bodies with feedparser and with the lxml fast path.

    python bench/bench_parse.py [--feeds 200] [--items 50] [--rounds 5] [--corpus DIR ...]

The bodies are bench_sources.py's (RSS 2.0, 50 items, Turkish text, CDATA descriptions).
Each round times, on one core and interleaved so drift hits all alike: the bare lxml parse
(the floor), `fastfeed.parse` and `feedparser.parse` (the document -> entry dictionaries),
then `parse_feed` (document -> Articles, with dates, nh3 and ids) on each path, and what
a parse worker does per body (`web._feed_records`: Articles -> candidates with match keys,
signatures and packed records; the fast path). Prints the
median of the rounds as ms per feed and entries/s, and the fast path's speed-up next to
feedparser measured in the same rounds. `--corpus` also counts, over the XML feeds under
each folder, how many documents the fast path reads and how many it leaves to feedparser.
"""

from __future__ import annotations

import argparse
import io
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import feedparser
from lxml import etree

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_sources import T0, feed_body  # noqa: E402

from aggregator.sources import fastfeed  # noqa: E402
from aggregator.sources.feed import parse_feed  # noqa: E402
from aggregator.sources.http import decode_body  # noqa: E402
from aggregator.sources.web import _feed_records  # noqa: E402

TZ = ZoneInfo("Europe/Istanbul")
HEADERS = {"content-type": "application/xml; charset=utf-8"}


def timed(fn: Callable[[bytes, str], object], bodies: list[tuple[bytes, str]]) -> float:
    started = time.perf_counter()
    for data, url in bodies:
        fn(data, url)
    return time.perf_counter() - started


def with_feedparser(fn: Callable[[bytes, str], object]) -> Callable[[bytes, str], object]:
    def call(data: bytes, url: str) -> object:
        with fastfeed.disabled():
            return fn(data, url)

    return call


def count_declines(roots: list[Path]) -> None:
    """As feed.py hands them over: decoded, then UTF-8 with the declaration saying so."""
    read = declined = 0
    for path in sorted(p for root in roots for p in root.rglob("*")):
        if path.suffix not in (".xml", ".rss", ".atom"):
            continue
        text = decode_body(path.read_bytes(), "")
        utf8 = re.sub(r"""^(\s*<\?xml[^>]*?encoding\s*=\s*)["'][^"']*["']""", r'\1"utf-8"', text)
        if fastfeed.parse(utf8.encode("utf-8", "replace"), "https://haber.test/feed") is None:
            declined += 1
            print(f"  left to feedparser: {path.name}")
        else:
            read += 1
    print(f"corpus: {read} documents read by the fast path, {declined} left to feedparser")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--feeds", type=int, default=200)
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--corpus", type=Path, nargs="*", default=[])
    args = parser.parse_args()
    if args.corpus:
        count_declines(args.corpus)
    bodies = [(feed_body(i, args.items), f"https://site{i}.test/rss") for i in range(args.feeds)]
    entries = args.feeds * args.items

    def articles(data: bytes, url: str) -> object:
        return parse_feed(data, url=url, source="s", tz=TZ)

    def records(data: bytes, url: str) -> object:
        return _feed_records(data, url=url, content_type="application/rss+xml", source="s",
                             tz=TZ, language="tr", now=T0)  # fmt: skip

    def raw_feedparser(data: bytes, url: str) -> object:
        headers = {**HEADERS, "content-location": url}
        return feedparser.parse(
            io.BytesIO(data), response_headers=headers, sanitize_html=False,
            resolve_relative_uris=False,
        )  # fmt: skip

    steps: dict[str, Callable[[bytes, str], object]] = {
        "lxml etree.fromstring (floor)": lambda data, url: etree.fromstring(data),
        "fastfeed.parse -> entry dicts": fastfeed.parse,
        "feedparser.parse -> entry dicts": raw_feedparser,
        "parse_feed -> Articles, fast path": articles,
        "parse_feed -> Articles, feedparser": with_feedparser(articles),
        "_feed_records -> staged records": records,
    }
    assert all(fastfeed.parse(data, url) is not None for data, url in bodies[:3])
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, fn in steps.items():
            times[name].append(timed(fn, bodies))
    print(f"{args.feeds} feeds x {args.items} items, {args.rounds} rounds, one core "
          f"({os.cpu_count()} CPUs), medians:")  # fmt: skip
    medians = {name: statistics.median(t) for name, t in times.items()}
    for name, took in medians.items():
        low, high = (t / args.feeds * 1000 for t in (min(times[name]), max(times[name])))
        spread = f"{low:.2f}-{high:.2f}"
        print(f"  {name:36s} {took / args.feeds * 1000:7.2f} ms/feed ({spread})"
              f" {entries / took:9,.0f} entries/s")  # fmt: skip
    raw = medians["feedparser.parse -> entry dicts"] / medians["fastfeed.parse -> entry dicts"]
    whole = (
        medians["parse_feed -> Articles, feedparser"] / medians["parse_feed -> Articles, fast path"]
    )
    print(f"  speed-up next to feedparser in the same rounds: {raw:.1f}x parsing, "
          f"{whole:.1f}x document -> Articles")  # fmt: skip


if __name__ == "__main__":
    main()
