"""Which records are one article, which revision wins, and ids that never change."""

from __future__ import annotations

import html
import random
import re
import struct
import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import dedupe
from aggregator import signature as signature_module
from aggregator.model import Article
from aggregator.normalize import _LEADING_LABEL, LABEL_LETTERS, fold, fold_each, turkish_lower
from tests.conftest import ISTANBUL

T0 = datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)


def art(title: str = "Ankara'da kritik görüşme yapıldı", **kw) -> Article:
    base = dict(
        title=title, summary=kw.pop("summary", f"{title} ayrıntıları burada anlatılıyor."),
        published=T0, updated=T0, source="seeds", origin="x.txt",
    )  # fmt: skip
    base.update(kw)
    return Article(**base)


def groups(*articles: Article) -> list[list[int]]:
    cands = [dedupe.candidate(i, a) for i, a in enumerate(articles)]
    return sorted(sorted(c.ref for c in g) for g in dedupe.cluster(cands))


def test_canonical_url_variants_are_one_article() -> None:
    links = [
        "https://www.example.com.tr/gundem/haber-1",
        "http://WWW.Example.com.tr:80/gundem/haber-1/",
        "https://www.example.com.tr/gundem/haber-1?utm_source=tw&fbclid=abc#yorumlar",
        "https://www.example.com.tr:443/gundem/haber-1?gclid=1",
    ]
    titles = ["Başlık bir iki üç", "Tamamen farklı başlık", "Bambaşka bir başlık", "Dördüncü"]
    arts = [art(t, link=u, published=T0 + timedelta(hours=i), summary=t)
            for i, (t, u) in enumerate(zip(titles, links, strict=True))]  # fmt: skip
    assert groups(*arts) == [[0, 1, 2, 3]]


def test_same_guid_same_feed_is_one_article_other_feed_is_not() -> None:
    a = art("Birinci haber başlığı burada", guid="123", source="feed-a", summary="")
    b = art("Değişmiş haber başlığı şimdi", guid="123", source="feed-a", summary="",
            published=T0 + timedelta(hours=2))  # fmt: skip
    c = art("Başka kaynaktan başka haber", guid="123", source="feed-b", summary="",
            published=T0 + timedelta(hours=5))  # fmt: skip
    assert groups(a, b, c) == [[0, 1], [2]]


def test_same_minute_and_turkish_folded_title_is_one_article() -> None:
    a = art("İZMİR'DE DEPREM: 4,2 BÜYÜKLÜĞÜNDE", summary="a")
    b = art("SON DAKİKA | İzmir'de deprem: 4,2 büyüklüğünde", summary="b")
    c = art("Son dakika: izmir'de  deprem - 4,2 büyüklüğünde!", summary="c",
            published=T0 + timedelta(seconds=30))  # fmt: skip
    assert groups(a, b, c) == [[0, 1, 2]]


def test_same_minute_and_same_lead_with_a_new_title_is_one_article() -> None:
    lead = "Merkez Bankası politika faizini yüzde 38'de sabit tuttu."
    a = art("Faiz kararı açıklandı", summary=lead)
    b = art("Merkez Bankası faizi sabit bıraktı", summary=lead, updated=T0 + timedelta(minutes=9))
    assert groups(a, b) == [[0, 1]]


def test_different_articles_stay_apart() -> None:
    bulletin = "Günün özeti: öne çıkan başlıklar"
    a = art(bulletin, summary="Pazartesi özeti.")
    b = art(bulletin, summary="Salı özeti.", published=T0 + timedelta(days=1))
    c = art("Aynı dakikada başka bir haber", summary="Bambaşka bir konu anlatılıyor burada.")
    quoted = a.summary
    d = art("Dünkü haberin devamı geldi", summary=quoted + " Yeni gelişme.",
            published=T0 + timedelta(hours=3))  # fmt: skip
    assert groups(a, b, c, d) == [[0], [1], [2], [3]]


def test_the_newest_guncelleme_wins_and_published_is_the_earliest() -> None:
    first = dedupe.candidate(0, art(updated=T0))
    newest = dedupe.candidate(1, art(updated=T0 + timedelta(minutes=10), summary="yeni spot"))
    late_old = dedupe.candidate(2, art(updated=T0 + timedelta(minutes=5), summary="eski spot"))
    (group,) = dedupe.cluster([first, newest, late_old])
    assert dedupe.winner(group).ref == 1


