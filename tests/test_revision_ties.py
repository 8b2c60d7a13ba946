"""Issue 12, "the newest revision of an article wins", when revisions share GÜNCELLEME: an
RSS item carries only pubDate and a seed scrape may be corrected without a new date, so
`updated` ties across revisions. The revision first seen in a later run wins; a revision
the store already has (a stale cache serving the old text again) never wins back, and a
rerun changes nothing. Through `regenerate`, a real store and a real local feed server."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import feedparser

from aggregator.cli import EXIT_OK, main
from tests.conftest import ISTANBUL, StoreAt, state_setting
from tests.localserver import XML, App, Reply, Request, serve_in_thread
from tests.reliability.helpers import write_config
from tests.seedmaker import tgrt_seed

T0 = datetime(2026, 1, 10, 9, 30, tzinfo=ISTANBUL)
PUB_DATE = "Sat, 10 Jan 2026 09:30:00 +0300"


def regen(cfg: Path) -> None:
    assert main(["regenerate", "--config", str(cfg), "-q", "--force"]) == EXIT_OK


def published(root: Path) -> list[tuple[str, str, str]]:
    """(id, title, content) of every entry of the published Atom feed."""
    parsed = feedparser.parse((root / "out" / "atom.xml").read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return [(e.id, e.title, e.content[0].value) for e in parsed.entries]


def test_a_changed_description_with_the_same_pubdate_is_published(
    tmp_path: Path, store_at: StoreAt
) -> None:
    served = {"text": "Köprüde bakım çalışması sabah başladı, iki şerit kapalı."}
    app = App()

    def rss(_r: Request) -> Reply:
        item = (
            "<item><title>Köprüde bakım çalışması başladı</title>"
            "<link>{base}/haber/kopru</link><guid>kopru-1</guid>"
            f"<pubDate>{PUB_DATE}</pubDate><description>{served['text']}</description></item>"
        ).replace("{base}", app.base)
        body = f"<rss version='2.0'><channel><title>Site</title>{item}</channel></rss>"
        return Reply(body=body.encode("utf-8"), content_type=XML)

    app.route("/rss.xml", rss)
    with serve_in_thread(app, fixtures=False):
        cfg = write_config(tmp_path, state=state_setting(store_at()), sources=(
            f"  - {{name: site, type: feed, url: '{app.base}/rss.xml', every: 1s}}\n"
        ))  # fmt: skip
        regen(cfg)
        ((aid, _, first),) = published(tmp_path)
        assert "sabah başladı" in first
        served["text"] = "Köprüde bakım çalışması sabah başladı, üç şerit kapalı (düzeltme)."
        regen(cfg)
        corrected = published(tmp_path)
        ((same_id, title, content),) = corrected
        assert (same_id, title) == (aid, "Köprüde bakım çalışması başladı")
        assert content == f"<p>{served['text']}</p>"
        # a stale cache serves the old text again: the store has it already, it adds
        # nothing, and the correction seen since stays published
        served["text"] = "Köprüde bakım çalışması sabah başladı, iki şerit kapalı."
        regen(cfg)
        assert published(tmp_path) == corrected
        served["text"] = "Köprüde bakım çalışması sabah başladı, üç şerit kapalı (düzeltme)."
        regen(cfg)
        assert published(tmp_path) == corrected
        # a second correction, still without a new date, wins as the first did
        served["text"] = "Köprüde bakım tamamlandı, tüm şeritler açık."
        regen(cfg)
        assert [c for _, _, c in published(tmp_path)] == [f"<p>{served['text']}</p>"]


def test_a_seed_file_corrected_without_a_new_guncelleme_publishes_the_correction(
    tmp_path: Path, store_at: StoreAt
) -> None:
    cfg = write_config(tmp_path, state=state_setting(store_at()))
    path = tmp_path / "seeds" / "secim.txt"

    def write(body: tuple[str, ...]) -> None:
        path.write_text(tgrt_seed(title="Seçim sonuçları açıklandı", spot="YSK kesin sonuçları"
                                  " duyurdu.", giris=T0, guncelleme=T0 + timedelta(hours=1),
                                  body=body), encoding="utf-8")  # fmt: skip

    write(("Katılım yüzde 78 oldu.", "ARA BAŞLIK", "Sonuçlar Resmi Gazete'de yayımlanacak."))
    regen(cfg)
    ((aid, title, content),) = published(tmp_path)
    assert "yüzde 78" in content
    for share in ("87", "86", "85"):  # each correction wins over every text before it
        write((f"Katılım yüzde {share} oldu.", "ARA BAŞLIK",
               "Sonuçlar Resmi Gazete'de yayımlanacak."))  # fmt: skip
        regen(cfg)
        ((again, title_after, corrected),) = published(tmp_path)
        assert (again, title_after) == (aid, title)
        assert f"yüzde {share}" in corrected and corrected.count("yüzde") == 1
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*") if p.is_file()}
    regen(cfg)  # nothing new: nothing changes, not a byte rewritten
    assert published(tmp_path) == [(aid, title, corrected)]
    assert stamps == {p: p.stat().st_mtime_ns for p in (tmp_path / "out").rglob("*")
                      if p.is_file()}  # fmt: skip


def test_a_late_copy_of_an_older_revision_loses_though_seen_later(
    tmp_path: Path, store_at: StoreAt
) -> None:
    cfg = write_config(tmp_path, state=state_setting(store_at()))
    seeds = tmp_path / "seeds"
    for name, hours, title in (("new.txt", 2, "Seçim sonuçları açıklandı kesin"),
                               ("old.txt", 1, "Seçim sonuçları açıklandı")):  # fmt: skip
        seeds.joinpath(name).write_text(tgrt_seed(title=title, spot="YSK kesin sonuçları"
                                                  " duyurdu.", giris=T0,
                                                  guncelleme=T0 + timedelta(hours=hours)),
                                        encoding="utf-8")  # fmt: skip
        regen(cfg)
        assert [t for _, t, _ in published(tmp_path)] == ["Seçim sonuçları açıklandı kesin"]
