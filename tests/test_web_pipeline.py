"""Web sources end to end: real local server, real SQLite store, feedparser reading the output."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import feedparser
import pytest

from aggregator.cli import main
from aggregator.config import Config, load_config
from aggregator.model import SourceState
from aggregator.pipeline import run_once
from aggregator.sources import Harvest, policy
from aggregator.sources.http import HttpSettings, WebClient
from aggregator.sources.web import POOL_MIN_SOURCES, harvest
from aggregator.store import Store
from tests.conftest import ISTANBUL, SEED_DOC, StoreAt, on_store
from tests.localserver import HTML, App, Reply, serve_in_thread

T0 = datetime(2026, 1, 10, 9, 30, tzinfo=ISTANBUL)


@pytest.fixture(scope="module")
def server() -> Iterator[App]:
    with serve_in_thread() as app:
        yield app


@pytest.fixture(scope="module")
def client() -> Iterator[WebClient]:
    with WebClient(HttpSettings(read_timeout=0.5, total_timeout=1.5)) as c:
        yield c


def config(root: Path, sources: str) -> Config:
    path = root / "config.yaml"
    path.write_text(f"""site:
  title: Test Akışı
  url: http://127.0.0.1:8080/
  timezone: Europe/Istanbul
output:
  dir: out
state: state/agg.sqlite3
retention: never
fetch:
  block_private: false  # the test server is on 127.0.0.1