def test_equal_guncelleme_is_decided_the_same_way_in_any_order() -> None:
    a = dedupe.candidate(0, art(summary="bir sürüm metni burada"))
    b = dedupe.candidate(1, art(summary="öbür sürüm metni burada"))
    picks = {dedupe.winner(g).content_hash for g in ([a, b], [b, a])}
    assert len(picks) == 1


def test_id_is_versioned_deterministic_and_ignores_later_revisions() -> None:
    original = art()
    revised = replace(original, title="Ankara'da kritik görüşme: yeni ayrıntılar",
                      updated=T0 + timedelta(minutes=10))  # fmt: skip
    g1 = [dedupe.candidate(0, original)]
    g2 = [dedupe.candidate(0, revised), dedupe.candidate(1, original)]
    id1 = dedupe.article_id(dedupe.identity_key(g1))
    id2 = dedupe.article_id(dedupe.identity_key(g2))
    assert id1 == id2
    assert id1.startswith("urn:uuid:")
    assert id1 == dedupe.article_id(dedupe.identity_key(g1))  # no randomness


def _corpus() -> list[Article]:
    out = []
    for i in range(12):
        t = T0 + timedelta(minutes=7 * i)
        out.append(art(f"Haber numarası {i} için başlık", published=t, updated=t,
                       summary=f"Spot metni {i} burada yazıyor."))  # fmt: skip
        if i % 3 == 0:
            out.append(
                art(
                    f"SON DAKİKA | HABER NUMARASI {i} İÇİN BAŞLIK",
                    published=t,
                    updated=t + timedelta(minutes=3),
                    summary=f"Yeni spot {i} yazıldı.",
                )
            )
        if i % 4 == 0:
            out.append(art(f"Değişik başlık {i} oldu", published=t, updated=t,
                           summary=f"Spot metni {i} burada yazıyor."))  # fmt: skip
    return out


def _published_set(articles: list[Article]) -> dict[str, str]:
    cands = [dedupe.candidate(i, a) for i, a in enumerate(articles)]
    result = {}
    for g in dedupe.cluster(cands):
        result[dedupe.article_id(dedupe.identity_key(g))] = dedupe.winner(g).content_hash
    return result


@settings(max_examples=100, deadline=None)
@given(st.randoms(use_true_random=False))
def test_any_order_or_twice_gives_the_same_published_set_and_ids(rnd: random.Random) -> None:
    corpus = _corpus()
    expected = _published_set(corpus)
    shuffled = corpus[:]
    rnd.shuffle(shuffled)
    assert _published_set(shuffled) == expected
    assert _published_set(shuffled + corpus) == expected
    assert len(expected) == 12


def test_on_equal_guncelleme_the_revision_with_the_sites_url_wins() -> None:
    scrape = dedupe.candidate(0, art(summary="aynı spot metni burada yazıyor"))
    page = dedupe.candidate(1, art(summary="aynı spot metni burada yazıyor",
                                   link="https://haber.test/a/1"))  # fmt: skip
    for group in ([scrape, page], [page, scrape]):
        assert dedupe.winner(group).ref == 1


def test_the_decision_is_a_value_bridging_two_stored_articles_into_the_first_published() -> None:
    early, late = art(published=T0), art("Başka başlık burada yazıyor", published=T0)
    stored = {
        sid: dedupe.Stored(id=sid, published=p, site="",
                           fields=dedupe.Fields(*(c.content_hash,) * 6), revisions=(c,))
        for sid, p, c in (("urn:b", "2026-01-01T16:16:30", dedupe.candidate(-1, late)),
                          ("urn:a", "2026-01-01T16:16:00", dedupe.candidate(-1, early)))
    }  # fmt: skip
    bridge = dedupe.candidate(0, art(updated=T0 + timedelta(minutes=5), summary="yeni spot"))
    (plan,) = dedupe.decide([[bridge]], {0: {"urn:a", "urn:b"}}, stored)
    assert (plan.id, plan.retired, plan.changed) == ("urn:a", ("urn:b",), True)
    assert plan.best == bridge and plan.published == "2026-01-01T16:16:00"


