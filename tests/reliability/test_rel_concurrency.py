"""Two `regenerate` at once, and `regenerate` while `aggregator run` holds the state: the
store lock (flock on <state>.lock) lets exactly one in; the other exits 4 with one clear
line and touches nothing; feeds and store stay consistent."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aggregator.cli import EXIT_OK, EXIT_STORE
from tests.reliability.helpers import REPO, add_seed, read_feeds, regenerate, write_config

LOCKED = "another aggregator run (daemon or regenerate) is using this state"


def _integrity(root: Path) -> None:
    with sqlite3.connect(root / "state" / "agg.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()


@pytest.mark.slow
def test_two_regenerates_at_once(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, max_items=500)
    cmd = [sys.executable, "-m", "aggregator", "regenerate", "-q", "--config", str(cfg)]
    refused = written = 0
    for round_ in range(15):
        for n in range(round_ * 20, round_ * 20 + 20):
            add_seed(tmp_path / "seeds", n)
        procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]  # fmt: skip
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode in (EXIT_OK, EXIT_STORE), err
            if proc.returncode == EXIT_STORE:
                assert err.strip() == f"aggregator: error: {cfg.parent / 'state' / 'agg.sqlite3'}" \
                    f": {LOCKED}; wait for it to finish or stop it", err  # fmt: skip
                refused += 1
            else:
                written += 1
        assert written >= round_ + 1  # at least one of the two got in every round
        ids = read_feeds(tmp_path / "out")
        assert len(ids) == round_ * 20 + 20  # the winner saw every file written before it
        _integrity(tmp_path)
    assert refused >= 3, "the two runs never overlapped: the test proves nothing"
    print(f"two regenerates at once: 15 rounds, {refused} refused with exit 4")


@pytest.mark.slow
def test_regenerate_during_the_daemon_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    for n in range(5):
        add_seed(tmp_path / "seeds", n)
    log = open(tmp_path / "daemon.log", "wb")
    daemon = subprocess.Popen([sys.executable, "-m", "aggregator", "run", "--config", str(cfg)],
                              cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "out" / "atom.xml").exists():
            assert time.monotonic() < deadline and daemon.poll() is None
            time.sleep(0.05)
        for n in range(5, 15):
            add_seed(tmp_path / "seeds", n)
            before = read_feeds(tmp_path / "out")
            proc = regenerate(cfg, timeout=30)
            assert proc.returncode == EXIT_STORE and LOCKED in proc.stderr, proc.stderr
            assert before.items() <= read_feeds(tmp_path / "out").items()
            time.sleep(0.2)
        deadline = time.monotonic() + 20
        while len(read_feeds(tmp_path / "out")) < 15:
            assert time.monotonic() < deadline, "the daemon did not publish the new files"
            time.sleep(0.1)
    finally:
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=20)
        log.close()
    assert rc == 0, (tmp_path / "daemon.log").read_text()
    proc = regenerate(cfg)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert len(read_feeds(tmp_path / "out")) == 15
    _integrity(tmp_path)
