"""Disk full (a small tmpfs mounted by the test), output or store not writable, store
corrupted, truncated or from a newer schema: one clear error naming the path, the
documented exit code (README: 4 store, 5 output), nothing overwritten, and the next run
after the cause is gone succeeds with every article and unchanged ids."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from aggregator.cli import EXIT_OK, EXIT_OUTPUT, EXIT_STORE
from tests.reliability.helpers import T0, add_seed, read_feeds, regenerate, write_config
from tests.seedmaker import tgrt_seed

WORDS = "haber ankara bakan açıkladı toplantı ekonomi ğümrük şehir ıhlamur çalışma".split()


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` at `path` for the duration; skips the test where mounting fails."""
    path.mkdir(parents=True, exist_ok=True)
    done = _mount("-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, options: str) -> None:
    done = _mount("-o", f"remount,{options}", str(path))
    assert done.returncode == 0, done.stderr


def big_seed(folder: Path, n: int, words: int = 3000) -> None:
    """A seed file with about `words` random words of body (incompressible enough)."""
    rng = random.Random(n)
    paragraphs = tuple(" ".join(rng.choice(WORDS) + str(rng.randrange(1000)) for _ in range(100))
                       + "." for _ in range(words // 100))  # fmt: skip
    text = tgrt_seed(title=f"Uzun haber {n}: meclis bütçe görüşmelerine devam etti",
                     spot=f"Görüşmelerin {n}. bölümünde konuşmalar sürdü.",
                     giris=T0.replace(hour=T0.hour, minute=n % 60), body=paragraphs)  # fmt: skip
    (folder / f"big-{n:04d}.txt").write_text(text, encoding="utf-8")


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> hash of every file under `folder`."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*")) if p.is_file()
    }  # fmt: skip


