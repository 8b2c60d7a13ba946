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

from aggregator import dedupe
from aggregator.model import Article, Entry
from aggregator.records import pack_record
from aggregator.store import Store
from tests import revstream
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
    tmp_path: Path,
) -> None:
    first = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY)
    rewritten = scrape("Merkez Bankası faizi yüzde 45'te tuttu", "Kurul sürpriz yapmadı.",
                       BODY, minutes=9)  # fmt: skip
    with Store.open(tmp_path / "s.sqlite3") as store:
        run(store, [first])
        run(store, [rewritten])
        (entry,) = store.latest(10)
    assert entry.article.title == rewritten.title


def test_title_spot_and_first_paragraph_all_lightly_edited_stay_one_entry(tmp_path: Path) -> None:
    first = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı bugün sona erdi.", BODY)
    edited = scrape("Faiz kararı açıklandı", "Kurul toplantısı sona erdi.",
                    (BODY[0].replace("bugün", "öğleden sonra"), *BODY[1:]), minutes=5)  # fmt: skip
    other = scrape("Deprem İzmir'de korkuttu", "Kandilli büyüklüğü 4,1 olarak açıkladı.",
                   ("Ege Denizi'nde meydana gelen deprem İzmir ve çevresinde hissedildi; "
                    "ilk belirlemelere göre can kaybı ya da yaralı bulunmuyor.",))  # fmt: skip
    assert dedupe.similarity(dedupe.signature(first), dedupe.signature(edited)) >= dedupe.SIMILAR
    assert dedupe.similarity(dedupe.signature(first), dedupe.signature(other)) < dedupe.SIMILAR
    with Store.open(tmp_path / "s.sqlite3") as store:
        run(store, [first, other])
        run(store, [edited])
        titles = sorted(e.article.title for e in store.latest(10))
    assert titles == sorted([edited.title, other.title])  # same minute, still two articles


def test_a_scrape_and_the_sites_summary_only_feed_item_publish_the_url_and_the_full_body(
    tmp_path: Path,
) -> None:
    page = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY,
                  categories=("Ekonomi",))  # fmt: skip
    item = replace(page, title="Faiz kararı açıklandı: yüzde 45", content_html="",
                   source="feed", origin="s0-feed", link=f"https://{SITE}/haber/faiz",
                   authors=(), categories=(),
                   updated=page.updated + timedelta(minutes=4))  # fmt: skip
    with Store.open(tmp_path / "s.sqlite3") as store:
        run(store, [page])
        run(store, [item])
        (entry,) = store.latest(10)
    a = entry.article
    assert (a.title, a.link) == (item.title, item.link)
    assert a.content_html == page.content_html  # the fuller body over a summary-only item
    assert a.categories == ("Ekonomi",) and a.authors == page.authors  # never emptied


def test_a_revision_matching_two_published_articles_merges_them_under_the_first_id(
    tmp_path: Path,
) -> None:
    early = scrape("Köprüde trafik yoğunluğu sürüyor", "Sürücüler uzun kuyruklar oluşturdu.",
                   ("Sabah saatlerinde başlayan yoğunluk öğlene kadar sürdü.",))  # fmt: skip
    late = replace(early, title="Köprüde kaza: iki şerit kapandı", summary="Ekipler bölgede.",
                   content_html="<p>Kaza nedeniyle iki şerit trafiğe kapatıldı bugün.</p>",
                   updated=early.updated + timedelta(minutes=1), origin="s0-b")  # fmt: skip
    bridge = replace(late, summary=early.summary, updated=early.updated + timedelta(minutes=30),
                     origin="s0-bridge")  # fmt: skip
    with Store.open(tmp_path / "s.sqlite3") as store:
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


def test_a_copy_from_another_host_never_takes_over_a_sites_article(tmp_path: Path) -> None:
    page = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY)
    thief = replace(page, title="Faiz kararı açıklandı bugün", summary="Başka site.",
                    content_html="<p>Başka bir sitenin metni.</p>", source="feed",
                    link="https://kopya.test/haber/1", origin="s0-thief",
                    updated=page.updated + timedelta(hours=1))  # fmt: skip
    with Store.open(tmp_path / "s.sqlite3") as store:
        run(store, [page], site=f"www.{SITE}")
        run(store, [thief])
        (entry,) = store.latest(10)  # merged as a copy
        assert len(store.revisions(entry.id)) == 2
    assert (entry.article.title, entry.article.link) == (page.title, None)
    assert entry.article.content_html == page.content_html


def test_records_dated_when_seen_match_only_by_url_or_guid(tmp_path: Path) -> None:
    seen = scrape("Faiz kararı açıklandı bugün", "Kurul toplantısı sona erdi.", BODY,
                  published_source="seen")  # fmt: skip
    timed = replace(seen, published_source="source", origin="s0-timed",
                    updated=seen.updated + timedelta(minutes=3))  # fmt: skip
    assert [k[0] for k in dedupe.match_keys(seen)] == ["h"]
    with Store.open(tmp_path / "s.sqlite3") as store:
        run(store, [seen])
        run(store, [timed])
        assert len(store.latest(10)) == 2
