"""`aggregator run` as an operator runs it (real subprocesses, real HTTP): SIGHUP reloads the
config, a fresh store is first published with the articles of its first pass, log lines
carry the time zone (text or JSON), and /metrics is scraped over HTTP."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.localserver import XML, Reply, fixture, serve_in_thread
from tests.test_daemon import CONFIG, Daemon, add_seed, wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def daemon(tmp_path: Path) -> Daemon:
    d = Daemon(tmp_path).start()
    yield d  # type: ignore[misc]
    if d.proc and d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()


def hup(d: Daemon, reloads: int) -> None:
    assert d.proc is not None
    d.proc.send_signal(signal.SIGHUP)
    wait_for("the reload", lambda: d.logs().count("SIGHUP received") >= reloads)
    outcome = re.compile(r"config reloaded:|config reload failed")
    wait_for("the reload's outcome", lambda: len(outcome.findall(d.logs())) >= reloads)
    assert d.proc.poll() is None, d.logs()


def sources(d: Daemon) -> list[str]:
    return [s["name"] for s in d.health()[1]["sources"]]


def test_sighup_reloads_sources_and_keeps_serving(daemon: Daemon) -> None:
    d = daemon
    wait_for("the seed document", lambda: len(d.feed().entries) == 1)
    more = d.root / "more"
    more.mkdir()
    title = add_seed(more, 1)
    d.config.write_text(CONFIG.replace("every: 1s", "every: 2s")
                        + "  - name: more\n    type: seeds\n    path: more\n    every: 1s\n",
                        encoding="utf-8")  # fmt: skip
    hup(d, 1)
    assert "config reloaded: 2 sources (added: more; changed: tgrt; removed: none)" in d.logs()
    wait_for("the new source's article", lambda: title in d.titles())
    assert sources(d) == ["tgrt", "more"]
    assert d.health()[1]["sources"][0]["every"] == 2.0

    # removing a source; server settings change only on restart
    d.config.write_text(CONFIG.replace("path: seeds", "path: more").replace("port: 0", "port: 1"),
                        encoding="utf-8")  # fmt: skip
    hup(d, 2)
    assert "server.port changed; it takes effect on restart" in d.logs()
    assert "config reloaded: 1 sources (added: none; changed: tgrt; removed: more)" in d.logs()
    assert sources(d) == ["tgrt"]
    assert httpx.get(d.url("/atom.xml")).status_code == 200  # still on the same port

    d.config.write_text(CONFIG + "  - name: broken\n    type: nonsense\n", encoding="utf-8")
    hup(d, 3)
    assert "config reload failed, still running the previous config: " in d.logs()
    assert "sources[1].type: expected one of seeds, feed, html" in d.logs()
    assert sources(d) == ["tgrt"] and d.health()[0] == 200
    d.config.write_text("sources: [", encoding="utf-8")  # YAML syntax error
    hup(d, 4)
    assert d.logs().count("config reload failed") == 2
    rc, _ = d.stop()
    assert rc == 0, d.logs()


def test_a_fresh_store_is_first_published_after_every_source_ran_once(tmp_path: Path) -> None:
    """Today's behaviour was an empty feed first: a reader subscribing then caches it."""
    with serve_in_thread() as server:
        server.route("/late.xml", Reply(body=fixture("rss.xml", server.base), content_type=XML,
                                        delay=2.0))  # fmt: skip
        d = Daemon(tmp_path)
        d.config.write_text(CONFIG + f"  - name: late\n    type: feed\n    url: "
                            f"{server.base}/late.xml\n    every: 1h\n",
                            encoding="utf-8")  # fmt: skip
        d.start()  # returns once /healthz says something was published
        try:
            titles = d.titles()
            assert "Kıymalı Böreği nasıl yapılır? Adım adım tarif" in titles  # the late source
            assert any("Umerov" in t for t in titles)  # the seed folder
            first = re.search(r"feeds published: .*?, (\d+) articles", d.logs())
            assert first and int(first.group(1)) >= 3, d.logs()
        finally:
            assert d.stop()[0] == 0


def test_log_lines_carry_the_time_zone(daemon: Daemon) -> None:
    lines = [line for line in daemon.logs().splitlines() if line.strip()]
    stamp = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"
    assert lines and all(re.match(stamp + r" (INFO|WARNING|ERROR|DEBUG) ", x) for x in lines)


def test_log_format_json_is_one_object_per_line(tmp_path: Path) -> None:
    d = Daemon(tmp_path).start("--log-format", "json")
    try:
        add_seed(d.seeds, 1)
        wait_for("two articles", lambda: len(d.feed().entries) == 2)
    finally:
        assert d.stop()[0] == 0
    records = [json.loads(line) for line in d.logs().splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert all(re.search(r"[+-]\d\d:\d\d$", r["time"]) for r in records)
    messages = [r["message"] for r in records]
    assert any(m.startswith("serving ") for m in messages)
    assert any(m.startswith("feeds published") for m in messages)
    assert "SIGTERM received: shutting down" in messages


def scrape(d: Daemon) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = httpx.get(d.url("/metrics"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }


def test_metrics_count_fetches_failures_304s_items_and_publishes(tmp_path: Path) -> None:
    with serve_in_thread() as server:
        d = Daemon(tmp_path)
        d.config.write_text(
            CONFIG + f"  - name: lm\n    type: feed\n    url: {server.base}/lm.xml\n    every: 1s\n"
            f"  - name: gone\n    type: feed\n    url: {server.base}/status/404\n    every: 1s\n",
            encoding="utf-8",
        )  # fmt: skip
        d.start()
        try:
            wait_for("a 304 from lm.xml",
                     lambda: scrape(d).get(("aggregator_source_not_modified_total",
                                            (("source", "lm"),)), 0) >= 1)  # fmt: skip
            m = scrape(d)
        finally:
            assert d.stop()[0] == 0

    def get(name: str, **labels: str) -> float:
        return m[(name, tuple(sorted(labels.items())))]

    assert get("aggregator_source_fetches_total", source="lm") >= 2
    assert get("aggregator_source_fetches_total", source="tgrt") >= 1
    assert get("aggregator_source_failures_total", source="gone") >= 1
    assert get("aggregator_source_failures_total", source="lm") == 0
    assert get("aggregator_source_items_total", source="tgrt", result="new") == 1
    assert get("aggregator_source_items_total", source="lm", result="new") >= 1
    assert get("aggregator_source_run_seconds_count", source="lm") >= 2
    assert get("aggregator_publish_seconds_count") >= 1
    assert get("aggregator_store_articles") >= 2
    assert get("aggregator_store_bytes") > 4096
    assert get("aggregator_last_publish_timestamp_seconds") > 1.7e9
