"""Log lines on stderr: `text` for people (ISO 8601 time with its UTC offset, so lines from
different machines and seasons compare), `json` for log shippers (one object per line)."""

from __future__ import annotations

import logging
import sys
from datetime import datetime

import orjson

FORMATS = ("text", "json")


def _when(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds")


class TextFormatter(logging.Formatter):
    """`2026-01-02T08:15:01.123+03:00 INFO aggregator.schedule: ...`"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _when(record)


class JsonFormatter(logging.Formatter):
    """`{"time": "...+03:00", "level": "INFO", "logger": "...", "message": "..."}` and, for
    an exception, its traceback as `exception`: one line per record, whatever the message."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _when(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode("utf-8")


def setup(level: str, fmt: str = "text") -> None:
    """Root logging to stderr at `level` in format `fmt` (one of FORMATS). Like
    logging.basicConfig, leaves a root logger that has handlers of someone else's alone."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
