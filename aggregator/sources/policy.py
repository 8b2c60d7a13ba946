"""When a source is due, and how long a failing one waits: one policy for every kind of source.

The daemon's scheduler, `regenerate` and the web fetcher all ask this module; nothing else
computes a failure count or a due time. The curve (README, "Back-off"):

    after n failures in a row: wait min(max(every, 60 s) * 2^(n-1), max(every, 1 h))

so a source every 5m waits 5m, 10m, 20m, 40m, then hourly; a source slower than an hour
keeps its own interval. A server's Retry-After is honoured up to a day, never below the curve.
The cap is an hour because a source that comes back should be noticed within the hour, and
one request an hour costs a dead host nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from aggregator.config import SourceConfig
from aggregator.model import SourceState

MIN_BACKOFF = 60.0
BACKOFF_CAP = 3600.0
MAX_RETRY_AFTER = 24 * 3600.0


def backoff(every: float, failures: int, retry_after: float | None = None) -> float:
    """Seconds until the next try after `failures` failures in a row (0: the interval)."""
    if failures <= 0:
        return every
    delay = min(max(every, MIN_BACKOFF) * 2.0 ** min(failures - 1, 20), max(every, BACKOFF_CAP))
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return delay


def latest_due(source: SourceConfig, now: datetime) -> datetime:
    """No saved due time is believed beyond this (a clock that jumped, a damaged store)."""
    return now + timedelta(seconds=max(source.every, MAX_RETRY_AFTER))


def is_due(source: SourceConfig, state: SourceState, now: datetime) -> bool:
    """Due when `next_due` has come (within a tenth of the interval, at most a minute: timer
    jitter must not skip a run)."""
    if state.next_due is None:
        return True
    slack = timedelta(seconds=min(60.0, source.every / 10))
    return state.next_due - slack <= now


def succeeded(
    state: SourceState, source: SourceConfig, now: datetime, *, interval: float | None = None
) -> SourceState:
    """Failures cleared; due again after `interval` (default: the source's `every`)."""
    wait = source.every if interval is None else max(source.every, interval)
    return replace(state, last_success=now, failures=0, next_due=now + timedelta(seconds=wait))


def failed(
    state: SourceState, source: SourceConfig, error: str, now: datetime, *,
    retry_after: float | None = None,
) -> SourceState:  # fmt: skip
    """One more failure in a row; due again after the back-off (or the server's Retry-After)."""
    failures = state.failures + 1
    return replace(
        state, failures=failures, last_error=error, last_error_at=now,
        next_due=now + timedelta(seconds=backoff(source.every, failures, retry_after)),
    )  # fmt: skip
