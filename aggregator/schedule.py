"""When things run, never what they do: APScheduler jobs around pipeline.run_once.

One interval job per source (jitter, max_instances=1, coalesce), staggered at start. Each
run saves its source's due time by `sources.policy` (interval, back-off while it fails, or
later if the server asked, e.g. Retry-After); the job is rescheduled to it, jittered, and
due times survive restarts. A job pauses itself while it runs, so a slow run is never overlapped.

The daemon's store work (parsing, merging) runs on ONE worker thread: the Store is not
thread-safe, and the event loop stays free to serve HTTP. Publishing runs in a process of
its own with its own store connection (`publisher.py`), so neither serving nor any source
run waits for it. Changes are published once per burst (debounced), not once per source.
On a fresh store the first publish waits for the first run of every source (at most
FIRST_PASS_MAX_WAIT), so a reader never caches an empty feed.
A reloaded config (SIGHUP) reschedules new, changed and removed sources in place.

With a cluster `Node` (a PostgreSQL store shared by several daemons) there are no interval
jobs: a claim loop takes due sources from the database (`cluster.py`) as fetch capacity
frees, runs them the same way (a fetch only on a lease the node can prove) and hands each
back with the delay to its next run; the node renews its leases, and only the node holding
the publisher lock publishes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from aggregator.cluster import OPERATIONS, ClusterView, Node, beat_interval
from aggregator.config import Config, SourceConfig
from aggregator.errors import AggregatorError, StoreError
from aggregator.metrics import Metrics
from aggregator.model import SourceState
from aggregator.pipeline import fetch_web, run_once
from aggregator.publisher import Publisher
from aggregator.sources import Harvest, policy
from aggregator.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

STAGGER_SPREAD = 60.0  # first runs of overdue sources are spread over this many seconds
PUBLISH_QUIET = 1.0  # publish once no change arrived for this long...
PUBLISH_MAX_WAIT = 10.0  # ...but never later than this after the first change
PUBLISH_RETRY = 30.0  # after a failed publish
SHUTDOWN_GRACE = 5.0  # running work gets this long to finish on SIGTERM
FETCH_THREADS = 4  # web fetches at once (each parses its own body)
# sources between the start of their fetch and the end of their merge: parsed items wait
# for the one store thread, so this bounds how many sources' items are held in memory (all
# of a first pass otherwise); enough that fetching goes on while a merge runs
IN_FLIGHT = 8 * FETCH_THREADS
# a fresh store publishes once every source ran once, or this long after the start: a slow
# source then joins at the next publish
FIRST_PASS_MAX_WAIT = 10.0
# settings a reload cannot change in a running daemon: (Config field, config key)
RESTART_ONLY = (("host", "server.host"), ("port", "server.port"), ("state", "state"),
                ("output_dir", "output.dir"), ("log_level", "log_level"),
                ("cluster", "cluster"))  # fmt: skip
CLAIM_POLL = 1.0  # a node looks for due sources this often, and whenever capacity frees
QUEUED_POLL = 0.1  # ...and this often while queued for a full host's next free slot
PUBLISHER_POLL = 1.0  # a node tries for the publisher lock (or checks it holds it) this often
# the publisher publishes other nodes' merges this often (longer than PUBLISH_QUIET, so the
# debounce is not kept waiting by it)
CLUSTER_PUBLISH_POLL = 2.0


def now_utc() -> datetime:
    return datetime.now(UTC)


def jitter(every: float, rng: random.Random) -> float:
    """Up to 10% of the interval, at most 30 s: sources drift apart instead of bunching."""
    return rng.uniform(0.0, min(every * 0.1, 30.0))


def next_state(after: SourceState, source: SourceConfig, finished: datetime,
               rng: random.Random) -> SourceState:  # fmt: skip
    """The state to save after one run: what the run saved by `policy` (failures, validators,
    due time), the due time jittered so sources drift apart."""
    due = after.next_due or finished + timedelta(seconds=source.every)
    return replace(after, next_due=due + timedelta(seconds=jitter(source.every, rng)))


def first_due(state: SourceState, source: SourceConfig, index: int, count: int,
              now: datetime, rng: random.Random) -> datetime:  # fmt: skip
    """A saved due time in the future is kept (back-off survives restarts); overdue sources
    are staggered so a restart does not hit every host at once."""
    limit = policy.latest_due(source, now)
    if state.next_due is not None and state.next_due > now:
        return min(state.next_due, limit)
    spread = min(STAGGER_SPREAD, source.every) * index / max(count, 1)
    return now + timedelta(seconds=spread + jitter(source.every, rng) * 0.1)


@dataclass(frozen=True, slots=True)
class _Outcome:
    state: SourceState
    new: int
    updated: int
    unchanged: int
    rejected: tuple[str, ...]
    error: str | None
    seconds: float
    not_modified: bool


class Scheduler:
    """Runs sources and publishes; keeps an in-memory snapshot for /healthz."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        client: object | None = None,
        clock: Callable[[], datetime] = now_utc,
        seed: int | None = None,
        node: Node | None = None,
    ) -> None:
        self.config = config
        self.node = node  # None: one daemon alone on its store, APScheduler jobs
        self._sources = {s.name: s for s in config.sources}
        self.store = store
        self.client = client
        self.clock = clock
        self.rng = random.Random(seed)
        self.states: dict[str, SourceState] = {s.name: SourceState(name=s.name)
                                               for s in config.sources}  # fmt: skip
        self.last_publish: datetime | None = None
        self.publish_error: str | None = None
        self.articles = 0
        self._worker = concurrent.futures.ThreadPoolExecutor(1, "aggregator-store")
        # web fetches touch no store: abandoning one at shutdown loses nothing
        self._fetcher = concurrent.futures.ThreadPoolExecutor(FETCH_THREADS, "aggregator-fetch")
        self._in_flight = asyncio.Semaphore(IN_FLIGHT)
        self._inflight: set[concurrent.futures.Future[Any]] = set()
        self._aps = AsyncIOScheduler(timezone=UTC)
        self._changed = asyncio.Event()
        self._dirty = False  # changes merged but not yet published
        self._publisher: asyncio.Task[None] | None = None
        self._publishing = Publisher(config.store_target)  # the publisher process
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._seen_rejections: set[str] = set()
        self._first_pass: set[str] = set()  # sources yet to run once before the first publish
        self._first_pass_done = asyncio.Event()
        self._generation: dict[str, int] = {}  # bumped when a reload changes or drops a source
        self._reloading = asyncio.Lock()
        self.metrics = Metrics(config.state)
        self.metrics.track(s.name for s in config.sources)
        # told the files each publish wrote (the server reloads them) before /healthz shows it
        self.on_published: Callable[[list[str]], Awaitable[None]] | None = None
        self._wake = asyncio.Event()  # a cluster node's capacity or a host slot freed
        self._unfetched: set[str] = set()  # claimed, fetch not yet done
        self._cluster_tasks: list[asyncio.Task[None]] = []
        self.cluster_view: ClusterView | None = None
        if node is not None:
            for operation in OPERATIONS:  # shown at 0 from the start
                self.metrics.cluster_failures.labels(operation)
            node.failures.on_failure = lambda op: self.metrics.cluster_failures.labels(op).inc()

    # -- the worker thread ------------------------------------------------------------
    async def _on_worker(self, fn: Callable[..., T], *args: Any) -> T:
        future = self._worker.submit(fn, *args)
        self._inflight.add(future)
        future.add_done_callback(self._inflight.discard)
        return await asyncio.wrap_future(future)

    def _load_states(self, sources: Sequence[SourceConfig] = ()) -> dict[str, SourceState]:
        """Saved states of `sources` (default: every configured source)."""
        return {s.name: self.store.source_state(s.name) for s in sources or self.config.sources}

    def _run_source(
        self, source: SourceConfig, harvests: list[Harvest] | None, started: datetime, t0: float
    ) -> _Outcome:
        report = run_once(self.config, self.store, self.client, started, only=[source.name],
                          publish_feeds=False, harvests=harvests)  # fmt: skip
        one = report.sources[0] if report.sources else None
        error = one.error if one else None
        after = self.store.source_state(source.name)
        state = next_state(after, source, self.clock(), self.rng)
        self.store.save_source_state(state)
        return _Outcome(
            state=state, new=report.new, updated=report.updated,
            unchanged=report.unchanged + (one.unchanged if one else 0),
            rejected=tuple(str(r) for r in report.rejections), error=error,
            seconds=time.perf_counter() - t0, not_modified=bool(one and one.not_modified),
        )  # fmt: skip

    # -- jobs on the event loop -------------------------------------------------------
    async def source_job(self, name: str) -> None:
        """One APScheduler run of a source, then its job moved to the next due time."""
        source = next(s for s in self.config.sources if s.name == name)
        generation = self._generation.get(name, 0)
        job_id = f"source:{name}"
        self._aps.pause_job(job_id)  # no second run of this source until we reschedule
        due = self.clock() + timedelta(seconds=policy.backoff(source.every, 1))
        try:
            due = await self._run_source_tracked(source)
        finally:
            # a reload that changed or removed this source has scheduled its own job
            if not self._stopping and generation == self._generation.get(name, 0):
                self._aps.modify_job(job_id, next_run_time=due)

    async def _run_source_tracked(self, source: SourceConfig) -> datetime:
        """One run of `source` with its bookkeeping (states, metrics, logs, publish
        trigger); when it is due next."""
        name = source.name
        task = asyncio.current_task()
        if task:
            self._running.add(task)
        due = self.clock() + timedelta(seconds=policy.backoff(source.every, 1))
        started, t0 = self.clock(), time.perf_counter()
        try:
            async with self._in_flight:
                outcome = await self._fetch_and_merge(source, started, t0)
            due = outcome.state.next_due or due
            if name in self.states:  # not removed by a reload meanwhile
                self.states[name] = outcome.state
                self.metrics.source_run(
                    name, seconds=outcome.seconds, failed=bool(outcome.error),
                    not_modified=outcome.not_modified, new=outcome.new, updated=outcome.updated,
                    rejected=len(outcome.rejected),
                )  # fmt: skip
            self._log_outcome(source, outcome)
            if outcome.new or outcome.updated:
                self._dirty = True
                self._changed.set()
        except AggregatorError as e:
            log.error("source %s: run failed: %s", name, e)
            if name in self.states:
                self.metrics.source_run(name, seconds=time.perf_counter() - t0, failed=True)
            if self.node is not None and isinstance(e, StoreError):
                # the shared database failed us, not the source: no back-off for it
                due = self.clock() + timedelta(seconds=source.every)
        except asyncio.CancelledError:
            log.warning("source %s: abandoned at shutdown", name)
        finally:
            if task:
                self._running.discard(task)
            self._ran_once(name)
        return due

    async def _fetch_and_merge(self, source: SourceConfig, started: datetime,
                               t0: float) -> _Outcome:  # fmt: skip
        harvests = None
        if source.type != "seeds":  # the network off the store's thread: others keep going
            state = await self._on_worker(self.store.source_state, source.name)

            def fetch() -> tuple[list[Harvest], datetime]:
                # the next due time counts from the request, not from the wait for the
                # store or a thread: no source is fetched twice within its interval; a
                # cluster node runs what it claimed (the claim was the due decision)
                now = self.clock()
                if self.node is not None:  # a lease that may have passed to another node
                    self.node.ensure_held(source.name)  # is not fetched on (StoreError)
                return fetch_web([source], {source.name: state}, self.config, self.client,
                                 now, self.node is not None), now  # fmt: skip

            harvests, started = await asyncio.get_running_loop().run_in_executor(
                self._fetcher, fetch
            )
            if self.node is not None:
                self._unfetched.discard(source.name)
                await self.node.fetched(source.name)  # its host slots are free for others
                self._wake.set()
        return await self._on_worker(self._run_source, source, harvests, started, t0)

    def _ran_once(self, name: str) -> None:
        self._first_pass.discard(name)
        if not self._first_pass:
            self._first_pass_done.set()

    def _log_outcome(self, source: SourceConfig, o: _Outcome) -> None:
        for text in o.rejected:
            level = logging.DEBUG if text in self._seen_rejections else logging.WARNING
            self._seen_rejections.add(text)
            log.log(level, "source %s: rejected %s", source.name, text)
        if o.error:
            when = _hhmmss(o.state.next_due, self.config)
            log.warning("source %s: failed (%d in a row, next try %s): %s",
                        source.name, o.state.failures, when, o.error)  # fmt: skip
        else:
            log.info("source %s: %d new, %d updated, %d unchanged in %.2fs",
                     source.name, o.new, o.updated, o.unchanged, o.seconds)  # fmt: skip

    async def _publish_loop(self) -> None:
        """Wait for a change, let the burst settle, publish once; repeat."""
        loop = asyncio.get_running_loop()
        while True:
            await self._changed.wait()
            deadline = loop.time() + PUBLISH_MAX_WAIT
            while True:
                self._changed.clear()
                timeout = min(PUBLISH_QUIET, deadline - loop.time())
                if timeout <= 0:
                    break
                try:
                    await asyncio.wait_for(self._changed.wait(), timeout)
                except TimeoutError:
                    break
            self._changed.clear()
            await self.publish()

    async def publish(self) -> bool:
        self._dirty = False
        if self.node is not None and not self.node.publisher:
            self.publish_error = None  # a failure as publisher is no longer this node's
            return True  # the publisher publishes what this node merged
        # the child checks the fence (this node's lock session) before storing any file
        fence = None if self.node is None else (self.node.lock_pid or 0)
        try:
            done = await self._publishing.publish(self.config, self.clock(), fence)
            written, count, seconds = done.written, done.articles, done.seconds
        except asyncio.CancelledError:
            self._dirty = True  # the publish may never have started
            raise
        except Exception as e:  # expected (AggregatorError) or a bug: never stop publishing
            self._dirty = True
            if self.node is None or self.node.publisher:  # (a lock lost meanwhile: not ours)
                self.publish_error = str(e) or type(e).__name__
            self.metrics.publish_failures.inc()
            if isinstance(e, AggregatorError):
                log.error("feeds not published (retrying in %.0fs): %s", PUBLISH_RETRY, e)
            else:
                log.exception("feeds not published (a bug; retrying in %.0fs)", PUBLISH_RETRY)
            asyncio.get_running_loop().call_later(PUBLISH_RETRY, self._changed.set)
            return False
        if written and self.on_published is not None:
            await self.on_published(written)
        if self.node is not None:
            await self.node.published(count)
        self.last_publish, self.publish_error, self.articles = self.clock(), None, count
        self.metrics.published(seconds, count, self.last_publish.timestamp())
        if written:
            log.info("feeds published: %d files written (%s), %d articles, %.2fs",
                     len(written), _names(written), count, seconds)  # fmt: skip
        else:
            log.debug("feeds published: nothing changed")
        return True

    # -- lifecycle --------------------------------------------------------------------
    async def start(self) -> None:
        """Load saved states, publish what the store holds (a fresh store: after every
        source ran once), schedule every source."""
        self.states = await self._on_worker(self._load_states)
        if self.node is None:  # a cluster node starts it once it is the publisher
            self._publishing.start()  # before any run: it opens the store now
        if self.config.sources and await self._on_worker(self.store.count) == 0:
            self._first_pass = {s.name for s in self.config.sources}
        else:
            self._first_pass_done.set()
        if self.node is not None:
            await self.node.join(self.config.sources, *self._first_delays(self.config.sources))
            self._cluster_tasks = [asyncio.create_task(loop()) for loop in (
                self._claim_loop, self._beat_loop, self._publisher_loop)]  # fmt: skip
            self._publisher = asyncio.create_task(self.publish_then_loop())
            return
        self._publisher = asyncio.create_task(self.publish_then_loop())
        now = self.clock()
        count = len(self.config.sources)
        for i, source in enumerate(self.config.sources):
            # a fresh store reads every source now (no stagger: there is no feed yet to keep
            # fresh, and the first publish waits for them); the fetch pool bounds the burst
            first = now if self._first_pass else first_due(self.states[source.name], source,
                                                             i, count, now, self.rng)  # fmt: skip
            self._add_job(source, first)
        self._aps.start()

    # -- a cluster node -----------------------------------------------------------------
    def _first_delays(self, sources: Sequence[SourceConfig]) -> tuple[dict[str, float],
                                                                     dict[str, float]]:  # fmt: skip
        """Seconds until each source's first run should it be new to the cluster (as a lone
        daemon's first runs: now on a fresh store, else saved due times or staggered), and
        the latest a due time already in the cluster is believed (policy.latest_due)."""
        now = self.clock()
        first, cap = {}, {}
        for i, source in enumerate(sources):
            due = now if self._first_pass else first_due(
                self.states[source.name], source, i, len(sources), now, self.rng)  # fmt: skip
            first[source.name] = max(0.0, (due - now).total_seconds())
            cap[source.name] = (policy.latest_due(source, now) - now).total_seconds()
        return first, cap

    async def _claim_loop(self) -> None:
        """Claim due sources while there is room: no more than the fetch threads can start
        now (a claimed source waiting here would keep its host's slots from other nodes),
        IN_FLIGHT runs held at once."""
        assert self.node is not None
        while not self._stopping:
            self._wake.clear()
            room = min(IN_FLIGHT - len(self.node.held), FETCH_THREADS - len(self._unfetched))
            try:
                claimed = await self.node.claim(room)
            except Exception:  # a bug must not stop this node fetching for good
                log.exception("cluster: claiming sources failed; trying again")
                claimed = []
            self._unfetched.update(claimed)
            for name in claimed:
                task = asyncio.create_task(self._claimed_job(name))
                self._running.add(task)  # until it starts: stop() waits for it too
                task.add_done_callback(self._running.discard)
            if claimed:
                continue  # more may be due
            with contextlib.suppress(TimeoutError):  # queued: a slot is kept for it
                await asyncio.wait_for(self._wake.wait(),
                                       QUEUED_POLL if self.node.queued else CLAIM_POLL)  # fmt: skip

    async def _claimed_job(self, name: str) -> None:
        assert self.node is not None
        source = self._sources.get(name)
        due = self.clock()
        try:
            if source is not None:  # else removed by a reload since it was claimed
                due = await self._run_source_tracked(source)
        finally:
            self._unfetched.discard(name)  # a seed folder, or a run that failed early
        await self.node.release(name, (due - self.clock()).total_seconds())
        self._wake.set()

    async def _beat_loop(self) -> None:
        """Retry releases; learn the cluster's latest publish and whether every source has
        run once (a fresh store's first publish waits for it). The node renews its leases."""
        assert self.node is not None
        while True:
            try:
                view = await self.node.beat()
            except Exception:  # a bug must not stop this node learning of the cluster
                log.exception("cluster: heartbeat failed; trying again")
                view = None
            if view is not None:
                self.cluster_view = view
                if view.never_run == 0 and not self._first_pass_done.is_set():
                    self._first_pass.clear()
                    self._first_pass_done.set()
            await asyncio.sleep(beat_interval(self.node.lease))

    async def _publisher_loop(self) -> None:
        """Hold (or wait for) the publisher lock; as publisher, publish other nodes' merges
        every CLUSTER_PUBLISH_POLL (a no-op when the store has nothing pending)."""
        assert self.node is not None
        loop = asyncio.get_running_loop()
        last = 0.0
        while True:
            was = self.node.publisher
            try:
                publisher = await self.node.try_publisher()
            except Exception:  # never go on publishing on a lock not known to be held
                log.exception("cluster: checking the publisher lock failed")
                self.node.publisher = publisher = False
            if was and not publisher:  # its failed publish is the next publisher's to retry
                self.publish_error = None
            if publisher and (not was or loop.time() - last >= CLUSTER_PUBLISH_POLL):
                last = loop.time()
                self._dirty = True
                self._changed.set()
            await asyncio.sleep(PUBLISHER_POLL)

    def _add_job(self, source: SourceConfig, first: datetime) -> None:
        self._aps.add_job(
            self.source_job, IntervalTrigger(seconds=source.every,
                                             jitter=min(source.every * 0.1, 30.0)),
            args=[source.name], id=f"source:{source.name}", name=source.name,
            max_instances=1, coalesce=True, misfire_grace_time=None, next_run_time=first,
        )  # fmt: skip
        log.debug("source %s: first run at %s", source.name, _hhmmss(first, self.config))

    async def publish_then_loop(self) -> None:
        try:
            await asyncio.wait_for(self._first_pass_done.wait(), FIRST_PASS_MAX_WAIT)
        except TimeoutError:
            log.warning("first run of %s not finished after %.0fs: publishing the others",
                        ", ".join(sorted(self._first_pass)), FIRST_PASS_MAX_WAIT)  # fmt: skip
        await self.publish()
        await self._publish_loop()

    async def reconfigure(self, new: Config) -> None:
        """Apply a reloaded config: sources added, changed (rescheduled to run now) and
        removed; feeds and site settings at the next publish. RESTART_ONLY settings keep
        their running values, with a warning. Reloads are applied one at a time."""
        async with self._reloading:
            if self._stopping:
                return
            kept = {}
            for name, key in RESTART_ONLY:
                if getattr(new, name) != getattr(self.config, name):
                    kept[name] = getattr(self.config, name)
                    log.warning("config reload: %s changed; it takes effect on restart "
                                "(still %s)", key, kept[name])  # fmt: skip
            new = replace(new, **kept)
            before = {s.name: s for s in self.config.sources}
            after = {s.name: s for s in new.sources}
            removed = [n for n in before if n not in after]
            changed = [n for n in after if n in before and after[n] != before[n]]
            added = [after[n] for n in after if n not in before]
            saved = await self._on_worker(self._load_states, added) if added else {}
            if self._stopping:
                return
            self._apply(new, removed, changed, added, saved)
            if self.node is not None:
                await self._reconfigure_cluster(changed, added)
        log.info("config reloaded: %d sources (added: %s; changed: %s; removed: %s)",
                 len(new.sources), ", ".join(s.name for s in added) or "none",
                 ", ".join(changed) or "none", ", ".join(removed) or "none")  # fmt: skip

    def _apply(self, new: Config, removed: list[str], changed: list[str],
               added: list[SourceConfig], saved: dict[str, SourceState]) -> None:  # fmt: skip
        """The reload's changes, all at once (no await: /healthz never sees half of it)."""
        if self.client is None and any(s.type != "seeds" for s in new.sources):
            from aggregator.sources.http import WebClient

            self.client = WebClient()
        self.config = new
        self._sources = {s.name: s for s in new.sources}
        for name in (*removed, *changed):
            self._generation[name] = self._generation.get(name, 0) + 1
            if self.node is None:
                self._aps.remove_job(f"source:{name}")
        for name in removed:
            del self.states[name]
            self.metrics.forget(name)
            self._ran_once(name)
        now = self.clock()
        self.metrics.track(s.name for s in added)
        for source in added:
            self.states[source.name] = saved[source.name]
        if self.node is not None:
            self.node.configure(self._sources)  # changed and added: reload() tells the cluster
        else:
            for name in changed:
                self._add_job(self._sources[name], now)
            for i, source in enumerate(added):
                self._add_job(source, first_due(saved[source.name], source, i, len(added), now,
                                                self.rng))  # fmt: skip
        self._dirty = True  # feeds, titles or filters may have changed: publish (cheap if not)
        self._changed.set()

    async def _reconfigure_cluster(self, changed: list[str], added: list[SourceConfig]) -> None:
        """Added sources join the cluster; changed ones are due now, whichever node runs
        them. The database unreachable: logged, and the next reload or start retries."""
        assert self.node is not None
        try:
            if added:
                await self.node.add_sources(added, *self._first_delays(added))
            if changed:
                await self.node.run_now(changed)
        except StoreError as e:
            log.error("config reload: the cluster database did not take the changes: %s", e)

    async def stop(self) -> bool:
        """Stop scheduling, let running work finish (up to SHUTDOWN_GRACE), publish pending
        changes, close the store. False if work had to be abandoned (the store stays open)."""
        self._stopping = True
        if self._aps.running:
            self._aps.pause()
        if self._publisher:
            self._publisher.cancel()
        for task in self._cluster_tasks:
            task.cancel()
        for future in list(self._inflight):
            future.cancel()  # only those not started yet
        deadline = time.monotonic() + SHUTDOWN_GRACE
        if self._running:
            await asyncio.wait(list(self._running), timeout=SHUTDOWN_GRACE)
        busy = [f for f in self._inflight if not f.done()]
        if busy:
            await asyncio.wait([asyncio.wrap_future(f) for f in busy],
                               timeout=max(0.1, deadline - time.monotonic()))  # fmt: skip
        if self._aps.running:
            self._aps.shutdown(wait=False)
        self._fetcher.shutdown(wait=False, cancel_futures=True)
        if any(not f.done() for f in self._inflight):
            log.warning("shutdown: a run did not finish in %.0fs; abandoning it", SHUTDOWN_GRACE)
            await self._leave(deadline)
            self._worker.shutdown(wait=False, cancel_futures=True)
            return False
        if self._dirty:
            try:
                await asyncio.wait_for(self.publish(), max(0.5, deadline - time.monotonic()))
            except TimeoutError:
                log.warning("shutdown: final publish did not finish; the next start publishes")
                await self._leave(deadline)
                self._worker.shutdown(wait=False, cancel_futures=True)
                return False
        await self._leave(deadline)
        await asyncio.wrap_future(self._worker.submit(self.store.close))
        self._worker.shutdown(wait=True)
        return True

    async def _leave(self, deadline: float) -> None:
        """The publisher process ended (killed if a publish it runs outlasts the grace:
        the next start publishes it), then the cluster left."""
        await self._publishing.close(max(0.5, deadline - time.monotonic()))
        await self._leave_cluster()

    async def _leave_cluster(self) -> None:
        """Claims handed back, publisher lock dropped: other nodes take over at once."""
        if self.node is not None:
            await self.node.leave()

    # -- /healthz ---------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        last_publish, articles = self.last_publish, self.articles
        view = self.cluster_view
        latest = None
        if self.node is not None:  # whichever node published, on the database's clock
            latest = self.node.last_publish
            last_publish, articles = (latest.at, latest.articles) if latest else (None, 0)
        ok = last_publish is not None and self.publish_error is None
        failing = [s for s in self.states.values() if s.failures]
        status = ("degraded" if failing else "ok") if ok else "unavailable"
        body: dict[str, Any] = {
            "status": status,
            "last_publish": _iso(last_publish),
            "publish_error": self.publish_error,
            "articles": articles,
            "sources": [
                {
                    "name": s.name,
                    "type": s.type,
                    "every": s.every,
                    "last_success": _iso(self.states[s.name].last_success),
                    "last_error": self.states[s.name].last_error,
                    "last_error_at": _iso(self.states[s.name].last_error_at),
                    "failures": self.states[s.name].failures,
                    "next_due": _iso(self.states[s.name].next_due),
                }
                for s in self.config.sources
            ],
        }
        if self.node is not None:
            body["node"] = self.node.name
            body["publisher"] = view.publisher if view else None
            body["last_publish_age"] = round(latest.age_now(), 1) if latest else None
        return (200 if ok else 503), body


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def _hhmmss(value: datetime | None, config: Config) -> str:
    return value.astimezone(config.timezone).strftime("%H:%M:%S") if value else "-"


def _names(written: list[str]) -> str:
    """`atom.xml, rss.xml, 3 article pages, 6 files in subfolders`: short but true."""
    shown = [w for w in written if "/" not in w]
    pages = sum(w.startswith("articles/") for w in written)
    others = len(written) - len(shown) - pages
    if pages:
        shown.append(f"{pages} article pages")
    if others:
        shown.append(f"{others} files in subfolders")
    return ", ".join(shown)
