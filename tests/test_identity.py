"""Revision identity v2 through the real store: one entry per article whatever the newsroom
does, fields merged from the best copy, bridging merges, and no takeover across sites."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import dedupe, signature
from aggregator.model import Article, Entry
from aggregator.records import pack_record
from aggregator.store import Store
from tests import revstream
from tests.conftest import StoreAt
from tests.revstream import SITE, T0


def run(store: Store, articles: list[Article], site: str = "") -> int:
    """One run: stage, cluster, merge (what pipeline.run_once does). Returns merges."""
    with store.transaction():
        store.stage_begin()
        cands = [dedupe.candidate(i, a) for i, a in enumerate(articles)]
        cands = [c._replace(host=c.host or (site if c.source == "seeds" else "")) for c in cands]
        store.stage(((c, pack_record(a)) for c, a in zip(cands, articles, strict=True)), T0)
        return store.merge(dedupe.cluster(cands), T0).merged


def story_of(entry: Entry) -> int:
    return int(entry.article.origin.split("-")[0][1:])


def published(store: Store) -> dict[int, tuple[str, str, str | None]]:
    entries = store.latest(10_000)
    stories = [story_of(e) for e in entries]
    assert len(stories) == len(set(stories)), f"duplicate entries: {sorted(stories)}"
    return {story_of(e): (e.id, e.article.title, e.article.link) for e in entries}


def split(items: list[Article], cuts: list[int]) -> list[list[Article]]:
    bounds = sorted({min(c, len(items)) for c in cuts} | {0, len(items)})
    return [items[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=40, deadline=None)
@given(st.randoms(use_true_random=False), st.lists(st.integers(0, 80), max_size=6))
def test_every_stream_gives_one_entry_per_story_with_the_newest_title_and_the_sites_url(
    tmp_path_factory: pytest.TempPathFactory, rnd: random.Random, cuts: list[int]
) -> None:
    events = revstream.stream(rnd, stories=8, events=rnd.randrange(10, 50))
    records = revstream.records(events)
    want = revstream.expected(events)
    root = tmp_path_factory.mktemp("identity")
    with Store.open(root / "runs.sqlite3") as store:
        for batch in split(records, cuts):
            run(store, batch)
        got = published(store)
        assert {s: (t, link) for s, (_, t, link) in got.items()} == want
        run(store, records)  # the same inputs again: nothing changes
        assert published(store) == got
    shuffled = records[:]
    rnd.shuffle(shuffled)
    with Store.open(root / "shuffled.sqlite3") as store:
        run(store, shuffled)
        once = published(store)
    with Store.open(root / "once.sqlite3") as store:
        run(store, records)
        assert published(store) == once  # one run: same ids in any order
    assert {s: (t, link) for s, (_, t, link) in once.items()} == want


def scrape(title: str, spot: str, body: tuple[str, ...], minutes: int = 0, **kw) -> Article:
    return replace(
        revstream.first_revisions(1)[0].scrape(f"{minutes}.txt"),
        title=title, summary=spot, content_html="".join(f"<p>{p}</p>" for p in body),
        updated=T0 + timedelta(minutes=minutes), **kw,
    )  # fmt: skip


BODY = (
    "Merkez Bankası Para Politikası Kurulu bugün toplandı ve politika faizini yüzde kırk "
    "beşte sabit tuttu; karar metninde enflasyon beklentilerine dikkat çekildi.",
    "Kurul, sıkı para politikası duruşunun ana eğilimde kalıcı düşüş sağlanana kadar "
    "sürdürüleceğini belirtti ve kredi büyümesinin yakından izleneceğini vurguladı.",
    "Piyasalarda karar sonrası dolar kuru yatay seyrederken borsa günü hafif yükselişle "
    "tamamladı; analistler bir sonraki toplantıda da sabit kalınmasını bekliyor.",
)


def test_a_rewritten_title_and_spot_with_the_same_first_paragraph_stay_one_entry(
    store_at: StoreAt,
) -> None:
    first = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY)
    rewritten = scrape("Merkez Bankası faizi yüzde 45'te tuttu", "Kurul sürpriz yapmadı.",
                       BODY, minutes=9)  # fmt: skip
    with Store.open(store_at()) as store:
        run(store, [first])
        run(store, [rewritten])
        (entry,) = store.latest(10)
    assert entry.article.title == rewritten.title


def light_edit_and_another_story() -> tuple[Article, Article, Article]:
    """A scrape, its revision with title, spot and first paragraph all lightly edited (no
    exact key shared), and another story of the same minute."""
    first = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı bugün sona erdi.", BODY)
    edited = scrape("Faiz kararı açıklandı", "Kurul toplantısı sona erdi.",
                    (BODY[0].replace("bugün", "öğleden sonra"), *BODY[1:]), minutes=5)  # fmt: skip
    other = scrape("Deprem İzmir'de korkuttu", "Kandilli büyüklüğü 4,1 olarak açıkladı.",
                   ("Ege Denizi'nde meydana gelen deprem İzmir ve çevresinde hissedildi; "
                    "ilk belirlemelere göre can kaybı ya da yaralı bulunmuyor.",))  # fmt: skip
    return first, edited, other


def test_title_spot_and_first_paragraph_all_lightly_edited_stay_one_entry(
    store_at: StoreAt,
) -> None:
    first, edited, other = light_edit_and_another_story()
    assert dedupe.similarity(dedupe.signature(first), dedupe.signature(edited)) >= dedupe.SIMILAR
    assert dedupe.similarity(dedupe.signature(first), dedupe.signature(other)) < dedupe.SIMILAR
    with Store.open(store_at()) as store:
        run(store, [first, other])
        run(store, [edited])
        titles = sorted(e.article.title for e in store.latest(10))
    assert titles == sorted([edited.title, other.title])  # same minute, still two articles


def test_a_scrape_and_the_sites_summary_only_feed_item_publish_the_url_and_the_full_body(
    store_at: StoreAt,
) -> None:
    page = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY,
                  categories=("Ekonomi",))  # fmt: skip
    item = replace(page, title="Faiz kararı açıklandı: yüzde 45", content_html="",
                   source="feed", origin="s0-feed", link=f"https://{SITE}/haber/faiz",
                   authors=(), categories=(),
                   updated=page.updated + timedelta(minutes=4))  # fmt: skip
    with Store.open(store_at()) as store:
        run(store, [page])
        run(store, [item])
        (entry,) = store.latest(10)
    a = entry.article
    assert (a.title, a.link) == (item.title, item.link)
    assert a.content_html == page.content_html  # the fuller body over a summary-only item
    assert a.categories == ("Ekonomi",) and a.authors == page.authors  # never emptied


def test_a_revision_matching_two_published_articles_merges_them_under_the_first_id(
    store_at: StoreAt,
) -> None:
    early = scrape("Köprüde trafik yoğunluğu sürüyor", "Sürücüler uzun kuyruklar oluşturdu.",
                   ("Sabah saatlerinde başlayan yoğunluk öğlene kadar sürdü.",))  # fmt: skip
    late = replace(early, title="Köprüde kaza: iki şerit kapandı", summary="Ekipler bölgede.",
                   content_html="<p>Kaza nedeniyle iki şerit trafiğe kapatıldı bugün.</p>",
                   updated=early.updated + timedelta(minutes=1), origin="s0-b")  # fmt: skip
    bridge = replace(late, summary=early.summary, updated=early.updated + timedelta(minutes=30),
                     origin="s0-bridge")  # fmt: skip
    with Store.open(store_at()) as store:
        run(store, [early])
        run(store, [late])
        first, second = sorted(store.latest(10), key=lambda e: e.article.updated)
        assert run(store, [bridge]) == 1
        (entry,) = store.latest(10)
        assert entry.id == first.id
        assert entry.article.title == bridge.title
        assert store.merges() == 1
        run(store, [late])  # an input of the retired id maps to the survivor
        assert [e.id for e in store.latest(10)] == [first.id]
    assert second.id != first.id
    with Store.open(store_at()) as rebuilt:
        run(rebuilt, [bridge, late, early])
        assert [e.id for e in rebuilt.latest(10)] == [first.id]  # a rebuild names it alike


def test_a_copy_from_another_host_never_takes_over_a_sites_article(store_at: StoreAt) -> None:
    page = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY)
    thief = replace(page, title="Faiz kararı açıklandı bugün", summary="Başka site.",
                    content_html="<p>Başka bir sitenin metni.</p>", source="feed",
                    link="https://kopya.test/haber/1", origin="s0-thief",
                    updated=page.updated + timedelta(hours=1))  # fmt: skip
    with Store.open(store_at()) as store:
        run(store, [page], site=f"www.{SITE}")
        run(store, [thief])
        (entry,) = store.latest(10)  # merged as a copy
        assert len(store.revisions(entry.id)) == 2
    assert (entry.article.title, entry.article.link) == (page.title, None)
    assert entry.article.content_html == page.content_html


def test_records_dated_when_seen_match_only_by_url_or_guid(store_at: StoreAt) -> None:
    seen = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY,
                  published_source="seen")  # fmt: skip
    timed = replace(seen, published_source="source", origin="s0-timed",
                    updated=seen.updated + timedelta(minutes=3))  # fmt: skip
    assert [k[0] for k in dedupe.match_keys(seen)] == ["h"]
    with Store.open(store_at()) as store:
        run(store, [seen])
        run(store, [timed])
        assert len(store.latest(10)) == 2


def test_one_feeds_items_with_different_guids_stay_apart_in_the_store(store_at: StoreAt) -> None:
    link = f"https://www.{SITE}/ekonomi/faiz"
    item = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY,
                  source="feed", guid="faiz-1", link=link, origin="s0-a")  # fmt: skip
    other = replace(item, guid="faiz-2", title="Faiz kararına piyasanın tepkisi", origin="s1-b",
                    updated=item.updated + timedelta(minutes=5))  # fmt: skip
    fixed = replace(item, title="Faiz kararı açıklandı: sabit", origin="s0-c",
                    updated=item.updated + timedelta(minutes=9))  # fmt: skip
    with Store.open(store_at()) as store:
        run(store, [item])
        run(store, [other])  # same URL, text and minute as the stored item, another guid
        run(store, [fixed])  # a revision of the first item, by its guid
        runs = published(store)
        assert run(store, [item, other, fixed]) == 0
        assert published(store) == runs
    assert {s: t for s, (_, t, _) in runs.items()} == {0: fixed.title, 1: other.title}
    with Store.open(store_at()) as rebuilt:
        run(rebuilt, [item, other, fixed])  # one cold run: the same two articles
        assert {s: t for s, (_, t, _) in published(rebuilt).items()} == {
            0: fixed.title, 1: other.title}  # fmt: skip


def test_a_pages_canonical_naming_another_host_is_not_its_identity() -> None:
    from aggregator.sources.html import parse_page

    html = (
        "<html><head><title>Faiz kararı açıklandı bugün</title>"
        "<link rel='canonical' href='https://{host}/haber/faiz/?utm_source=x#top'>"
        "<meta property='article:published_time' content='2026-02-02T09:00:00+03:00'>"
        "</head><body><article><h1>Faiz kararı açıklandı bugün</h1>"
        "<p>Kurul toplantısı sona erdi ve karar açıklandı.</p></article></body></html>"
    )
    own = "https://kopya.test/a/1"
    for host, link in (("www.haber.test", own), ("kopya.test", "https://kopya.test/haber/faiz/")):
        data = html.format(host=host).encode()
        article = parse_page(data, url=own, source="web", tz=revstream.ISTANBUL)
        assert article.link == link


SITE_FEED = """<rss version='2.0'><channel><title>x</title>{items}</channel></rss>"""


def test_regenerate_keeps_a_seeds_sites_articles_from_another_hosts_feed(tmp_path: Path) -> None:
    """`site:` fixes the seed articles' site: the site's own feed item merges and gives its
    URL; another host's item with the same GİRİŞ minute and title merges as a copy only."""
    from tests.localserver import XML, App, Reply, serve_in_thread
    from tests.reliability.helpers import read_feeds, regenerate, write_config

    ours, theirs = revstream.first_revisions(4)[0], revstream.first_revisions(4)[2]
    later = {"minutes": 30}
    own_item = replace(ours, spot="Sitenin kendi özeti.", guncelleme=ours.guncelleme)
    stolen = replace(theirs, spot="Başka sitenin özeti.", body=("Başka metin.",),
                     guncelleme=theirs.guncelleme + timedelta(**later))  # fmt: skip
    items = own_item.rss_item() + stolen.rss_item().replace(SITE, "kopya.test")
    app = App()
    app.route("/rss.xml", Reply(body=SITE_FEED.format(items=items).encode(), content_type=XML))
    with serve_in_thread(app, fixtures=False):
        cfg = write_config(tmp_path, sources=(
            f"  - {{name: site, type: feed, url: '{app.base}/rss.xml', every: 1s}}\n"))  # fmt: skip
        text = cfg.read_text().replace("    path: seeds\n", f"    path: seeds\n    site: {SITE}\n")
        cfg.write_text(text)
        for rev in (ours, theirs):
            (tmp_path / "seeds" / f"{rev.story}.txt").write_text(rev.seed_text(), encoding="utf-8")
        done = regenerate(cfg)
        assert done.returncode == 0, done.stderr
    import feedparser

    feed = feedparser.parse((tmp_path / "out" / "atom.xml").read_bytes())
    by_title = {e.title: e for e in feed.entries}
    assert len(feed.entries) == 2 and len(read_feeds(tmp_path / "out")) == 2
    assert by_title[ours.title].link == ours.url  # the site's own URL
    assert by_title[theirs.title].link.startswith("http://127.0.0.1:8080/articles/")
    assert "Başka metin" not in by_title[theirs.title].content[0].value


