"""The tests' own PostgreSQL server: fresh databases, C collation (byte order, as SQLite
sorts), and a restart that keeps the data."""

from __future__ import annotations

import psycopg

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
