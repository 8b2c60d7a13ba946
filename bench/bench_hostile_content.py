"""Benchmark: the hostile inputs of issue 14 rows 1, 2, 6, 10 and 11, each one `regenerate`.

    python bench/bench_hostile_content.py [--repeat 2]

Each input is served by a local server (tests/localserver.py) or written to a seed folder;
`regenerate` runs in a subprocess under a wrapper that reports the peak RSS of the run and
its workers (RUSAGE_CHILDREN). Prints wall time, peak RSS, stderr bytes and the exit code,
first for a reference run (one ordinary feed and one ordinary seed file) measured in the same
session, since this machine's speed drifts by up to 2x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.localserver import XML, App, Reply, serve_in_thread  # noqa: E402
from tests.reliability.helpers import REPO, T0, write_config  # noqa: E402
from tests.seedmaker import tgrt_seed  # noqa: E402

_MEASURE = """
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:], stderr=open(sys.argv[1] + ".err", "wb"))
with open(sys.argv[1], "w") as f:
    f.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(rc)
"""


def rss(items: str, prolog: str = "") -> bytes:
    head = f'<?xml version="1.0" encoding="utf-8"?>\n{prolog}<rss version="2.0"><channel>'
    return f"{head}<title>T</title><link>http://127.0.0.1/</link>{items}</channel></rss>".encode()


def item(n: int, extra: str = "", title: str = "") -> str:
    head = f"<item><title>{title or f'Haber {n}'}</title><link>http://127.0.0.1/h/{n}</link>"
    return f"{head}<pubDate>Fri, 02 Jan 2026 08:{n % 60:02d}:00 +0300</pubDate>{extra}</item>"


def seed(tags: str = "#Gündem") -> str:
    return tgrt_seed(title="Etiketli haber", spot="Özet.", giris=T0, body=("Metin.", tags))


JSON_MILLION = json.dumps(
    {"version": "https://jsonfeed.org/version/1.1", "items": [{}] * 1_000_000},
    separators=(",", ":"),
).encode()
CASES: dict[str, tuple[bytes | None, str | None]] = {
    # name: (feed body or None, seed text or None)
    "reference: one feed item, one seed file": (rss(item(1)), seed()),
    "row 1: 50,000 #tags + 50,000 <category>": (
        rss(item(1, "".join(f"<category>Kategori {n}</category>" for n in range(50_000)))),
        seed("\n".join(f"#Etiket{n}" for n in range(50_000))),
    ),
    "row 2: a 400-byte category name": (None, seed("#" + "Ğ" * 200)),
    "row 6: <?foo <a ?> + 1 MB of entity references": (
        rss(
            item(1, title="t" + "&a;" * 300_000),
            '<?foo <a ?><!DOCTYPE rss [<!ENTITY a "' + "x" * 100_000 + '">]>',
        ),
        None,
    ),  # fmt: skip
    "row 10: 700,000 <item/>": (rss("<item/>" * 700_000), None),
    "row 10: 1,000,000 JSON items": (JSON_MILLION, None),
    "row 11: 100,000 nested <blockquote>": (
        rss(
            item(
                1,
                "<description><![CDATA["
                + "<blockquote>" * 100_000
                + "x"
                + "</blockquote>" * 100_000
                + "]]></description>",
            )
        ),
        None,
    ),  # fmt: skip
    "row 11: 50,000 nested lists": (
        rss(
            item(
                1,
                "<description><![CDATA["
                + "<ul><li>" * 50_000
                + "x"
                + "</li></ul>" * 50_000
                + "]]></description>",
            )
        ),
        None,
    ),  # fmt: skip
    "row 11: 5 MiB of nested <blockquote>": (
        rss(
            item(
                1,
                "<description><![CDATA["
                + "<blockquote>" * 190_000
                + "x"
                + "</blockquote>" * 190_000
                + "]]></description>",
            )
        ),
        None,
    ),  # fmt: skip
}


def run_case(app: App, name: str, body: bytes | None, seed_text: str | None) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sources = ""
        if body is not None:
            path = f"/case{abs(hash(name))}"
            kind = "application/feed+json" if body[:1] == b"{" else XML
            app.route(path, Reply(body=body, content_type=kind))
            url = app.base + path
            sources = f"  - name: hostile\n    type: feed\n    url: {url}\n    every: 1s\n"
        cfg = write_config(root, sources=sources)
        if seed_text is not None:
            (root / "seeds" / "a.txt").write_text(seed_text, encoding="utf-8")
        peak_file = root / "peak"
        started = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(peak_file), sys.executable, "-m", "aggregator",
             "regenerate", "-q", "--config", str(cfg)],
            cwd=REPO, timeout=600,
        )  # fmt: skip
        seconds = time.perf_counter() - started
        peak = int(peak_file.read_text()) / 1024
        err = (root / "peak.err").stat().st_size
        categories = root / "out" / "categories"
        feeds = len(list(categories.iterdir())) if categories.is_dir() else 0
        size = f"{len(body) / 2**20:.1f} MiB feed" if body else "seed only"
        figures = f"{seconds:6.2f} s  {peak:6.0f} MiB peak  {err:7d} B stderr"
        return f"{name:48} {size:>15}  {figures}  {feeds:3d} category feeds  exit {proc.returncode}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print(f"nproc {os.cpu_count()}, Python {sys.version.split()[0]}")
    with serve_in_thread(App(), fixtures=False) as app:
        for _ in range(args.repeat):
            for name, (body, seed_text) in CASES.items():
                print(run_case(app, name, body, seed_text), flush=True)


if __name__ == "__main__":
    main()