def test_site_setting_is_checked(tmp_path: Path) -> None:
    from aggregator.config import load_config
    from aggregator.errors import ConfigError
    from tests.reliability.helpers import write_config

    cfg = write_config(tmp_path, sources="  - {name: f, type: feed, url: 'https://x.test/r',"
                                         " site: x.test}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=r"sources\[1\]\.site: only seeds"):
        load_config(cfg)
    text = cfg.read_text().split("  - {name: f")[0]
    for value, ok in (("https://www.Haber.test/x", "haber.test"), ("nohost", None)):
        cfg.write_text(text.replace("    path: seeds\n", f"    path: seeds\n    site: {value}\n"))
        if ok:
            assert load_config(cfg).sources[0].site == ok
        else:
            with pytest.raises(ConfigError, match=r"sources\[0\]\.site: expected a host"):
                load_config(cfg)


def test_a_store_from_before_identity_v2_is_migrated_without_changing_an_id(
    tmp_path: Path,
) -> None:
    import sqlite3

    first = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY)
    path = tmp_path / "s.sqlite3"
    with Store.open(path) as store:
        run(store, [first])
        (before,) = store.latest(10)
    with sqlite3.connect(path) as conn:  # what the version before had
        for column in ("site", "fields", "record", "signature"):
            conn.execute(f"ALTER TABLE articles DROP COLUMN {column}")
        conn.execute("DROP TABLE article_aliases")
        conn.execute("UPDATE schema_meta SET value = '9' WHERE key = 'version'")  # before 10
    rewritten = scrape("Merkez Bankası faizi sabit tuttu", "Kurul sürpriz yapmadı.",
                       (BODY[0].replace("bugün", "dün"), *BODY[1:]), minutes=9)  # fmt: skip
    with Store.open(path) as store:
        assert store.latest(10) == [before]
        run(store, [rewritten])  # matched by text against the migrated article
        (after,) = store.latest(10)
    assert after.id == before.id and after.article.title == rewritten.title


