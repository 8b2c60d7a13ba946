"""Round 2 of the hostile-network campaign (issue 14 rows 3, 4, 8, 9, 12): compression bombs
under an address-space limit, the fetch policy for html links and redirects, the daemon under
fd pressure, two configs sharing one output folder. Real local servers, real subprocesses."""

from __future__ import annotations

import asyncio
import errno
import functools
import re
import resource
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
import zstandard

from aggregator.config import load_config
from aggregator.connections import HEADER_TIMEOUT, quiet_accept_errors
from aggregator.errors import ConfigError, FetchError
from aggregator.publish import sweep_temporaries
from aggregator.sources import Harvest
from aggregator.sources.feed import parse_feed
from aggregator.sources.html import parse_page
from aggregator.sources.http import ACCEPT_ENCODING, inflate, is_public, literal_address
from aggregator.sources.web import harvest
from tests.conftest import ISTANBUL
from tests.localserver import HTML, XML, App, Reply, serve_in_thread
from tests.reliability.helpers import (
    REPO,
    add_seed,
    read_feeds,
    regenerate_measured,
    write_config,
)

ADDRESS_SPACE_MIB = 400
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=ISTANBUL)
GOOD = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        "<link>{base}/</link><item><title>Sağlam haber</title><link>{base}/h/1</link>"
        "<pubDate>Fri, 02 Jan 2026 08:00:00 +0300</pubDate></item></channel></rss>")  # fmt: skip


