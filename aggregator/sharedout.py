"""Published output shared through PostgreSQL, so every node serves the same bytes.

With a PostgreSQL store, the node that publishes (`Mirror`, called by pipeline.publish_now)
still writes `output.dir` for static hosting, and also stores each file it wrote in
`output_files` with its ETag and the database's time of the change (Last-Modified): one
transaction per publish, which bumps `output_generation` and NOTIFYs `aggregator_output`.
Every node's HTTP server (`SharedFiles`, the FeedServer's FileSource) answers from those
rows: held in memory under serve.py's bounds, refreshed on each NOTIFY and polled every
POLL_SECONDS in case one was missed (a dropped connection); fetched on first request.

A publish is seen whole on each node: a refresh reads the generation and every held file
it changed in one statement (one snapshot) and swaps them in without yielding; a file
fetched on a miss is kept only if it belongs to the generation the node serves (otherwise
the node refreshes first). Between nodes, one is at most one refresh behind another.

The publisher's folder is a mirror of the table. Before a publish, `Mirror.prepare` brings
it up to the table when another node published since this folder was (a marker file holds
the generation it matches), so the files a publish writes are exactly those that differ
from the table. A new folder gets every row written back (files only it holds are
uploaded); a folder whose last publish was cut off before its commit has the files it
wrote that differ from the table uploaded; once an hour a folder in step has files added
by hand uploaded and files removed from it removed from the table. So the table holds
the files of `output.dir`, one row each, and no more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from aggregator.cluster import PUBLISHER_LOCK
from aggregator.errors import PublishError, StoreError
from aggregator.publish import write_atomic
from aggregator.serve import FILE_MAX_BYTES, Entry, FeedServer, content_type, etag_of

log = logging.getLogger(__name__)

CHANNEL = "aggregator_output"
POLL_SECONDS = 5.0  # a node checks for a publish this often even without a notification
RETRY_SECONDS = 1.0  # after the database could not be reached
SWEEP_SECONDS = 3600.0  # how often the folder's added and removed files are looked for
MARKER = ".shared-generation"  # in output.dir: the generation its files match
BATCH = 64  # files per round trip when uploading or writing back
PRELOAD = 32  # top-level files (feeds, index, OPML) a node loads before it serves
# libpq: give up connecting after 5 s, and on a connection that stopped answering (a
# network partition) after about 10 s, so a node notices and keeps retrying
CONNECT: dict[str, Any] = {"connect_timeout": 5, "keepalives": 1, "keepalives_idle": 5,
                           "keepalives_interval": 2, "keepalives_count": 3,
                           "tcp_user_timeout": 10_000}  # fmt: skip

SCHEMA = """
CREATE TABLE IF NOT EXISTS output_files (
    path text PRIMARY KEY,        -- relative to output.dir: 'atom.xml', 'sources/x/rss.xml'
    body bytea NOT NULL,
    etag text NOT NULL,           -- serve.etag_of(body), sent as "<etag>" ("<etag>-gz")
    modified bigint NOT NULL,     -- Unix seconds: when these bytes were stored
    generation bigint NOT NULL    -- the output_generation that stored them
);
CREATE INDEX IF NOT EXISTS output_files_generation ON output_files (generation);
CREATE TABLE IF NOT EXISTS output_generation (
    id smallint PRIMARY KEY CHECK (id = 1),
    generation bigint NOT NULL,   -- bumped by each publish that changed a file
    swept timestamptz             -- the last look for files added or removed by hand
);
INSERT INTO output_generation (id, generation) VALUES (1, 0) ON CONFLICT DO NOTHING;
"""

_UPSERT = """
INSERT INTO output_files (path, body, etag, modified, generation)
VALUES (%s, %s, %s, extract(epoch FROM transaction_timestamp())::bigint, %s)
ON CONFLICT (path) DO UPDATE
SET body = EXCLUDED.body, etag = EXCLUDED.etag, modified = EXCLUDED.modified,
    generation = EXCLUDED.generation
