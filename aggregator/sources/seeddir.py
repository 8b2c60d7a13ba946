"""A folder of seed files: walk, stat, read, hash and parse, in worker processes when many.

Incremental: a file whose size and mtime match the stored state is not opened; one whose
bytes hash the same is not parsed. Workers return ready-to-stage records (JSON + Candidate),
so the main process only talks to SQLite. They return them as plain tuples (`_Wire`): a
cold run moves 100,000 outcomes between processes, and plain tuples pickle and unpickle
at a quarter of the cost of the named ones.
"""

from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import signal
import stat
import threading
from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from aggregator import dedupe
from aggregator.errors import ParseError
from aggregator.model import SeedFileState
from aggregator.records import pack_record
from aggregator.sources.seedfile import parse_seed

MAX_SEED_BYTES = 5 * 1024 * 1024
POOL_THRESHOLD = 1000  # fewer files to parse than this: not worth starting processes
_CHUNK = 200


class FileOutcome(NamedTuple):
    """One file's fate. Exactly one of: parsed (record set), unchanged, rejected (reason;
    with `state` when the rejection is the file's content, remembered until it changes)."""

    key: str
    state: SeedFileState | None = None
    record: bytes | None = None
    candidate: dedupe.Candidate | None = None
    warnings: tuple[str, ...] = ()
    unchanged: bool = False
    reason: str | None = None


class _Job(NamedTuple):
    key: str
    known_digest: str | None


def seed_paths(folder: Path, errors: list[OSError] | None = None) -> Iterator[str]:
    """Every .txt file under `folder`, sorted, never following directory symlinks (no loops).
    Subfolders that cannot be listed are appended to `errors`."""
    for root, dirs, files in os.walk(folder, onerror=errors.append if errors is not None else None,
                                     followlinks=False):  # fmt: skip
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".txt") and not name.startswith("."):
                yield os.path.join(root, name)


def scan(
    folder: Path,
    known: Mapping[str, SeedFileState],
    *,
    source: str,
    timezone: ZoneInfo,
    language: str,
    now: datetime | None = None,
) -> Iterator[FileOutcome]:
    """Outcomes for every seed file in `folder`, in path order (parsed ones may come
    later than their neighbours: they wait for their chunk). `now`: the run's time (dates
    far after it are not believed)."""
    settings = (source, timezone.key, language, now)
    jobs: list[_Job] = []
    chunker = _Chunker(settings)
    try:
        unlisted: list[OSError] = []
        for key in seed_paths(folder, unlisted):
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:  # a Windows-1254 name from an unzipped scrape, say
                shown = os.fsencode(key).decode("utf-8", "replace")
                yield FileOutcome(key=shown, reason="file name is not UTF-8; rename the file")
                continue
            prev = known.get(key)
            if prev is not None:  # a file never seen is not stat'ed here: its reader does
                try:
                    st = os.stat(key)
                except OSError as e:
                    yield FileOutcome(key=key, reason=f"cannot read: {e.strerror or e}")
                    continue
                if not stat.S_ISREG(st.st_mode):  # a FIFO would block open() forever
                    yield FileOutcome(key=key, reason="not a regular file")
                    continue
                if prev.size == st.st_size and prev.mtime_ns == st.st_mtime_ns:
                    yield FileOutcome(key=key, unchanged=True)
                    continue
            jobs.append(_Job(key, prev.digest if prev else None))
            if len(jobs) >= _CHUNK:  # parse while the walk goes on
                yield from chunker.submit(jobs)
                jobs = []
        for err in unlisted:
            yield FileOutcome(key=str(err.filename), reason=f"cannot list folder: {err.strerror}")
        yield from chunker.submit(jobs)
        yield from chunker.drain()
    finally:  # also when the caller stops early: no worker outlives the scan
        chunker.close()


class _Chunker:
    """Runs chunks of jobs in this process until there are POOL_THRESHOLD of them, then in
    worker processes, with a bounded window in flight: parsed records never pile up in
    memory faster than the caller stages them."""

    def __init__(self, settings: _Settings) -> None:
        self._settings = settings
        self._held: list[_Job] = []
        self._pool: ProcessPoolExecutor | None = None
        self._window: deque[Future[list[_Wire]]] = deque()
        self._workers = os.cpu_count() or 1

    def submit(self, jobs: list[_Job]) -> Iterator[FileOutcome]:
        if self._pool is None:
            self._held += jobs
            if len(self._held) < POOL_THRESHOLD or self._workers < 2:
                return
            context = multiprocessing.get_context("forkserver")
            _start_forkserver_deaf_to_ctrl_c()
            self._pool = ProcessPoolExecutor(max_workers=self._workers, mp_context=context)
            jobs, self._held = self._held, []
        for i in range(0, len(jobs), _CHUNK):
            chunk = (self._settings, jobs[i : i + _CHUNK])
            with _ctrl_c_deferred():
                self._window.append(self._pool.submit(_read_chunk, chunk))
            if len(self._window) >= 3 * self._workers:
                yield from map(_from_wire, self._window.popleft().result())

    def drain(self) -> Iterator[FileOutcome]:
        for i in range(0, len(self._held), _CHUNK):  # too few for a pool
            yield from map(_from_wire, _read_chunk((self._settings, self._held[i : i + _CHUNK])))
        self._held = []
        while self._window:
            yield from map(_from_wire, self._window.popleft().result())

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)


