"""Shared fixtures. Golden files are rewritten deliberately with UPDATE_GOLDEN=1."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from aggregator.config import Config
from tests.pgserver import pg_server  # noqa: F401  (the session PostgreSQL server fixture)

DATA = Path(__file__).parent / "data"
ISTANBUL = ZoneInfo("Europe/Istanbul")
SEED_DOC = Path(__file__).parent.parent / "seeds" / "000_6ec4e0a712969624.txt"


@pytest.fixture
def golden() -> Callable[[Path, bytes], None]:
    """Compare bytes with a golden file; UPDATE_GOLDEN=1 rewrites it instead."""

    def check(path: Path, actual: bytes) -> None:
        if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
            if os.environ.get("CI") and not path.exists():
                pytest.fail(f"golden file {path} is missing (run with UPDATE_GOLDEN=1 locally)")
            path.write_bytes(actual)
            return
        expected = path.read_bytes()
        assert actual.decode("utf-8") == expected.decode("utf-8"), f"differs from {path}"

    return check


StoreAt = Callable[[], "Path | str"]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_at(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> StoreAt:
    """Where to open fresh, empty stores (`Store.open(store_at())`): the test runs once on
    SQLite files and once on PostgreSQL databases of the session's own server. Each call
    gives another store."""
    if request.param == "sqlite":
        folder = tmp_path_factory.mktemp("store")
        names = itertools.count(1)
        return lambda: folder / f"s{next(names)}.sqlite3"
    server = request.getfixturevalue("pg_server")
    return lambda: str(server.database())


sqlite_only = pytest.mark.parametrize("store_at", ["sqlite"], indirect=True)
"""For a test of a fixture on `store_at` that is about the SQLite file itself."""


def state_setting(target: Path | str, default: str = "state/agg.sqlite3") -> str:
    """The `state:` value for a store from `store_at`: a PostgreSQL URL, or on SQLite the
    tests' usual file next to the config."""
    return target if isinstance(target, str) else default


def on_store(config: Config, target: Path | str) -> Config:
    """The config with its store at `target` (from `store_at`)."""
    if isinstance(target, str):
        return replace(config, state_url=target)
    return replace(config, state=target)