def test_fields_come_from_the_newest_unless_it_lacks_them() -> None:
    full = art(content_html="<p>" + "Uzun gövde metni burada. " * 20 + "</p>",
               categories=("Gündem",), authors=("Muhabir",))  # fmt: skip
    item = art(link="https://haber.test/a/1", updated=T0 + timedelta(minutes=3))
    item = replace(item, content_html=f"<p>{item.summary}</p>")  # the spot again: no body
    bare = art("Ankara'da kritik görüşme: son durum", updated=T0 + timedelta(minutes=9),
               summary="Yeni spot.")  # fmt: skip
    cands = [dedupe.candidate(i, a) for i, a in enumerate((full, item, bare))]
    fields = dedupe.plan(cands, []).fields
    hashes = {a: c.content_hash for a, c in zip(("full", "item", "bare"), cands, strict=True)}
    assert fields.base == hashes["bare"]  # title, summary, updated
    assert fields.link == hashes["item"]  # the site's URL
    assert fields.content == fields.categories == fields.authors == hashes["full"]
    only_spots = [dedupe.candidate(i, a) for i, a in enumerate((bare, replace(bare, summary="x y z",
                  updated=T0)))]  # fmt: skip
    assert dedupe.plan(only_spots, []).fields.plain  # no fuller body anywhere: nothing to take


def test_on_equal_updated_the_revision_first_seen_later_wins_and_a_repeat_never_does() -> None:
    old, fix = (dedupe.candidate(-1, art(summary=s)) for s in ("ilk metin", "düzeltilmiş metin"))
    old = old._replace(seen="2026-01-01T10:00:00.000000+00:00")

    def stored(*revisions: dedupe.Candidate) -> dedupe.Stored:
        best = max(revisions, key=lambda c: c.rank)
        fields = dedupe.Fields(*(best.content_hash,) * 6)
        return dedupe.Stored(
            id="urn:a", published=old.published, site="", fields=fields, revisions=revisions
        )

    now = "2026-01-01T11:00:00.000000+00:00"
    (plan,) = dedupe.decide([[fix._replace(ref=0)]], {0: {"urn:a"}}, {"urn:a": stored(old)},
                            seen=now)  # fmt: skip
    assert plan.best.content_hash == fix.content_hash and plan.changed
    kept = stored(old, fix._replace(seen=now))
    for again in (old, fix):  # the stale text served again, or the correction: nothing changes
        (plan,) = dedupe.decide([[again._replace(ref=0)]], {0: {"urn:a"}}, {"urn:a": kept},
                                seen="2026-01-01T12:00:00.000000+00:00")  # fmt: skip
        assert plan.best.content_hash == fix.content_hash and not plan.changed
    older = dedupe.candidate(0, art(summary="eski", updated=T0 - timedelta(minutes=1)))
    (plan,) = dedupe.decide([[older]], {0: {"urn:a"}}, {"urn:a": kept}, seen=now)
    assert plan.best.content_hash == fix.content_hash  # an older GÜNCELLEME loses, however late


def test_items_of_one_feed_with_different_guids_are_different_articles() -> None:
    link = "https://haber.test/gundem/ortak-sayfa"
    a = art(guid="a", source="feed", link=link)
    b = art(guid="b", source="feed", link=link)  # same page, same title and minute
    a2 = replace(a, title="Düzeltilmiş başlık burada", updated=T0 + timedelta(hours=1))
    other_feed = art(guid="z", source="other", link=link)
    scrape = art(link=link)  # the site's own scrape: no guid, joins by URL
    assert groups(a, b) == [[0], [1]]
    assert groups(a, a2, b) == [[0, 1], [2]]  # a revision of one item is still that item
    assert groups(a, other_feed, scrape) == [[0, 1, 2]]  # across sources nothing changes
    assert groups(a, scrape, b) == [[0, 1], [2]]  # a guid-less bridge never joins a and b


def test_a_new_guid_matching_a_stored_article_by_url_is_its_own_article() -> None:
    link = "https://haber.test/gundem/ortak-sayfa"
    old = dedupe.candidate(-1, art(guid="a", source="feed", link=link))
    sid = dedupe.article_id(old.keys[0])  # named by its URL key, as the store names it
    stored = {sid: dedupe.Stored(id=sid, published=old.published, site="haber.test",
                                 fields=dedupe.Fields(*(old.content_hash,) * 6),
                                 revisions=(old,))}  # fmt: skip
    new = dedupe.candidate(0, art("Başka bir haber başlığı", guid="b", source="feed", link=link))
    again = dedupe.candidate(1, art(guid="a", source="feed", link=link, summary="yeni spot"))
    first, second = dedupe.decide([[new], [again]], {0: {sid}, 1: {sid}}, stored)
    assert first.stored is None and first.members == (new,) and first.id != sid
    assert first.id == dedupe.article_id(new.keys[1])  # its guid key names it
    assert (second.id, second.members) == (sid, (again,))
    # no guid of its own: a scrape of the page bridges nothing and joins the stored article
    scrape = dedupe.candidate(0, art(link=link, summary="sitenin kendi metni"))
    (plan,) = dedupe.decide([[scrape]], {0: {sid}}, stored)
    assert plan.id == sid


