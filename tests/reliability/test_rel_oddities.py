"""Clock and data oddities: GÜNCELLEME in the future, dates before 1970 and after 2100
(historic local-mean-time offsets included), the same text in several encodings.
The published feeds must still be valid: RFC 3339 dates in Atom, RFC 822 in RSS."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from xml.etree import ElementTree

from aggregator.model import Article, Entry
from aggregator.publish import Site, atom_bytes, json_feed_bytes, rss_bytes
from tests.conftest import ISTANBUL
from tests.reliability.helpers import read_feeds, regenerate, write_config
from tests.seedmaker import tgrt_seed

ATOM = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)$")
RFC822 = re.compile(
    r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov"
    r"|Dec) \d{4} \d\d:\d\d:\d\d (?:[+-]\d{4}|GMT|UT)$"
)
DATES = {
    "future-update": (datetime(2026, 1, 2, 8, 0), datetime(2031, 5, 5, 5, 5)),
    "lmt-1900": (datetime(1900, 3, 1, 10, 0), None),  # Istanbul was +01:56:56 then
    "y1969": (datetime(1969, 12, 31, 23, 0), None),
    "epoch": (datetime(1970, 1, 1, 2, 0), None),  # 1970-01-01T00:00Z
    "y2150": (datetime(2150, 6, 1, 12, 0), datetime(2151, 1, 1, 0, 0)),
    "y9999": (datetime(9999, 12, 31, 23, 59), None),
}


def _write_odd_dates(seeds: Path) -> None:
    for name, (giris, update) in DATES.items():
        text = tgrt_seed(
            title=f"Tarih denemesi {name} için haber başlığı",
            spot=f"Bu haber {name} tarihini taşıyor.", giris=giris.replace(tzinfo=ISTANBUL),
            guncelleme=update.replace(tzinfo=ISTANBUL) if update else None,
        )  # fmt: skip
        (seeds / f"{name}.txt").write_text(text, encoding="utf-8")


def check_dates(out: Path) -> int:
    """Every date in atom.xml, rss.xml, feed.json and the article pages is well formed;
    returns how many were checked."""
    checked = 0
    atom = ElementTree.parse(out / "atom.xml").getroot()
    for tag in ("updated", "published"):
        for el in atom.iter(ATOM + tag):
            assert el.text and RFC3339.match(el.text), f"atom {tag}: {el.text}"
            checked += 1
    rss = ElementTree.parse(out / "rss.xml").getroot()
    for tag in ("pubDate", "lastBuildDate"):
        for el in rss.iter(tag):
            assert el.text and RFC822.match(el.text), f"rss {tag}: {el.text}"
            checked += 1
    for item in json.loads((out / "feed.json").read_text(encoding="utf-8"))["items"]:
        for key in ("date_published", "date_modified"):
            assert RFC3339.match(item[key]), f"feed.json {key}: {item[key]}"
            checked += 1
    for page in (out / "articles").glob("*.html"):
        for value in re.findall(r'<time datetime="([^"]+)"', page.read_text(encoding="utf-8")):
            assert RFC3339.match(value), f"{page.name}: {value}"
            checked += 1
    return checked


def test_dates_far_in_the_past_and_future_publish_valid_feeds(tmp_path: Path) -> None:
    """Regression: a date before 1910 in Europe/Istanbul carries the local mean time offset
    +01:56:56, which was written as `+01:56:56` (Atom) and `+015656` (RSS): invalid."""
    cfg = write_config(tmp_path)
    _write_odd_dates(tmp_path / "seeds")
    proc = regenerate(cfg)
    assert proc.returncode == 0, proc.stderr
    ids = read_feeds(tmp_path / "out")
    assert len(ids) == len(DATES)
    assert check_dates(tmp_path / "out") >= 4 * len(DATES)
    atom = (tmp_path / "out" / "atom.xml").read_text(encoding="utf-8")
    assert "2031-05-05" not in atom  # a date years ahead of the run is not believed
    lmt = re.search(r"<published>(1900-[^<]+)</published>", atom)
    assert lmt and datetime.fromisoformat(lmt.group(1)) == datetime(1900, 3, 1, 8, 3, 4, tzinfo=UTC)
    # a second run changes nothing and keeps every id
    again = regenerate(cfg)
    assert again.returncode == 0 and read_feeds(tmp_path / "out") == ids


def test_the_same_text_in_five_encodings_is_one_entry(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    text = tgrt_seed(title="Kılıçdaroğlu: İşçiler ve çiftçiler için ağır günler geçiyor",
                     spot="Genel Başkan, Çankırı'da ışık ve ğ harfli sözler söyledi.",
                     giris=datetime(2026, 1, 3, 17, 47, tzinfo=ISTANBUL))  # fmt: skip
    seeds = tmp_path / "seeds"
    (seeds / "utf8.txt").write_bytes(text.encode("utf-8"))
    (seeds / "utf8-bom.txt").write_bytes(text.encode("utf-8-sig"))
    (seeds / "utf16.txt").write_bytes(text.encode("utf-16"))
    (seeds / "cp1254.txt").write_bytes(text.encode("cp1254"))
    (seeds / "crlf-iso8859-9.txt").write_bytes(text.replace("\n", "\r\n").encode("iso8859-9"))
    proc = regenerate(cfg)
    assert proc.returncode == 0, proc.stderr
    [title] = read_feeds(tmp_path / "out").values()
    assert title.startswith("Kılıçdaroğlu: İşçiler")


def test_local_mean_time_offsets_are_written_as_utc() -> None:
    """Regression, below the store: feedgen wrote +01:56:56 (Atom) and +015656 (RSS)."""
    when = datetime(1900, 3, 1, 10, 0, tzinfo=ISTANBUL)
    article = Article(title="Eski haber", summary="", content_html="<p>x</p>", published=when,
                      updated=when, source="seeds", origin="x.txt")  # fmt: skip
    site = Site(title="T", url="http://127.0.0.1:8080/", language="tr", timezone=ISTANBUL)
    entries = [Entry(id="urn:uuid:00000000-0000-5000-8000-000000000000", article=article)]
    atom = atom_bytes(site, entries).decode()
    rss = rss_bytes(site, entries).decode()
    assert "<published>1900-03-01T08:03:04+00:00</published>" in atom
    assert "<pubDate>Thu, 01 Mar 1900 08:03:04 +0000</pubDate>" in rss
    assert (
        '"date_published": "1900-03-01T08:03:04+00:00"' in json_feed_bytes(site, entries).decode()
    )


def test_dates_without_a_utc_equivalent_are_not_fatal(tmp_path: Path) -> None:
    """Regression: `0001-01-01T00:00:00+05:00` (or 9999-12-31 23:59 west of Greenwich) parsed
    fine, then OverflowError in the merge killed the whole run: every source lost (exit 70).
    Such dates are not believed: the items are kept with their first-seen time."""
    from tests.localserver import App, Reply, serve_in_thread

    dates = {"a": "0001-01-01T00:00:00+05:00", "b": "9999-12-31T23:59:59-05:00",
             "c": "2026-01-02T10:00:00+03:00"}  # fmt: skip
    titles = {"a": "Geçmişten gelen haber", "b": "Gelecekten gelen haber",
              "c": "Bugünün olağan haberi"}  # fmt: skip
    items = [{"id": k, "title": titles[k], "date_published": v} for k, v in dates.items()]
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": items}
    with serve_in_thread(App()) as app:
        app.route("/odd.json", Reply(body=json.dumps(doc).encode(),
                                     content_type="application/feed+json"))  # fmt: skip
        sources = f"  - name: odd\n    type: feed\n    url: {app.base}/odd.json\n"
        cfg = write_config(tmp_path, sources=sources)
        seed = tgrt_seed(title="Tohum dosyasından gelen haber", spot="Spot.",
                         giris=datetime(2026, 1, 2, 9, 0, tzinfo=ISTANBUL))  # fmt: skip
        (tmp_path / "seeds" / "a.txt").write_text(seed, encoding="utf-8")
        proc = regenerate(cfg)
    assert proc.returncode == 0, proc.stderr
    published = set(read_feeds(tmp_path / "out").values())
    assert published == {*titles.values(), "Tohum dosyasından gelen haber"}
    atom = (tmp_path / "out" / "atom.xml").read_text(encoding="utf-8")
    assert "9999-" not in atom and "0001-" not in atom


def test_seed_date_without_a_utc_equivalent_is_a_parse_error() -> None:
    from zoneinfo import ZoneInfo

    import pytest

    from aggregator.errors import ParseError
    from aggregator.timeparse import find_stamp, parse_iso

    new_york = ZoneInfo("America/New_York")
    with pytest.raises(ParseError, match="out of range"):
        find_stamp("GİRİŞ: 31.12.9999 23:59", new_york)
    with pytest.raises(ParseError, match="out of range"):
        find_stamp("1 Ocak 0001", ZoneInfo("Asia/Tokyo"))
    assert parse_iso("0001-01-01T00:00:00+05:00", ISTANBUL) is None
    assert find_stamp("31.12.9999 20:59", ISTANBUL) is not None  # the edge itself is fine


def test_store_round_trip_keeps_the_exact_instant_of_old_dates() -> None:
    """Regression: orjson wrote Istanbul's 1900 offset +01:56:56 as +01:57, so the stored
    record was 4 s off its own articles.published column (and RSS said +0157)."""
    from aggregator.records import article_from_json, pack_record, unpack_record

    when = datetime(1900, 3, 1, 10, 0, tzinfo=ISTANBUL)
    article = Article(title="Eski haber", published=when, updated=when, source="s", origin="o")
    back = article_from_json(unpack_record(pack_record(article)))
    assert back.published == when and back.updated == when
    assert back.published.utcoffset() == when.utcoffset()
