"""Hostile seed folders: huge files, one endless line, NUL bytes, mixed encodings, symlink
loops, FIFOs, dangling links, directories named like seed files. Never a crash or a hang,
each bad file named once, the good files published, memory bounded."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import (
    add_seed,
    read_feeds,
    regenerate,
    regenerate_measured,
    write_config,
)

PEAK_RSS_LIMIT_MIB = 400.0


def _hostile_folder(seeds: Path) -> dict[str, str]:
    """Bad files -> the reason their rejection line must give."""
    with open(seeds / "huge.txt", "wb") as f:  # 100 MB, sparse: never read
        f.truncate(100 * 1024 * 1024)
    os.mkfifo(seeds / "fifo.txt")  # open() would wait for a writer forever
    (seeds / "dangling.txt").symlink_to(seeds / "nowhere.txt")
    (seeds / "loop.txt").symlink_to(seeds / "loop.txt")
    (seeds / "ping.txt").symlink_to(seeds / "pong.txt")
    (seeds / "pong.txt").symlink_to(seeds / "ping.txt")
    (seeds / "nul.txt").write_bytes(b"\x00" * 4096)
    (seeds / "utf16-broken.txt").write_bytes(b"\xff\xfe" + b"\x00\xd8" * 10)
    (seeds / "empty.txt").write_bytes(b"")
    (seeds / "spaces.txt").write_bytes(b" \n\t\r\n" * 1000)
    return {
        "huge.txt": "over the 5242880-byte limit",
        "fifo.txt": "not a regular file",
        "dangling.txt": "No such file or directory",
        "loop.txt": "Too many levels of symbolic links",
        "ping.txt": "Too many levels of symbolic links",
        "pong.txt": "Too many levels of symbolic links",
        "nul.txt": "binary file",
        "utf16-broken.txt": "broken UTF-16",
        "empty.txt": "empty file",
        "spaces.txt": "empty file",
    }


def _odd_but_readable(seeds: Path) -> None:
    """Files that must not crash or hang; each is either published or rejected."""
    (seeds / "sub").mkdir()
    (seeds / "sub" / "up").symlink_to(seeds)  # a directory loop: not followed
    (seeds / "dir.txt").mkdir()  # a directory named like a seed file: not a file
    line = " date 2026-01-02 " + "kelime " * 700_000  # one endless line, just under 5 MiB
    (seeds / "oneline.txt").write_text(line, encoding="utf-8")
    (seeds / "oneline-nodate.txt").write_text("ağaç " * 900_000, encoding="utf-8")
    (seeds / "colons.txt").write_text("GİRİŞ: " + ":" * 2_000_000, encoding="utf-8")
    (seeds / "digits.txt").write_text("1." * 2_000_000, encoding="utf-8")
    mixed = "Başlık şöyle: ığüşöç\n".encode() + "Çalışma sürüyor ığüşöç\n".encode("cp1254")
    (seeds / "mixed.txt").write_bytes(b" date 2026-01-02\n" + mixed * 50)
    late_nul = b" date 2026-01-02\nBir haber\n" + b"metin " * 2000 + b"\x00\x00 devam"
    (seeds / "late-nul.txt").write_bytes(late_nul)
    (seeds / "crlf-cr.txt").write_bytes(b" date 2026-01-02\r\rBir\r\nhaber\n\r" * 500)


def test_hostile_seed_folder_is_read_without_crash_or_hang(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    seeds = tmp_path / "seeds"
    for n in range(3):
        add_seed(seeds, n)
    bad = _hostile_folder(seeds)
    _odd_but_readable(seeds)
    started = time.monotonic()
    proc, peak = regenerate_measured(cfg, tmp_path, timeout=90)
    seconds = time.monotonic() - started
    assert proc.returncode == 1, proc.stderr  # published, with rejected inputs
    lines = [line for line in proc.stderr.splitlines() if line.startswith("rejected: ")]
    for name, reason in bad.items():
        mine = [line for line in lines if f"{seeds / name}:" in line]
        assert len(mine) == 1 and reason in mine[0], (name, lines)
    assert "Traceback" not in proc.stderr
    titles = read_feeds(tmp_path / "out").values()
    assert sum("toplantı" in t for t in titles) == 3
    assert peak < PEAK_RSS_LIMIT_MIB, f"peak RSS {peak:.0f} MiB"
    assert seconds < 60
    print(f"hostile seed folder: {len(bad)} rejected, {len(list(titles))} published, "
          f"peak RSS {peak:.0f} MiB, {seconds:.1f}s")  # fmt: skip
    # the next run reads nothing new and still never blocks on the FIFO
    again = regenerate(cfg, timeout=30)
    assert again.returncode == 1 and again.stderr.count("not a regular file") == 1


def test_fifo_seed_file_is_rejected_not_waited_on(tmp_path: Path) -> None:
    """Regression: a FIFO named x.txt made `regenerate` block in open() forever."""
    cfg = write_config(tmp_path)
    add_seed(tmp_path / "seeds", 1)
    os.mkfifo(tmp_path / "seeds" / "x.txt")
    proc = regenerate(cfg, timeout=20)
    assert proc.returncode == 1, proc.stderr
    assert f"rejected: {tmp_path / 'seeds' / 'x.txt'}: not a regular file" in proc.stderr
    assert len(read_feeds(tmp_path / "out")) == 1


def test_socket_named_like_a_seed_file_is_rejected_as_not_a_regular_file(tmp_path: Path) -> None:
    import socket

    cfg = write_config(tmp_path)
    add_seed(tmp_path / "seeds", 1)
    path = tmp_path / "seeds" / "s.txt"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        proc = regenerate(cfg, timeout=20)
    assert proc.returncode == 1, proc.stderr
    assert f"rejected: {path}: not a regular file" in proc.stderr
    assert len(read_feeds(tmp_path / "out")) == 1


def test_seed_file_swapped_for_a_fifo_after_the_scan_is_not_waited_on(tmp_path: Path) -> None:
    """The read itself never blocks either (O_NONBLOCK, then a regular-file check)."""
    from aggregator.sources.seeddir import _Job, _read_one
    from tests.conftest import ISTANBUL

    fifo = tmp_path / "x.txt"
    os.mkfifo(fifo)
    outcome = _read_one(_Job(str(fifo), None), "seeds", ISTANBUL, "tr")
    assert outcome.reason == "not a regular file"


@pytest.mark.parametrize("size", [5 * 1024 * 1024 + 1, 64 * 1024 * 1024])
def test_oversized_seed_file_never_read_into_memory(tmp_path: Path, size: int) -> None:
    cfg = write_config(tmp_path)
    with open(tmp_path / "seeds" / "big.txt", "wb") as f:
        f.write(b" date 2026-01-02 " + b"a" * (size - 17))
    proc, peak = regenerate_measured(cfg, tmp_path, timeout=60)
    assert proc.returncode == 1 and "over the 5242880-byte limit" in proc.stderr
    assert peak < 150, f"peak RSS {peak:.0f} MiB"
