"""run_once(): the only place the stages meet. The daemon and `regenerate` both call it.

fetch/read -> parse -> stage (store) -> cluster (dedupe) -> merge (store) -> publish
Parsed records wait in the store's staging table, so memory holds only small Candidates.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from aggregator import __version__, dedupe, feedplan, firstseen, pages, stylesheet
from aggregator import publish as publish_module
from aggregator.config import Config, SourceConfig
from aggregator.errors import OutputIncomplete
from aggregator.model import Rejection, RunReport, SeedFileState, SourceReport, SourceState
from aggregator.publish import Site, publish
from aggregator.sources import Harvest, Staged, policy, seeddir
from aggregator.store import Store

log = logging.getLogger(__name__)
_STAGE_BATCH = 1000
PAUSED_RECORDS = 5_000  # records from which a run stages and merges with the collector paused


@dataclass
class _Batch:
    """Candidates of one run, staged in the store as they are parsed."""

    store: Store
    candidates: list[dedupe.Candidate] = field(default_factory=list)
    now: datetime | None = None
    pending: list[tuple[dedupe.Candidate, bytes]] = field(default_factory=list)
    states: list[SourceState] = field(default_factory=list)

    def add_staged(self, candidate: dedupe.Candidate, record: bytes, site: str = "") -> None:
        """`site`: the host a seeds source's scrapes speak for (its `site:` setting)."""
        c = dedupe.Candidate._make((len(self.candidates), *candidate[1:]))  # this run's ref
        if site and not c.host:
            c = c._replace(host=site)
        # its signature goes to the store with the record (kept here, a cold run's hundred
        # thousand candidates would hold one each until the run ends); built by _make, at a
        # fraction of what _replace costs per record
        self.candidates.append(
            c if c.signature is None else dedupe.Candidate._make((*c[:-1], None))
        )
        self.pending.append((c, record))
        if len(self.pending) >= _STAGE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            assert self.now is not None
            self.store.stage(self.pending, self.now)
            self.pending.clear()


def site_of(config: Config) -> Site:
    return Site(
        title=config.title, url=config.site_url, language=config.language,
        timezone=config.timezone,
    )  # fmt: skip


Progress = Callable[[str, int], None]
"""Called with (source name, inputs looked at so far) now and then on long runs."""


def read_seeds(
    source: SourceConfig, config: Config, store: Store, batch: _Batch, now: datetime,
    progress: Progress | None = None, known: Mapping[str, SeedFileState] | None = None,
) -> SourceReport:  # fmt: skip
    """Parse the seed files that are new or changed since the last run. `known`: the
    folder's seed-file state as the run began (read before any source saves its own)."""
    assert source.path is not None
    if not source.path.is_dir():
        problem = "is a file, not a folder" if source.path.exists() else "does not exist"
        return SourceReport(name=source.name, error=f"{source.path}: seed folder {problem}")
    remember: list[tuple[str, SeedFileState]] = []
    rejected: list[Rejection] = []
    read = unchanged = 0
    outcomes = seeddir.scan(
        source.path, store.seed_files(source.name) if known is None else known,
        source=source.name,
        timezone=config.timezone, language=config.language, now=now,
    )  # fmt: skip
    for seen, outcome in enumerate(outcomes, start=1):
        if progress is not None and seen % 500 == 0:
            progress(source.name, seen)
        if outcome.reason is not None:
            rejected.append(Rejection(source=source.name, origin=outcome.key,
                                      reason=outcome.reason))  # fmt: skip
            if outcome.state is not None:  # reported once: unchanged, it is not read again
                store.remember_seed_files(source.name, [(outcome.key, outcome.state)], now,
                                          rejected=outcome.reason)  # fmt: skip
            continue
        if outcome.state is not None:
            remember.append((outcome.key, outcome.state))
            if len(remember) >= _STAGE_BATCH:
                # the run's one transaction: a crash before the merge commits forgets these
                # too, so no input is ever marked seen without its record merged
                store.remember_seed_files(source.name, remember, now)
                remember.clear()
        if outcome.unchanged:
            unchanged += 1
            continue
        assert outcome.record is not None and outcome.candidate is not None
        for warning in outcome.warnings:
            log.warning("%s: %s", outcome.key, warning)
        batch.add_staged(outcome.candidate, outcome.record, source.site)
        read += 1
    batch.flush()
    store.remember_seed_files(source.name, remember, now)
    return SourceReport(name=source.name, read=read, unchanged=unchanged, rejected=tuple(rejected))


def fetch_web(
    sources: Sequence[SourceConfig],
    states: Mapping[str, SourceState],
    config: Config,
    client: object | None,
    now: datetime,
    force: bool = False,
) -> list[Harvest]:
    """Network and parsing only, no store: the daemon runs this off the store's thread.
    Sources not due (policy.is_due) are skipped unless `force`."""
    from aggregator.sources import web  # imported lazily: httpx stays out of seed-only runs

    return web.harvest(sources, states, config=config, client=client, now=now, force=force)