def _format_1_signature(a: Article) -> bytes:
    """What stores written before signatures had a version hold: the shingle count, then
    the 64 smallest CRC-32s of "w1 w2 w3" of the folded text, no version byte."""
    import struct
    import zlib

    from aggregator.normalize import fold, html_to_text

    words = fold(f"{a.title} {a.summary} {html_to_text(a.content_html)}").split()[:300]
    shingles = {zlib.crc32(" ".join(words[i : i + 3]).encode()) for i in range(len(words) - 2)}
    smallest = sorted(shingles)[:64]
    return struct.pack(f"<{len(smallest) + 1}I", len(shingles), *smallest)


def test_signatures_a_store_kept_in_format_1_are_made_again_and_still_match(
    store_at: StoreAt,
) -> None:
    """A store's format 1 signatures are never compared with format 2 ones: each is made
    again from the article's record when next needed, so a rewrite that shares no exact key
    (title, spot and first paragraph all edited) still joins its stored article."""
    first, edited, other = light_edit_and_another_story()
    target = store_at()
    with Store.open(target) as store:
        run(store, [first, other])
        ids = {e.article.title: e.id for e in store.latest(10)}
    # as a store written before format 2 keeps them
    _sql(target, "UPDATE articles SET signature = ? WHERE id = ?",
         *((_format_1_signature(a), ids[a.title]) for a in (first, other)))  # fmt: skip
    with Store.open(target) as store:
        run(store, [edited])
        after = {e.article.title: e.id for e in store.latest(10)}
    assert after == {edited.title: ids[first.title], other.title: ids[other.title]}
    kept = dict(_sql(target, "SELECT id, signature FROM articles"))
    assert kept[ids[other.title]] and signature.is_current(bytes(kept[ids[other.title]]))
    assert kept[ids[first.title]] is None  # its text changed: made when next needed


