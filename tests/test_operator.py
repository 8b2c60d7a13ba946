"""Issue 13, an operator's first week: no silent deletions, remembered rejections, honest
commands (pipes, Ctrl-C, --force/--source), one back-off policy, config errors, status.
CLI behaviour that depends on the process (pipes, signals, exit codes) runs the installed
console script in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from aggregator.cli import main
from aggregator.config import load_config
from aggregator.model import SourceState
from aggregator.pipeline import run_once
from aggregator.sources import policy
from aggregator.store import Store
from tests.conftest import ISTANBUL, StoreAt, state_setting
from tests.localserver import HTML, App, Reply, serve_in_thread
from tests.seedmaker import tgrt_seed
from tests.test_regenerate import write_config

SCRIPT = str(Path(sys.executable).with_name("aggregator"))
IMPORTED = datetime(2026, 12, 1, 10, 0, tzinfo=ISTANBUL)


def cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)  # fmt: skip


def seeds(folder: Path, n: int, start: datetime = datetime(2026, 1, 5, 9, tzinfo=ISTANBUL),
          step: timedelta = timedelta(days=1)) -> None:  # fmt: skip
    for i in range(n):
        (folder / f"{i:03}.txt").write_text(tgrt_seed(
            title=f"Arşiv haberi numara {i} başlığı", spot=f"Arşivdeki {i}. haberin spotu.",
            giris=start + i * step), encoding="utf-8")  # fmt: skip


def with_retention(cfg: Path, value: str) -> None:
    text = cfg.read_text(encoding="utf-8")
    line = next(x for x in text.splitlines() if x.startswith("retention:"))
    cfg.write_text(text.replace(line, f"retention: {value}"), encoding="utf-8")


@pytest.fixture(scope="module")
def server() -> Iterator[App]:
    with serve_in_thread() as app:
        yield app


# -- data safety: retention -----------------------------------------------------------------
def test_a_fresh_import_of_old_articles_is_kept_and_expiry_is_counted(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, max_items=50)
    with_retention(cfg, "90d")
    seeds(tmp_path / "seeds", 2500, step=timedelta(minutes=50))  # Jan to Mar 2026...
    config = load_config(cfg)
    with Store.open(config.state) as store:  # ...imported on 1 December
        first = run_once(config, store, None, IMPORTED)
        assert first.new == 2500 and first.expired == 0 and store.count() == 2500
        again = run_once(config, store, None, IMPORTED + timedelta(days=89))
        assert again.expired == 0 and store.count() == 2500
        later = run_once(config, store, None, IMPORTED + timedelta(days=91))
        assert later.expired == 2450 and store.count() == 50  # the newest max_items stay
        # the files are still there and unchanged: nothing comes back, nothing re-expires
        steady = run_once(config, store, None, IMPORTED + timedelta(days=92))
        assert (steady.new, steady.expired, store.count()) == (0, 0, 50)
    assert main(["regenerate", "--config", str(cfg)]) == 0  # the real clock: months later
    status = cli("status", "--config", str(cfg))
    assert "expired: 2450 articles removed by retention (90.0d from first seen)" in status.stdout


def test_raising_or_disabling_retention_brings_expired_articles_back(
    tmp_path: Path, store_at: StoreAt
) -> None:
    cfg = write_config(tmp_path, max_items=2, state=state_setting(store_at()))
    with_retention(cfg, "30d")
    seeds(tmp_path / "seeds", 10)
    config = load_config(cfg)
    with Store.open(config.store_target) as store:
        run_once(config, store, None, IMPORTED)
        assert run_once(config, store, None, IMPORTED + timedelta(days=31)).expired == 8
    with_retention(cfg, "60d")  # first seen 40 days ago: kept again
    config = load_config(cfg)
    with Store.open(config.store_target) as store:
        back = run_once(config, store, None, IMPORTED + timedelta(days=40))
        assert back.new == 8 and back.expired == 0 and store.count() == 10
        # they keep their first_seen: 60 days after the import they go again, once
        gone = run_once(config, store, None, IMPORTED + timedelta(days=61))
        assert gone.expired == 8 and store.count() == 2
        steady = run_once(config, store, None, IMPORTED + timedelta(days=62))
        assert (steady.new, steady.expired) == (0, 0)
    with_retention(cfg, "never")
    config = load_config(cfg)
    with Store.open(config.store_target) as store:
        assert run_once(config, store, None, IMPORTED + timedelta(days=63)).new == 8
        assert store.count() == 10
    with_retention(cfg, "60d")  # back with their first first_seen: they go again at once
    config = load_config(cfg)
    with Store.open(config.store_target) as store:
        assert run_once(config, store, None, IMPORTED + timedelta(days=64)).expired == 8


def test_check_says_how_many_stored_articles_retention_would_remove(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, max_items=3)
    seeds(tmp_path / "seeds", 12)
    config = load_config(cfg)
    with Store.open(config.state) as store:  # stored 100 days before today
        run_once(config, store, None, datetime.now(ISTANBUL) - timedelta(days=100))
    with_retention(cfg, "90d")
    done = cli("check", "--config", str(cfg))
    assert done.returncode == 0, done.stderr
    assert "would remove 9 of the 12 stored articles now" in done.stdout
    with sqlite3.connect(config.state) as conn:  # as an older aggregator left it
        conn.execute("UPDATE schema_meta SET value = '5' WHERE key = 'version'")
    conn.close()
    older = cli("check", "--config", str(cfg))
    assert older.returncode == 0 and "stored articles not counted" in older.stdout


# -- data safety: a broken seed file is reported once ---------------------------------------
def test_a_broken_seed_file_is_reported_once_listed_and_again_when_changed(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path)
    seeds(tmp_path / "seeds", 1)
    broken = tmp_path / "seeds" / "broken.txt"
    broken.write_text("no article in here at all\n", encoding="utf-8")
    first = cli("regenerate", "--config", str(cfg), "-q")
    assert first.returncode == 1 and "broken.txt" in first.stderr
    second = cli("regenerate", "--config", str(cfg), "-q")
    assert second.returncode == 0 and second.stderr == ""
    status = cli("status", "--config", str(cfg))
    assert f"rejected:     {broken}:" in status.stdout
    broken.write_text("still no article, but different bytes\n", encoding="utf-8")
    third = cli("regenerate", "--config", str(cfg), "-q")
    assert third.returncode == 1 and "broken.txt" in third.stderr
    seeds(tmp_path / "seeds", 1)  # rewrite the good one: nothing about broken.txt again
    (tmp_path / "seeds" / "000.txt").touch()
    assert cli("regenerate", "--config", str(cfg), "-q").stderr == ""


# -- honest commands ----------------------------------------------------------------------
@pytest.mark.parametrize("command", [["status"], ["check"], ["parse", "--json"]])
def test_a_closed_output_pipe_ends_quietly(tmp_path: Path, command: list[str]) -> None:
    cfg = write_config(tmp_path)
    seeds(tmp_path / "seeds", 3)
    args = [*command, str(tmp_path / "seeds" / "000.txt")] if command[0] == "parse" else [
        *command, "--config", str(cfg)]  # fmt: skip
    read, write = os.pipe()
    os.close(read)  # `| head -1` that has already exited
    try:
        done = subprocess.run([SCRIPT, *args], stdout=write, stderr=subprocess.PIPE, text=True,
                              timeout=60, check=False)  # fmt: skip
    finally:
        os.close(write)
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert done.stderr == "" and done.returncode == 141


def test_ctrl_c_exits_130_with_one_line(tmp_path: Path, server: App) -> None:
    asked = threading.Event()

    def slow(_request: object) -> Reply:
        asked.set()
        return Reply(body=b"", delay=30)

    server.route("/slow.xml", slow)
    cfg = write_config(tmp_path, f"  - name: slow\n    type: feed\n    url: {server.base}"
                                 "/slow.xml\n")  # fmt: skip
    proc = subprocess.Popen([SCRIPT, "regenerate", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert asked.wait(30), "the run never asked the server"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err.strip() == "aggregator: interrupted", err


def test_ctrl_c_during_a_big_seed_import_is_one_line_and_keeps_nothing_half_done(
    tmp_path: Path,
) -> None:
    """Ctrl-C goes to the whole process group, worker processes too: only this process
    answers it. Sent at points across a run, from when the store is opened."""
    cfg = write_config(tmp_path)
    seeds(tmp_path / "seeds", 2500, step=timedelta(minutes=7))  # enough for worker processes
    started = time.monotonic()
    assert cli("regenerate", "--config", str(cfg), "-q").returncode == 0
    typical = time.monotonic() - started
    interrupted = 0
    for fraction in [0.05 * i for i in range(10)]:  # the workers start early in a run
        shutil.rmtree(tmp_path / "state")
        proc = subprocess.Popen([SCRIPT, "regenerate", "--config", str(cfg), "-q"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)  # fmt: skip
        while not (tmp_path / "state").exists() and proc.poll() is None:
            time.sleep(0.005)  # past Python's own start-up (a Ctrl-C there is Python's)
        time.sleep(typical * fraction)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (0, 130), err
        if proc.returncode == 130:
            interrupted += 1
            assert err.strip() == "aggregator: interrupted", err
        with Store.open(tmp_path / "state" / "agg.sqlite3") as store:
            assert store.count() in (0, 2500)
    assert interrupted, "every run finished before its Ctrl-C"


def test_regenerate_names_sources_not_due_and_force_and_source_read_them(
    tmp_path: Path, server: App
) -> None:
    cfg = write_config(tmp_path, f"  - name: rss\n    type: feed\n    url: {server.base}/rss.xml"
                                 f"\n    every: 1h\n  - name: atom\n    type: feed\n    url: "
                                 f"{server.base}/atom.xml\n    every: 1h\n")  # fmt: skip
    first = cli("regenerate", "--config", str(cfg))
    assert first.returncode == 0 and "0 skipped" in first.stdout, first.stderr
    hits = server.hits["/rss.xml"], server.hits["/atom.xml"]
    second = cli("regenerate", "--config", str(cfg))
    assert second.returncode == 0
    due = (datetime.now().astimezone() + timedelta(hours=1)).strftime("%H:")
    for name in ("rss", "atom"):
        line = next(x for x in second.stdout.splitlines() if x.startswith(f"skipped: {name}:"))
        assert "not due until " + due in line and "(local)" in line
    assert (server.hits["/rss.xml"], server.hits["/atom.xml"]) == hits
    only = cli("regenerate", "--config", str(cfg), "--source", "rss")
    assert only.returncode == 0 and server.hits["/rss.xml"] == hits[0] + 1
    assert server.hits["/atom.xml"] == hits[1] and "skipped:" not in only.stdout
    forced = cli("regenerate", "--config", str(cfg), "--force")
    assert forced.returncode == 0 and "0 skipped" in forced.stdout
    assert server.hits["/atom.xml"] == hits[1] + 1
    unknown = cli("regenerate", "--config", str(cfg), "--source", "nope")
    assert unknown.returncode == 2 and "'nope'" in unknown.stderr and "rss, atom" in unknown.stderr


def test_a_source_backing_off_is_skipped_not_failed(tmp_path: Path, server: App) -> None:
    server.route("/down.xml", Reply(500))
    cfg = write_config(tmp_path, f"  - name: down\n    type: feed\n    url: {server.base}"
                                 "/down.xml\n")  # fmt: skip
    failed = cli("regenerate", "--config", str(cfg))
    assert failed.returncode == 1 and "source failed: down" in failed.stderr
    hits = server.hits["/down.xml"]
    skipped = cli("regenerate", "--config", str(cfg))
    assert skipped.returncode == 0 and "source failed" not in skipped.stderr
    assert "skipped: down: backing off until " in skipped.stdout and "(local)" in skipped.stdout
    assert server.hits["/down.xml"] == hits


def test_global_options_work_before_the_command(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    seeds(tmp_path / "seeds", 1)
    done = cli("--config", str(cfg), "check")
    assert done.returncode == 0 and f"{cfg}: valid" in done.stdout, done.stderr
    quiet = cli("-q", "--config", str(cfg), "regenerate")
    assert quiet.returncode == 0 and quiet.stdout == ""
    assert cli("--config", str(cfg), "status", "--json").returncode == 0


# -- one back-off policy ------------------------------------------------------------------
def test_the_back_off_curve_is_pinned() -> None:
    assert [policy.backoff(300, n) for n in range(7)] == [300, 300, 600, 1200, 2400, 3600, 3600]
    assert policy.backoff(10, 1) == 60  # never faster than a minute
    assert policy.backoff(7200, 5) == 7200  # slower than the cap: its own interval
    assert policy.backoff(300, 1, retry_after=7200) == 7200  # the server asked
    assert policy.backoff(300, 1, retry_after=10**9) == 24 * 3600


def test_seed_failures_are_counted_once_per_run_and_cleared_by_success(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    config = load_config(cfg)
    (tmp_path / "seeds").rmdir()
    (tmp_path / "seeds").write_text("a file where the folder should be")
    with Store.open(config.state) as store:
        for _ in range(2):
            report = run_once(config, store, None, IMPORTED)
        assert "is a file, not a folder" in (report.sources[0].error or "")
        state = store.source_state("seeds")
        assert state.failures == 2
        assert state.next_due == IMPORTED + timedelta(seconds=policy.backoff(300, 2))
        (tmp_path / "seeds").unlink()
        (tmp_path / "seeds").mkdir()
        run_once(config, store, None, IMPORTED)
        ok = store.source_state("seeds")
        assert ok.failures == 0 and ok.next_due == IMPORTED + timedelta(minutes=5)
    assert policy.failed(SourceState(name="s"), config.sources[0], "x", IMPORTED).failures == 1


# -- config errors --------------------------------------------------------------------------
def error_of(cfg: Path, *args: str) -> str:
    done = cli("check", "--config", str(cfg), *args)
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.splitlines()
    assert "fix the key named above" not in line
    return line


def test_config_errors_are_one_line_with_the_place_and_what_to_do(tmp_path: Path) -> None:
    missing = cli("check", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 3 and "no such config file (check the --config path)" in (
        missing.stderr)  # fmt: skip
    default = subprocess.run([SCRIPT, "check"], capture_output=True, text=True, timeout=60,
                             cwd=tmp_path, check=False)  # fmt: skip
    assert "pass --config PATH" in default.stderr and "fix the key" not in default.stderr
    cfg = tmp_path / "config.yaml"
    cfg.write_text("site:\n  title: [unclosed\nsources: []\n", encoding="utf-8")
    assert f"{cfg}:3:" in error_of(cfg)
    cfg.write_text("", encoding="utf-8")
    assert "empty" in error_of(cfg)
    write_config(tmp_path)
    cfg.write_text(cfg.read_text() + "retention: 30d\n", encoding="utf-8")
    line = error_of(cfg)
    assert "'retention' is given twice (first on line 10)" in line and f"{cfg}:16:" in line
    write_config(tmp_path, "  - name: site\n    type: html\n    url: http://127.0.0.1:1/\n"
                           "    links: 'a[[['\n")  # fmt: skip
    line = error_of(cfg)
    assert "sources[1].links" in line and "a[[[" in line and "not a valid CSS selector" in line
    cfg.write_text(
        cfg.read_text().replace("    links: 'a[[['\n", "    selectors:\n      title: 'h1 >> p'\n"),
        encoding="utf-8",
    )
    assert "sources[1].selectors.title: not a valid CSS selector 'h1 >> p'" in error_of(cfg)


def test_check_finds_output_and_seed_paths_that_are_files_and_port_mismatch(
    tmp_path: Path,
) -> None:
    cfg = write_config(tmp_path)
    cfg.write_text(cfg.read_text().replace("url: http://127.0.0.1:8080/",
                                           "url: http://localhost:9000/"))  # fmt: skip
    (tmp_path / "out").write_text("not a folder")
    (tmp_path / "seeds").rmdir()
    (tmp_path / "seeds").write_text("not a folder either")
    done = cli("check", "--config", str(cfg))
    assert done.returncode == 1
    assert "output.dir" in done.stderr and "is a file, not a folder" in done.stderr
    assert "seed folder" in done.stderr and "does not exist" not in done.stderr
    assert "warning: site.url" in done.stderr and "9000" in done.stderr and "8080" in done.stderr


def test_an_html_page_configured_as_a_feed_offers_the_feed_it_advertises(
    tmp_path: Path, server: App
) -> None:
    page = (b'<!DOCTYPE html><html><head><title>Haberler</title><link rel="alternate" '
            b'type="application/rss+xml" href="/rss.xml"></head><body><p>Merhaba</p>'
            b"</body></html>")  # fmt: skip
    server.route("/home", Reply(body=page, content_type=HTML))
    server.route("/bare", Reply(body=b"<html><body>yok</body></html>", content_type=HTML))
    cfg = write_config(tmp_path, f"  - name: home\n    type: feed\n    url: {server.base}/home"
                                 f"\n  - name: bare\n    type: feed\n    url: {server.base}"
                                 "/bare\n")  # fmt: skip
    done = cli("regenerate", "--config", str(cfg), "-q")
    assert done.returncode == 1
    home = next(x for x in done.stderr.splitlines() if "source failed: home" in x)
    assert "HTML page, not a feed" in home and f"{server.base}/rss.xml" in home
    assert "type: html" in home
    bare = next(x for x in done.stderr.splitlines() if "source failed: bare" in x)
    assert "advertises none" in bare and "type: html" in bare


# -- status ---------------------------------------------------------------------------------
def test_status_json_and_who_holds_the_store(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    seeds(tmp_path / "seeds", 2)
    assert cli("regenerate", "--config", str(cfg), "-q").returncode == 0
    done = cli("status", "--config", str(cfg), "--json")
    data = json.loads(done.stdout)
    assert data["articles"] == 2 and data["held_by"] is None and data["expired"] == 0
    (seed,) = data["sources"]
    assert seed["name"] == "seeds" and seed["articles"] == 2 and seed["failures"] == 0
    assert datetime.fromisoformat(seed["last_success"]).tzinfo is not None
    assert "nobody (no daemon" in cli("status", "--config", str(cfg)).stdout
    with Store.open(load_config(cfg).state, holder="daemon"):
        held = cli("status", "--config", str(cfg))
        assert f"held by: a running daemon (pid {os.getpid()})" in held.stdout
        data = json.loads(cli("status", "--config", str(cfg), "--json").stdout)
        assert data["held_by"] == {"pid": os.getpid(), "as": "daemon"}
