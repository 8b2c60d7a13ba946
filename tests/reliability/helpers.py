"""Shared pieces of the reliability tests: a site on disk (config, seeds, state, output),
`aggregator regenerate` as a subprocess, and reading the published feeds back as a reader
would (feedparser, bozo 0, Atom and RSS ids equal)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import feedparser

from tests.conftest import ISTANBUL
from tests.seedmaker import tgrt_seed

REPO = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 2, 8, 0, tzinfo=ISTANBUL)


def write_config(root: Path, *, out: str = "out", state: str = "state/agg.sqlite3",
                 sources: str = "", port: int = 0, max_items: int = 50) -> Path:  # fmt: skip
    """config.yaml with one seed source (`seeds/`) plus any `sources` YAML given."""
    (root / "seeds").mkdir(parents=True, exist_ok=True)
    cfg = root / "config.yaml"
    cfg.write_text(
        f"""site:
  title: Güvenilirlik
  url: http://127.0.0.1:8080/
output:
  dir: {out}
  max_items: {max_items}
state: {state}
retention: never
log_level: info
server:
  host: 127.0.0.1
  port: {port}
sources:
  - name: seeds
    type: seeds
    path: seeds
    every: 1s
{sources}""",
        encoding="utf-8",
    )
    return cfg


def seed_text(n: int, *, updates: int = 0) -> str:
    """Seed file `n` (revision `updates`: a later GÜNCELLEME and a changed body)."""
    giris = T0 + timedelta(minutes=7 * n)
    return tgrt_seed(
        title=f"Ankara'da {n}. toplantı: bakanlar yeni kararı açıkladı",
        spot=f"Toplantının {n}. gününde alınan kararlar kamuoyuyla paylaşıldı.",
        giris=giris,
        guncelleme=giris + timedelta(minutes=5 + updates) if updates else None,
        body=(f"Haberin {n}. metni, sürüm {updates}.", "SON DURUM", "Açıklama bekleniyor."),
    )


def add_seed(folder: Path, n: int, *, updates: int = 0) -> None:
    """Write seed file `n` atomically, as a scraper should."""
    tmp = folder / f".{n:04d}.tmp"
    tmp.write_text(seed_text(n, updates=updates), encoding="utf-8")
    os.replace(tmp, folder / f"{n:04d}.txt")


def regenerate(cfg: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggregator", "regenerate", "-q", "--config", str(cfg), *args],
        cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def read_feeds(out: Path, *, agree: bool = True, settle: float = 5.0) -> dict[str, str]:
    """id -> title of the published feed; asserts Atom and RSS parse cleanly and, with
    `agree`, carry the same entries. Each file is replaced atomically, the pair is not: a
    reader between the two writes of a publish sees two versions, so a disagreement is
    retried for `settle` seconds (a publish in progress ends) before it fails."""
    deadline = time.monotonic() + settle
    while True:
        atom = feedparser.parse((out / "atom.xml").read_bytes())
        rss = feedparser.parse((out / "rss.xml").read_bytes())
        assert atom.bozo == 0, f"atom.xml: {atom.get('bozo_exception')}"
        assert rss.bozo == 0, f"rss.xml: {rss.get('bozo_exception')}"
        assert atom.version == "atom10" and rss.version == "rss20"
        ids = {e.id: e.title for e in atom.entries}
        if not agree or ids == {e.id: e.title for e in rss.entries}:
            return ids
        assert time.monotonic() < deadline, "atom.xml and rss.xml disagree"
        time.sleep(0.05)


_MEASURE = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)
"""


def regenerate_measured(
    cfg: Path, tmp: Path, timeout: float = 120, *, address_space_mib: int | None = None
) -> tuple[subprocess.CompletedProcess[str], float]:
    """`regenerate` run under a wrapper process that reports the peak RSS (MiB) of the run
    and its workers alone (RUSAGE_CHILDREN of the wrapper, not of pytest). With
    `address_space_mib`, under that RLIMIT_AS: a memory bomb fails the run, not the machine."""
    peak_file = tmp / "peak-rss.txt"

    def limit() -> None:
        if address_space_mib is not None:
            size = address_space_mib * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (size, size))

    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(peak_file), sys.executable, "-m", "aggregator",
         "regenerate", "-q", "--config", str(cfg)],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, preexec_fn=limit,
    )  # fmt: skip
    return proc, int(peak_file.read_text()) / 1024