# -- rows 3 and 4: compression bombs -----------------------------------------------------------
def zstd_bomb(size: int) -> bytes:
    """A zstd frame of about `size` bytes: RLE blocks of 128 KiB zeros, 4 bytes each (the
    format's best ratio: 16 KB -> 512 MiB, 64 KB -> 2 GiB)."""
    header = b"\x28\xb5\x2f\xfd" + b"\x00" + b"\x38"  # magic, no content size, 128 KiB window
    block = (131072 << 3 | 1 << 1).to_bytes(3, "little") + b"\x00"  # RLE, not last
    last = (131072 << 3 | 1 << 1 | 1).to_bytes(3, "little") + b"\x00"
    return header + block * ((size - len(header)) // 4 - 1) + last


@functools.cache
def gzip_gzip_bomb() -> bytes:
    """gzip of gzip of 1 GiB of zeros: about 1.8 KB on the wire."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = bytes(1024 * 1024)
    inner = b"".join([z.compress(zeros) for _ in range(1024)] + [z.flush()])
    outer = zlib.compressobj(9, zlib.DEFLATED, 31)
    return outer.compress(inner) + outer.flush()


def feed_sources(urls: dict[str, str]) -> str:
    return "".join(f"  - name: {name}\n    type: feed\n    url: {url}\n    every: 1s\n"
                   for name, url in urls.items())  # fmt: skip


@pytest.mark.slow
def test_compression_bombs_stop_at_the_limit_under_an_address_space_limit(tmp_path: Path) -> None:
    bombs = {
        "zstd-16k": (zstd_bomb(16 * 1024), "zstd"),
        "zstd-64k": (zstd_bomb(64 * 1024), "zstd"),
        "gzip-gzip": (gzip_gzip_bomb(), "gzip, gzip"),
    }
    with serve_in_thread(App()) as app:
        app.route("/good.xml", Reply(body=GOOD.format(base=app.base).encode(), content_type=XML))
        for name, (body, encoding) in bombs.items():
            app.route(f"/{name}.xml", Reply(body=body, content_type=XML,
                                            headers={"Content-Encoding": encoding}))  # fmt: skip
        urls = {name: f"{app.base}/{name}.xml" for name in ["good", *bombs]}
        cfg = write_config(tmp_path, sources=feed_sources(urls))
        proc, peak = regenerate_measured(cfg, tmp_path, address_space_mib=ADDRESS_SPACE_MIB)
    assert proc.returncode == 1, proc.stderr  # published; the bombs failed
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stderr, proc.stderr
    lines = {name: [line for line in proc.stderr.splitlines() if f"'{name}'" in line]
             for name in bombs}  # fmt: skip
    assert all(len(found) == 1 for found in lines.values()), proc.stderr
    assert "byte limit" in lines["zstd-16k"][0] and "byte limit" in lines["zstd-64k"][0]
    assert "stacked Content-Encoding 'gzip, gzip'" in lines["gzip-gzip"][0]
    assert "Sağlam haber" in read_feeds(tmp_path / "out").values()
    print(
        f"bombs: peak {peak:.0f} MiB under a {ADDRESS_SPACE_MIB} MiB address-space limit; "
        + ", ".join(f"{name} {len(body):,} bytes" for name, (body, _) in bombs.items())
    )


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "raw-deflate", "zstd", "identity"])
def test_every_advertised_encoding_decodes(encoding: str) -> None:
    assert ACCEPT_ENCODING.split(", ") == ["gzip", "deflate", "zstd"]  # each one tested here
    text = "Güncel haber ".encode() * 5000
    raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    encoded = {
        "gzip": zlib.compress(text, wbits=31), "deflate": zlib.compress(text),
        "raw-deflate": raw_deflate.compress(text) + raw_deflate.flush(),
        "zstd": zstandard.ZstdCompressor().compress(text), "identity": text,
    }[encoding]  # fmt: skip
    assert inflate(encoded, encoding.removeprefix("raw-"), len(text)) == text
    with pytest.raises(FetchError, match="byte limit"):
        inflate(encoded, encoding.removeprefix("raw-"), len(text) - 1)


@pytest.mark.parametrize(("encoding", "reason"), [("br", "unsupported"), ("gzip,zstd", "stacked")])
def test_unasked_and_stacked_encodings_are_refused(encoding: str, reason: str) -> None:
    with pytest.raises(FetchError, match=reason):
        inflate(b"\x1f\x8b", encoding, 1000)


# -- row 12: two configs, one output folder ----------------------------------------------------
ROUNDS = 20


@pytest.mark.slow
def test_two_configs_sharing_an_output_folder_never_fail_each_other(tmp_path: Path) -> None:
    """Each config has its own store (so its own lock): both publish into one folder at once.
    One run's sweep of temporary files must never delete the other's file in flight."""
    shared = tmp_path / "shared-out"
    sites = [tmp_path / "a", tmp_path / "b"]
    configs = [write_config(site, out=str(shared)) for site in sites]
    for site in sites:
        for n in range(30):
            add_seed(site / "seeds", n)
    for round_ in range(ROUNDS):
        for i, site in enumerate(sites):
            add_seed(site / "seeds", 100 + round_ * 2 + i)  # every publish changes files
        runs = [subprocess.Popen([sys.executable, "-m", "aggregator", "regenerate", "-q",
                                  "--config", str(cfg)], cwd=REPO, stderr=subprocess.PIPE,
                                 text=True) for cfg in configs]  # fmt: skip
        for run in runs:
            _, err = run.communicate(timeout=120)
            assert run.returncode == 0, f"round {round_}: exit {run.returncode}: {err}"
    read_feeds(shared, agree=False)  # each file is the last writer's: the pair may differ
    assert not list(shared.rglob(".*.tmp"))


def test_the_sweep_keeps_a_live_writers_temporary_file(tmp_path: Path) -> None:
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                               capture_output=True, text=True, check=True)  # fmt: skip
        dead = ended.stdout.strip()
        (tmp_path / f".atom.xml.{live.pid}-k2j3h4.tmp").write_bytes(b"<feed")
        (tmp_path / f".rss.xml.{dead}-a1b2c3.tmp").write_bytes(b"<rss")
        (tmp_path / ".feed.json.x9y8z7.tmp").write_bytes(b"{")  # an older version's name
        assert sweep_temporaries(tmp_path) == 2
        assert [p.name for p in tmp_path.iterdir()] == [f".atom.xml.{live.pid}-k2j3h4.tmp"]
        live.kill()


# -- row 8: the fetch policy -------------------------------------------------------------------
PAGE = ('<html><head><title>{title}</title><meta property="article:published_time"'
        ' content="2026-01-02T08:00:00+03:00"></head><body><article><p>Haberin metni: {title}.'
        "</p></article></body></html>")  # fmt: skip
NUMERIC = ("2130706433", "0x7f000001", "127.1")  # 127.0.0.1 written as a number


def _listing(app: App, other: App) -> None:
    """`/listing/` links to this host, userinfo, other hosts and ports, numeric hosts and a
    redirect off the host; every `/news/` page is an article titled by its path."""
    port = app.base.rsplit(":", 1)[1]
    links = [
        "/news/ayni-host",
        f"http://user:pass@127.0.0.1:{port}/news/gizli",
        f"http://localhost:{port}/news/baska-host",
        f"{other.base}/news/baska-port",
        *(f"http://{host}:{port}/news/sayi-{host}" for host in NUMERIC),
        "/news/yonlendir",
    ]
    body = "".join(f'<article><h2><a href="{link}">{i}</a></h2></article>'
                   for i, link in enumerate(links))  # fmt: skip
    for server in (app, other):
        server.route("/listing/", Reply(body=body.encode(), content_type=HTML))
        server.prefix("/news/", lambda r: Reply(body=PAGE.format(title=r.path).encode(),
                                                content_type=HTML))  # fmt: skip
    app.route(
        "/news/yonlendir", Reply(302, headers={"Location": f"http://localhost:{port}/news/hedef"})
    )


def _harvest_html(tmp_path: Path, url: str, fetch: str) -> Harvest:
    cfg = write_config(tmp_path, sources=f"  - name: site\n    type: html\n    url: {url}\n"
                                         f"    fetch: {fetch}\n")  # fmt: skip
    config = load_config(cfg)
    web = [s for s in config.sources if s.type == "html"]
    (site,) = harvest(web, {}, config=config, client=None, now=NOW)
    return site


def _hosts(app: App) -> list[str]:
    """The Host header of each article page request the server saw."""
    return sorted(r.headers["host"].rsplit(":", 1)[0] for r in app.requests
                  if r.path.startswith("/news/"))  # fmt: skip


@pytest.fixture
def listing() -> Iterator[tuple[App, App]]:
    with (
        serve_in_thread(App(), fixtures=False) as app,
        serve_in_thread(App(), fixtures=False) as other,
    ):
        _listing(app, other)
        yield app, other


def test_links_stay_on_the_listing_host_and_userinfo_is_never_sent(
    tmp_path: Path, listing: tuple[App, App]
) -> None:
    app, other = listing
    site = _harvest_html(tmp_path, app.base + "/listing/", "{block_private: false}")
    assert site.error is None, site.error
    assert _hosts(app) == ["127.0.0.1"] * 3 and not _hosts(other)  # same host only
    assert not any("authorization" in r.headers for r in app.requests)
    links = sorted(a.link or "" for a in site.articles)
    assert links == [f"{app.base}/news/ayni-host", f"{app.base}/news/gizli"]  # no user:pass@
    [refused] = site.rejected
    assert refused.origin.endswith("/news/yonlendir") and "not on the host" in refused.reason


def test_allowed_hosts_are_followed_and_numeric_loopback_forms_reach_loopback(
    tmp_path: Path, listing: tuple[App, App]
) -> None:
    app, other = listing
    port, other_port = app.base.rsplit(":", 1)[1], other.base.rsplit(":", 1)[1]
    allowed = [f"localhost:{port}", f"127.0.0.1:{other_port}", *(f"{h}:{port}" for h in NUMERIC)]
    site = _harvest_html(tmp_path, app.base + "/listing/",
                         f"{{block_private: false, allow_hosts: {allowed}}}")  # fmt: skip
    assert site.error is None and not site.rejected, (site.error, site.rejected)
    # the numeric forms really are 127.0.0.1: this server answered them
    assert _hosts(app) == sorted(["127.0.0.1"] * 3 + ["localhost"] * 2 + list(NUMERIC))
    assert _hosts(other) == ["127.0.0.1"]


def test_discovered_links_to_private_addresses_are_refused_by_default(
    tmp_path: Path, listing: tuple[App, App]
) -> None:
    app, other = listing
    port, other_port = app.base.rsplit(":", 1)[1], other.base.rsplit(":", 1)[1]
    allowed = [f"localhost:{port}", f"127.0.0.1:{other_port}", *(f"{h}:{port}" for h in NUMERIC)]
    site = _harvest_html(tmp_path, app.base + "/listing/", f"{{allow_hosts: {allowed}}}")
    assert site.error is None  # the configured listing on 127.0.0.1 is the operator's choice
    assert app.hits["/listing/"] == 1 and not _hosts(app) and not _hosts(other)
    assert len(site.rejected) == 8 and not site.records
    assert all("not a public address" in r.reason for r in site.rejected), site.rejected
    numeric = [r.reason for r in site.rejected if "sayi-" in r.origin]
    assert numeric == [f"refused {h}: 127.0.0.1 is not a public address (fetch.block_private)"
                       for h in NUMERIC]  # fmt: skip


def test_block_private_true_refuses_the_configured_url_too(
    tmp_path: Path, listing: tuple[App, App]
) -> None:
    app, _ = listing
    site = _harvest_html(tmp_path, app.base + "/listing/", "{block_private: true}")
    assert site.error and "(source 'site')" in site.error, site.error
    assert "127.0.0.1 is not a public address" in site.error
    assert not app.requests


@pytest.mark.parametrize(
    ("host", "public"),
    [("2130706433", False), ("0x7f000001", False), ("127.1", False), ("0177.0.0.1", False),
     ("[::1]", False), ("[::ffff:127.0.0.1]", False), ("169.254.169.254", False),
     ("10.1.2.3", False), ("0.0.0.0", False), ("100.64.0.1", False), ("93.184.215.14", True)],
)  # fmt: skip
def test_numeric_hosts_are_recognised(host: str, public: bool) -> None:
    address = literal_address(host)
    assert address is not None and is_public(address) is public


@pytest.mark.parametrize(
    ("fetch", "key"),
    [("{block_private: yes please}", "sources[1].fetch.block_private"),
     ("{block_private: 1}", "sources[1].fetch.block_private"),
     ("{allow_hosts: [http://x.test/]}", "sources[1].fetch.allow_hosts[0]"),
     ("{allow_hosts: [x.test:99999]}", "sources[1].fetch.allow_hosts[0]"),
     ("{allowed_hosts: []}", "sources[1].fetch.allowed_hosts")],
)  # fmt: skip
def test_fetch_settings_errors_name_the_key(tmp_path: Path, fetch: str, key: str) -> None:
    cfg = write_config(tmp_path, sources=f"  - name: s\n    type: html\n    url: http://x.test/\n"
                                         f"    fetch: {fetch}\n")  # fmt: skip
    with pytest.raises(ConfigError, match=re.escape(key)):
        load_config(cfg)


# -- row 9: the daemon under fd pressure -------------------------------------------------------
OPEN_FILES = 1024
IDLE_CONNECTIONS = 1100


def _raise_own_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.skip(f"needs {needed} open files, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def status_within(port: int, path: str, seconds: float) -> int:
    """The status of GET `path`, every socket operation bounded by what is left of
    `seconds` (a timeout raises: the bound is the socket's, not an assertion on a clock)."""
    deadline = time.monotonic() + seconds
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n" not in head:
            s.settimeout(max(0.001, deadline - time.monotonic()))
            piece = s.recv(256)
            assert piece, f"{path}: connection closed before an answer"
            head += piece
    return int(head.split()[1])


@pytest.mark.slow
def test_healthz_answers_with_1100_idle_connections_at_ulimit_1024(tmp_path: Path) -> None:
    _raise_own_fd_limit(IDLE_CONNECTIONS + 200)
    cfg = write_config(tmp_path)
    add_seed(tmp_path / "seeds", 1)
    log_path = tmp_path / "daemon.log"

    def limit_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))

    idle: list[socket.socket] = []
    with open(log_path, "wb") as log:
        daemon = subprocess.Popen([sys.executable, "-m", "aggregator", "run", "--config", str(cfg)],
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=log,
                                  preexec_fn=limit_fds)  # fmt: skip
    try:
        port = daemon_port(daemon, log_path)
        for _ in range(IDLE_CONNECTIONS):  # connected, never a byte sent
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        opened = time.monotonic()
        # right after the flood the request waits its turn behind the queued connections
        assert status_within(port, "/healthz", 5.0) == 200
        after_flood = time.monotonic() - opened
        drained = wait_until_accepted(port)
        started = time.monotonic()
        assert status_within(port, "/healthz", 1.0) == 200
        answered = time.monotonic() - started
        assert status_within(port, "/atom.xml", 1.0) == 200
        # an idle connection is closed by the server within the header timeout
        newest = idle[-1]
        newest.settimeout(HEADER_TIMEOUT + 5)
        assert newest.recv(1) == b""
        print(f"{IDLE_CONNECTIONS} idle connections: /healthz answered in {after_flood * 1000:.0f}"
              f" ms right after the flood, in {answered * 1000:.0f} ms once all were accepted"
              f" ({drained * 1000:.0f} ms after); the newest idle one closed"
              f" {time.monotonic() - opened:.1f}s after it connected")  # fmt: skip
    finally:
        for s in idle:
            s.close()
        daemon.terminate()
        daemon.wait(timeout=20)
    text = log_path.read_text(encoding="utf-8", errors="replace")
    assert daemon.returncode == 0, text
    assert "Traceback" not in text, text[-3000:]
    emfile = [line for line in text.splitlines() if "open files" in line or "EMFILE" in line]
    assert len(emfile) <= 3, emfile[:5]


