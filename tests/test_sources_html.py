"""Listing pages -> links, article pages -> Articles (pure: bytes in, records out)."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.model import Article
from aggregator.sources.html import article_links, parse_page
from tests.conftest import ISTANBUL
from tests.localserver import fixture

BASE = "http://haber.test"


def page(data: bytes, url: str = BASE + "/news/x", content_type: str = "",
         selectors: tuple[tuple[str, str], ...] = ()) -> Article:  # fmt: skip
    return parse_page(data, url=url, content_type=content_type, source="web", tz=ISTANBUL,
                      selectors=selectors)  # fmt: skip


def test_listing_links_in_page_order_without_repeats_or_javascript() -> None:
    links = article_links(fixture("listing.html", BASE), url=BASE + "/news/")
    assert links == (
        BASE + "/news/mit-kalin-umerov",
        BASE + "/news/tgrt-style",
        BASE + "/news/eski-sayfa",
    )
    assert article_links(fixture("listing.html", BASE), url=BASE + "/news/", limit=1) == (
        BASE + "/news/mit-kalin-umerov",
    )


def test_listing_with_a_configured_selector_and_the_slug_fallback() -> None:
    doc = (
        b'<ul class="manset"><li><a href="/a/ilk-haber-basligi-123">1</a></li></ul>'
        b'<p><a href="/hakkimizda">x</a> <a href="http://other.test/b-c-d">y</a></p>'
    )
    assert article_links(doc, url=BASE + "/", selector="ul.manset a") == (
        BASE + "/a/ilk-haber-basligi-123",
    )
    assert article_links(doc, url=BASE + "/") == (BASE + "/a/ilk-haber-basligi-123",)
    with pytest.raises(ParseError, match="invalid CSS selector"):
        article_links(doc, url=BASE + "/", selector="ul[[")


def test_json_ld_page() -> None:
    a = page(fixture("jsonld.html", BASE))
    assert a.title.startswith("MİT Başkanı İbrahim Kalın ile Ukrayna")  # JSON-LD beats og:title
    assert a.link == "http://haber.test/news/mit-kalin-umerov"  # <link rel=canonical>
    assert a.published == datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)
    assert a.updated == datetime(2026, 1, 1, 19, 26, tzinfo=ISTANBUL)
    assert a.authors == ("Selahattin Demirel",)
    assert a.summary.endswith("Ankara'da görüştü.")
    assert a.content_html == (
        "<p>Ankara kritik bir görüşmeye tanık oldu.</p><p>Görüşmede esir takası da ele alındı.</p>"
    )
    assert a.categories == ("Gündem",)
    assert a.image == BASE + "/img/kalin.jpg"
    assert (a.origin, a.source, a.language) == (BASE + "/news/x", "web", "tr")


def test_visible_tgrt_block_via_the_seed_parser() -> None:
    a = page(fixture("tgrt.html", BASE))
    assert a.title == "Deprem bölgesinde yeni konutlar teslim edildi"
    assert a.published == datetime(2026, 1, 2, 10, 5, tzinfo=ISTANBUL)
    assert a.updated == datetime(2026, 1, 2, 11, 40, tzinfo=ISTANBUL)
    assert a.agency == "İHA"
    assert a.content_html.startswith("<p>Hatay'da deprem sonrası")
    assert a.link == "http://haber.test/news/x"


def test_windows_1254_page_without_charset_has_no_mojibake() -> None:
    a = page(fixture("cp1254.html", BASE), content_type="text/html")
    assert a.title == "Kıymalı Böreği nasıl yapılır? Adım adım tarif"
    assert a.published == datetime(2026, 1, 1, 12, 0, tzinfo=ISTANBUL)
    assert "yufka, kıyma, soğan" in a.content_html


def test_hostile_html_is_sanitized() -> None:
    a = page(fixture("hostile.html", BASE))
    for bad in ("<script", "onerror", "onclick", "javascript:", "<iframe", "<style", "alert"):
        assert bad not in a.content_html
    assert 'href="http://haber.test/ic/sayfa"' in a.content_html


def test_opengraph_and_time_element() -> None:
    doc = """<html><head>
    <meta property="og:title" content="OpenGraph başlığı burada">
    <meta property="og:url" content="https://haber.test/og/kanonik?utm_medium=x">
    <meta name="description" content="Kısa açıklama.">
    <meta property="article:modified_time" content="2026-01-05T10:00:00+03:00">
    </head><body><time datetime="2026-01-05T09:00:00">5 Ocak</time>
    <div itemprop="articleBody"><p>Gövde metni.</p></div></body></html>""".encode()
    a = page(doc)
    assert a.title == "OpenGraph başlığı burada" and a.summary == "Kısa açıklama."
    assert a.link == "https://haber.test/og/kanonik"
    assert a.published == datetime(2026, 1, 5, 9, 0, tzinfo=ISTANBUL)
    assert a.updated == datetime(2026, 1, 5, 10, 0, tzinfo=ISTANBUL)
    assert a.content_html == "<p>Gövde metni.</p>"


def test_selector_overrides_win() -> None:
    doc = """<html><head><meta property="og:title" content="Yanlış başlık"></head><body>
    <div class="baslik">Doğru başlık burada</div><span class="yazar">Zeynep Ak</span>
    <span class="tarih">1 Ocak 2026 Perşembe 19:18</span>
    <div class="metin"><p>Seçilen gövde.</p><script>x()</script></div></body></html>""".encode()
    a = page(doc, selectors=(("title", ".baslik"), ("author", ".yazar"),
                             ("published", ".tarih"), ("content", ".metin")))  # fmt: skip
    assert a.title == "Doğru başlık burada" and a.authors == ("Zeynep Ak",)
    assert a.published == datetime(2026, 1, 1, 19, 18, tzinfo=ISTANBUL)
    assert a.content_html == "<p>Seçilen gövde.</p>"


def test_a_page_without_a_date_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="no publication date"):
        page(b"<html><body><h1>Tarihsiz sayfa</h1><p>Metin.</p></body></html>")


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    for prefix in (b"", b"<html><body>GIR\xc4\xb0\xc5\x9e: 01.01.2026 10:00\n",
                   b'<script type="application/ld+json">{"@type":"NewsArticle",'):  # fmt: skip
        try:
            a = page(prefix + data)
        except ParseError:
            pass
        else:
            assert a.updated >= a.published
        try:
            article_links(prefix + data, url=BASE + "/")
        except ParseError:
            pass


AA_PAGE = """<html lang="tr"><head><title>Bahar yağışları - Anadolu Ajansı</title>
<meta property="og:title" content="Türkiye'de bahar yağışları beklentiyi aştı">
<meta property="og:site_name" content="Anadolu Ajansı">
<meta property="article:author" content="https://www.aa.com.tr/tr/p/muhabir-1"></head>
<body><div class="detay-spot-category"><h1>Türkiye'de bahar yağışları beklentiyi aştı</h1>
<h4>Nisan yağışları son 10 yılın ortalamasının üzerinde.</h4>
<span class="tarih">05.04.2025 - Güncelleme : 06.04.2025</span></div>
<div class="detay-icerik"><div><p>ANKARA (AA) - Meteoroloji verilerine göre yağışlar arttı.</p>
<p>Uzmanlar barajlardaki doluluğun da yükseldiğini belirtti.</p></div></div></body></html>"""


def test_turkish_visible_labels_date_a_page_and_a_dateline_names_the_agency() -> None:
    a = page(AA_PAGE.encode(), url="https://www.aa.com.tr/tr/gundem/bahar-yagislari/3530000")
    assert a.title == "Türkiye'de bahar yağışları beklentiyi aştı"
    assert a.published == datetime(2025, 4, 5, tzinfo=ISTANBUL) and a.date_only
    assert a.updated == datetime(2025, 4, 6, tzinfo=ISTANBUL)
    assert a.authors == () and a.agency == "AA"  # a profile URL is nobody's name
    assert "Meteoroloji verilerine göre" in a.content_html


def test_a_site_relaying_an_agency_story_is_not_its_author() -> None:
    doc = """<html lang="tr"><head><meta property="og:site_name" content="NTV">
    <script type="application/ld+json">//<![CDATA[
    {"@type": "NewsArticle", "headline": "Ankara'da kritik zirve sona erdi",
     "datePublished": "2025-04-05T10:24:00+03:00", "author": {"@type": "Organization",
     "name": "NTV"}}
    //]]></script></head><body><article><h1>Ankara'da kritik zirve sona erdi</h1>
    <p>İSTANBUL (AA) - Zirvede bölgesel konular ele alındı.</p></article></body></html>"""
    a = page(doc.encode())
    assert a.published == datetime(2025, 4, 5, 10, 24, tzinfo=ISTANBUL)  # JSON-LD in CDATA
    assert a.authors == () and a.agency == "AA"


@pytest.mark.parametrize(("byline", "agency"), [
    ("İHA", "İHA"), ("DHA", "DHA"), ("Anadolu Ajansı", "AA"), ("Sözcü Haber Merkezi",
    "Sözcü Haber Merkezi"), ("Haber Merkezi", "Haber Merkezi"),
])  # fmt: skip
def test_an_agency_byline_is_the_source_not_the_author(byline: str, agency: str) -> None:
    doc = f"""<html><head><meta name="author" content="{byline}">
    <meta property="article:published_time" content="2026-01-05T09:00:00+03:00">
    </head><body><h1>Bir haber başlığı burada</h1><p>Metin.</p></body></html>"""
    a = page(doc.encode())
    assert (a.authors, a.agency) == ((), agency)


def test_a_date_in_the_url_path_is_the_last_resort() -> None:
    doc = b"<html><body><h1>Tarihsiz sayfa</h1><p>Metin.</p></body></html>"
    a = page(doc, url=BASE + "/2024/07/03/tarihsiz-sayfa")
    assert a.published == datetime(2024, 7, 3, tzinfo=ISTANBUL) and a.date_only


def test_a_page_without_a_date_is_dated_when_it_was_seen() -> None:
    seen = datetime(2026, 1, 10, 9, 30, tzinfo=ISTANBUL)
    a = parse_page(b"<html><body><h1>Tarihsiz sayfa</h1><p>Metin.</p></body></html>",
                   url=BASE + "/news/x", source="web", tz=ISTANBUL, seen=seen)  # fmt: skip
    assert a.title == "Tarihsiz sayfa" and a.published == a.updated == seen
    assert a.published_source == "seen" and not a.date_only
    doc = "<html><body><h1>Sayfa</h1><p>GİRİŞ: 01.01.2026 10:00</p></body></html>".encode()
    dated = parse_page(doc, url=BASE + "/news/x", source="web", tz=ISTANBUL, seen=seen)
    assert dated.published_source == "source" and dated.published != seen
