"""RSS, Atom and JSON Feed documents -> Articles (pure: bytes in, records out)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.sources.feed import FeedResult, parse_feed, parse_time
from tests.conftest import ISTANBUL
from tests.localserver import fixture

BASE = "http://haber.test"


def parse(data: bytes, content_type: str = "", url: str = BASE + "/feed") -> FeedResult:
    return parse_feed(data, url=url, content_type=content_type, source="src", tz=ISTANBUL)


def rss(items: str, encoding: str = "utf-8", decl: bool = True) -> bytes:
    head = f'<?xml version="1.0" encoding="{encoding}"?>' if decl else ""
    text = f'{head}<rss version="2.0"><channel><title>T</title>{items}</channel></rss>'
    return text.encode(encoding)


def test_rss_maps_every_field() -> None:
    result = parse(fixture("rss.xml", BASE))
    first, borek, no_link = result.articles
    assert first.title.startswith("MİT Başkanı İbrahim Kalın ile Ukrayna")
    assert first.link == "http://haber.test/news/mit-kalin-umerov"  # as written, without utm_
    assert first.guid == "haber-1001"
    assert first.published == datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)
    assert first.updated == first.published
    assert first.authors == ("Selahattin Demirel",)
    assert first.categories == ("Gündem",)
    assert first.image == "http://haber.test/img/kalin.jpg"
    assert first.summary.startswith("MİT Başkanı İbrahim Kalın, Ukrayna")
    assert first.content_html.startswith("<p>MİT Başkanı")
    assert (first.source, first.origin, first.language) == ("src", BASE + "/feed", "tr")
    assert borek.title == "Kıymalı Böreği nasıl yapılır? Adım adım tarif"
    assert borek.summary == "Kıymalı börek için gereken malzemeler ve püf noktaları."
    assert borek.image == "http://haber.test/img/borek.jpg"
    assert result.ttl == 15 * 60
    assert no_link.link is None and no_link.guid and no_link.guid.startswith("sha1:")


def test_times_without_offset_are_in_the_site_zone() -> None:
    borek = parse(fixture("rss.xml", BASE)).articles[1]
    assert borek.published == datetime(2026, 1, 1, 12, 0, tzinfo=ISTANBUL)
    atom = parse(fixture("atom.xml", BASE)).articles[1]
    assert atom.updated == datetime(2026, 1, 2, 8, 0, tzinfo=ISTANBUL)


def test_guid_fallback_is_link_then_a_stable_hash() -> None:
    items = (
        "<item><title>Bağlantılı haber başlığı burada</title><link>/a/1</link>"
        "<pubDate>Thu, 01 Jan 2026 10:00:00 +0300</pubDate></item>"
        "<item><title>Bağlantısız haber başlığı burada</title>"
        "<pubDate>Thu, 01 Jan 2026 10:00:00 +0300</pubDate></item>"
    )
    a, b = parse(rss(items)).articles
    assert a.guid == "http://haber.test/a/1"
    again = parse(rss(items.replace("<channel>", ""))).articles[1]
    assert b.guid == again.guid and b.guid.startswith("sha1:")
    later = parse(rss(items.replace("10:00:00 +0300</pubDate></item>", "11:00:00 +0300</pubDate>"
                                    "</item>"))).articles[1]  # fmt: skip
    assert later.guid != b.guid


def test_a_guid_repeated_for_different_items_is_dropped() -> None:
    item = (
        "<item><guid>https://haber.test/</guid><title>{t}</title><link>/a/{n}</link>"
        "<pubDate>Thu, 01 Jan 2026 10:0{n}:00 +0300</pubDate></item>"
    )
    same = item.format(t="Aynı haber iki kez yayınlandı", n=1)
    items = same + same + item.format(t="Başka bir haber başlığı", n=2)
    articles = parse(rss(items)).articles
    assert [a.guid for a in articles] == [None, None, None]
    assert len({a.link for a in articles}) == 2
    assert parse(rss(same + same)).articles[0].guid == "https://haber.test/"


def test_atom_html_is_sanitized_and_updated_never_before_published() -> None:
    econ, _ = parse(fixture("atom.xml", BASE)).articles
    assert econ.title == "Ekonomi gündemi yoğun geçti"
    assert econ.authors == ("Ayşe Yılmaz", "Mehmet Öz")
    assert econ.language == "tr"
    for bad in ("<script", "onerror", "javascript:", "alert(2)"):
        assert bad not in econ.content_html
    assert 'src="http://haber.test/img/borsa.png"' in econ.content_html
    assert econ.published == datetime(2026, 1, 2, 9, 30, tzinfo=ISTANBUL)
    assert econ.updated == econ.published  # the feed said 09:00, before publication


def test_json_feed() -> None:
    derbi, untitled = parse(fixture("feed.json", BASE), "application/feed+json").articles
    assert derbi.guid == "json-1"
    assert derbi.link == "http://haber.test/spor/derbi-sonucu"
    assert derbi.updated == datetime(2026, 1, 3, 22, 10, tzinfo=ISTANBUL)
    assert derbi.content_html == "<p>Maç <strong>2-1</strong> bitti.</p>"
    assert derbi.categories == ("Spor", "Futbol") and derbi.authors == ("Spor Servisi",)
    assert derbi.image == "http://haber.test/img/derbi.jpg"
    assert untitled.title == "Başlıksız bir JSON Feed kaydı."
    assert untitled.published == datetime(2026, 1, 3, 20, 0, tzinfo=ISTANBUL)


def test_json_feed_version_1_0_author() -> None:
    doc = {"version": "https://jsonfeed.org/version/1", "items": [
        {"id": 7, "title": "Tek yazarlı JSON kaydı", "author": {"name": "Ali Veli"},
         "date_published": "2026-01-03T20:00:00Z"}]}  # fmt: skip
    (a,) = parse(json.dumps(doc).encode(), "application/json").articles
    assert a.guid == "7" and a.authors == ("Ali Veli",)


def test_json_feed_fields_of_the_wrong_type_are_missing_not_republished() -> None:
    """lemon24/reader's tests/data/invalid.json gives an author name as a list: a list or an
    object is not a name, a tag or a title (it must not be published as "['x']")."""
    doc = {"version": "https://jsonfeed.org/version/1.1", "items": [
        {"id": "1", "url": "http://haber.test/a", "title": {"x": 1}, "content_text": ["t"],
         "authors": [{"name": ["x"]}, {"name": "Ali Veli"}], "tags": [["a"], "Spor"],
         "date_published": "2026-01-03T20:00:00Z"}]}  # fmt: skip
    (a,) = parse(json.dumps(doc).encode(), "application/feed+json").articles
    assert a.authors == ("Ali Veli",) and a.categories == ("Spor",)
    assert a.content_html == "" and "{" not in a.title and "[" not in a.title


@pytest.mark.parametrize("decl", [True, False])
def test_windows_1254_feed_has_no_mojibake(decl: bool) -> None:
    items = ("<item><title>Kıymalı Böreği tarifi ve püf noktaları</title><link>/b</link>"
             "<pubDate>Thu, 01 Jan 2026 10:00:00 +0300</pubDate></item>")  # fmt: skip
    (a,) = parse(rss(items, "windows-1254", decl=decl), "application/xml").articles
    assert a.title == "Kıymalı Böreği tarifi ve püf noktaları"


def test_entries_without_a_date_are_rejected_not_invented() -> None:
    result = parse(rss("<item><title>Tarihsiz haber başlığı</title><link>/x</link></item>"))
    assert result.articles == ()
    (rejection,) = result.rejected
    assert "no readable published/updated date" in rejection.reason
    assert "entry 1" in rejection.origin


def test_entity_declarations_are_refused(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("GİZLİ-İÇERİK")
    doc = (
        f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<rss><channel><item><title>&x;</title><pubDate>Thu, 01 Jan 2026 10:00:00 +0300"
        "</pubDate></item></channel></rss>"
    ).encode()
    with pytest.raises(ParseError, match="declares entities"):
        parse(doc)


def test_external_dtd_on_disk_is_never_read(tmp_path: Path) -> None:
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "GİZLİ-İÇERİK">')
    doc = (
        f'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "file://{dtd}">'
        "<rss><channel><item><title>Haber &leak; başlığı burada</title>"
        "<pubDate>Thu, 01 Jan 2026 10:00:00 +0300</pubDate></item></channel></rss>"
    ).encode()
    try:
        result = parse(doc)
    except ParseError:
        return
    assert all("GİZLİ" not in a.title + a.summary + a.content_html for a in result.articles)


@pytest.mark.parametrize("data", [
    b"",
    b"<?xml version='1.0'?><rss><channel><<<&&&",
    b"<html><body><p>Bu bir haber sitesi, besleme degil.</p></body></html>",
    b"/etc/passwd",
    b"http://127.0.0.1:9/feed.xml",
    b'{"version": "1", "items": []}',
    b'{"version": "https://jsonfeed.org/version/1.1", "items": 3}',
    b"{not json",
])  # fmt: skip
def test_non_feeds_are_parse_errors(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse(data)


def test_an_empty_but_valid_feed_has_no_articles() -> None:
    assert parse(rss("")).articles == ()


@pytest.mark.parametrize(("raw", "expected"), [
    ("Thu, 01 Jan 2026 19:16:00 +0300", datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)),
    ("Thu, 01 Jan 2026 16:16:00 GMT", datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)),
    ("Thu, 01 Jan 2026 19:16:00", datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)),
    ("2026-01-01T19:16:00", datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)),
    ("2026-01-01T16:16:00Z", datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)),
    ("1 Ocak 2026 Perşembe 19:16", datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)),
    ("yakında", None),
    ("", None),
])  # fmt: skip
def test_parse_time(raw: str, expected: datetime | None) -> None:
    assert parse_time(raw, ISTANBUL) == expected


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_arbitrary_bytes_raise_only_parse_error(data: bytes) -> None:
    for prefix in (
        b"",
        b"<rss><channel><item><title>",
        b'{"version":"https://jsonfeed.org/version/1',
    ):
        try:
            result = parse(prefix + data)
        except ParseError:
            continue
        for a in result.articles:
            assert a.published.tzinfo is not None and a.updated >= a.published


def test_one_stray_byte_does_not_turn_a_utf8_feed_into_mojibake() -> None:
    items = "".join(
        f"<item><title>Kıymalı Böreği tarifi {i} ve püf noktaları</title><link>/b{i}</link>"
        "<pubDate>Thu, 01 Jan 2026 10:00:00 +0300</pubDate></item>"
        for i in range(5)
    )
    data = rss(items).replace(b"tarifi 3", b"tarifi \xff3")
    titles = [a.title for a in parse(data, "application/rss+xml; charset=utf-8").articles]
    assert "Kıymalı Böreği tarifi 0 ve püf noktaları" in titles
    assert all("Kıymalı Böreği" in t for t in titles)


def test_entities_after_a_long_comment_are_refused_but_cdata_words_are_not() -> None:
    dtd = '<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    sneaky = rss("").replace(b"<rss", ("<!--" + "x" * 80_000 + "-->" + dtd + "<rss").encode(), 1)
    with pytest.raises(ParseError, match="entities"):
        parse(sneaky)
    harmless = rss(
        "<item><title>XML güvenliği yazısı</title><link>/x</link>"
        "<description><![CDATA[<!DOCTYPE a [<!ENTITY b 'c'>]> örneği]]></description>"
        "<pubDate>Thu, 01 Jan 2026 10:00:00 +0300</pubDate></item>"
    )
    assert parse(harmless).articles[0].title == "XML güvenliği yazısı"


def test_relative_links_guids_and_images_resolve_as_stored_records_expect() -> None:
    """Links and permalink guids against the feed URL (or xml:base), images against the
    item's page: ids and content hashes in existing stores depend on exactly this."""
    rss_doc = rss(
        "<item><title>Göreli bağlantı</title><link>/haber/7</link><guid>/kalici/7</guid>"
        '<enclosure url="img/7.jpg" type="image/jpeg" length="1"/>'
        "<pubDate>Thu, 01 Jan 2026 19:16:00 +0300</pubDate></item>"
    )
    (item,) = parse(rss_doc, url=BASE + "/rss/feed.xml").articles
    assert item.link == BASE + "/haber/7"
    assert item.guid == BASE + "/kalici/7"
    assert item.image == BASE + "/haber/img/7.jpg"
    atom_doc = (
        '<feed xmlns="http://www.w3.org/2005/Atom" xml:base="/a/">'
        "<title>T</title><id>x</id><updated>2026-01-01T19:16:00+03:00</updated>"
        "<entry><title>Tabanlı</title><id>e1</id><link href='yazi/1'/>"
        "<updated>2026-01-01T19:16:00+03:00</updated></entry></feed>"
    ).encode()
    (entry,) = parse(atom_doc).articles
    assert (entry.link, entry.guid) == (BASE + "/a/yazi/1", BASE + "/a/e1")


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["", "http://haber.test/rss/feed.xml", "https://a.test/x/", "javascript:x"]),
    st.one_of(st.none(), st.sampled_from(["", "/a/", "b/c", "../d", "javascript:alert(1)",
                                          "http://b.test/", "//c.test/e", "?q=1", "#f"]),
              st.text(max_size=12)),
)  # fmt: skip
def test_memoized_feedparser_uri_joins_answer_as_feedparser_does(
    base: str, rel: str | None
) -> None:
    import feedparser.mixin

    for name in ("make_safe_absolute_uri", "_urljoin"):
        patched = getattr(feedparser.mixin, name)
        original = patched.__wrapped__
        args = (base, rel) if name == "make_safe_absolute_uri" or rel is not None else (base, "")
        assert patched(*args) == original(*args) == patched(*args)