def run_once(
    config: Config,
    store: Store,
    client: object | None,
    now: datetime,
    *,
    only: Sequence[str] | None = None,
    publish_feeds: bool = True,
    progress: Progress | None = None,
    harvests: Sequence[Harvest] | None = None,
    force: bool = False,
) -> RunReport:
    """Read every configured source (or those named in `only`), merge, publish. Seed folders
    are always read (a stat per unchanged file); web sources when due, or all if `force`.
    `harvests`: web sources already fetched (by `fetch_web`); None fetches them here."""
    with _rare_full_collections():
        return _run_once(config, store, client, now, only=only, publish_feeds=publish_feeds,
                         progress=progress, harvests=harvests, force=force)  # fmt: skip


@contextmanager
def _rare_full_collections() -> Iterator[None]:
    """A run keeps a small candidate per input until it ends; with the default thresholds
    the garbage collector walks them all again and again (a tenth of a cold run's main
    process). Young cycles are still collected."""
    old = gc.get_threshold()
    gc.set_threshold(10_000, 50, 1000)
    try:
        yield
    finally:
        gc.unfreeze()  # what the merge's pause froze is looked at again from now on
        gc.set_threshold(*old)


def _run_once(
    config: Config,
    store: Store,
    client: object | None,
    now: datetime,
    *,
    only: Sequence[str] | None,
    publish_feeds: bool,
    progress: Progress | None,
    harvests: Sequence[Harvest] | None,
    force: bool,
) -> RunReport:
    started = time.perf_counter()
    expired_before = retention_cutoff(config, now)
    # retention raised or disabled: the inputs of articles it no longer removes are read again
    store.reopen_expired(expired_before, _retention_setting(config))
    selected = [s for s in config.sources if only is None or s.name in only]
    web_sources = [s for s in selected if s.type != "seeds"]
    # the network first, outside the store transaction; then one transaction for the rest,
    # so a crash or kill leaves the store exactly as the last completed run left it
    if harvests is None:
        states = {s.name: store.source_state(s.name) for s in web_sources}
        harvests = fetch_web(web_sources, states, config, client, now, force) if web_sources else []
        log.debug("fetched %d web sources in %.2fs", len(web_sources), _since(started))
    reports: list[SourceReport] = []
    with store.transaction(bulk=store.is_empty()):
        store.stage_begin()
        batch = _Batch(store, now=now)
        # state saved as a folder is read must not hide files from a second source that
        # (oddly) reads the same folder
        known = {s.name: store.seed_files(s.name) for s in selected if s.type == "seeds"}
        for source in selected:
            if source.type == "seeds":
                report = read_seeds(source, config, store, batch, now, progress,
                                    known[source.name])  # fmt: skip
                reports.append(report)
                batch.states.append(
                    _seed_state(store.source_state(source.name), source, report, now)
                )
        queue = deque(harvests)  # each let go once staged: unless the caller holds them,
        harvests = ()  # a source's parsed records do not outlive their staging
        # a big run's records make no reference cycles: no collections while they are staged
        # and merged (the daemon's runs of one source, each a few records, go without)
        big = sum(len(h.records) for h in queue) >= PAUSED_RECORDS
        with dedupe.collector_paused(freeze=True) if big else nullcontext():
            while queue:
                harvest = queue.popleft()
                records: Sequence[Staged] = harvest.records
                if harvest.fulltext_pages:  # kept bodies for the 304s, and the pages kept
                    from aggregator.sources import fulltext

                    records = fulltext.settle(store, harvest.name, records, harvest.fulltext_pages,
                                              now)  # fmt: skip
                for cand, record in firstseen.settle(store, harvest.name, records, now):
                    batch.add_staged(cand, record)
                if harvest.state is not None:
                    batch.states.append(harvest.state)
                reports.append(SourceReport(
                    name=harvest.name, read=len(harvest.records), unchanged=harvest.unchanged,
                    rejected=harvest.rejected, error=harvest.error,
                    not_modified=harvest.not_modified, due=harvest.due,
                    backing_off=harvest.backing_off, fulltext_failed=harvest.fulltext_failed,
                ))  # fmt: skip
            batch.flush()
            log.debug("read and staged %d records in %.2fs", len(batch.candidates), _since(started))
            clusters = dedupe.cluster(batch.candidates)
            counts = store.merge(clusters, now, expired_before=expired_before,
                                 keep_newest=config.max_items)  # fmt: skip
            log.debug("merged %d articles in %.2fs", len(clusters), _since(started))
        expired = store.expire(expired_before, config.max_items, now)
        if expired:
            log.info("retention (%s from first seen) removed %d articles",
                     _retention_setting(config), expired)  # fmt: skip
        for state in batch.states:
            store.save_source_state(state)
    written: list[str] = []
    failures: list[str] = []
    if publish_feeds:
        try:
            written = publish_now(config, store, now)
        except OutputIncomplete as e:  # the rest is published; the report names the feeds
            written, failures = e.written, e.failures
        log.debug("published %d files in %.2fs", len(written), _since(started))
    by_name = {r.name: r for r in reports}
    return RunReport(
        sources=tuple(by_name[s.name] for s in selected if s.name in by_name),
        new=counts.new,
        updated=counts.updated,
        unchanged=counts.unchanged,
        published=min(store.count(), config.max_items),
        feeds_written=tuple(written),
        seconds=time.perf_counter() - started,
        merged=counts.merged,
        expired=expired,
        output_failures=tuple(failures),
    )