def one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.startswith("aggregator: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


# -- disk full -----------------------------------------------------------------------------
def test_output_disk_full_keeps_previous_feeds_and_recovers(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "out", "256k") as out:
        cfg = write_config(tmp_path)
        add_seed(tmp_path / "seeds", 1)
        assert regenerate(cfg).returncode == EXIT_OK
        before_ids = read_feeds(out)
        feeds_before = {n: (out / n).read_bytes() for n in ("atom.xml", "rss.xml", "feed.json")}
        for n in range(40):
            big_seed(tmp_path / "seeds", n)
        proc = regenerate(cfg)
        assert proc.returncode == EXIT_OUTPUT, proc.stderr
        line = one_error_line(proc)
        assert str(out) in line and "No space left on device" in line
        for name, data in feeds_before.items():
            assert (out / name).read_bytes() == data, f"{name} changed on a failed publish"
        assert not list(out.rglob(".*.tmp")), "temporary files left behind"
        remount(out, "size=32m")
        proc = regenerate(cfg)
        assert proc.returncode == EXIT_OK, proc.stderr
        after = read_feeds(out)
        assert len(after) == 41 and before_ids.items() <= after.items()


def test_store_disk_full_is_a_store_error_and_the_store_survives(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "400k") as state:
        cfg = write_config(tmp_path, max_items=100)
        add_seed(tmp_path / "seeds", 1)
        assert regenerate(cfg).returncode == EXIT_OK
        before_ids = read_feeds(tmp_path / "out")
        feeds_before = snapshot(tmp_path / "out")
        for n in range(60):
            big_seed(tmp_path / "seeds", n)
        proc = regenerate(cfg)
        assert proc.returncode == EXIT_STORE, proc.stderr
        line = one_error_line(proc)
        assert str(state / "agg.sqlite3") in line and "full" in line, line
        print(line)
        assert snapshot(tmp_path / "out") == feeds_before
        with sqlite3.connect(state / "agg.sqlite3") as db:
            assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
            assert db.execute("SELECT COUNT(*) FROM articles").fetchone() == (1,)
        remount(state, "size=64m")
        proc = regenerate(cfg)
        assert proc.returncode == EXIT_OK, proc.stderr
        after = read_feeds(tmp_path / "out")
        assert len(after) == 61 and before_ids.items() <= after.items()


# -- not writable --------------------------------------------------------------------------
def test_read_only_output_dir_is_exit_5_naming_the_path(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "out", "8m") as out:
        cfg = write_config(tmp_path)
        add_seed(tmp_path / "seeds", 1)
        assert regenerate(cfg).returncode == EXIT_OK
        before = snapshot(out)
        add_seed(tmp_path / "seeds", 2)
        remount(out, "ro")
        proc = regenerate(cfg)
        assert proc.returncode == EXIT_OUTPUT, proc.stderr
        line = one_error_line(proc)
        assert str(out) in line and "Read-only file system" in line
        assert snapshot(out) == before
        remount(out, "rw")
        assert regenerate(cfg).returncode == EXIT_OK
        assert len(read_feeds(out)) == 2


def test_output_dir_that_is_a_file_is_exit_5(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    add_seed(tmp_path / "seeds", 1)
    (tmp_path / "out").write_bytes(b"not a folder")
    proc = regenerate(cfg)
    assert proc.returncode == EXIT_OUTPUT, proc.stderr
    assert str(tmp_path / "out") in one_error_line(proc)
    assert (tmp_path / "out").read_bytes() == b"not a folder"


def test_read_only_store_is_exit_4_and_nothing_is_written(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "state", "8m") as state:
        cfg = write_config(tmp_path)
        add_seed(tmp_path / "seeds", 1)
        assert regenerate(cfg).returncode == EXIT_OK
        before = snapshot(tmp_path / "out")
        add_seed(tmp_path / "seeds", 2)
        remount(state, "ro")
        proc = regenerate(cfg)
        assert proc.returncode == EXIT_STORE, proc.stderr
        assert str(state / "agg.sqlite3") in one_error_line(proc)
        assert snapshot(tmp_path / "out") == before
        remount(state, "rw")
        assert regenerate(cfg).returncode == EXIT_OK
        assert len(read_feeds(tmp_path / "out")) == 2


# -- damaged or foreign stores ---------------------------------------------------------------
def _damage_garbage(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[:100] = random.Random(7).randbytes(100)
    db.write_bytes(bytes(data))


def _damage_truncate(db: Path) -> None:
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])


def _damage_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    rng = random.Random(11)
    for page in range(1, len(data) // 4096):  # every page but the header page
        start = page * 4096
        data[start : start + 4096] = rng.randbytes(4096)
    db.write_bytes(bytes(data))


def _newer_schema(db: Path) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE schema_meta SET value = '99' WHERE key = 'version'")
    conn.close()


def _foreign(db: Path) -> None:
    db.unlink()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE something_else (x)")
    conn.close()


@pytest.mark.parametrize(
    ("damage", "expect"),
    [
        (_damage_garbage, "damaged"),
        (_damage_truncate, ""),
        (_damage_pages, "damaged"),
        (_newer_schema, "newer than this aggregator understands"),
        (_foreign, "not an aggregator state store"),  # regression: it was switched to WAL
    ],
    ids=["garbage-header", "truncated", "garbage-pages", "newer-schema", "foreign-db"],
)
def test_unusable_store_is_one_clear_error_and_nothing_is_overwritten(
    tmp_path: Path, damage: object, expect: str
) -> None:
    cfg = write_config(tmp_path)
    for n in range(30):
        big_seed(tmp_path / "seeds", n, words=300)
    assert regenerate(cfg).returncode == EXIT_OK
    db = tmp_path / "state" / "agg.sqlite3"
    with sqlite3.connect(db) as conn:  # fold the WAL in, so the damage hits real pages
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert callable(damage)
    damage(db)
    before_db = db.read_bytes()
    before_out = snapshot(tmp_path / "out")
    big_seed(tmp_path / "seeds", 99, words=300)
    proc = regenerate(cfg)
    assert proc.returncode == EXIT_STORE, proc.stderr
    line = one_error_line(proc)
    assert str(db) in line and expect in line, line
    assert db.read_bytes() == before_db
    assert snapshot(tmp_path / "out") == before_out
