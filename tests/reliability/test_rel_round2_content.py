"""Issue 14, second campaign, rows 1, 2, 6, 10 and 11: inputs that made the cost of a run
grow with their size (50,000 tags, 1,000,000 items, 100,000 nested blockquotes, a quadratic
entity expansion) or froze publishing (a category name too long for a folder). Each runs
`regenerate` in a subprocess under a memory limit (RLIMIT_AS) and a timeout; the bound is
what the subprocess must finish within, never a timed assertion here."""

from __future__ import annotations

import json
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path

import feedparser
import pytest

from aggregator.errors import ParseError
from aggregator.feedplan import MAX_CATEGORY_FEEDS
from aggregator.model import MAX_NAMES
from aggregator.normalize import MAX_DEPTH
from aggregator.sources.feed import MAX_ENTRIES, parse_feed
from aggregator.store import Store
from tests.conftest import ISTANBUL
from tests.localserver import XML, App, Reply, serve_in_thread
from tests.reliability.helpers import REPO, T0, read_feeds, write_config
from tests.seedmaker import tgrt_seed

MEMORY_LIMIT = 1024 * 1024 * 1024  # address space, bytes: the old runs took 24 GB and 632 MiB
TIMEOUT = 90  # seconds: the old runs took over 200 s


def regenerate_bounded(cfg: Path, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    """`regenerate` with at most MEMORY_LIMIT of address space; a timeout fails the test."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    return subprocess.run(
        [sys.executable, "-m", "aggregator", "regenerate", "-q", "--config", str(cfg)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, preexec_fn=limit,
    )  # fmt: skip


def _feed_source(name: str, url: str) -> str:
    return f"  - name: {name}\n    type: feed\n    url: {url}\n    every: 1s\n"


def _rss(items: str, prolog: str = "") -> bytes:
    head = f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}<rss version="2.0"><channel>'
    return f"{head}<title>T</title><link>http://127.0.0.1/</link>{items}</channel></rss>".encode()


def _item(n: int, extra: str = "", title: str = "") -> str:
    head = f"<item><title>{title or f'Haber {n}'}</title><link>http://127.0.0.1/h/{n}</link>"
    return f"{head}<pubDate>Fri, 02 Jan 2026 08:{n % 60:02d}:00 +0300</pubDate>{extra}</item>"


def test_fifty_thousand_tags_and_categories_publish_a_bounded_number_of_feeds(
    tmp_path: Path,
) -> None:
    """Row 1: every tag was a category feed repeating every tag (N²: 24 GB at N=50,000)."""
    tags = "\n".join(f"#Etiket{n}" for n in range(50_000))
    with serve_in_thread(App(), fixtures=False) as app:
        categories = "".join(f"<category>Kategori {n}</category>" for n in range(50_000))
        app.route("/tags.xml", Reply(body=_rss(_item(1, categories)), content_type=XML))
        cfg = write_config(tmp_path, sources=_feed_source("tags", app.base + "/tags.xml"))
        seed = tgrt_seed(title="Etiket yağmuru", spot="Elli bin etiketli haber.", giris=T0,
                         body=("Metin.", tags))  # fmt: skip
        (tmp_path / "seeds" / "tags.txt").write_text(seed, encoding="utf-8")
        proc = regenerate_bounded(cfg)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert len(read_feeds(tmp_path / "out")) == 2
    folders = sorted(p.name for p in (tmp_path / "out" / "categories").iterdir())
    assert len(folders) == 2 * MAX_NAMES, folders[:5]
    one = feedparser.parse((tmp_path / "out" / "categories" / folders[0] / "atom.xml").read_bytes())
    assert one.bozo == 0 and len(one.entries) == 1
    assert len(one.entries[0].tags) <= MAX_NAMES


def test_a_category_folder_that_cannot_be_written_stops_nothing_else(tmp_path: Path) -> None:
    """Row 2: a 300-byte category name (ENAMETOOLONG) froze every feed and every later run
    exited 5. Now its folder name is cut and hashed, and a category folder that cannot be
    written (a file in its place) is one line; the combined feed and index still update."""
    cfg = write_config(tmp_path)
    seeds = tmp_path / "seeds"
    # two names alike but for their ends (slugs past 80 bytes), one of 400 bytes
    tags = ("#" + "Çok" * 30 + "Birinci", "#" + "Çok" * 30 + "İkinci", "#" + "Ğ" * 200, "#Spor")
    for n, tag in enumerate(tags):
        (seeds / f"{n}.txt").write_text(
            tgrt_seed(title=f"Haber {n}", spot=f"Özet {n}.", giris=T0, body=("Metin.", tag)),
            encoding="utf-8",
        )
    out = tmp_path / "out"
    (out / "categories").mkdir(parents=True)
    (out / "categories" / "spor").write_text("a file where a folder should be")
    proc = regenerate_bounded(cfg)
    assert proc.returncode == 5, proc.stderr
    failed = [line for line in proc.stderr.splitlines() if line.startswith("output failed:")]
    assert len(failed) == 1 and "categories/spor/" in failed[0], proc.stderr
    assert len(read_feeds(out)) == 4
    folders = [p.name for p in (out / "categories").iterdir() if p.name != "spor"]
    assert len(folders) == 3 and all(len(name.encode()) <= 80 for name in folders), folders
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(f"categories/{name}/" in index for name in folders)

    (seeds / "4.txt").write_text(tgrt_seed(title="Haber 4", spot="Yeni.", giris=T0,
                                           body=("Metin.", "#Spor")), encoding="utf-8")  # fmt: skip
    proc = regenerate_bounded(cfg)
    assert proc.returncode == 5 and "categories/spor/" in proc.stderr
    assert len(read_feeds(out)) == 5, "the combined feed must keep updating"
    (out / "categories" / "spor").unlink()
    proc = regenerate_bounded(cfg)
    assert proc.returncode == 0, proc.stderr
    spor = feedparser.parse((out / "categories" / "spor" / "atom.xml").read_bytes())
    assert len(spor.entries) == 2


_BIG = "x" * 10_000
_ENTITIES = f'<!DOCTYPE rss [<!ENTITY a "{_BIG}">]>'
PROLOGS = {
    "plain": _ENTITIES,
    "pi-with-a-tag": "<?foo <a ?>" + _ENTITIES,  # the bypass: the PI looked like the root
    "pi-with-the-root": "<?foo <rss> ?>\n" + _ENTITIES,
    "comment-with-a-tag": "<!-- <a> -->" + _ENTITIES,
    "comment-then-pi": "<!-- <?x --><?y <b ?>\n" + _ENTITIES,
    "whitespace": "\n\n  " + _ENTITIES.replace("<!DOCTYPE rss [", "<!DOCTYPE\n rss\n [\n "),
    "parameter-entity": '<!DOCTYPE rss [<!ENTITY % p "x">]>',
    "external": '<!DOCTYPE rss [<!ENTITY a SYSTEM "file:///etc/passwd">]>',
    # feedparser finds declarations at a line start itself, even inside a comment
    "in-a-comment": f'<!--\n<!DOCTYPE rss>\n<!ENTITY a "{_BIG}">\n-->\n',
    "malformed": _ENTITIES.replace("ENTITY", "entity"),
}


def _entity_feed(prolog: str, encoding: str) -> bytes:
    item = _item(1, title="t" + "&a;" * 3000)
    text = f'<?xml version="1.0" encoding="{encoding}"?>\n' + _rss(item, prolog).decode()[39:]
    return text.encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("prolog", PROLOGS.values(), ids=PROLOGS.keys())
def test_entity_declarations_are_refused_wherever_they_hide(prolog: str, encoding: str) -> None:
    """Row 6: `<?foo <a ?>` before the DOCTYPE passed the check; a quadratic expansion made
    a 1 MB body a 60 MB title."""
    with pytest.raises(ParseError, match="declares entities"):
        parse_feed(_entity_feed(prolog, encoding), url="http://127.0.0.1/f", source="s",
                   tz=ISTANBUL, content_type="application/xml")  # fmt: skip


@pytest.mark.parametrize("prolog", [
    '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"'
    ' "http://my.netscape.com/publish/formats/rss-0.91.dtd">',
    "<?foo <a ?><!-- <!ENTITY is only text here -->",
])  # fmt: skip
def test_feeds_without_entity_declarations_still_read(prolog: str) -> None:
    cdata = "<description><![CDATA[<!DOCTYPE x [<!ENTITY y 'z'>]> XML dersi]]></description>"
    data = _rss(_item(1, cdata), prolog)
    result = parse_feed(data, url="http://127.0.0.1/f", source="s", tz=ISTANBUL)
    assert [a.title for a in result.articles] == ["Haber 1"]


def test_a_megabyte_of_quadratic_entities_is_refused_within_bounds(tmp_path: Path) -> None:
    """Row 6 through a whole run: 632 MiB and 344 MB of output before; now the source fails
    with one line and the good source beside it is published."""
    big = "x" * 100_000
    refs = "&a;" * 300_000  # 1 MB of references to a 100 KB entity: 30 GB expanded
    body = _rss(_item(1, title="t" + refs), f'<?foo <a ?><!DOCTYPE rss [<!ENTITY a "{big}">]>')
    with serve_in_thread(App(), fixtures=False) as app:
        app.route("/bomb.xml", Reply(body=body, content_type=XML))
        app.route("/good.xml", Reply(body=_rss(_item(2)), content_type=XML))
        cfg = write_config(tmp_path, sources=_feed_source("bomb", app.base + "/bomb.xml")
                           + _feed_source("good", app.base + "/good.xml"))  # fmt: skip
        proc = regenerate_bounded(cfg)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "source failed: bomb:" in proc.stderr and "declares entities" in proc.stderr
    assert len(proc.stderr) < 2000
    assert list(read_feeds(tmp_path / "out").values()) == ["Haber 2"]


@pytest.mark.slow
def test_floods_of_items_are_read_to_a_bound_and_reported_in_one_line(tmp_path: Path) -> None:
    """Row 10: 1,000,000 JSON items / 700,000 `<item/>` took 20-44 s, 330-440 MiB and
    94-135 MB of stderr, one line per rejected item."""
    empty_items = _rss("<item/>" * 700_000)
    items = [{"title": f"Haber {n}", "date_published": "2026-01-02T08:00:00+03:00",
              "url": f"http://127.0.0.1/j/{n}"} for n in range(5_000)]  # fmt: skip
    items += [{}] * 995_000  # 3.4 MB
    doc = {"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": items}
    with serve_in_thread(App(), fixtures=False) as app:
        app.route("/empty.xml", Reply(body=empty_items, content_type=XML))
        app.route("/million.json", Reply(body=json.dumps(doc, separators=(",", ":")).encode(),
                                         content_type="application/feed+json"))  # fmt: skip
        cfg = write_config(tmp_path, sources=_feed_source("empty", app.base + "/empty.xml")
                           + _feed_source("million", app.base + "/million.json"))  # fmt: skip
        proc = regenerate_bounded(cfg)
    assert proc.returncode == 1, proc.stderr[-2000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and len(proc.stderr) < 1000, proc.stderr[:3000]
    assert lines[0].startswith(f"rejected: {app.base}/empty.xml: {MAX_ENTRIES} entries rejected")
    with Store.open(tmp_path / "state" / "agg.sqlite3", lock=False, readonly=True) as store:
        assert store.count("million") == MAX_ENTRIES
        assert store.count("empty") == 0


def test_deep_nesting_in_a_five_mebibyte_description_is_flattened(tmp_path: Path) -> None:
    """Row 11: 100,000 nested `<blockquote>` / 50,000 nested lists took 56 s / 82 s
    (quadratic in depth); a 5 MiB body would have taken far longer."""
    quotes = "<blockquote>" * 150_000 + "derin alıntı" + "</blockquote>" * 150_000
    lists = "<ul><li>" * 70_000 + "derin liste" + "</li></ul>" * 70_000
    items = "".join(
        _item(n, f"<description><![CDATA[{body}]]></description>")
        for n, body in enumerate((quotes, lists), start=1)
    )
    data = _rss(items)
    assert 4.5 * 2**20 < len(data) < 5 * 2**20
    with serve_in_thread(App(), fixtures=False) as app:
        app.route("/deep.xml", Reply(body=data, content_type=XML))
        cfg = write_config(tmp_path, sources=_feed_source("deep", app.base + "/deep.xml"))
        proc = regenerate_bounded(cfg, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    feed = feedparser.parse((tmp_path / "out" / "atom.xml").read_bytes())
    content = {e.title: e.content[0].value for e in feed.entries}
    assert "derin alıntı" in content["Haber 1"] and "derin liste" in content["Haber 2"]
    assert content["Haber 1"].count("<blockquote>") <= MAX_DEPTH
    assert content["Haber 2"].count("<ul>") <= MAX_DEPTH


def test_category_feeds_are_the_largest_thousand(tmp_path: Path) -> None:
    """Row 1, across articles: every article may bring MAX_NAMES new categories, each a feed
    of three files; only the MAX_CATEGORY_FEEDS largest are published."""
    cfg = write_config(tmp_path)
    per_article = MAX_NAMES - 1
    count = MAX_CATEGORY_FEEDS // per_article + 2
    for n in range(count):
        tags = " ".join(f"#Tek{n}x{k}" for k in range(per_article)) + " #Ortak"
        (tmp_path / "seeds" / f"{n}.txt").write_text(
            tgrt_seed(title=f"Haber {n}", spot="Özet.", giris=T0, body=("Metin.", tags)),
            encoding="utf-8",
        )
    proc = regenerate_bounded(cfg)
    assert proc.returncode == 0, proc.stderr[-2000:]
    folders = {p.name for p in (tmp_path / "out" / "categories").iterdir()}
    assert len(folders) == MAX_CATEGORY_FEEDS and "ortak" in folders
    ortak = feedparser.parse((tmp_path / "out" / "categories" / "ortak" / "atom.xml").read_bytes())
    assert len(ortak.entries) == 50  # max_items


def test_a_store_from_before_the_bounds_gets_bounded_categories(tmp_path: Path) -> None:
    """Schema 9: categories stored unbounded by an older version (50 per article, slugs of
    300 bytes) are redone from the stored records when the store is opened."""
    cfg = write_config(tmp_path)
    tags = " ".join(f"#Etiket{n}" for n in range(50))
    (tmp_path / "seeds" / "a.txt").write_text(
        tgrt_seed(title="Haber", spot="Özet.", giris=T0, body=("Metin.", tags)), encoding="utf-8"
    )
    assert regenerate_bounded(cfg).returncode == 0
    state = tmp_path / "state" / "agg.sqlite3"
    with sqlite3.connect(state) as conn:  # what an older version wrote
        (article_id,) = conn.execute("SELECT id FROM articles").fetchone()
        conn.executemany(
            "INSERT OR IGNORE INTO article_categories (article_id, slug, name) VALUES (?, ?, ?)",
            [(article_id, f"etiket{n}", f"Etiket{n}") for n in range(50)]
            + [(article_id, "x" * 300, "X" * 300)],
        )
        conn.execute("UPDATE schema_meta SET value = '8' WHERE key = 'version'")
    with Store.open(state) as store:
        categories = store.categories()
    assert len(categories) == MAX_NAMES
    assert all(len(slug) <= 80 for slug, _, _ in categories)
