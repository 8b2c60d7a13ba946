"""README documents every CLI command and every config key (sqlite-utils' test_docs idea):
the lists come from the argparse parser and config.py, so a new one without docs fails."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from aggregator.cli import _parser
from aggregator.config import config_keys

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def commands() -> list[str]:
    (sub,) = (a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(sub.choices)


@pytest.mark.parametrize("command", commands())
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"`aggregator {command}" in README


@pytest.mark.parametrize("key", config_keys())
def test_every_config_key_is_in_the_readme(key: str) -> None:
    assert f"| `{key}` |" in README


def test_the_shipped_config_uses_only_documented_keys() -> None:
    done = subprocess.run([sys.executable, "-m", "aggregator", "check", "-q", "--config",
                           str(ROOT / "config.yaml")], capture_output=True, text=True,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_readme_links_the_daemon_guide() -> None:
    assert "(docs/daemon.md)" in README and (ROOT / "docs" / "daemon.md").exists()


def test_readme_links_the_scale_out_guide() -> None:
    assert "(docs/scale-out.md)" in README and (ROOT / "docs" / "scale-out.md").exists()


def test_ci_runs_the_readme_test_command() -> None:
    """The quick start's test line (a venv first: stock Debian 12 refuses a bare pip install)
    is exactly what .ci/run runs."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    marker = next(i for i, line in enumerate(ci) if line.startswith("# The README's test command"))
    command = ci[marker + 1]
    assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && ")
    assert f"\n{command}\n" in README


def test_the_readme_source_examples_load(tmp_path: Path) -> None:
    from aggregator.config import load_config

    block = README.split("A feed source (RSS, Atom or JSON Feed) and an HTML source, in full:")[1]
    example = block.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "config.yaml").write_text(example, encoding="utf-8")
    config = load_config(tmp_path / "config.yaml")
    feed, page = config.sources
    assert feed.type == "feed" and page.type == "html"
    assert page.links and page.limit == 10 and len(page.selectors) == 5
