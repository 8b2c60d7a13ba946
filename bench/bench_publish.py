"""Publish time after a run that changed 1% of the stored articles, at a few store sizes,
next to a full publish (every feed rendered) of the same store in the same run.

    python bench/bench_publish.py [--sizes 50000 200000 500000] [--repeat 5] [--fresh]

Each store holds N articles from 100 sources in 300 categories (one or two each, sizes
falling off as 1/rank the way a site's sections do), built through the store's own stage
and one cold merge (as a first `regenerate` fills an empty store), and kept under
`<dir>/publish-cache/` for the next run (`--fresh` builds it again). Per size it prints: the
first publish (empty output folder), a full re-render of the same store into that folder
(what every publish cost before publishing became incremental: all feeds rendered,
unchanged files compared and skipped), then a merge of 1% changed articles (half new ones in
10 of the sources, half new revisions of stored articles picked at random) and the publish
after it, then `--repeat` times the same for 20 changed articles (what one daemon cycle
typically brings; the median is printed, with this process's CPU time).
Publish time flat in store size means these last figures stay the same from size to size.
A cached store of an older schema is migrated on opening (the time is printed), so
another checkout's bench can share the cache: run both, size by size, for a same-run
reference.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from aggregator import dedupe  # noqa: E402
from aggregator.config import load_config  # noqa: E402
from aggregator.model import Article  # noqa: E402
from aggregator.pipeline import publish_now  # noqa: E402
from aggregator.records import pack_record  # noqa: E402
from aggregator.store import Store  # noqa: E402

SOURCES = 100
CATEGORIES = tuple(f"Kategori {k}" for k in range(300))
CATEGORY_WEIGHTS = tuple(1 / (k + 1) for k in range(300))  # a few large, many small (Zipf)
WORDS = "deprem seçim bütçe faiz maç liman köprü festival rekor uyarı karar vali".split()
START = datetime(2026, 1, 1, tzinfo=UTC)


def article(k: int, revision: int = 0) -> Article:
    r = random.Random(k)
    when = START + timedelta(minutes=k)
    text = " ".join(r.choices(WORDS, k=40)) + (f" Güncelleme {revision}." if revision else "")
    return Article(
        title=f"{' '.join(r.sample(WORDS, 6)).capitalize()} {k}",
        summary=text[:160], content_html=f"<p>{text}</p>", published=when,
        updated=when + timedelta(minutes=revision), source=f"s{k % SOURCES}", origin=str(k),
        link=f"https://haber.test/{k}", guid=f"g{k}",
        categories=tuple(dict.fromkeys(r.choices(CATEGORIES, CATEGORY_WEIGHTS, k=r.randint(1, 2)))),
    )  # fmt: skip


def fill(store: Store, size: int, now: datetime) -> None:
    """N articles into an empty store in one transaction and one (cold) merge."""
    with store.transaction(bulk=True):
        store.stage_begin()
        candidates = []
        for start in range(0, size, 20_000):
            chunk = [article(k) for k in range(start, min(size, start + 20_000))]
            rows = [(dedupe.candidate(start + n, a), pack_record(a)) for n, a in enumerate(chunk)]
            store.stage(rows, now)
            candidates += [c for c, _ in rows]
        store.merge(dedupe.cluster(candidates), now)


def cached_store(size: int, cache: Path, fresh: bool, now: datetime) -> Path:
    path = cache / f"store-{size}.sqlite3"
    if fresh or not path.exists():
        path.unlink(missing_ok=True)
        cache.mkdir(parents=True, exist_ok=True)
        with Store.open(path) as store:
            timed(f"build the store (cached in {cache})", lambda: fill(store, size, now))
    return path


def merge(store: Store, articles: list[Article], now: datetime) -> None:
    for i in range(0, len(articles), 20_000):
        chunk = articles[i : i + 20_000]
        store.stage_begin()
        rows = [(dedupe.candidate(n, a), pack_record(a)) for n, a in enumerate(chunk)]
        store.stage(rows, now)
        store.merge(dedupe.cluster([c for c, _ in rows]), now)


def timed(label: str, action: object) -> float:
    started = time.perf_counter()
    written = action() if callable(action) else None
    elapsed = time.perf_counter() - started
    count = f"{len(written)} files written" if isinstance(written, list) else ""
    print(f"  {label:<38} {elapsed:7.2f} s  {count}", flush=True)
    return elapsed


def bench(size: int, root: Path, fresh: bool, repeat: int) -> None:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    now = START + timedelta(days=400)
    print(f"store of {size:,} articles ({SOURCES} sources, {len(CATEGORIES)} categories)")
    built = cached_store(size, root.parent / "publish-cache", fresh, now)
    (root / "state").mkdir()
    shutil.copyfile(built, root / "state" / "agg.sqlite3")
    (root / "config.yaml").write_text(
        "site: {title: Bench, url: 'http://127.0.0.1:8080/'}\n"
        "output: {dir: out, max_items: 50}\nstate: state/agg.sqlite3\nretention: never\n"
        "sources:\n"
        + "".join(f"  - {{name: s{k}, type: feed, url: 'https://haber.test/{k}.xml'}}\n"
                  for k in range(SOURCES)),
        encoding="utf-8",
    )  # fmt: skip
    config = load_config(root / "config.yaml")
    started = time.perf_counter()
    with Store.open(config.state) as store:  # a store cached by an older schema: migrated
        print(f"  {'open the store':<38} {time.perf_counter() - started:7.2f} s", flush=True)
        timed("first publish (empty folder)", lambda: publish_now(config, store, now))
        store.forget_published_feeds()
        store.set_publish_state({"pending": "1"})
        full = timed("full re-render (every feed)", lambda: publish_now(config, store, now))
        rnd = random.Random(size)
        changed = size // 100
        updated = [article(k, revision=1) for k in rnd.sample(range(size), changed // 2)]
        new = [article(size + 10 * k) for k in range(changed - changed // 2)]  # 10 sources
        later = now + timedelta(minutes=1)
        timed(f"merge {changed:,} changed (1%)", lambda: merge(store, updated + new, later))
        incremental = timed(
            "publish after it (incremental)", lambda: publish_now(config, store, later)
        )
        smalls, cpus = [], []
        for round_ in range(repeat):  # one daemon cycle's worth, a few times: the median
            few = [article(k, revision=2 + round_) for k in rnd.sample(range(size), 10)]
            few += [article(size + 10 * k + 3 + round_) for k in range(10)]  # 10 other sources
            latest = later + timedelta(minutes=1 + round_)
            merge(store, few, latest)
            cpu = time.process_time()
            label = f"publish after 20 changed ({round_ + 1})"
            smalls.append(timed(label, lambda at=latest: publish_now(config, store, at)))
            cpus.append(time.process_time() - cpu)
    small = statistics.median(smalls)
    print(f"  after 20 changed: median {small:.2f} s (min {min(smalls):.2f}; this process's "
          f"CPU median {statistics.median(cpus):.2f} s); incremental / full re-render: "
          f"{incremental / full:.2f} after 1%, {small / full:.2f} after 20\n",
          flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[50_000, 200_000, 500_000])
    ap.add_argument("--dir", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--fresh", action="store_true", help="build the cached stores again")
    ap.add_argument("--repeat", type=int, default=5, help="publishes after 20 changes")
    args = ap.parse_args()
    print(f"cores: {os.cpu_count()}")
    for size in args.sizes:
        bench(size, args.dir / f"publish-{size}", args.fresh, args.repeat)


if __name__ == "__main__":
    main()
