"""Prometheus metrics of `aggregator run`, served at `GET /metrics` (docs/daemon.md lists
them). One registry per daemon, not the library's global one, so nothing else leaks in."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# seed folders take milliseconds to seconds; a web source up to its HTTP timeouts
_RUN_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_PUBLISH_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ITEM_RESULTS = ("new", "updated", "rejected")


class Metrics:
    def __init__(self, state: Path) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.fetches = Counter("aggregator_source_fetches", "Runs of a source (a seed folder "
                               "scan or a web fetch)", ["source"], registry=r)  # fmt: skip
        self.failures = Counter("aggregator_source_failures", "Runs of a source that failed",
                                ["source"], registry=r)  # fmt: skip
        self.not_modified = Counter("aggregator_source_not_modified", "Web fetches answered "
                                    "304 Not Modified (or with unchanged bytes)", ["source"],
                                    registry=r)  # fmt: skip
        self.items = Counter("aggregator_source_items", "Articles a source brought, by result",
                             ["source", "result"], registry=r)  # fmt: skip
        self.seconds = Histogram("aggregator_source_run_seconds", "Duration of one run of a "
                                 "source (fetch, parse, merge)", ["source"],
                                 buckets=_RUN_BUCKETS, registry=r)  # fmt: skip
        self.publish_seconds = Histogram("aggregator_publish_seconds", "Duration of one "
                                         "publish of every feed", buckets=_PUBLISH_BUCKETS,
                                         registry=r)  # fmt: skip
        self.publish_failures = Counter("aggregator_publish_failures", "Publishes that failed",
                                        registry=r)  # fmt: skip
        self.last_publish = Gauge("aggregator_last_publish_timestamp_seconds", "Unix time of "
                                  "the last successful publish", registry=r)  # fmt: skip
        self.articles = Gauge("aggregator_store_articles", "Articles in the store",
                              registry=r)  # fmt: skip
        self.cluster_failures = Counter("aggregator_cluster_failures", "Cluster database "
                                        "operations that failed (claim, release, renew, "
                                        "publisher_lock, beat, published)", ["operation"],
                                        registry=r)  # fmt: skip
        store_bytes = Gauge("aggregator_store_bytes", "Size of the state store on disk "
                            "(database and write-ahead log)", registry=r)  # fmt: skip
        store_bytes.set_function(lambda: _size(state))

    def track(self, names: Iterable[str]) -> None:
        """Show every source (at 0) from the start, so rates and alerts need no first event."""
        for name in names:
            for family in (self.fetches, self.failures, self.not_modified, self.seconds):
                family.labels(name)
            for result in ITEM_RESULTS:
                self.items.labels(name, result)

    def forget(self, name: str) -> None:
        """A source removed by a reload disappears from /metrics."""
        for family in (self.fetches, self.failures, self.not_modified, self.seconds):
            family.remove(name)
        for result in ITEM_RESULTS:
            self.items.remove(name, result)

    def source_run(self, name: str, *, seconds: float, failed: bool, not_modified: bool = False,
                   new: int = 0, updated: int = 0, rejected: int = 0) -> None:  # fmt: skip
        self.fetches.labels(name).inc()
        self.seconds.labels(name).observe(seconds)
        if failed:
            self.failures.labels(name).inc()
        if not_modified:
            self.not_modified.labels(name).inc()
        for result, count in (("new", new), ("updated", updated), ("rejected", rejected)):
            self.items.labels(name, result).inc(count)

    def published(self, seconds: float, articles: int, at: float) -> None:
        self.publish_seconds.observe(seconds)
        self.articles.set(articles)
        self.last_publish.set(at)

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _size(state: Path) -> float:
    total = 0
    for path in (state, state.with_name(state.name + "-wal")):
        try:
            total += path.stat().st_size
        except OSError:
            pass
    return float(total)