def _sql(target: Path | str, query: str, *rows: tuple[object, ...]) -> list[tuple[object, ...]]:
    """Run `query` (once per row given) on the store's database itself, past the Store."""
    if isinstance(target, str):
        import psycopg

        with psycopg.connect(target) as pg:
            if rows:
                pg.cursor().executemany(query.replace("?", "%s"), rows)
                return []
            return list(pg.execute(query))
    import sqlite3

    with sqlite3.connect(target) as lite:
        if rows:
            lite.executemany(query, rows)
            return []
        return list(lite.execute(query))


@settings(max_examples=15, deadline=None)
@given(st.randoms(use_true_random=False), st.lists(st.integers(0, 60), max_size=3))
def test_records_staged_with_their_signatures_decide_as_records_staged_without(
    tmp_path_factory: pytest.TempPathFactory, rnd: random.Random, cuts: list[int]
) -> None:
    """Web records carry the text signature their parse worker computed (`sources.staged`);
    seed records and older callers stage none and the merge computes it from the record:
    the same articles, ids, published records and merges either way, run after run (many
    stories per GİRİŞ minute: every record an anchor peer)."""
    root = tmp_path_factory.mktemp("signed")
    names = iter(("signed", "unsigned"))
    signed, unsigned = _signed_and_unsigned(lambda: root / f"{next(names)}.sqlite3", rnd, cuts)
    assert signed == unsigned