def _seed_state(state: SourceState, source: SourceConfig, report: SourceReport,
                now: datetime) -> SourceState:  # fmt: skip
    """Last success / last error of a seed folder (so `status` tells after a cron run too)
    and its next due time, by the one policy."""
    if report.error:
        return policy.failed(state, source, report.error, now)
    return policy.succeeded(state, source, now)


def retention_cutoff(config: Config, now: datetime) -> datetime | None:
    """Articles the aggregator first saw before this are removed (None: retention never).
    Counted from first seen, not from GİRİŞ: an archive imported today is kept for the
    whole retention period, and a wrong or missing date on a page cannot delete it."""
    return None if config.retention is None else now - timedelta(seconds=config.retention)


def _retention_setting(config: Config) -> str:
    return "never" if config.retention is None else f"{config.retention:g}s"


def _since(started: float) -> float:
    return time.perf_counter() - started


def publish_now(config: Config, store: Store, now: datetime, fence: int | None = None,
                workers: int | None = None) -> list[str]:  # fmt: skip
    """Write whatever output changed (retention ran in `run_once`). Cheap when nothing did:
    no merge or expiry since the last publish, same settings, output still there. With a
    PostgreSQL store the files written are stored there too, for every node to serve
    (`fence`: a cluster node's publisher-lock session, see `Mirror.open`). `workers`:
    rendering processes (`publish.publish`)."""
    if config.state_url is None:
        return _write_output(config, store, now, workers=workers)
    from aggregator.sharedout import Mirror  # psycopg stays out of SQLite runs

    with Mirror.open(config.state_url, config.output_dir, fence) as mirror:
        mirror.prepare()  # the folder as the table has it: another node may have published
        if _output_current(config, store, output_fingerprint(config)):
            return []
        mirror.begin()
        try:  # the files are in the table before the publish counts as done: a publisher
            # killed in between leaves it pending, for the next one to publish again
            written = _write_output(config, store, now, mirror.commit, workers)
        except OutputIncomplete as e:
            mirror.commit(e.written)
            raise
    return written


def _output_current(config: Config, store: Store, fingerprint: str) -> bool:
    return (
        store.publish_state("pending") is None
        and store.publish_state("config") == fingerprint
        and (config.output_dir / "index.html").is_file()
    )


def _write_output(
    config: Config,
    store: Store,
    now: datetime,
    before_done: Callable[[list[str]], object] = lambda written: None,
    workers: int | None = None,
) -> list[str]:
    """`before_done(written)` runs once every file is written, before the publish is saved
    as done."""
    fingerprint = output_fingerprint(config)
    if _output_current(config, store, fingerprint):
        return []
    started = store.publish_state("pending")  # read first: a later merge leaves it pending
    if (
        store.publish_state("config") != fingerprint
        or not (config.output_dir / "index.html").is_file()
    ):
        store.forget_published_feeds()  # new settings or code: every feed is rebuilt
    plan = feedplan.plan(config, store, fingerprint)
    store.set_publish_state(plan.rebuilding)
    state = plan.state  # complete once publish has used up plan.feeds
    try:
        written = publish(site_of(config), config.output_dir, plan.feeds, store.count(), workers,
                          plan.listed, plan.rendered)  # fmt: skip
    except OutputIncomplete as e:
        # the feeds written stay remembered; the rest (and with a failed article page,
        # every rebuilt feed, whose pages are written with it) is redone by the next publish
        if "articles/" not in e.folders:
            store.finish_publish(started, feedplan.written_state(state, e.folders), done=False)
        raise
    before_done(written)
    store.finish_publish(started, {"config": fingerprint, **state})
    return written


def output_fingerprint(config: Config) -> str:
    """Everything in the config (and code version) that shapes the published bytes."""
    shape = (
        __version__, config.title, config.site_url, config.language, str(config.timezone),
        str(config.output_dir), config.max_items, config.archive,
        tuple(s.name for s in config.sources), config.feeds, _renderer_digest(),
    )  # fmt: skip
    return hashlib.blake2b(repr(shape).encode("utf-8"), digest_size=16).hexdigest()


@functools.cache
def _renderer_digest() -> str:
    """The code that renders output: a changed template or renderer (an upgrade without a
    version bump) makes every feed and page be rebuilt."""
    h = hashlib.blake2b(digest_size=16)
    for module in (publish_module, pages, stylesheet, feedplan):
        h.update(Path(module.__file__ or "").read_bytes())
    return h.hexdigest()