def _start_forkserver_deaf_to_ctrl_c() -> None:
    """Start the forkserver (if not yet) with SIGINT ignored, which it, the resource
    tracker and every worker keep: a Ctrl-C reaches only this process (one line, exit 130),
    never a helper in the middle of its imports, which would print a traceback. A Ctrl-C in
    the few milliseconds of the start is lost (press it again)."""
    from multiprocessing import forkserver

    if threading.current_thread() is not threading.main_thread():
        return  # signal.signal works in the main thread only (the daemon's worker is not)
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, old)


@contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """A Ctrl-C while the pool starts a worker (inside `submit`) waits until it has: the
    pool then knows the worker and its shutdown waits for it, where an interrupted start
    leaves a worker reading queues this process is about to remove (a traceback)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread gets signals (the daemon's store thread is not it)
        return
    pressed: list[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, _frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if pressed:
        raise KeyboardInterrupt


_Settings = tuple[str, str, str, datetime | None]  # source, zone key, language, the run's now
_Wire = tuple[Any, ...]  # FileOutcome with its state and candidate as plain tuples


def _to_wire(o: FileOutcome) -> _Wire:
    state = None if o.state is None else tuple(o.state)
    candidate = None if o.candidate is None else tuple(o.candidate)
    return (o.key, state, o.record, candidate, o.warnings, o.unchanged, o.reason)


def _from_wire(w: _Wire) -> FileOutcome:
    key, state, record, candidate, warnings, unchanged, reason = w
    return FileOutcome(
        key,
        None if state is None else SeedFileState._make(state),
        record,
        None if candidate is None else dedupe.Candidate._make(candidate),
        warnings,
        unchanged,
        reason,
    )


def _read_chunk(chunk: tuple[_Settings, list[_Job]]) -> list[_Wire]:
    (source, zone, language, now), jobs = chunk
    tz = ZoneInfo(zone)
    return [_to_wire(_read_one(job, source, tz, language, now)) for job in jobs]


def _read_one(
    job: _Job, source: str, tz: ZoneInfo, language: str, now: datetime | None = None
) -> FileOutcome:
    try:
        # O_NONBLOCK: a FIFO (or a file swapped for one since the walk) must not hang the run
        # (O_NOCTTY: a terminal device named *.txt is opened, checked and refused, never
        # made this process's controlling terminal)
        fd = os.open(job.key, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        try:  # plain os.read: a file object per seed costs more than the read itself
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise ParseError("not a regular file")
            if st.st_size > MAX_SEED_BYTES:  # remembered: reported again once it changes
                return FileOutcome(
                    key=job.key, state=SeedFileState(st.st_size, st.st_mtime_ns, ""),
                    reason=f"file is {st.st_size} bytes, over the {MAX_SEED_BYTES}-byte limit",
                )  # fmt: skip
            # one read: a regular file returns fewer bytes than asked only at its end
            data = os.read(fd, st.st_size + 1)
            if len(data) > st.st_size:  # it grew since the stat: read on, up to the limit
                data += _read_upto(fd, MAX_SEED_BYTES + 1 - len(data))
        finally:
            os.close(fd)
        if len(data) > MAX_SEED_BYTES:
            raise ParseError(f"file grew past the {MAX_SEED_BYTES}-byte limit while read")
    except OSError as e:
        if e.errno == errno.ENXIO:  # a socket: open() cannot open it at all
            return FileOutcome(key=job.key, reason="not a regular file")
        return FileOutcome(key=job.key, reason=f"cannot read: {e.strerror or e}")
    except ParseError as e:
        return FileOutcome(key=job.key, reason=str(e))
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    state = SeedFileState(st.st_size, st.st_mtime_ns, digest)
    if digest == job.known_digest:
        return FileOutcome(key=job.key, state=state, unchanged=True)
    try:
        article = parse_seed(data, origin=job.key, source=source, tz=tz, language=language,
                             now=now)  # fmt: skip
    except ParseError as e:  # with its state: not read nor reported again until it changes
        return FileOutcome(key=job.key, state=state, reason=str(e))
    return FileOutcome(
        key=job.key,
        state=state,
        record=pack_record(article),
        candidate=dedupe.candidate(-1, article),
        warnings=article.warnings,
    )


def _read_upto(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes (fewer only at end of file; os.read alone may stop short)."""
    parts = [os.read(fd, limit)]
    got = len(parts[0])
    while parts[-1] and got < limit:
        parts.append(os.read(fd, limit - got))
        got += len(parts[-1])
    return b"".join(parts) if len(parts) > 1 else parts[0]
