"""The seed-file parser: every layout the issue names, encodings, bad inputs, properties."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.model import Article
from aggregator.records import article_to_json
from aggregator.sources.seedfile import parse_seed
from tests.conftest import DATA, ISTANBUL, SEED_DOC

LAYOUTS = sorted((DATA / "layouts").glob("*.txt"))


def parse(data: bytes, origin: str = "test.txt") -> Article:
    return parse_seed(data, origin=origin, source="seeds", tz=ISTANBUL, language="tr")


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=ISTANBUL)


@pytest.mark.parametrize("path", LAYOUTS, ids=[p.stem for p in LAYOUTS])
def test_layout_matches_golden_record(path: Path, golden) -> None:
    article = parse(path.read_bytes(), origin=path.name)
    pretty = json.dumps(json.loads(article_to_json(article)), ensure_ascii=False, indent=2)
    golden(path.with_suffix(".expected.json"), (pretty + "\n").encode())


def test_seed_document_every_field() -> None:
    a = parse(SEED_DOC.read_bytes())
    assert a.title == (
        "MİT Başkanı İbrahim Kalın ile Ukrayna Savunma Konseyi Sekreteri Rüstem Umerov "
        "Ankara'da görüştü! İşte gündeme gelen konular"
    )
    assert a.summary.startswith("MİT Başkanı İbrahim Kalın, Ukrayna Savunma Konseyi")
    assert a.summary.endswith("esir iadesi de ele alındı.")
    assert a.authors == ("Selahattin Demirel",)
    assert a.agency == "Haber Merkezi"
    assert a.published == at(2026, 1, 1, 19, 16)
    assert a.updated == at(2026, 1, 1, 19, 26)
    assert a.published.utcoffset().total_seconds() == 3 * 3600
    assert a.language == "tr" and a.link is None and not a.date_only
    assert a.content_html.startswith("<p>Ankara kritik bir görüşmeye tanık oldu.")
    assert "<h2>SAVAŞ ESİRLERİNİN SERBEST BIRAKILMASI DA KONUŞULDU</h2>" in a.content_html
    assert "<h2>RÜSTEM UMEROV DA AÇIKLAMA YAPTI</h2>" in a.content_html
    assert a.content_html.endswith('devam ediyoruz."</p>')
    assert a.content_html.count("<p>") == 8
    # the caption (title repeated) and the meta block never reach the body
    assert "KAYNAK" not in a.content_html and "GİRİŞ" not in a.content_html
    assert a.title not in a.content_html
    assert a.warnings == ()


def test_noisy_scrape_keeps_facts_and_drops_chrome() -> None:
    a = parse((DATA / "layouts" / "tgrt_noisy.txt").read_bytes())
    assert a.title == "Meclis'te yeni dönem: Bütçe görüşmeleri başladı"
    assert a.authors == ("Ayşe Kaya",)
    assert a.agency == "AA"
    assert a.categories[0] == "Politika"
    assert a.published == at(2026, 3, 5, 21, 1) and a.updated == at(2026, 3, 5, 21, 45)
    everything = " ".join([a.title, a.summary, a.content_html, *a.authors])
    for noise in ("Menu İkon", "Arama Kapat", "27°", "SON DAKİKA", "Avatar", "Editor",
                  "Paylaş", "+Aa-", "saat ikonu", "#Gündem", "İzmir"):  # fmt: skip
        assert noise not in everything, noise
    assert "<h2>MUHALEFETTEN ELEŞTİRİ</h2>" in a.content_html


def test_without_meta_block_the_scrape_date_is_a_date_only_published_time() -> None:
    a = parse((DATA / "layouts" / "tgrt_nometa.txt").read_bytes())
    assert a.title == "Kar yağışı İstanbul'da ulaşımı aksattı"
    assert a.authors == ("Mehmet Demir",)
    assert a.published == a.updated == at(2026, 2, 10)
    assert a.date_only
    assert a.content_html.startswith("<p>Sabah saatlerinde")


def test_body_only_scrape_loses_nothing_and_gets_a_title() -> None:
    a = parse((DATA / "layouts" / "tgrt_bodyonly.txt").read_bytes())
    assert a.title == "Deprem bölgesinde yeniden yapılanma çalışmaları sürüyor"
    assert a.content_html.startswith("<p>Deprem bölgesinde yeniden yapılanma çalışmaları")
    assert "Teslimatların yıl sonuna kadar" in a.content_html
    assert a.published == at(2026, 4, 2) and a.date_only


@pytest.mark.parametrize(
    ("name", "published", "updated"),
    [
        ("oneline_meta.txt", at(2026, 1, 1, 19, 16), at(2026, 1, 1, 19, 26)),
        ("giris_tarihi.txt", at(2026, 1, 3, 17, 47), at(2026, 1, 3, 17, 59)),
        ("month_weekday.txt", at(2026, 1, 1, 19, 18), at(2026, 1, 1, 19, 18)),
        ("seconds_yayin.txt", at(2026, 1, 13, 13, 4), at(2026, 1, 13, 13, 4)),
        ("short_month.txt", at(2011, 4, 24), at(2011, 4, 24)),
    ],
)
def test_other_sites_meta_layouts(name: str, published: datetime, updated: datetime) -> None:
    a = parse((DATA / "layouts" / name).read_bytes())
    assert (a.published, a.updated) == (published, updated)
    assert a.content_html, "the body must not be swallowed by the meta block"


def test_other_site_agency_and_section() -> None:
    a = parse((DATA / "layouts" / "oneline_meta.txt").read_bytes())
    assert a.agency == "DHA"
    assert a.categories == ("Ekonomi",)
    assert a.authors == ()


def test_update_before_published_is_kept_with_a_warning() -> None:
    a = parse((DATA / "layouts" / "update_before_giris.txt").read_bytes())
    assert a.published == a.updated == at(2026, 5, 1, 12, 0)
    assert any("before GİRİŞ" in w for w in a.warnings)


def test_impossible_giris_falls_back_to_the_scrape_date() -> None:
    a = parse((DATA / "layouts" / "impossible_date_fallback.txt").read_bytes())
    assert a.published == at(2026, 7, 1) and a.date_only
    assert any("32.13.2026" in w for w in a.warnings)


def test_giris_wins_over_a_disagreeing_scrape_date() -> None:
    text = SEED_DOC.read_text(encoding="utf-8").replace("date 2026-01-01", "date 2026-01-05")
    assert parse(text.encode()).published == at(2026, 1, 1, 19, 16)


def test_markup_in_text_stays_text() -> None:
    a = parse((DATA / "layouts" / "markup_text.txt").read_bytes())
    assert a.title == "Siber saldırıda <script>alert(1)</script> kodu kullanıldı"
    assert "<script" not in a.content_html
    assert "&amp;" in a.content_html


@pytest.mark.parametrize(
    "encode",
    [
        lambda t: t.encode("utf-8"),
        lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
        lambda t: t.encode("cp1254"),
        lambda t: t.encode("iso-8859-9"),
        lambda t: t.replace("\n", "\r\n").encode("utf-8"),
        lambda t: t.replace("\n", "\r").encode("utf-8"),
        lambda t: t.encode("utf-16"),
    ],
    ids=["utf8", "utf8-bom", "cp1254", "iso-8859-9", "crlf", "cr", "utf16-bom"],
)
def test_encodings_and_line_ends_give_the_same_article(encode) -> None:
    text = SEED_DOC.read_text(encoding="utf-8").replace("’", "'")  # cp1254 has ’, 8859-9 not
    reference = parse(text.encode("utf-8"))
    assert parse(encode(text)) == reference


def test_characters_xml_forbids_are_dropped() -> None:
    text = SEED_DOC.read_text(encoding="utf-8").replace("Ankara kritik", "Ankara\x0b kritik\x1f")
    a = parse(text.encode())
    assert "\x0b" not in a.content_html and "\x1f" not in a.content_html
    assert "Ankara kritik" in a.content_html


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"  \n\n\t \r\n", "empty file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64), "binary"),
        ("Sadece bir cümle, tarih yok.\n".encode(), "no article layout"),
        (b" date 2026-01-01\n", "no text"),
        ("Başlık\nGİRİŞ:\n32.13.2026\n19:16\n\nMetin burada.\n".encode(), "impossible date"),
    ],
    ids=["empty", "blank", "binary", "no-layout", "date-only-no-text", "impossible-date"],
)
def test_bad_inputs_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse(data)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_give_an_article_or_a_parse_error(data: bytes) -> None:
    _check_total(data)


_seedish = st.lists(
    st.sampled_from(
        [
            " date 2026-01-01 Menü Kapat",
            "KAYNAK:",
            "GİRİŞ:",
            "GÜNCELLEME:",
            "|",
            "01.01.2026",
            "19:16",
            "32.13.2026",
            "99:99",
            "Giriş: 01.01.2026 - 19:16",
            "Avatar",
            " | Ad Soyad",
            "BÜYÜK BAŞLIK",
            "Bir paragraf metni.",
            "",
            "#Gündem",
            "1 Ocak 2026 Perşembe 19:18",
            "Güncelleme:",
            "<script>x</script>",
            "\x00",
            "\ufeff",
            "İ",
            "saat ikonu 21:01",
        ]
    )
    | st.text(max_size=40),
    max_size=40,
).map("\n".join)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_seedish)
def test_seed_like_text_gives_an_article_or_a_parse_error(text: str) -> None:
    _check_total(text.encode("utf-8", errors="surrogatepass"))


def _check_total(data: bytes) -> None:
    try:
        a = parse(data)
    except ParseError as e:
        assert str(e)
        return
    assert a.title
    assert a.published.tzinfo is not None and a.updated.tzinfo is not None
    assert a.updated >= a.published
    assert "<script" not in a.content_html