WHERE output_files.etag <> EXCLUDED.etag
"""
# the generation and every held file a newer publish changed or removed: one snapshot
_CHANGED = """
WITH changed AS (
    SELECT h.path, f.body, f.etag, f.modified
    FROM unnest(%(held)s::text[]) AS h(path) LEFT JOIN output_files f ON f.path = h.path
    WHERE f.path IS NULL OR f.generation > %(generation)s
)
SELECT g.generation, c.path, c.body, c.etag, c.modified
FROM output_generation g LEFT JOIN changed c ON g.generation > %(generation)s
"""
_ONE = """
SELECT g.generation, f.body, f.etag, f.modified
FROM output_generation g LEFT JOIN output_files f ON f.path = %s
"""
_TOP = """
SELECT g.generation, f.path, f.body, f.etag, f.modified
FROM output_generation g LEFT JOIN LATERAL (
    SELECT * FROM output_files
    WHERE strpos(path, '/') = 0 AND octet_length(body) <= %s ORDER BY path LIMIT %s
) f ON true
"""


_EXISTS = "SELECT to_regclass('output_generation') IS NOT NULL"
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('aggregator.sharedout'), 0)"


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the two tables once; nodes starting together wait for each other."""
    if conn.execute(_EXISTS).fetchone() == (True,):
        return
    with conn.transaction():
        conn.execute(_SCHEMA_LOCK)
        conn.execute(SCHEMA)


# -- the publishing node ----------------------------------------------------------------


class Mirror:
    """The node that publishes: keeps `output_dir` and the table equal (module docstring)."""

    def __init__(self, conn: psycopg.Connection[Any], output_dir: Path,
                 fence: int | None = None) -> None:  # fmt: skip
        self.conn = conn
        self.root = output_dir
        self.generation = 0
        self.fence = fence

    @classmethod
    @contextmanager
    def open(cls, url: str, output_dir: Path, fence: int | None = None) -> Iterator[Mirror]:
        """A Mirror on its own connection, for one publish. `fence`: on a cluster node, the
        backend pid of its publisher-lock session (0: none); files are stored only while
        that session holds the lock, so a node that lost it mid-publish (cut off, its lock
        session timed out) never overwrites the new publisher's files."""
        try:
            conn = psycopg.connect(url, autocommit=True, **CONNECT)
        except psycopg.Error as e:
            raise StoreError(f"published files: cannot connect to the database: {e}") from e
        try:
            with conn:
                ensure_schema(conn)
                yield cls(conn, output_dir, fence)
        except psycopg.Error as e:
            raise StoreError(f"published files: database error: {e}") from e

    def prepare(self) -> None:
        """Before a publish writes files: bring the folder up to the table's generation."""
        row = self.conn.execute(
            "SELECT generation, swept IS NULL OR swept < now() - make_interval(secs => %s)"
            " FROM output_generation", (SWEEP_SECONDS,)
        ).fetchone()  # fmt: skip
        assert row is not None
        self.generation, sweep_due = int(row[0]), bool(row[1])
        marker = self._marker()
        if marker is None or marker[0] > self.generation:  # a new folder, or a reset table
            self._write_back(None)
            self._upload_unknown(remove=False)
        elif not marker[1]:  # a publish here was cut off before its commit
            self._write_back(marker[0])  # what others stored since is newer
            self._upload_changed()  # the rest that differs is what it wrote
        elif marker[0] < self.generation:  # another node published since
            self._write_back(marker[0])
            self._remove_unknown()
        elif sweep_due:
            self._upload_unknown(remove=True)
        self._set_marker(self.generation, in_step=True)  # unchanged: not rewritten

    def begin(self) -> None:
        """A publish is about to write files: until its commit, the folder may hold more
        than the table (so a cut-off publish is stored by the next, see `prepare`)."""
        self._set_marker(self.generation, in_step=False)

    def commit(self, written: Sequence[str]) -> int:
        """Store the files a publish wrote (relative paths) as one new generation."""
        self._store(written, ())
        self._set_marker(self.generation, in_step=True)
        return self.generation

    def _holds_lock(self, pid: int) -> bool:
        row = self.conn.execute(
            "SELECT count(*) > 0 FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = %s AND ((classid::bigint << 32) | objid::bigint) = %s AND database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())",
            (pid, PUBLISHER_LOCK),
        ).fetchone()
        return bool(row and row[0])

    def _store(self, paths: Iterable[str], removed: Sequence[str]) -> None:
        """One transaction: upsert `paths` from the folder, delete `removed`, and when
        anything changed bump the generation and notify (delivered at commit)."""
        with self.conn.transaction():
            if self.fence is not None and not self._holds_lock(self.fence):
                raise PublishError(
                    "published files: this node no longer holds the publisher lock; another"
                    " node publishes, so its files were not stored"
                )
            row = self.conn.execute(
                "SELECT generation FROM output_generation FOR UPDATE"
            ).fetchone()  # a second publisher (there should be none) waits here
            assert row is not None
            generation = int(row[0]) + 1
            changed = 0
            with self.conn.cursor() as cur:
                paths = list(paths)
                for i in range(0, len(paths), BATCH):
                    bodies = [(rel, self._read(rel)) for rel in paths[i : i + BATCH]]
                    cur.executemany(_UPSERT, [(rel, body, etag_of(body), generation)
                                              for rel, body in bodies])  # fmt: skip
                    changed += max(cur.rowcount, 0)
                if removed:
                    cur.execute("DELETE FROM output_files WHERE path = ANY(%s)", (list(removed),))
                    changed += max(cur.rowcount, 0)
            if changed:
                self.conn.execute("UPDATE output_generation SET generation = %s", (generation,))
                self.conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(generation)))
                self.generation = generation
            else:
                self.generation = generation - 1

    def _read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except OSError as e:
            raise PublishError(f"{self.root / rel}: cannot read: {e.strerror or e}") from e

    def _write_back(self, after: int | None) -> None:
        """Write the rows stored after generation `after` (None: every row) into the folder;
        write_atomic leaves files that already hold the same bytes alone."""
        written = 0
        with self.conn.transaction(), self.conn.cursor(name="output_write_back") as cur:
            cur.itersize = BATCH
            cur.execute("SELECT path, body FROM output_files WHERE generation > %s",
                        (-1 if after is None else after,))  # fmt: skip
            for rel, body in cur:
                written += write_atomic(self.root / rel, bytes(body))
        if written:
            log.info("published files: %d written to %s from the database", written, self.root)

    def _upload_unknown(self, remove: bool) -> None:
        """Files in the folder and not in the table are stored; with `remove`, rows whose
        file is gone from the folder are deleted (the folder is known to be in step)."""
        stored = {r[0] for r in self.conn.execute("SELECT path FROM output_files")}
        on_disk = set(folder_files(self.root))
        added = sorted(on_disk - stored)
        removed = sorted(stored - on_disk) if remove else []
        self._store(added, removed)
        self.conn.execute("UPDATE output_generation SET swept = now()")
        if added or removed:
            log.info("published files: %d added to the database from %s, %d removed",
                     len(added), self.root, len(removed))  # fmt: skip

    def _upload_changed(self) -> None:
        """Store every file of the folder whose bytes differ from its row (or lack one)."""
        stored = dict(self.conn.execute("SELECT path, etag FROM output_files").fetchall())
        changed = [rel for rel in folder_files(self.root)
                   if stored.get(rel) != etag_of(self._read(rel))]  # fmt: skip
        self._store(changed, ())
        if changed:
            log.info("published files: %d files of an unfinished publish stored", len(changed))

    def _remove_unknown(self) -> None:
        """Files of a folder that was in step, and that the table no longer holds (another
        node's sweep removed them), are removed: a later sweep here must not bring them
        back."""
        stored = {r[0] for r in self.conn.execute("SELECT path FROM output_files")}
        for rel in set(folder_files(self.root)) - stored:
            (self.root / rel).unlink(missing_ok=True)
            log.info("published files: %s removed (no longer published)", self.root / rel)

    def _marker(self) -> tuple[int, bool] | None:
        """(generation, in step): the folder holds exactly that generation's files, or
        (not in step) a publish began on it then, and may have written more."""
        try:
            generation, state = (self.root / MARKER).read_text().split()
            return int(generation), state == "in-step"
        except (OSError, ValueError):
            return None

    def _set_marker(self, generation: int, in_step: bool) -> None:
        state = "in-step" if in_step else "publishing"
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / MARKER, f"{generation} {state}\n".encode())


