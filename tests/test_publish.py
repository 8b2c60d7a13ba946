"""Published bytes: golden feeds for the seed document, atomic writes, round trips."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import feedparser
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import publish as publish_module
from aggregator.model import Article, Entry
from aggregator.publish import FeedSet, Site, atom_bytes, publish, rss_bytes, write_atomic
from aggregator.sources.seedfile import parse_seed
from tests.conftest import DATA, ISTANBUL, SEED_DOC

SITE = Site(title="Haber Akışı", url="http://127.0.0.1:8080/", language="tr", timezone=ISTANBUL)


def seed_entry() -> Entry:
    a = parse_seed(SEED_DOC.read_bytes(), origin="seeds/000.txt", source="seeds", tz=ISTANBUL)
    return Entry(id="urn:uuid:8cff0c45-47ed-5dd2-bb15-2db3a9a021a7", article=a)


def test_golden_feeds_for_the_seed_document(golden) -> None:
    entries = [seed_entry()]
    golden(DATA / "golden" / "atom.xml", atom_bytes(SITE, entries))
    golden(DATA / "golden" / "rss.xml", rss_bytes(SITE, entries))


def test_markup_in_titles_is_escaped_everywhere(tmp_path: Path) -> None:
    a = parse_seed((DATA / "layouts" / "markup_text.txt").read_bytes(), origin="m.txt",
                   source="seeds", tz=ISTANBUL)  # fmt: skip
    entry = Entry(id="urn:uuid:00000000-0000-5000-8000-000000000001", article=a)
    publish(SITE, tmp_path, [FeedSet(folder="", title=SITE.title, group="", entries=[entry])], 1)
    for name in ("atom.xml", "rss.xml"):
        raw = (tmp_path / name).read_bytes()
        assert b"<script>" not in raw
        parsed = feedparser.parse(raw)
        assert parsed.bozo == 0
        # text, and text still where a reader takes the title for HTML: no tag can open
        assert parsed.entries[0].title == a.title.replace("<", "\uff1c")
    rss = feedparser.parse((tmp_path / "rss.xml").read_bytes()).entries[0]
    # RSS <description> is HTML to readers: the spot's "<img ...>" must arrive as text
    assert rss.summary_detail.type == "text/html" and "\uff1cimg src=x" in rss.summary
    page = next((tmp_path / "articles").glob("*.html")).read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_write_atomic_leaves_no_temp_files_and_skips_equal_bytes(tmp_path: Path) -> None:
    target = tmp_path / "feed.xml"
    assert write_atomic(target, b"one")
    assert not write_atomic(target, b"one")
    assert write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["feed.xml"]


_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=60
).filter(lambda s: s.strip())
_moment = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31),
    timezones=st.sampled_from([ISTANBUL, UTC]),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_text, _moment, st.integers(0, 10_000)), min_size=1, max_size=5))
def test_publish_then_feedparser_keeps_ids_and_dates(items) -> None:
    entries = []
    for i, (title, published, delta) in enumerate(items):
        published = published.replace(microsecond=0)
        a = Article(
            title=title,
            published=published,
            updated=published + timedelta(minutes=delta),
            source="s",
            origin="o",
        )
        entries.append(Entry(id=f"urn:uuid:00000000-0000-5000-8000-{i:012d}", article=a))
    for data in (atom_bytes(SITE, entries), rss_bytes(SITE, entries)):
        parsed = feedparser.parse(data)
        assert parsed.bozo == 0
        assert [e.id for e in parsed.entries] == [e.id for e in entries]
        for got, want in zip(parsed.entries, entries, strict=True):
            assert (
                got.published_parsed[:6] == want.article.published.astimezone(UTC).timetuple()[:6]
            )


def test_temporaries_left_by_a_kill_mid_write_are_swept(tmp_path: Path) -> None:
    (tmp_path / "articles").mkdir()
    (tmp_path / ".atom.xml.k2j3h4.tmp").write_bytes(b"<feed")
    (tmp_path / "articles" / ".x.html.abc.tmp").write_bytes(b"<html")
    (tmp_path / "keep.txt").write_text("not ours to delete")
    publish(
        SITE, tmp_path, [FeedSet(folder="", title=SITE.title, group="", entries=[seed_entry()])], 1
    )
    assert not list(tmp_path.rglob(".*.tmp"))
    assert (tmp_path / "keep.txt").exists() and (tmp_path / "atom.xml").exists()


def test_a_publish_of_many_feeds_read_as_it_goes_writes_what_each_feed_renders(
    tmp_path: Path,
) -> None:
    """Feeds come from an iterator and are rendered in batches (worker processes beyond a
    few): every file is byte for byte what rendering that feed alone gives, article pages
    are written once, and the index lists every feed, kept ones too, in order."""
    from aggregator import pages
    from aggregator.publish import RENDER_BATCH, render_feed

    base = seed_entry()
    entries = [
        Entry(id=f"urn:uuid:00000000-0000-5000-8000-{i:012d}",
              article=replace(base.article, title=f"Haber {i}",
                              published=base.article.published - timedelta(minutes=i),
                              link=None if i % 3 else f"http://haber.test/{i}"))
        for i in range(40)
    ]  # fmt: skip
    count = 2 * RENDER_BATCH + 5
    pulled: list[int] = []

    def feeds() -> Iterator[FeedSet]:
        for k in range(count):
            pulled.append(k)
            if k % 7 == 6:  # published before as it stands: listed, not rendered
                yield FeedSet(folder=f"sources/k{k}/", title=f"k{k}", group="Kaynaklar",
                              entries=(), kept=(3, base.article.published))  # fmt: skip
            else:
                yield FeedSet(folder="" if k == 0 else f"sources/s{k}/", title=f"s{k}",
                              group="Kaynaklar", entries=entries[k % 10 : k % 10 + 12])  # fmt: skip

    written = publish(SITE, tmp_path, feeds(), len(entries))
    assert pulled == list(range(count))
    expected = {}
    for feed in feeds():
        if feed.kept is None:
            expected.update(render_feed(SITE, feed))
    for rel, data in expected.items():
        assert (tmp_path / rel).read_bytes() == data, rel
    linkless = {e.id for e in entries[:21] if e.article.link is None}
    assert sorted(p.name for p in (tmp_path / "articles").iterdir()) == sorted(
        pages.page_path(i).removeprefix("articles/") for i in linkless
    )
    assert len(written) == len(set(written))
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    folders = [f"sources/{'k' if k % 7 == 6 else 's'}{k}/atom.xml" for k in range(1, count)]
    assert [index.index(f'href="{f}"') for f in folders] == sorted(
        index.index(f'href="{f}"') for f in folders
    )


def test_packed_entries_decode_where_read_and_pickle_as_their_rows() -> None:
    import pickle

    from aggregator.packed import PackedEntries
    from aggregator.records import pack_record, utc_text

    entry = seed_entry()
    later = replace(entry.article, published=entry.article.published + timedelta(hours=1))
    # a row's GİRİŞ (the earliest date any revision gave) dates the entry, in its own zone
    rows = [(entry.id, utc_text(entry.article.published), pack_record(later))] * 3
    packed = PackedEntries(rows)
    assert packed.ids == [entry.id] * 3
    assert list(packed) == [entry] * 3 and packed[1:] == [entry] * 2 and packed[0] == entry
    assert packed[0].article.published.utcoffset() == entry.article.published.utcoffset()
    data = pickle.dumps(packed)
    assert len(data) < len(pickle.dumps(list(packed)))
    assert list(pickle.loads(data)) == [entry] * 3


def test_feeds_rendered_by_worker_processes_from_packed_rows_match_rendering_here(
    tmp_path: Path,
) -> None:
    """Enough feeds for the render workers: their records are decoded there, each article
    page is written once (by the first feed listing it), and every feed rendered is
    listed with its newest time."""
    from aggregator import pages
    from aggregator.packed import PackedEntries
    from aggregator.publish import POOL_FEEDS, render_feed
    from aggregator.records import pack_record, utc_text

    base = seed_entry()
    rows = [
        (f"urn:uuid:00000000-0000-5000-8000-{i:012d}",
         utc_text(base.article.published - timedelta(minutes=i)),
         pack_record(replace(base.article, title=f"Haber {i}",
                             published=base.article.published - timedelta(minutes=i),
                             link=None if i % 2 else f"http://haber.test/{i}")))
        for i in range(30)
    ]  # fmt: skip
    feeds = [
        FeedSet(folder="" if k == 0 else f"sources/s{k}/", title=f"s{k}", group="Kaynaklar",
                entries=PackedEntries(rows[k % 10 : k % 10 + 15]))
        for k in range(POOL_FEEDS + 10)
    ]  # fmt: skip
    listed: dict[str, datetime | None] = {}
    publish(SITE, tmp_path, feeds, len(rows), workers=2,
            listed=lambda feed, newest: listed.setdefault(feed.folder, newest))  # fmt: skip
    for feed in feeds:
        for rel, data in render_feed(SITE, feed):
            assert (tmp_path / rel).read_bytes() == data, rel
        assert listed[feed.folder] == max(e.article.updated for e in feed.entries)
    linkless = {aid for aid, _, _ in rows[:25] if int(aid[-2:]) % 2}
    assert {p.name for p in (tmp_path / "articles").iterdir()} == {
        pages.page_path(i).removeprefix("articles/") for i in linkless
    }


@given(
    st.datetimes(timezones=st.builds(timezone, st.integers(-1439, 1439).map(
        lambda minutes: timedelta(minutes=minutes))))
)  # fmt: skip
def test_rss_dates_are_written_as_feedgen_writes_them(when: datetime) -> None:
    """The RFC 822 dates of RSS come from our locale-free formatter: feedgen's bytes."""
    from feedgen.util import formatRFC2822  # after lxml.etree (imported by publish)

    assert publish_module._rfc822(when) == formatRFC2822(when)
