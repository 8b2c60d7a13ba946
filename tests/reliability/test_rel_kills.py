"""kill -9 at random moments, many times, across `regenerate` and `aggregator run`.

After every kill: atom.xml and rss.xml parse cleanly (bozo 0, same ids), the store passes
SQLite's integrity check, and the next run publishes every article written so far with the
id it had before. At the end a store rebuilt from scratch gives the very same ids.
Kill delays are random but seeded (KILL_SEED), spread from process start to a little past a
typical run's end, so kills land in start-up, parsing, the merge transaction and publishing.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aggregator.cli import EXIT_OK, main
from tests.reliability.helpers import REPO, add_seed, read_feeds, write_config

pytestmark = pytest.mark.slow
KILL_SEED = int(os.environ.get("KILL_SEED", "20260102"))
REGENERATE_KILLS = 150
DAEMON_KILLS = 50


class Site:
    """A site whose seed folder keeps changing; remembers the first id of every title."""

    def __init__(self, root: Path, rng: random.Random) -> None:
        self.root = root
        self.cfg = write_config(root, max_items=300)
        self.rng = rng
        self.count = 0
        self.revision: dict[int, int] = {}
        self.ids: dict[str, str] = {}  # title -> id, first seen
        self.torn = 0  # kills that left a temporary file: they landed inside a write

    def change(self) -> None:
        """Add one or two articles, or revise an old one (a later GÜNCELLEME)."""
        if self.count and self.rng.random() < 0.65:
            n = self.rng.randrange(self.count)
            self.revision[n] = self.revision.get(n, 0) + 1
            add_seed(self.root / "seeds", n, updates=self.revision[n])
            return
        for _ in range(self.rng.choice((1, 2))):
            add_seed(self.root / "seeds", self.count)
            self.count += 1

    def check_after_kill(self) -> None:
        out = self.root / "out"
        for tmp in out.rglob(".*.tmp"):
            self.torn += 1
            tmp.unlink()
        if (out / "atom.xml").exists():
            # parses, bozo 0; the pair may differ when the kill fell between the two writes
            # (each file is atomic, the pair is not): the next run rewrites both
            read_feeds(out, agree=False)
        db = self.root / "state" / "agg.sqlite3"
        if db.exists():
            with sqlite3.connect(db) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            conn.close()

    def check_next_run(self) -> None:
        """A full run publishes every article so far, each with the id it first had."""
        assert main(["regenerate", "-q", "--config", str(self.cfg)]) == EXIT_OK
        published = {title: aid for aid, title in read_feeds(self.root / "out").items()}
        assert len(published) == self.count
        for title, aid in published.items():
            assert self.ids.setdefault(title, aid) == aid, f"id of {title!r} changed"


def _kill_at(cmd: list[str], delay: float, log: Path) -> bool:
    """Start `cmd`, SIGKILL it after `delay` s. True if it was still running (a real kill)."""
    with open(log, "ab") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    time.sleep(delay)
    running = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    rc = proc.wait(timeout=30)
    if not running:
        assert rc in (0, 1), f"exited {rc} before the kill; see {log}"
    return running


def _typical_run_seconds(site: Site) -> float:
    cmd = [sys.executable, "-m", "aggregator", "regenerate", "-q", "--config", str(site.cfg)]
    times = []
    for _ in range(3):
        site.change()
        started = time.monotonic()
        subprocess.run(cmd, cwd=REPO, capture_output=True, check=False, timeout=60)
        times.append(time.monotonic() - started)
    return sorted(times)[1]


def test_kill_9_during_regenerate_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(KILL_SEED)
    site = Site(tmp_path, rng)
    for _ in range(40):
        site.change()
    site.check_next_run()
    typical = _typical_run_seconds(site)
    site.check_next_run()
    cmd = [sys.executable, "-m", "aggregator", "regenerate", "-q", "--config", str(site.cfg)]
    kills = attempts = 0
    while kills < REGENERATE_KILLS:
        attempts += 1
        assert attempts < 3 * REGENERATE_KILLS, "the runs finish before the kills land"
        site.change()
        if _kill_at(cmd, rng.uniform(0.0, typical * 1.1), tmp_path / "regenerate.log"):
            kills += 1
        site.check_after_kill()
        site.check_next_run()
    print(f"regenerate: {kills} kills in {attempts} attempts (typical run {typical:.2f}s), "
          f"{site.torn} inside a file write, {site.count} articles, seed {KILL_SEED}")  # fmt: skip
    _rebuilt_store_gives_the_same_ids(site)


def test_kill_9_during_a_first_run_leaves_an_empty_sound_store(tmp_path: Path) -> None:
    """A first run into an empty store writes through a rollback journal (store.transaction
    bulk=True): killed anywhere, the store is sound and holds all of the run or none of it,
    and the next run completes in write-ahead-log mode."""
    rng = random.Random(KILL_SEED + 2)
    cfg = write_config(tmp_path)
    for n in range(2500):  # enough for a pool of workers and a run of about a second
        add_seed(tmp_path / "seeds", n)
    cmd = [sys.executable, "-m", "aggregator", "regenerate", "-q", "--config", str(cfg)]
    db = tmp_path / "state" / "agg.sqlite3"
    started = time.monotonic()
    subprocess.run(cmd, cwd=REPO, capture_output=True, check=True, timeout=120)
    typical = time.monotonic() - started
    kills = 0
    for _ in range(8):
        # every attempt is a first run (a kill before the store was made leaves no folder)
        shutil.rmtree(tmp_path / "state", ignore_errors=True)
        if _kill_at(cmd, rng.uniform(0.1, typical), tmp_path / "first-run.log"):
            kills += 1
        if db.exists():
            with sqlite3.connect(db) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
                count = conn.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
            conn.close()
            assert count in (0, 2500)
    assert kills, "every run finished before its kill"
    assert main(["regenerate", "-q", "--config", str(cfg)]) == EXIT_OK
    assert len(read_feeds(tmp_path / "out")) == 50
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("SELECT COUNT(*) FROM articles").fetchone() == (2500,)
    conn.close()
    assert not db.with_name("agg.sqlite3-journal").exists()


def test_kill_9_during_the_daemon_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(KILL_SEED + 1)
    site = Site(tmp_path, rng)
    for _ in range(30):
        site.change()
    site.check_next_run()
    cmd = [sys.executable, "-m", "aggregator", "run", "--config", str(site.cfg)]
    kills = attempts = 0
    while kills < DAEMON_KILLS:
        attempts += 1
        assert attempts < 2 * DAEMON_KILLS
        site.change()
        # the daemon publishes at start, then after each merged change (1 s seed interval,
        # 1 s debounce): up to 2.8 s covers start-up, first publish and a second cycle
        delay = rng.uniform(0.2, 2.8)
        with open(tmp_path / "daemon.log", "ab") as err:
            proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline:  # keep the seed folder moving while it runs
            time.sleep(min(0.4, max(0.0, deadline - time.monotonic())))
            if rng.random() < 0.5:
                site.change()
        assert proc.poll() is None, f"daemon exited {proc.returncode}; see daemon.log"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        kills += 1
        site.check_after_kill()
        site.check_next_run()
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log[-3000:]
    print(f"daemon: {kills} kills, {site.torn} inside a file write, {site.count} articles, "
          f"{log.count('feeds published')} publishes logged, seed {KILL_SEED + 1}")  # fmt: skip
    _rebuilt_store_gives_the_same_ids(site)


def _rebuilt_store_gives_the_same_ids(site: Site) -> None:
    """Ids are deterministic: a fresh store built from the same seed files agrees."""
    fresh = site.root / "rebuilt"
    fresh.mkdir()
    text = site.cfg.read_text(encoding="utf-8")
    cfg = site.root / "rebuilt.yaml"
    text = text.replace("dir: out", "dir: rebuilt/out").replace("state: ", "state: rebuilt/")
    cfg.write_text(text, encoding="utf-8")
    assert main(["regenerate", "-q", "--config", str(cfg)]) == EXIT_OK
    rebuilt = {t: aid for aid, t in read_feeds(fresh / "out").items()}
    assert rebuilt == site.ids