def folder_files(root: Path) -> Iterator[str]:
    """Relative paths of the regular files the server would serve from `root`: no dotfiles
    or dot folders, nothing reached through a symlink leading out."""
    real_root = os.path.realpath(root)
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if os.path.commonpath([real, real_root]) == real_root and os.path.isfile(real):
                yield os.path.relpath(path, root).replace(os.sep, "/")


# -- every node's server --------------------------------------------------------------


def _entry(path: str, body: bytes, etag: str, modified: int) -> Entry:
    return Entry("", (0, 0, 0), time.monotonic(), bytes(body), content_type(path), modified,
                 tag=etag)  # fmt: skip


class SharedFiles:
    """A node's view of the published files: the FeedServer's FileSource."""

    def __init__(self, url: str, server: FeedServer) -> None:
        self.url = url
        self.server = server
        self.generation = -1  # the publish this node serves (-1: none seen yet)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()  # one query, refresh or miss at a time
        self._retry_at = 0.0
        self._listener: asyncio.Task[None] | None = None
        self._down_since: tuple[float, float] | None = None  # (time.time(), monotonic)

    async def start(self) -> None:
        """Load the current published set's top-level files (feeds, index, OPML), then
        listen. A database not reachable yet is retried in the background meanwhile."""
        self.server.use(self)
        try:
            async with self._lock:
                await self._load_top()
        except StoreError as e:
            self._lost(e)
        self._listener = asyncio.create_task(self._listen())

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        if self._conn is not None:
            await self._conn.close()

    async def load(self, key: str) -> Entry | None:
        path = key[1:]
        async with self._lock:
            for _ in range(3):
                rows = await self._query(_ONE, (path,))
                if not rows:
                    return None
                generation, body, etag, modified = rows[0]
                if generation == self.generation:
                    break
                await self._refresh()  # a newer publish: catch up before serving from it
            if body is None:
                return None
            return await asyncio.to_thread(_entry, path, body, etag, modified)

    async def refresh(self) -> None:
        async with self._lock:
            await self._refresh()

    async def _refresh(self) -> None:
        rows = await self._query("SELECT generation FROM output_generation", ())
        if not rows or rows[0][0] == self.generation:
            return
        held = [key[1:] for key in self.server.held()]
        rows = await self._query(_CHANGED, {"held": held, "generation": self.generation})
        if not rows:
            return
        generation = rows[0][0]
        if generation < self.generation:  # the table was emptied or restored: start over
            self.server.replace(dict.fromkeys(self.server.held()))
            await self._load_top()
            return
        changed = [r[1:] for r in rows if r[1] is not None]
        fresh = await asyncio.to_thread(
            lambda: {"/" + p: None if b is None else _entry(p, b, e, m) for p, b, e, m in changed}
        )
        self.server.replace(fresh)
        self.generation = generation

    async def _load_top(self) -> None:
        rows = await self._query(_TOP, (FILE_MAX_BYTES, PRELOAD))
        if not rows:
            return
        top = [r[1:] for r in rows if r[1] is not None]
        fresh = await asyncio.to_thread(lambda: {"/" + p: _entry(p, b, e, m) for p, b, e, m in top})
        self.server.replace(fresh)
        self.generation = rows[0][0]

    async def _query(self, sql: str, params: Any) -> list[tuple[Any, ...]]:
        """Rows of one statement on this node's query connection (none before anything
        was published: the publisher creates the tables); StoreError when the database
        cannot be reached (retried at most every RETRY_SECONDS)."""
        if self._conn is None or self._conn.closed:
            if time.monotonic() < self._retry_at:
                raise StoreError("published files: the database is unreachable")
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, **CONNECT
                )
            except psycopg.Error as e:
                self._retry_at = time.monotonic() + RETRY_SECONDS
                raise StoreError(f"published files: cannot connect to the database: {e}") from e
        try:
            cur = await self._conn.execute(sql, params)
            return await cur.fetchall()
        except psycopg.errors.UndefinedTable:
            return []
        except psycopg.Error as e:
            await self._conn.close()
            self._retry_at = time.monotonic() + RETRY_SECONDS
            raise StoreError(f"published files: database error: {e}") from e

    async def _listen(self) -> None:
        """Refresh on every notification and every POLL_SECONDS; reconnect when cut off,
        catching up at once."""
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, **CONNECT
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    await self.refresh()  # what was published while nobody listened
                    if self._down_since is not None:
                        log.info("published files: database reachable again (generation %d)",
                                 self.generation)  # fmt: skip
                        self._down_since = None
                    while True:
                        async for _ in conn.notifies(timeout=POLL_SECONDS, stop_after=1):
                            pass
                        await self.refresh()
            except (psycopg.Error, StoreError) as e:
                self._lost(e)
            except Exception:  # a bug: say so, and keep this node up to date
                log.exception("published files: refreshing failed (a bug; retrying)")
            await asyncio.sleep(RETRY_SECONDS)

    def _lost(self, error: Exception) -> None:
        if self._down_since is None:
            first_line = (str(error).strip() or type(error).__name__).splitlines()[0]
            log.warning("published files: %s; serving the %d files held until it is back",
                        first_line, len(self.server.held()))  # fmt: skip
            self._down_since = (time.time(), time.monotonic())

    def health(self) -> dict[str, Any]:
        """The outage's start by this node's clock (the only one it has then), and its length
        by a monotonic one: right even on a node whose clock is off."""
        since = self._down_since
        return {
            "generation": self.generation,
            "database_unreachable_since": None if since is None else
            datetime.fromtimestamp(since[0], UTC).isoformat(timespec="seconds"),
            "database_unreachable_for": None if since is None else
            round(time.monotonic() - since[1], 1),
        }  # fmt: skip
