"""Many small RSS feeds on the shared local server (`tests/localserver.py`), each request
recorded with its time, so the cluster tests and `bench/bench_cluster.py` can count the
fetches of every feed in every interval. `publish_item()` adds an item to every feed."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from tests.localserver import App, Reply, Request

WORDS = (
    "ankara izmir belediye meclis karar yatırım ihracat deprem kurtarma ekip hastane okul "
    "öğretmen tarım hasat yağmur sel köprü yol tren liman gemi fabrika işçi maaş zam enflasyon "
    "faiz borsa döviz altın turizm otel sahil orman yangın itfaiye polis mahkeme dava seçim "
    "aday kampanya festival konser tiyatro müze kitap yazar sporcu maç gol şampiyon takım"
).split()
T0 = datetime(2026, 1, 2, 6, 0, tzinfo=UTC)


def title(feed: int, n: int) -> str:
    rng = random.Random(feed * 100_003 + n)
    return f"{feed}. kaynak {n}. haber: " + " ".join(rng.sample(WORDS, 8))


def rss(i: int, items: int, base: str) -> bytes:
    """Feed `i` with `items` items, each its own story (no two feeds' items look alike)."""
    entries = []
    for n in range(items):
        rng = random.Random(i * 7919 + n)
        text = " ".join(rng.choice(WORDS) for _ in range(40))
        when = format_datetime(T0 + timedelta(minutes=n, seconds=i))
        entries.append(
            f"<item><title>{title(i, n)}</title><link>{base}/farm/{i}/{n}.html</link>"
            f"<guid>{base}/farm/{i}/{n}.html</guid><pubDate>{when}</pubDate>"
            f"<description>{text}</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Kaynak {i}</title><link>{base}/</link>"
        f"<description>kaynak {i}</description>{''.join(entries)}</channel></rss>"
    ).encode()


class FeedFarm:
    """`count` feeds at /farm/<i>.xml with `items` items each (plus `publish_item` ones)."""

    def __init__(self, app: App, count: int, *, items: int = 3, delay: float = 0.0) -> None:
        self.app = app
        self.count = count
        self.items = items
        self.delay = delay
        self.hits: defaultdict[int, list[float]] = defaultdict(list)  # feed: monotonic times
        self._lock = threading.Lock()
        self._bodies: dict[int, bytes] = {}
        app.prefix("/farm/", self._reply)

    def url(self, i: int) -> str:
        return f"{self.app.base}/farm/{i}.xml"

    def sources_yaml(self, every: str) -> str:
        return "".join(f"  - name: f{i}\n    type: feed\n    url: {self.url(i)}\n"
                       f"    every: {every}\n" for i in range(self.count))  # fmt: skip

    def publish_item(self) -> str:
        """One more item in every feed; the title of the newest of them (the last feed's:
        items of later feeds are a second later, so it is in every published feed)."""
        with self._lock:
            self.items += 1
            self._bodies.clear()
        return self.newest()

    def newest(self) -> str:
        return title(self.count - 1, self.items - 1)

    def _body(self, i: int) -> bytes:
        with self._lock:
            body = self._bodies.get(i)
            if body is None:
                body = self._bodies[i] = rss(i, self.items, self.app.base)
            return body

    def _reply(self, r: Request) -> Reply:
        name = r.path.removeprefix("/farm/").removesuffix(".xml")
        if not name.isdigit() or int(name) >= self.count:
            return Reply(404, b"no such feed")
        i = int(name)
        with self._lock:
            self.hits[i].append(time.monotonic())
        return Reply(body=self._body(i), content_type="application/rss+xml; charset=utf-8",
                     delay=self.delay)  # fmt: skip

    # -- counting ----------------------------------------------------------------------
    def snapshot(self) -> dict[int, list[float]]:
        with self._lock:
            return {i: list(times) for i, times in self.hits.items()}

    def max_in_flight(self) -> int:
        """The most requests answered at once (each takes `delay`, from its arrival): what
        per-host politeness bounds, every feed being on this one host."""
        edges = sorted((t + d, step) for times in self.snapshot().values() for t in times
                       for d, step in ((0.0, 1), (self.delay, -1)))  # fmt: skip
        most = now = 0
        for _, step in edges:  # an answer ending as another arrives is not counted twice
            now += step
            most = max(most, now)
        return most

    def double_fetches(self, every: float, since: float = 0.0) -> list[tuple[int, float]]:
        """(feed, gap) for every two fetches of one feed closer than `every` less a fifth
        after `since`: a feed fetched twice in one interval. The slack is the server's: on a
        busy machine a request may be stamped here half a second after it was sent (two
        nodes taking one source fetch it within a second; a due time counted from the
        wrong moment made gaps of 3 s at 5 s)."""
        close = []
        for i, times in self.snapshot().items():
            times = [t for t in times if t >= since]
            for a, b in zip(times, times[1:], strict=False):
                if b - a < every * 0.8:
                    close.append((i, b - a))
        return close
