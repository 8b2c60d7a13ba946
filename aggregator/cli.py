"""Command line: argument parsing, the clock, one-line errors and exit codes.

Exit codes (README, "Exit codes"):
  0  all good
  1  feeds published, but some inputs were rejected or some sources failed
  2  usage error (bad arguments)
  3  invalid configuration
  4  state store unusable (corrupt, newer schema, unwritable) or locked by another run
  5  output not writable
  70 internal error (a bug: please report it with the traceback)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from aggregator import __version__
from aggregator.config import Config, load_config
from aggregator.errors import (
    AggregatorError,
    ConfigError,
    LockError,
    PublishError,
    StoreError,
)
from aggregator.model import RunReport
from aggregator.store import Store

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_STORE = 4
EXIT_OUTPUT = 5
EXIT_BUG = 70

log = logging.getLogger("aggregator")


def _now() -> datetime:
    return datetime.now().astimezone()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggregator",
        description="Turkish news feed aggregator: seed scrapes and web sources in, "
        "RSS 2.0 and Atom 1.0 out.",
        epilog="Exit codes: 0 ok, 1 published with rejected inputs or failed sources, "
        "2 usage, 3 config, 4 state store, 5 output, 70 bug.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    regen = commands.add_parser(
        "regenerate",
        help="read every source once, de-duplicate, publish the feeds, exit (for cron)",
        description="Read every configured source once, de-duplicate, publish the feeds "
        "and print a summary.",
    )
    _options(regen)
    daemon = commands.add_parser(
        "run",
        help="keep the feeds fresh on each source's schedule and serve them over HTTP",
        description="Run every source at its `every:` interval, publish after changes and "
        "serve output.dir at server.host:server.port (with /healthz) until SIGTERM or SIGINT.",
    )
    loudness = _options(daemon, verbose="debug logging (with HTTP access lines) and tracebacks")
    loudness.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                          help="log level (default: log_level in config.yaml)")  # fmt: skip
    status = commands.add_parser(
        "status",
        help="print each source's last success, last error, next due time and article count",
        description="Print the state of every source; works with or without a running daemon.",
    )
    _options(status)
    check = commands.add_parser(
        "check",
        help="validate config.yaml and list each source and feed it would read and publish",
        description="Validate the config (errors name the key) and report every source it "
        "would read (seed folders are counted) and every named feed. Reads nothing else.",
    )
    _options(check)
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
) -> argparse._MutuallyExclusiveGroup:
    """--config and -q/-v, the same on every command; returns the -q/-v group."""
    if config:
        command.add_argument("--config", type=Path, default=Path("config.yaml"),
                             help="path to config.yaml (default: ./config.yaml)")  # fmt: skip
    group = command.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="print errors only")
    group.add_argument("-v", "--verbose", action="store_true", help=verbose)
    return group


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def _summary(report: RunReport) -> str:
    failed = len(report.failed_sources)
    return (
        f"read {report.read} inputs ({sum(s.unchanged for s in report.sources)} unchanged), "
        f"{report.new} new, {report.updated} updated, {report.merged} merged; "
        f"published {report.published} articles; "
        f"rejected {len(report.rejections)} inputs; {failed} sources failed; "
        f"wrote {len(report.feeds_written)} files in {report.seconds:.2f}s"
    )


def regenerate(config: Config, quiet: bool) -> int:
    from aggregator.diagnose import progress_bar
    from aggregator.pipeline import run_once

    with Store.open(config.state) as store, progress_bar(enabled=not quiet) as progress:
        report = run_once(config, store, None, _now(), progress=progress)
    for rejection in report.rejections:
        print(f"rejected: {rejection}", file=sys.stderr)
    for source in report.failed_sources:
        print(f"source failed: {source.name}: {source.error}", file=sys.stderr)
    if not quiet:
        print(_summary(report))
    return EXIT_PARTIAL if report.rejections or report.failed_sources else EXIT_OK


def run(config: Config) -> int:
    from aggregator import daemon

    store = Store.open(config.state)  # the lock: a second daemon or a regenerate is refused
    try:
        sock = daemon.listen(config.host, config.port)
    except BaseException:
        store.close()
        raise
    return daemon.run(config, store, sock)


def status(config: Config) -> int:
    from aggregator.daemon import status_text

    print(status_text(config, _now()))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    verbose = getattr(args, "verbose", False)
    try:
        if args.command == "parse":
            _setup_logging("debug" if verbose else "error" if args.quiet else "warning")
            from aggregator.diagnose import parse_files

            return parse_files(args.files, as_json=args.json, zone=args.timezone, url=args.url,
                               quiet=args.quiet)  # fmt: skip
        config = load_config(args.config)
        default = config.log_level if args.command == "run" else "warning"
        level = "debug" if verbose else "error" if getattr(args, "quiet", False) else default
        _setup_logging(getattr(args, "log_level", None) or level)
        if args.command == "regenerate":
            return regenerate(config, args.quiet)
        if args.command == "run":
            return run(config)
        if args.command == "status":
            return status(config)
        if args.command == "check":
            from aggregator.diagnose import check

            return check(config, quiet=args.quiet)
        parser.error(f"unknown command {args.command!r}")
    except ConfigError as e:
        return _fail(e, EXIT_CONFIG, verbose, "fix the key named above in the config file")
    except (StoreError, LockError) as e:
        return _fail(e, EXIT_STORE, verbose)
    except PublishError as e:
        return _fail(e, EXIT_OUTPUT, verbose, "check that output.dir is writable and has space")
    except AggregatorError as e:
        return _fail(e, EXIT_BUG, verbose)
    except KeyboardInterrupt:
        return 130
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