def test_signature_format_is_pinned_and_tells_stores_written_before_apart() -> None:
    """A stored signature is compared with ones computed later: the same text must give the
    same bytes (version 2, shingle count, the smallest shingle hashes). A store's v1
    signatures (CRC-32s, no version byte) are told apart, to be computed again."""
    a = art("SON DAKİKA | İzmir’de Kar", summary="Yağış, “bugün” sürecek.",
            content_html="<p>Valilik &amp; AFAD uyardı: yollar kapalı.</p>")  # fmt: skip
    v2 = dedupe.signature(a)
    assert v2.hex() == (
        "0209000000c123242922893145c7cd7864ef258e6e5409fd84c9e47eb197e5a1b192717cbfddf713f2"
    )
    v1 = bytes.fromhex(
        "09000000491ed10e4727d54ef06662546b316a751010f2ad0fbe39b036960abeb7f958c380cdf3f7"
    )  # what format 1 made of the same article
    assert signature_module.is_current(v2) and not signature_module.is_current(v1)
    assert signature_module.is_current(b"")  # dated when seen: no signature in any version
    assert dedupe.similarity(v2, v2) == 1.0 and dedupe.similarity(v1, v1) == 1.0
    assert dedupe.similarity(v1, v2) == 0.0  # different hashes: never compared


def _signature_by_definition(a: Article) -> bytes:
    """Format 2 spelled out in Python integers: fold()'s first words, each hashed as a
    polynomial over its code points mod 2^64, three by three mixed, the smallest kept."""
    text = html.unescape(re.sub(r"<[^>]*>", " ", a.content_html[: signature_module.SIGNATURE_HTML]))
    words = fold(f"{a.title} {a.summary} {text}").split()[: signature_module.SIGNATURE_WORDS]
    p, mask = 0x100000001B3, (1 << 64) - 1
    hashes = [sum(ord(ch) * pow(p, i, 1 << 64) for i, ch in enumerate(w)) & mask for w in words]
    shingles = set()
    for x, y, z in zip(hashes, hashes[1:], hashes[2:], strict=False):
        h = ((x * 0x9E3779B97F4A7C15 + y) * 0xC2B2AE3D27D4EB4F + z) & mask
        h ^= h >> 31
        shingles.add(((h * 0xFF51AFD7ED558CCD) & mask) >> 32)
    smallest = sorted(shingles)[: signature_module.SIGNATURE_SIZE]
    return struct.pack(f"<BI{len(smallest)}I", 2, len(shingles), *smallest)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["İzmir", "ısı", "Kar,", "kar", "“bugün”", "-", "AFAD", "&amp;",
                                 "yağış.", "12", "<b>", "</b>", "son", "dakika", "|", "𝐀𝐁",
                                 "\U00020000", "😀", "\ud800", "ﬁ"]),
                max_size=400))  # fmt: skip
def test_signature_is_the_bottom_k_of_the_first_words_shingles(words: list[str]) -> None:
    body = " ".join(words)
    a = art("Başlık burada", summary="", content_html=f"<p>{body}</p>")
    assert dedupe.signature(a) == _signature_by_definition(a)


_WORDS = st.sampled_from(["İzmir", "ısı", "Kar,", "kar", "“bugün”", "-", "AFAD", "&amp;", "yağış.",
                          "12", "<b>", "</b>", "<i", ">", "son", "dakika", "SON DAKİKA |", "𝐀𝐁",
                          "\U00020000", "😀", "\ud800", "ﬁ", "&", "", "ΑΣ"])  # fmt: skip
_TEXTS = st.lists(_WORDS, max_size=40).map(" ".join)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_TEXTS, _TEXTS, st.lists(_WORDS, max_size=500).map(" ".join),
                          st.booleans()), max_size=12))  # fmt: skip
