"""The tests' own PostgreSQL server: fresh databases, C collation (byte order, as SQLite
sorts), and a restart that keeps the data."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.pgserver import PgServer


def test_server_gives_fresh_databases_that_survive_a_restart(pg_server: PgServer) -> None:
    url = pg_server.database()
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE t (v TEXT)")
        conn.execute("INSERT INTO t VALUES ('b'), ('B'), ('a'), ('ğ')")
    pg_server.restart()
    with psycopg.connect(url) as conn:
        rows = [r[0] for r in conn.execute("SELECT v FROM t ORDER BY v")]
    assert rows == ["B", "a", "b", "ğ"]  # byte order, as SQLite's BINARY collation
    other = pg_server.database()
    with psycopg.connect(other) as conn:
        found = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename = 't'")
        assert found.fetchone() == (0,)


def test_a_killed_test_run_leaves_no_server_behind(tmp_path: Path) -> None:
    """The server of a process killed with -9 is stopped by its watchdog."""
    script = tmp_path / "owner.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path.insert(0, {str(Path(__file__).parent.parent)!r})\n"
        "from tests.pgserver import PgServer, binaries\n"
        "pg = PgServer(binaries())\n"
        "print(pg.url(), pg.root, flush=True)\n"
        "time.sleep(300)\n"
    )
    owner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        url, root = owner.stdout.readline().split()
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    finally:
        owner.kill()
        owner.wait()
        if owner.stdout is not None:
            owner.stdout.close()
    for _ in range(60):
        if not Path(root).exists():
            break
        time.sleep(0.5)
    assert not Path(root).exists()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)
