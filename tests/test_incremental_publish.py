"""A publish rebuilds only the feeds a run changed, yet its output folder holds exactly what
a full publish from scratch writes: random runs of new, updated, vanished, merged and
expired articles, categories coming and going, failed and interrupted publishes, and a
settings change, each compared byte for byte with a full publish of a copy of the store."""

from __future__ import annotations

import random
import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from aggregator.config import Config
from aggregator.errors import PublishError
from aggregator.model import Entry
from aggregator.normalize import path_slug
from aggregator.pipeline import publish_now, run_once
from aggregator.sources.http import HttpSettings, WebClient
from aggregator.store import Store
from aggregator.store.migrate import copy_store
from aggregator.store.schema import category_slugs
from tests.conftest import StoreAt
from tests.localserver import App, Reply, serve_in_thread
from tests.test_web_pipeline import T0, config, source

SOURCES = ("a", "b", "c", "d", "e")
CATEGORIES = ("Gündem", "Ekonomi", "Spor", "Dünya", "Kültür Sanat", "Sağlık", "Eğitim",
              "Teknoloji", "Yaşam", "Magazin", "Otomobil", "Çevre")  # fmt: skip
WORDS = "deprem seçim bütçe faiz maç liman köprü festival rekor uyarı karar vali".split()


def rss(items: list[dict[str, str]]) -> bytes:
    body = "".join(
        f"<item><title>{i['title']}</title>"
        + (f"<link>{i['link']}</link>" if i.get("link") else "")
        + f"<guid isPermaLink='false'>{i['guid']}</guid><pubDate>{i['date']}</pubDate>"
        + "".join(f"<category>{c}</category>" for c in i["categories"].split("|") if c)
        + f"<description>{i['text']}</description></item>"
        for i in items
    )
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Kaynak</title><link>http://haber.test/</link>{body}</channel></rss>"
            ).encode()  # fmt: skip


class Feeds:
    """What each source's feed carries now, changed at random between runs."""

    def __init__(self, rnd: random.Random) -> None:
        self.rnd = rnd
        self.items: dict[str, list[dict[str, str]]] = {s: [] for s in SOURCES}
        self.serial = 0

    def new_item(self, source: str) -> dict[str, str]:
        self.serial += 1
        n, rnd = self.serial, self.rnd
        item = {
            "guid": f"{source}-{n}",
            "title": f"{' '.join(rnd.sample(WORDS, 4)).capitalize()} {n}",
            "date": f"Sat, {10 + n // 40:02d} Jan 2026 {n % 24:02d}:{n % 60:02d}:00 +0300",
            "categories": "|".join(rnd.sample(CATEGORIES, rnd.randint(0, 2))),
            "text": f"Haber metni {n}: {' '.join(rnd.choices(WORDS, k=12))}.",
        }
        if rnd.random() < 0.7:  # the rest have no link: each gets an article page
            item["link"] = f"http://haber.test/{source}/{n}"
        return item

    def step(self) -> None:
        rnd = self.rnd
        for name in rnd.sample(SOURCES, 2):  # the others' feeds stay as they are
            items = self.items[name]
            for _ in range(rnd.randint(0, 3)):
                items.append(self.new_item(name))
            for item in rnd.sample(items, min(len(items), rnd.randint(1, 3))):
                item["text"] += " Güncellendi."  # a new revision
                if rnd.random() < 0.7:
                    item["categories"] = "|".join(rnd.sample(CATEGORIES, rnd.randint(0, 2)))
            if len(items) > 8 and rnd.random() < 0.5:
                del items[: rnd.randint(1, 3)]  # gone from the feed, kept in the store
        linked = [i for s in SOURCES for i in self.items[s] if i.get("link")]
        if len(linked) > 2 and rnd.random() < 0.8:
            # a copy in another source carrying one article's link and another's guid:
            # the two stored articles merge into one
            first, second = rnd.sample(linked, 2)
            bridge = dict(second, link=first["link"], text=second["text"] + " Ortak.")
            self.items[rnd.choice(SOURCES)].append(bridge)


