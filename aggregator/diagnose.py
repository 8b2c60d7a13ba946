"""What an operator reaches for: `aggregator parse` (what does this file turn into?),
`aggregator check` (is the config right, what would be read?) and the progress bar."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from aggregator.config import Config
from aggregator.errors import ParseError, StoreError
from aggregator.model import Article
from aggregator.normalize import html_to_text
from aggregator.records import article_to_json
from aggregator.sources.seeddir import MAX_SEED_BYTES, seed_paths
from aggregator.timeparse import turkish_long

if TYPE_CHECKING:
    from aggregator.pipeline import Progress

HTML_SUFFIXES = (".html", ".htm", ".xhtml")


def parse_one(path: Path, zone: ZoneInfo, url: str | None = None) -> Article:
    """A seed file (.txt) or saved page (.html) -> the record a run would stage."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SEED_BYTES + 1)
    except OSError as e:
        raise ParseError(f"cannot read: {e.strerror or e}") from e
    if len(data) > MAX_SEED_BYTES:
        raise ParseError(f"file is over the {MAX_SEED_BYTES}-byte limit")
    if path.suffix.lower() in HTML_SUFFIXES:
        from aggregator.sources.html import parse_page

        # an undated page is dated now, as a run dates it the first time it sees the page
        return parse_page(data, url=url or path.resolve().as_uri(), source="parse", tz=zone,
                          seen=datetime.now(zone).replace(microsecond=0))  # fmt: skip
    from aggregator.sources.seedfile import parse_seed

    return parse_seed(data, origin=str(path), source="parse", tz=zone)


def describe(article: Article, zone: ZoneInfo) -> str:
    """The record as readable lines: what an operator checks when one article looks wrong."""
    a = article

    def when(value: object) -> str:
        assert hasattr(value, "isoformat")
        return f"{turkish_long(value, zone)}  ({value.isoformat()})"  # type: ignore[arg-type]

    text = html_to_text(a.content_html)
    marks = "  [date only]" if a.date_only else ""
    if a.published_source == "seen":
        marks += "  [first seen: no date on the page; a run keeps the time it first saw it]"
    rows = [
        ("title", a.title),
        ("summary", a.summary),
        ("published", when(a.published) + marks),
        ("updated", when(a.updated)),
        ("authors", ", ".join(a.authors)),
        ("agency", a.agency),
        ("categories", ", ".join(a.categories)),
        ("link", a.link or "(none: gets its own article page)"),
        ("image", a.image or ""),
        ("language", a.language),
        ("content", f"{a.content_html.count('<p')} paragraphs, "
                    f"{a.content_html.count('<h2')} subheadings, {len(text)} characters"),
        ("begins", text[:160] + ("…" if len(text) > 160 else "")),
    ]  # fmt: skip
    rows += [("warning", w) for w in a.warnings]
    return "\n".join(f"  {k:<11} {v}" for k, v in rows if v)