sources:
{sources}""", encoding="utf-8")  # fmt: skip
    return load_config(path)


def source(name: str, kind: str, url: str, extra: str = "") -> str:
    return f"  - name: {name}\n    type: {kind}\n    url: {url}\n    every: 5m\n{extra}"


def run(cfg: Config, client: WebClient | None, now: datetime = T0,
        states: dict[str, SourceState] | None = None) -> list[Harvest]:  # fmt: skip
    return harvest(cfg.sources, states or {}, config=cfg, client=client, now=now)


def test_feed_and_html_sources(server: App, client: WebClient, tmp_path: Path) -> None:
    cfg = config(tmp_path, source("rss", "feed", server.base + "/rss.xml")
                 + source("atom", "feed", server.base + "/atom.xml")
                 + source("json", "feed", server.base + "/feed.json")
                 + source("site", "html", server.base + "/news/", "    limit: 3\n"))  # fmt: skip
    rss, atom, json_feed, site = run(cfg, client)
    assert [len(h.articles) for h in (rss, atom, json_feed)] == [3, 2, 2]
    assert all(h.error is None and h.state is not None for h in (rss, atom, json_feed, site))
    assert rss.state and rss.state.next_due == T0 + timedelta(minutes=15)  # ttl beats every
    titles = sorted(a.title for a in site.articles)
    assert titles == [
        "Deprem bölgesinde yeni konutlar teslim edildi",
        "MİT Başkanı İbrahim Kalın ile Ukrayna Savunma Konseyi Sekreteri Rüstem Umerov "
        "Ankara'da görüştü! İşte gündeme gelen konular",
    ]
    (gone,) = site.rejected
    assert gone.origin.endswith("/news/eski-sayfa") and "HTTP 404" in gone.reason


def test_a_client_is_made_and_closed_when_none_is_given(server: App, tmp_path: Path) -> None:
    cfg = config(tmp_path, source("rss", "feed", server.base + "/rss.xml"))
    (h,) = run(cfg, None)
    assert len(h.articles) == 3


@pytest.mark.parametrize(("path", "reason"), [
    ("/status/500", "HTTP 500"),
    ("/malformed.xml", "not a feed"),
    ("/slow", "timed out"),
    ("/to-file", "non-http(s)"),
])  # fmt: skip
def test_a_failing_source_is_a_value_naming_source_url_and_reason(
    server: App, client: WebClient, tmp_path: Path, path: str, reason: str
) -> None:
    cfg = config(tmp_path, source("bad", "feed", server.base + path)
                 + source("good", "feed", server.base + "/atom.xml"))  # fmt: skip
    bad, good = run(cfg, client)
    assert bad.error and reason in bad.error
    assert server.base + path in bad.error and "'bad'" in bad.error
    assert bad.state and bad.state.failures == 1 and bad.state.last_error_at == T0
    assert bad.state.next_due == T0 + timedelta(minutes=5)
    assert len(good.articles) == 2 and good.error is None


def test_failures_back_off_exponentially_and_recover(
    server: App, client: WebClient, tmp_path: Path
) -> None:
    server.route("/flaky", Reply(500))
    cfg = config(tmp_path, source("flaky", "feed", server.base + "/flaky"))
    state = SourceState(name="flaky")
    now = T0
    delays = []
    for _ in range(3):
        (h,) = run(cfg, client, now, {"flaky": state})
        assert h.state is not None and h.state.next_due is not None
        state = h.state
        delays.append((state.next_due - now).total_seconds())
        (skipped,) = run(cfg, client, now + timedelta(seconds=1), {"flaky": state})
        assert skipped.state is None and skipped.error is None  # not tried: not a failure
        assert skipped.backing_off and skipped.due == state.next_due
        now = state.next_due
    assert delays == [300, 600, 1200] and state.failures == 3
    assert policy.backoff(cfg.sources[0].every, 50) == 3600
    server.route("/flaky", Reply(body=(Path(__file__).parent / "data/web/atom.xml").read_bytes()))
    (ok,) = run(cfg, client, now, {"flaky": state})
    assert ok.error is None and ok.state and ok.state.failures == 0 and len(ok.articles) == 2


def test_retry_after_is_honoured(server: App, client: WebClient, tmp_path: Path) -> None:
    cfg = config(tmp_path, source("busy", "feed", server.base + "/status/429"))
    (h,) = run(cfg, client)
    assert h.state and h.state.next_due == T0 + timedelta(hours=2)


def test_conditional_get_and_unchanged_bodies(
    server: App, client: WebClient, tmp_path: Path
) -> None:
    cfg = config(tmp_path, source("etag", "feed", server.base + "/etag.xml")
                 + source("plain", "feed", server.base + "/rss.xml"))  # fmt: skip
    first = run(cfg, client)
    assert first[0].state and first[0].state.etag == '"v1"'
    assert first[0].state.next_due == T0 + timedelta(hours=1)  # Cache-Control max-age
    states = {h.name: h.state for h in first if h.state}
    hits = server.hits["/etag.xml"]
    etag, plain = run(cfg, client, T0 + timedelta(minutes=2), states)
    assert etag.due and server.hits["/etag.xml"] == hits  # not due yet: not asked
    assert plain.due and plain.articles == ()  # not due either (ttl 15m)
    later = T0 + timedelta(hours=2)
    etag, plain = run(cfg, client, later, states)
    assert etag.not_modified and etag.articles == () and server.hits["/etag.xml"] == hits + 1
    assert plain.not_modified and plain.articles == ()  # same digest: not parsed again
    assert etag.state and etag.state.last_success == later and etag.state.etag == '"v1"'


def test_many_sources_are_parsed_in_worker_processes(
    server: App, client: WebClient, tmp_path: Path
) -> None:
    n = POOL_MIN_SOURCES + 2
    cfg = config(tmp_path, "".join(
        source(f"s{i}", "feed", f"{server.base}/rss.xml?{i}") for i in range(n)))  # fmt: skip
    harvests = run(cfg, client)
    assert [len(h.articles) for h in harvests] == [3] * n
    assert harvests[5].articles[0].source == "s5"


def write_seed(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED_DOC, folder / "mit.txt")


def test_one_story_from_feed_page_and_seed_is_one_entry(
    server: App, tmp_path: Path, store_at: StoreAt
) -> None:
    write_seed(tmp_path / "seeds")
    cfg = config(tmp_path, source("rss", "feed", server.base + "/rss.xml")
                 + source("site", "html", server.base + "/news/")
                 + "  - name: seeds\n    type: seeds\n    path: seeds\n")  # fmt: skip
    cfg = on_store(cfg, store_at())
    with Store.open(cfg.store_target) as store:
        report = run_once(cfg, store, None, T0)
    by_name = {s.name: s for s in report.sources}
    assert by_name["rss"].read == 3 and by_name["site"].read == 2 and by_name["seeds"].read == 1
    assert [s.name for s in report.failed_sources] == []
    parsed = feedparser.parse((cfg.output_dir / "atom.xml").read_bytes())
    assert parsed.bozo == 0
    mit = [e for e in parsed.entries if e.title.startswith("MİT Başkanı İbrahim Kalın")]
    assert len(mit) == 1, [e.title for e in parsed.entries]
    with Store.open(cfg.store_target) as store:
        links = {a.link for a in store.revisions(mit[0].id)} - {None}
    assert links == {server.base + "/news/mit-kalin-umerov"}
    assert mit[0].published_parsed[:5] == (2026, 1, 1, 16, 16)  # GİRİŞ 19:16 +03:00
    assert mit[0].updated_parsed[:5] == (2026, 1, 1, 16, 26)  # the page's GÜNCELLEME wins
    assert len(parsed.entries) == 4  # MİT, börek, the link-less item, the TGRT page
    rss = feedparser.parse((cfg.output_dir / "rss.xml").read_bytes())
    assert {e.id for e in rss.entries} == {e.id for e in parsed.entries}

    with Store.open(cfg.store_target) as store:
        again = run_once(cfg, store, None, T0 + timedelta(hours=1))
        assert store.source_state("rss").feed_digest is not None
    assert again.new == 0
    assert {s.name: s.not_modified for s in again.sources}["rss"]


def test_states_round_trip_through_the_store(store_at: StoreAt) -> None:
    state = replace(SourceState(name="x"), etag='"e"', failures=2, next_due=T0,
                    last_error="boom", last_error_at=T0, feed_digest="d")  # fmt: skip
    with Store.open(store_at()) as store:
        store.save_source_state(state)
        assert store.source_state("x") == state


UNDATED_PAGE = """<!doctype html><html lang="tr"><head><title>Köy okuluna kütüphane</title>
</head><body><article><h1>Köy okuluna kütüphane kuruldu</h1>
<p>Gönüllülerin topladığı kitaplarla köy okuluna bir kütüphane kuruldu.</p>
<p>Öğrenciler kitapları okul saatlerinden sonra da ödünç alabilecek.</p></article>
</body></html>""".encode()


def test_an_undated_page_keeps_its_first_seen_date(server: App, tmp_path: Path) -> None:
    listed = iter(range(1_000))  # the listing changes on every visit: the page is parsed again
    server.route("/tarihsiz/", lambda _r: Reply(
        body=f'<html><body><h2><a href="/tarihsiz/kutuphane">Kütüphane</a></h2>'
        f"<!--{next(listed)}--></body></html>".encode(), content_type=HTML))  # fmt: skip
    server.route("/tarihsiz/kutuphane", Reply(body=UNDATED_PAGE, content_type=HTML))
    cfg = config(tmp_path, source("site", "html", server.base + "/tarihsiz/"))
    with Store.open(cfg.state) as store:
        report = run_once(cfg, store, None, T0)
    assert report.new == 1 and [s.rejected for s in report.sources] == [()]
    names = ("atom.xml", "rss.xml", "feed.json")
    first = {n: (cfg.output_dir / n).read_bytes() for n in names}
    (entry,) = feedparser.parse(first["atom.xml"]).entries
    assert entry.title == "Köy okuluna kütüphane kuruldu"
    assert entry.published_parsed[:5] == (2026, 1, 10, 6, 30)  # T0, 09:30 +03:00

    hits = server.hits["/tarihsiz/kutuphane"]
    with Store.open(cfg.state) as store:
        run_once(cfg, store, None, T0 + timedelta(hours=2))
    assert main(["regenerate", "--config", str(cfg.path), "-q", "--force"]) == 0  # now: today
    assert server.hits["/tarihsiz/kutuphane"] == hits + 2  # read again, dated as first seen
    assert {n: (cfg.output_dir / n).read_bytes() for n in names} == first
