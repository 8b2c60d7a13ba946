"""Command line: argument parsing, the clock, one-line errors and exit codes.

Exit codes (README, "Exit codes"):
  0  all good
  1  feeds published, but some inputs were rejected or some sources failed
  2  usage error (bad arguments)
  3  invalid configuration
  4  state store unusable (corrupt, newer schema, unwritable) or locked by another run
  5  output not writable
  70 internal error (a bug: please report it with the traceback)
  130 interrupted (Ctrl-C): nothing half-done is kept, the next run starts where this began
  141 the output pipe closed early (`status | head -1`): quiet, as for any Unix tool
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from aggregator import __version__
from aggregator.errors import (
    AggregatorError,
    ConfigError,
    LockError,
    PublishError,
    StoreError,
)

if TYPE_CHECKING:  # the rest is imported inside main(): a Ctrl-C in the imports is one line
    from aggregator.config import Config
    from aggregator.model import RunReport

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_STORE = 4
EXIT_OUTPUT = 5
EXIT_BUG = 70
EXIT_INTERRUPTED = 130
EXIT_PIPE = 141

log = logging.getLogger("aggregator")


def _now() -> datetime:
    return datetime.now().astimezone()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Turkish news feed aggregator: seed scrapes and web sources in, "
        "RSS 2.0 and Atom 1.0 out.",
        epilog="Exit codes: 0 ok, 1 published with rejected inputs or failed sources, "
        "2 usage, 3 config, 4 state store, 5 output, 70 bug, 130 interrupted. "
        "--config, -q and -v work before or after the command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _options(parser, top=True)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    regen = commands.add_parser(
        "regenerate",
        help="read the sources once, de-duplicate, publish the feeds, exit (for cron)",
        description="Read every seed folder and every web source that is due (by its "
        "`every:` and back-off; --force: all of them now), de-duplicate, publish the feeds "
        "and print a summary naming the sources skipped and when they are due.",
    )
    _options(regen)
    regen.add_argument(
        "--force",
        action="store_true",
        help="read every web source now, due or not (also those backing off)",
    )
    regen.add_argument("--source", action="append", metavar="NAME", dest="sources",
                       help="read only this source, now (repeatable)")  # fmt: skip
    daemon = commands.add_parser(
        "run",
        help="keep the feeds fresh on each source's schedule and serve them over HTTP",
        description="Run every source at its `every:` interval, publish after changes and "
        "serve output.dir at server.host:server.port (with /healthz) until SIGTERM or SIGINT.",
    )
    loudness = _options(daemon, verbose="debug logging (with HTTP access lines) and tracebacks")
    loudness.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                          help="log level (default: log_level in config.yaml)")  # fmt: skip
    daemon.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="log lines as text (time with UTC offset) or one JSON object"
                        " each, for log shippers")  # fmt: skip
    status = commands.add_parser(
        "status",
        help="print each source's last success, last error, next due time and article count",
        description="Print the state of every source; works with or without a running daemon.",
    )
    _options(status)
    status.add_argument("--json", action="store_true", help="print the state as JSON")
    check = commands.add_parser(
        "check",
        help="validate config.yaml and list each source and feed it would read and publish",
        description="Validate the config (errors name the key) and report every source it "
        "would read (seed folders are counted) and every named feed. Reads nothing else.",
    )
    _options(check)
    migrate = commands.add_parser(
        "migrate",
        help="copy the configured store into another (SQLite <-> PostgreSQL), ids unchanged",
        description="Copy every article, revision, key, alias and seed-file, source and "
        "publish state of the store in config.yaml (`state:`) into TARGET, a postgresql:// "
        "URL (password from PGPASSWORD or ~/.pgpass) or a SQLite file, unchanged. TARGET "
        "must be empty (or already hold exactly this data). Stop the daemon first.",
    )
    _options(migrate)
    migrate.add_argument("--to", required=True, metavar="TARGET",
                         help="postgresql://user@host:5432/dbname or path/to.sqlite3")  # fmt: skip
    parse = commands.add_parser(
        "parse",
        help="print the record(s) a seed file (.txt) or saved article page (.html) becomes",
        description="Parse seed files and saved HTML pages the way a run would and print the "
        "records; nothing is stored. Exit 1 if any file is rejected.",
    )
    parse.add_argument("files", nargs="+", type=Path, metavar="FILE")
    parse.add_argument("--json", action="store_true", help="print the records as JSON")
    parse.add_argument("--timezone", default="Europe/Istanbul",
                       help="zone of times without an offset")  # fmt: skip
    parse.add_argument("--url", help="the page's address, for saved HTML (default: file URI)")
    _options(parse, config=False)
    return parser


def _options(
    command: argparse.ArgumentParser,
    *,
    config: bool = True,
    verbose: str = "debug logging and tracebacks",
    top: bool = False,
) -> argparse._MutuallyExclusiveGroup:
    """--config and -q/-v, the same on every command and before it (`aggregator --config X
    check`); returns the -q/-v group. A command's own copy leaves the value given before
    the command alone unless it is given again (SUPPRESS)."""
    unset: object = argparse.SUPPRESS if not top else None
    if config:
        command.add_argument("--config", type=Path, default=unset,
                             help="path to config.yaml (default: ./config.yaml)")  # fmt: skip
    group = command.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print errors only",
                       default=unset if not top else False)  # fmt: skip
    group.add_argument("-v", "--verbose", action="store_true", help=verbose,
                       default=unset if not top else False)  # fmt: skip
    return group


def _setup_logging(level: str, fmt: str = "text") -> None:
    from aggregator.logs import setup

    setup(level, fmt)


def _summary(report: RunReport) -> str:
    failed = len(report.failed_sources)
    return (
        f"read {report.read} inputs ({sum(s.unchanged for s in report.sources)} unchanged), "
        f"{report.new} new, {report.updated} updated, {report.merged} merged, "
        f"{report.expired} expired; "
        f"published {report.published} articles; "
        f"rejected {len(report.rejections)} inputs; {failed} sources failed; "
        f"{len(report.skipped_sources)} skipped (not due); "
        f"wrote {len(report.feeds_written)} files in {report.seconds:.2f}s"
    )


def local_time(value: datetime, now: datetime) -> str:
    """HH:MM in the machine's zone (what the operator's clock shows), the date if not today."""
    here, today = value.astimezone(), now.astimezone()
    return f"{here:%H:%M}" if here.date() == today.date() else f"{here:%Y-%m-%d %H:%M}"


def regenerate(
    config: Config, quiet: bool, *, force: bool = False, only: Sequence[str] | None = None
) -> int:
    from aggregator.diagnose import progress_bar
    from aggregator.pipeline import run_once
    from aggregator.store import Store

    for name in only or ():
        if name not in {s.name for s in config.sources}:
            known = ", ".join(s.name for s in config.sources) or "none"
            print(f"aggregator: error: --source: no source is named {name!r} "
                  f"(configured: {known})", file=sys.stderr)  # fmt: skip
            return EXIT_USAGE
    now = _now()
    with (
        Store.open(config.store_target, holder="regenerate") as store,
        progress_bar(enabled=not quiet) as progress,
    ):
        report = run_once(config, store, None, now, progress=progress, only=only,
                          force=force or bool(only))  # fmt: skip
    for rejection in report.rejections:
        print(f"rejected: {rejection}", file=sys.stderr)
    for source in report.failed_sources:
        print(f"source failed: {source.name}: {source.error}", file=sys.stderr)
    for failure in report.output_failures:
        print(f"output failed: {failure}", file=sys.stderr)
    if not quiet:
        for source in report.skipped_sources:
            assert source.due is not None
            why = "backing off" if source.backing_off else "not due"
            print(f"skipped: {source.name}: {why} until {local_time(source.due, now)} (local); "
                  "--force reads it now")  # fmt: skip
        print(_summary(report))
    if report.output_failures:
        return EXIT_OUTPUT
    return EXIT_PARTIAL if report.rejections or report.failed_sources else EXIT_OK


def run(config: Config) -> int:
    from aggregator import daemon

    return daemon.start(config)


def status(config: Config, as_json: bool) -> int:
    from aggregator.daemon import status_data, status_text

    if as_json:
        print(json.dumps(status_data(config, _now()), ensure_ascii=False, indent=2))
    else:
        print(status_text(config, _now()))
    return EXIT_OK


def migrate(config: Config, to: str, quiet: bool) -> int:
    from aggregator.store import Store, describe
    from aggregator.store.db import is_url
    from aggregator.store.migrate import copy_store

    source = config.store_target
    target: Path | str = to if is_url(to) else Path(to).resolve()
    if describe(source) == describe(target):
        print(f"aggregator: error: --to: {describe(target)} is the configured store itself",
              file=sys.stderr)  # fmt: skip
        return EXIT_USAGE
    with Store.open(source, holder="migrate") as src, Store.open(target, holder="migrate") as dst:
        copied = copy_store(src, dst)
    if copied is None:
        print(f"{describe(target)} already holds exactly this data; nothing copied")
        return EXIT_OK
    if not quiet:
        for table, rows in copied.items():
            print(f"copied {rows} rows of {table}")
    print(f"migrated {describe(source)} -> {describe(target)}: {sum(copied.values())} rows "
          f"in {len(copied)} tables")  # fmt: skip
    return EXIT_OK


def console() -> NoReturn:
    """The `aggregator` command (and `python -m aggregator`): main() and its exit code.
    Once main() returns, the outcome is settled (committed, or rolled back and said): a
    Ctrl-C landing in Python's shutdown, after it has put the default SIGINT action back,
    would otherwise end the process by the signal, silently, whatever the run did."""
    try:
        code = main()
    except KeyboardInterrupt:  # between main's own handler and the next line
        print("aggregator: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """Exit code of one command. Ctrl-C and a closed output pipe end it quietly too."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit: a closed pipe must be caught below
        return code
    except KeyboardInterrupt:
        print("aggregator: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader (head, grep -m1, a pager) has what it wanted; Python must not try to
        # flush into the closed pipe again at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_PIPE


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    verbose = args.verbose
    try:
        if args.command == "parse":
            _setup_logging("debug" if verbose else "error" if args.quiet else "warning")
            from aggregator.diagnose import parse_files

            return parse_files(args.files, as_json=args.json, zone=args.timezone, url=args.url,
                               quiet=args.quiet)  # fmt: skip
        from aggregator.config import load_config

        config = load_config(args.config or Path("config.yaml"), given=args.config is not None)
        default = config.log_level if args.command == "run" else "warning"
        level = "debug" if verbose else "error" if args.quiet else default
        _setup_logging(getattr(args, "log_level", None) or level,
                       getattr(args, "log_format", "text"))  # fmt: skip
        if args.command == "regenerate":
            return regenerate(config, args.quiet, force=args.force, only=args.sources)
        if args.command == "run":
            return run(config)
        if args.command == "status":
            return status(config, args.json)
        if args.command == "migrate":
            return migrate(config, args.to, args.quiet)
        if args.command == "check":
            from aggregator.diagnose import check

            return check(config, quiet=args.quiet, now=_now())
        parser.error(f"unknown command {args.command!r}")
    except ConfigError as e:  # its message names the file, the key and what to do
        return _fail(e, EXIT_CONFIG, verbose)
    except (StoreError, LockError) as e:
        return _fail(e, EXIT_STORE, verbose)
    except PublishError as e:
        return _fail(e, EXIT_OUTPUT, verbose, "check that output.dir is writable and has space")
    except AggregatorError as e:
        return _fail(e, EXIT_BUG, verbose)
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception:  # a bug: the traceback, and the documented code (not Python's 1)
        logging.getLogger("aggregator").exception("internal error (please report this)")
        return EXIT_BUG
    return EXIT_OK


def _fail(error: Exception, code: int, verbose: bool, hint: str = "") -> int:
    if verbose:
        logging.getLogger("aggregator").exception("failed")
    suffix = f" ({hint})" if hint else ""
    print(f"aggregator: error: {error}{suffix}", file=sys.stderr)
    return code