def test_signatures_of_many_articles_at_once_are_each_ones_own(
    texts: list[tuple[str, str, str, bool]],
) -> None:
    """A feed's or a batch's signatures are computed in one pass over all their texts: each
    is the bytes of the format's definition (no word, shingle or cut-off of a long text
    spills into a neighbour's), and a record dated when seen has none."""
    articles = [art(title, summary=summary, content_html=f"<p>{body}",
                    published_source="seen" if seen else "source")
                for title, summary, body, seen in texts]  # fmt: skip
    expected = [b"" if a.published_source == "seen" else _signature_by_definition(a)
                for a in articles]  # fmt: skip
    assert signature_module.signatures(articles) == expected
    assert [dedupe.signature(a) for a in articles] == expected


def test_signatures_of_more_text_than_one_pass_takes_are_each_ones_own() -> None:
    rnd = random.Random(5)
    words = ["kar", "yağış", "İzmir", "ısı", "AFAD", "uyardı", "yollar", "kapalı", "bugün"]
    articles = [art(f"Başlık {i}", content_html=" ".join(rnd.choices(words, k=rnd.randrange(4000))))
                for i in range(80)]  # fmt: skip
    assert sum(len(a.content_html) for a in articles) > 2 * signature_module.BATCH_POINTS
    assert signature_module.signatures(articles) == [_signature_by_definition(a) for a in articles]


def _fold_by_definition(text: str) -> str:
    """fold() as stored match keys were made: NFKC, Turkish lower case, leading labels
    stripped, every run of non-word characters (re's \\W and "_") one space."""
    t = turkish_lower(unicodedata.normalize("NFKC", text))
    while (m := _LEADING_LABEL.match(t)) and m.end():
        t = t[m.end() :]
    return re.sub(r"[\W_]+", " ", t).strip()


_FOLD_PIECES = st.sampled_from([
    "İzmir", "IŞIK", "ısı", "Ankara'da", "“bugün”", "–", "—", "...", ". ", ", ", "  ", "\t",
    "\n", "\x00", "\xa0", "_", "%5", "#etiket", "&", "|", ":", "SON DAKİKA", "Son dakika:",
    "FLAŞ ", "flas -", "Canlı |", "video:", "Özel haber!", "sıcak gelişme:", "Breaking -",
    "Güncelleme:", "o\u0308", "\u0307", "ﬁ", "Ⅻ", "ς", "Σ", "12", "a", "b", "s", " ", "ſon dakika:",
])  # fmt: skip


@settings(max_examples=500, deadline=None)
@given(st.lists(st.lists(_FOLD_PIECES, max_size=12).map("".join) | st.text(max_size=30),
                min_size=1, max_size=4))  # fmt: skip
def test_folding_several_texts_at_once_gives_each_ones_fold(texts: list[str]) -> None:
    """Match keys fold title, spot and first paragraph in one pass (normalize.fold_each):
    each must be what folding it alone gives, or stored keys would stop matching."""
    assert fold_each(*texts) == [_fold_by_definition(t) for t in texts]
    assert [fold(t) for t in texts] == [_fold_by_definition(t) for t in texts]


def test_every_label_starts_with_a_label_letter_after_folding_case() -> None:
    """fold_each skips the label regex for a text whose fold starts with none of
    LABEL_LETTERS: no code point lower-cases (after NFKC) to another letter the regex,
    which ignores case, would take for the first letter of a label word."""
    first = re.compile("[" + "".join(sorted(LABEL_LETTERS)) + "]", re.IGNORECASE)
    words = {alternative.replace("\\s*", " ") for group in re.findall(r"\(\?:([^()]*)\)",
             _LEADING_LABEL.pattern) for alternative in group.split("|")}  # fmt: skip
    assert {w[0] for w in words} == LABEL_LETTERS and "breaking" in words
    for w in words:  # each is a label word: a text opening with it and ":" is stripped
        assert fold(f"{w.upper()}: Ankara'da toplantı") == "ankara da toplantı"
    odd = [
        cp for cp in range(0x110000) if not 0xD800 <= cp < 0xE000
        for ch in turkish_lower(unicodedata.normalize("NFKC", chr(cp)))
        if first.match(ch) and ch not in LABEL_LETTERS
    ]  # fmt: skip
    assert odd == []