def test_records_staged_with_their_signatures_decide_alike_in_any_store(
    store_at: StoreAt,
) -> None:
    signed, unsigned = _signed_and_unsigned(store_at, random.Random(0), [20, 45])  # text-matched
    assert signed == unsigned


def _signed_and_unsigned(
    store_at: StoreAt, rnd: random.Random, cuts: list[int]
) -> list[list[list[tuple[object, ...]]]]:
    """The rows of two stores given the same runs, one staged with signatures, one without."""
    from aggregator.sources import staged

    records = []
    for a in revstream.records(revstream.stream(rnd, stories=10, events=rnd.randrange(5, 40))):
        at = T0.replace(minute=int(a.origin[1:].split("-")[0]) % 2)
        records.append(replace(a, published=at, updated=max(at, a.updated)))
    stores = []
    for signed in (True, False):
        target = store_at()
        with Store.open(target) as store:
            for batch in split(records, cuts):
                rows = staged(batch) if signed else [(dedupe.candidate(-1, a), pack_record(a))
                                                     for a in batch]  # fmt: skip
                assert all((c.signature is not None) == signed for c, _ in rows)
                with store.transaction():
                    store.stage_begin()
                    cands = [c._replace(ref=i) for i, (c, _) in enumerate(rows)]
                    store.stage(((c, r) for c, (_, r) in zip(cands, rows, strict=True)), T0)
                    store.merge(dedupe.cluster([c._replace(signature=None) for c in cands]), T0)
        stores.append([_sql(target, f"SELECT * FROM {table} ORDER BY 1, 2")
                       for table in ("articles", "article_aliases", "article_keys")])  # fmt: skip
    return stores