def parse_files(
    files: Sequence[Path], *, as_json: bool, zone: str, url: str | None, quiet: bool
) -> int:
    """Exit 0 if every file parsed, 1 if any was rejected (each named on stderr), 2 (usage)
    for a bad --timezone."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        print(f"aggregator: error: --timezone: unknown time zone {zone!r}", file=sys.stderr)
        return 2
    records: list[dict[str, object]] = []
    failed = 0
    for path in files:
        try:
            article = parse_one(path, tz, url)
        except ParseError as e:
            failed += 1
            print(f"rejected: {path}: {e}", file=sys.stderr)
            continue
        if as_json:
            records.append({"file": str(path), **json.loads(article_to_json(article))})
        elif not quiet:
            print(f"{path}\n{describe(article, tz)}\n")
    if as_json:
        print(json.dumps(records, ensure_ascii=False, indent=2))
    return 1 if failed else 0


def check(config: Config, *, quiet: bool, now: datetime) -> int:
    """Report every source and named feed, and what retention would remove now; exit 1 if a
    seed folder is missing or output.dir is not a folder. Warnings do not change the exit."""
    from aggregator.store import describe

    lines = [f"{config.path}: valid", f"  output: {config.output_dir} (max_items "
             f"{config.max_items}, archive {'on' if config.archive else 'off'})",
             f"  state:  {describe(config.store_target)}",
             f"  retention: {_retention(config, now)}",
             "sources:"]  # fmt: skip
    problems: list[str] = []
    if config.output_dir.exists() and not config.output_dir.is_dir():
        problems.append(f"output.dir: {config.output_dir} is a file, not a folder; remove it "
                        "or choose another output.dir")  # fmt: skip
    for s in config.sources:
        if s.type == "seeds":
            assert s.path is not None
            if s.path.is_dir():
                n = sum(1 for _ in seed_paths(s.path))
                where = f"{s.path} ({n} .txt files)"
            else:
                what = "is a file, not a folder" if s.path.exists() else "does not exist"
                problems.append(f"source {s.name!r}: seed folder {s.path} {what}; create the "
                                "folder or fix sources[].path")  # fmt: skip
                where = f"{s.path} ({what.upper()})"
        else:
            where = s.url or ""
        lines.append(f"  {s.name:<16} {s.type:<6} every {s.every:g}s  {where}")
    if not config.sources:
        lines.append("  (none: add sources to config.yaml)")
    if config.feeds:
        lines.append("feeds:")
    for f in config.feeds:
        rules = [f"sources {', '.join(f.sources)}" if f.sources else "",
                 f"categories {', '.join(f.categories)}" if f.categories else "",
                 f"match {', '.join(f.match)}" if f.match else ""]  # fmt: skip
        lines.append(f"  feeds/{f.name}/  {f.title!r}: " + "; ".join(r for r in rules if r))
    if not quiet:
        print("\n".join(lines))
    for problem in problems:
        print(f"aggregator: {config.path}: {problem}", file=sys.stderr)
    if warning := _port_mismatch(config):
        print(f"aggregator: {config.path}: warning: {warning}", file=sys.stderr)
    return 1 if problems else 0


def _retention(config: Config, now: datetime) -> str:
    """The setting, and how many stored articles it would remove now."""
    from aggregator.pipeline import retention_cutoff
    from aggregator.store import Store, exists

    cutoff = retention_cutoff(config, now)
    if cutoff is None:
        return "never (nothing is removed)"
    setting = f"{config.retention:g}s from first seen"
    target = config.store_target
    try:
        if not exists(target) or Store.importing(target):
            return setting
        with Store.open(target, lock=False, readonly=True) as store:
            doomed, total = store.would_expire(cutoff, config.max_items), store.count()
    except StoreError as e:  # the config is still checked; the store is `status`'s business
        return f"{setting} (stored articles not counted: {e})"
    return f"{setting}; would remove {doomed} of the {total} stored articles now"


def _port_mismatch(config: Config) -> str | None:
    """site.url on this machine but on another port than the daemon serves: every self
    link in the feeds would point to nothing."""
    parts = urlsplit(config.site_url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if port == config.port:
        return None
    return (f"site.url {config.site_url} is on port {port} but server.port is {config.port}; "
            "feed links will not reach the daemon: make them the same (or ignore this if "
            "another server on that port serves output.dir)")  # fmt: skip


@contextmanager
def progress_bar(*, enabled: bool) -> Iterator[Progress | None]:
    """A rich progress line on stderr when it is a terminal; None (plain logs) otherwise."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
        TextColumn("{task.completed} inputs"), TimeElapsedColumn(),
        console=Console(stderr=True), transient=True,
    )  # fmt: skip
    tasks: dict[str, object] = {}
    with bar:

        def update(source: str, seen: int) -> None:
            if source not in tasks:
                tasks[source] = bar.add_task(f"reading {source}", total=None)
            bar.update(tasks[source], completed=seen)  # type: ignore[arg-type]

        yield update