@pytest.fixture
def feeds() -> Iterator[tuple[App, Feeds]]:
    state = Feeds(random.Random(16))
    with serve_in_thread(App(), fixtures=False) as app:
        for name in SOURCES:
            app.route(f"/{name}.xml", lambda _r, name=name: Reply(
                body=rss(state.items[name]), content_type="application/rss+xml"))  # fmt: skip
        yield app, state


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def full_publish(cfg: Config, store: Store, scratch: Path, store_at: StoreAt) -> dict[str, bytes]:
    """What a full publish from scratch writes for the store as it is now (from a copy)."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    full = replace(cfg, output_dir=scratch / "out")
    with Store.open(store_at()) as copy:
        copy_store(store, copy)
        assert_counts_kept(copy)  # migrate copies the counts with the rows
        publish_now(full, copy, T0)
    return files(full.output_dir)


def assert_counts_kept(store: Store) -> list[Entry]:
    """The kept counts (articles per category, articles) equal the rows; returns every
    stored article."""
    every = store.entries_by_ids([aid for aid, _ in store.ids_oldest_first()])
    counted: dict[str, int] = {}
    for e in every:
        for slug in {slug for slug, _ in category_slugs(e.article.categories)}:
            counted[slug] = counted.get(slug, 0) + 1
    assert {slug: n for slug, _, n in store.categories()} == counted
    assert store.count() == len(every)
    return every


def assert_same_as_full(cfg: Config, store: Store, scratch: Path, store_at: StoreAt) -> None:
    assert_counts_kept(store)
    mine, full = files(cfg.output_dir), full_publish(cfg, store, scratch, store_at)
    different = sorted(rel for rel, data in full.items() if mine.get(rel) != data)
    assert different == []
    # left over, as always: pages of articles no feed lists now, feeds no longer planned
    planned = {rel.rpartition("/")[0] for rel in full}
    extra = [rel for rel in mine if rel not in full]
    assert all(r.startswith("articles/") or r.rpartition("/")[0] not in planned for r in extra)


def test_incremental_publishes_equal_full_publishes_byte_for_byte(
    feeds: tuple[App, Feeds], tmp_path: Path, store_at: StoreAt
) -> None:
    app, state = feeds
    sources = "".join(source(s, "feed", f"{app.base}/{s}.xml") for s in SOURCES)
    sources += "feeds:\n  - {name: secili, title: Seçili, sources: [a, c], match: [deprem]}\n"
    cfg = config(tmp_path, sources)
    cfg = replace(cfg, max_items=4, retention=timedelta(hours=2).total_seconds())
    rnd = random.Random(5)
    merged = expired = rebuilt = 0
    with WebClient(HttpSettings()) as client, Store.open(store_at()) as store:
        for step in range(16):
            now = T0 + timedelta(minutes=30 * step)
            state.step()
            broken = None
            if step in (5, 9):  # one derived feed cannot be written: the rest is published
                broken = cfg.output_dir / "sources" / rnd.choice(SOURCES) / "rss.xml"
                broken.unlink()
                broken.mkdir()
            if step == 7:  # an interrupted publish: merged and stored, never published
                report = run_once(cfg, store, client, now, publish_feeds=False)
            elif step == 11:  # a publish that stops after the feeds, before its state
                (cfg.output_dir / "opml.xml").unlink()
                (cfg.output_dir / "opml.xml").mkdir()
                with pytest.raises(PublishError):
                    run_once(cfg, store, client, now)
                (cfg.output_dir / "opml.xml").rmdir()
                continue
            else:
                if step == 12:  # new settings: every feed is rebuilt
                    cfg = replace(cfg, title="Yeni Başlık", max_items=rnd.randint(3, 5))
                report = run_once(cfg, store, client, now)
            if broken is not None:
                assert report.output_failures, "the broken feed is reported"
                broken.rmdir()
                continue  # the next publish redoes it; compared then
            merged += report.merged
            expired += report.expired
            if step == 7:
                continue
            rebuilt += 1
            assert_same_as_full(cfg, store, tmp_path / f"full-{step}", store_at)
    assert merged > 0, "the random runs merged stored articles"
    assert expired > 0, "and retention removed some"
    assert rebuilt >= 12


def test_feed_walks_select_the_newest_articles_of_any_store(store_at: StoreAt) -> None:
    """Source, category and named-feed selections walk an index newest first and merge
    the walks: they give exactly the newest matching articles (equal GİRİŞ times
    included, ties by id), for any limit, sources, categories and word filter, and the
    kept category counts equal the rows (through new articles, revisions changing
    categories, and retention deleting some)."""
    from aggregator import dedupe
    from aggregator.model import Article
    from aggregator.records import pack_record

    rnd = random.Random(12)

    def made(k: int, revision: int = 0) -> Article:
        r = random.Random(k * 7 + revision)
        when = T0 - timedelta(minutes=random.Random(k).randint(0, 300))
        return Article(
            title=f"{' '.join(r.sample(WORDS, 5)).capitalize()} {k}", summary=f"Metin {k}",
            published=when, updated=when + timedelta(minutes=revision),
            source=random.Random(k).choice(SOURCES), origin=str(k),
            link=f"http://haber.test/{k}", guid=f"g{k}",
            categories=tuple(r.sample(CATEGORIES[: 1 + k % len(CATEGORIES)],
                                      min(1 + k % 2, 1 + k % len(CATEGORIES)))))  # fmt: skip

    def merge(store: Store, articles: list[Article], now: datetime) -> None:
        with store.transaction():
            store.stage_begin()
            rows = [(dedupe.candidate(n, a), pack_record(a)) for n, a in enumerate(articles)]
            store.stage(rows, now)
            store.merge(dedupe.cluster([c for c, _ in rows]), now)

    def check(store: Store) -> None:
        every = assert_counts_kept(store)
        newest_first = sorted(every, key=lambda e: (e.article.published, e.id), reverse=True)
        slugs = sorted(slug for slug, _, _ in store.categories())
        asked = [([], [s]) for s in slugs] + [
            ([], slugs[:3]),
            ([], [path_slug("Gündem"), "yok"]),
            (["a"], []),
            (["a", "c"], []),
            (["b"], slugs[:2]),
            (["a", "d"], slugs[2:6]),
            ([], []),
        ]
        for limit in (1, 7, 50, 1000):
            for sources, categories in asked:

                def wanted(
                    e: Entry, sources: list[str] = sources, categories: list[str] = categories
                ) -> bool:
                    return (not sources or e.article.source in sources) and (
                        not categories
                        or any(path_slug(c) in categories for c in e.article.categories)
                    )

                expected = [e for e in newest_first if wanted(e)][:limit]
                got = store.select_versions(limit, sources=sources, categories=categories)
                assert [aid for aid, _, _ in got] == [e.id for e in expected]
                # one walk reading the records too: the same versions and stored rows
                versions, entries = store.versions_and_entries(limit, sources=sources,
                                                               categories=categories)  # fmt: skip
                assert versions == got
                assert entries.rows == store.entries_by_ids([aid for aid, _, _ in got]).rows
                if sources or categories:
                    picked = store.select(limit, sources=sources, categories=categories)
                    assert [e.id for e in picked] == [e.id for e in expected]
                rare = [e for e in newest_first if wanted(e) and e.article.title.endswith("7")]
                picked = store.select(limit, sources=sources, categories=categories,
                                      keep=lambda a: a.title.endswith("7"))  # fmt: skip
                assert [e.id for e in picked] == [e.id for e in rare[:limit]]  # fmt: skip

    with Store.open(store_at()) as store:
        merge(store, [made(k) for k in range(400)], T0)
        check(store)
        assert max(n for _, _, n in store.categories()) > 100  # some categories hold many
        merge(store, [made(k, revision=1) for k in rnd.sample(range(400), 60)],
              T0 + timedelta(minutes=1))  # fmt: skip
        check(store)
        assert store.expire(T0 + timedelta(seconds=30), 150, T0 + timedelta(minutes=2)) > 0
        check(store)