def wait_until_accepted(port: int, seconds: float = 30.0) -> float:
    """Seconds until the kernel's accept queue of the listening `port` is empty (Linux:
    /proc/net/tcp shows a listening socket's queue length as rx_queue)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        queued = 0
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # LISTEN
                queued += int(fields[4].split(":")[1], 16)
        if not queued:
            return time.monotonic() - started
        time.sleep(0.01)
    raise AssertionError(f"connections still queued on port {port} after {seconds}s")


def daemon_port(daemon: subprocess.Popen[bytes], log_path: Path) -> int:
    """The daemon's port from its log, once /healthz says a first publish happened."""
    for _ in range(200):
        if daemon.poll() is not None:
            raise AssertionError(f"daemon exited {daemon.returncode}: {log_path.read_text()}")
        m = re.search(r"at http://127\.0\.0\.1:(\d+)/", log_path.read_text())
        if m:
            try:
                if status_within(int(m.group(1)), "/healthz", 5.0) == 200:
                    return int(m.group(1))
            except OSError:
                pass
        time.sleep(0.05)
    raise AssertionError(f"daemon never became healthy: {log_path.read_text()}")


def test_accept_errors_are_one_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    try:
        quiet_accept_errors(loop)
        emfile = OSError(errno.EMFILE, "Too many open files")
        for _ in range(1000):  # asyncio retries a failed accept() every second
            loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                         "exception": emfile})  # fmt: skip
        loop.call_exception_handler({"message": "something else", "exception": ValueError("x")})
    finally:
        loop.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0] == ("cannot accept connections: Too many open files (1 failed attempts since"
                        " the last such line; retrying every second)")  # fmt: skip
    assert "something else" in lines[1]  # other loop errors keep asyncio's own report


def test_credentials_in_a_page_or_feed_link_are_never_published() -> None:
    page = PAGE.format(title="Gizli").replace(
        "<head>", '<head><link rel="canonical" href="https://ali:s3cret@haber.test/gizli">'
    )
    article = parse_page(page.encode(), url="https://haber.test/x", source="s", tz=ISTANBUL)
    assert article.link == "https://haber.test/gizli"
    item = ("<item><title>Haber</title><link>http://ali:s3cret@haber.test/h/1</link>"
            "<pubDate>Fri, 02 Jan 2026 08:00:00 +0300</pubDate></item>")  # fmt: skip
    rss = GOOD.replace(GOOD[GOOD.index("<item>") : GOOD.index("</channel>")], item)
    [entry] = parse_feed(
        rss.encode(), url="http://haber.test/rss", source="s", tz=ISTANBUL
    ).articles
    assert entry.link == "http://haber.test/h/1"
