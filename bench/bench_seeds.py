"""Time `aggregator regenerate` on N synthetic seed files in the real TGRT layout.

    python bench/bench_seeds.py --files 10000 [--revisions 0.2] [--dir bench/out]

Prints the machine's reference rate (the issue's read + decode + split loop: its speed
drifts, so figures compare only next to it), then files/s and peak memory (max RSS of the
regenerate process) for cold runs, a second run with nothing changed, and de-duplication
throughput on the parsed records. Each cold run sits between two plain serial passes over
the same files in this process (read, parse, pack, insert into a bare SQLite table, one
Atom feed of the newest 50: issue 16's yardstick, without de-duplication, revisions,
per-source/category feeds or worker processes), and its ratio to their mean is printed.

    python bench/bench_seeds.py --files 30000 --runs 5 --checkouts DIR [DIR ...]

Issue 12's speed budget instead: cold `regenerate` of the same files by each checkout in
turn (the order reversed every other round, `--runs` rounds), printing the CPU time of the
main process and of the rest (forkserver and workers, reaped by this process as child
subreaper), with their medians; then, per checkout, the main process's store work alone:
staging, clustering and merging the same files' parsed records into an empty store. A
checkout of an older commit (e.g. `git worktree add /tmp/before 0fcf0cc^1`) runs with this
interpreter, so its dependencies must be installed in it.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.seedmaker import tgrt_seed  # noqa: E402

TZ = ZoneInfo("Europe/Istanbul")
WORDS = (
    "Ankara İstanbul İzmir bakanlık açıklama görüşme ekonomi seçim deprem kar yağışı futbol "
    "meclis bütçe enflasyon faiz ihracat turizm eğitim sağlık ulaşım metro köprü belediye vali "
    "çalışma toplantı karar uyarı rekor artış düşüş yatırım proje"
).split()


def sentence(rnd: random.Random, n: int) -> str:
    """Sentence case as Turkish sites write it: the first letter up, names left alone.
    (str.capitalize() lowers the rest: "İzmir" became "i̇zmir", an i with a combining
    dot that no site publishes and that sent every fold through full NFKC.)"""
    text = " ".join(rnd.choice(WORDS) for _ in range(n))
    return text[:1].replace("i", "İ").upper() + text[1:]


def generate(folder: Path, files: int, revision_share: float, seed: int = 7) -> None:
    rnd = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 1, 1, 6, 0, tzinfo=TZ)
    originals = int(files / (1 + revision_share))
    for i in range(files):
        k = i if i < originals else rnd.randrange(originals)
        r = random.Random(k)
        giris = start + timedelta(minutes=k)
        title = f"{sentence(r, 7)} {k}"
        spot = sentence(r, 25) + "."
        body = tuple(sentence(r, 40) + "." for _ in range(6)) + ("ARA BAŞLIK BURADA",)
        guncelleme = giris + timedelta(minutes=5 + (i - originals if i >= originals else 0))
        if i >= originals:
            title += " (güncellendi)"
        text = tgrt_seed(title=title, spot=spot, giris=giris, guncelleme=guncelleme, body=body)
        (folder / f"{i:07d}.txt").write_text(text, encoding="utf-8")


def run(config: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "aggregator", "regenerate", "--config", str(config)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        sys.exit(f"regenerate failed ({done.returncode}): {done.stderr}")
    return elapsed, done.stdout.strip()


def timed_run(config: Path, label: str, files: int) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    elapsed, summary = run(config)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"{label:>16}: {elapsed:6.2f}s  {files / elapsed:9.0f} files/s  "
          f"peak RSS {max(peak, before) / 1024:.0f} MB  | {summary}", flush=True)  # fmt: skip
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--revisions", type=float, default=0.2, help="share of later revisions")
    ap.add_argument("--dir", type=Path, default=Path(__file__).parent / "out")
    ap.add_argument("--runs", type=int, default=1, help="cold runs (each from scratch)")
    ap.add_argument("--checkouts", type=Path, nargs="+", help="compare their cold CPU time")
    args = ap.parse_args()
    root = args.dir / f"seeds-{args.files}"
    if root.exists():
        shutil.rmtree(root)
    t = time.perf_counter()
    generate(root / "seeds", args.files, args.revisions)
    size = sum(p.stat().st_size for p in (root / "seeds").iterdir())
    print(f"generated {args.files} files in {time.perf_counter() - t:.1f}s ({size / 1e6:.0f} MB)")
    config = root / "config.yaml"
    config.write_text(
        "site: {title: Bench, url: 'http://127.0.0.1:8080/'}\n"
        "output: {dir: out, max_items: 50}\nstate: state/agg.sqlite3\nretention: never\n"
        "sources:\n  - {name: seeds, type: seeds, path: seeds}\n",
        encoding="utf-8",
    )
    print(f"cores: {os.cpu_count()}")
    if args.checkouts:
        cold_cpu(config, args.checkouts, args.runs)
        return
    reference_rate(root / "seeds")
    colds, ratios = [], []
    serial = serial_pass(root / "seeds", root / "serial", args.files)
    for _ in range(args.runs):
        for leftover in ("state", "out"):
            shutil.rmtree(root / leftover, ignore_errors=True)
        colds.append(timed_run(config, "cold", args.files))
        after = serial_pass(root / "seeds", root / "serial", args.files)
        ratios.append(colds[-1] / ((serial + after) / 2))
        print(f"  cold / serial pass (mean of the two around it): {ratios[-1]:.2f}x")
        serial = after
    if args.runs > 1:
        print(f"cold runs: {', '.join(f'{t:.2f}' for t in colds)} s; median "
              f"{statistics.median(colds):.2f} s; ratios to the serial pass "
              f"{', '.join(f'{r:.2f}' for r in ratios)}, median "
              f"{statistics.median(ratios):.2f}x")  # fmt: skip
    timed_run(config, "nothing changed", args.files)
    store = root / "state" / "agg.sqlite3"
    size = sum(p.stat().st_size for p in store.parent.iterdir())
    print(f"store size: {size / 1e6:.1f} MB")
    bench_dedupe(args.files)


_MEASURED = (  # regenerate by the checkout in argv[1], printing its own CPU time at exit
    "import atexit, os, resource, sys; sys.path.insert(0, sys.argv[1]);"
    "atexit.register(lambda: os.write(2, b'CPU %f' % sum(resource.getrusage("
    "resource.RUSAGE_SELF)[:2])));"
    "import aggregator; assert aggregator.__file__.startswith(sys.argv[1]);"
    "from aggregator.cli import main; sys.exit(main(['regenerate', '--config', sys.argv[2]]))"
)


_STORE_WORK = (  # argv: checkout, seed folder; prints stage / cluster / merge CPU, median of 3
    "import statistics, sys, tempfile, time; sys.path.insert(0, sys.argv[1]);"
    "from datetime import UTC, datetime; from pathlib import Path; from zoneinfo import ZoneInfo;"
    "from aggregator import dedupe; from aggregator.records import pack_record;"
    "from aggregator.sources.seedfile import parse_seed; from aggregator.store import Store;"
    "tz, now = ZoneInfo('Europe/Istanbul'), datetime(2026, 6, 1, tzinfo=UTC);"
    "rows = [(dedupe.candidate(i, a), pack_record(a)) for i, a in enumerate(parse_seed("
    "p.read_bytes(), origin=str(p), source='seeds', tz=tz) for p in sorted("
    "Path(sys.argv[2]).iterdir()))]; spent = []\n"
    "for _ in range(3):\n"
    " with tempfile.TemporaryDirectory() as d, Store.open(Path(d) / 's') as store:\n"
    "  with store.transaction(bulk=True):\n"
    "   t0 = time.process_time(); store.stage_begin()\n"
    "   for k in range(0, len(rows), 1000): store.stage(rows[k : k + 1000], now)\n"
    "   t1 = time.process_time(); clusters = dedupe.cluster([c for c, _ in rows])\n"
    "   t2 = time.process_time(); store.merge(clusters, now); t3 = time.process_time()\n"
    "   spent.append((t1 - t0, t2 - t1, t3 - t2))\n"
    "print(' / '.join(f'{statistics.median(x):.3f}' for x in zip(*spent)))"
)


def cold_cpu(config: Path, checkouts: list[Path], rounds: int) -> None:
    """CPU of cold regenerates by each checkout, alternating: main process / the rest."""
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: workers reaped here
    got: dict[Path, list[tuple[float, float]]] = {c: [] for c in checkouts}
    for k in range(rounds):
        for checkout in checkouts if k % 2 == 0 else checkouts[::-1]:
            for leftover in ("state", "out"):
                shutil.rmtree(config.parent / leftover, ignore_errors=True)
            before = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
            done = subprocess.run(
                [sys.executable, "-c", _MEASURED, str(checkout.resolve()), str(config)],
                capture_output=True, text=True, check=False,
            )  # fmt: skip
            while True:  # the forkserver and its workers, orphaned when the run ended
                try:
                    os.wait()
                except ChildProcessError:
                    break
            if done.returncode not in (0, 1) or "CPU " not in done.stderr:
                sys.exit(f"{checkout}: regenerate failed ({done.returncode}): {done.stderr}")
            main = float(done.stderr.rpartition("CPU ")[2])
            rest = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - before - main
            got[checkout].append((main, rest))
            print(f"round {k + 1} {checkout}: main {main:.2f} s, rest {rest:.2f} s", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f}")
    for checkout, runs in got.items():
        main, rest = (statistics.median(x) for x in zip(*runs, strict=True))
        print(f"{checkout}: median main {main:.2f} s / rest {rest:.2f} s (total {main + rest:.2f})")
    for checkout in checkouts:
        work = subprocess.run(
            [sys.executable, "-c", _STORE_WORK, str(checkout.resolve()),
             str(config.parent / "seeds")],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        print(f"{checkout}: the main process's store work, stage / cluster / merge: {work} s")


def reference_rate(folder: Path, limit: int = 30_000) -> None:
    """The issue's yardstick for this machine right now: read, decode and split seed files
    on one core ("about 43,000 files/s" when it was written). The machine's speed drifts,
    so figures are only comparable next to this one."""
    paths = sorted(folder.iterdir())[:limit]
    started = time.perf_counter()
    for path in paths:
        path.read_bytes().decode("utf-8").splitlines()
    rate = len(paths) / (time.perf_counter() - started)
    print(f"reference: read + decode + split {rate:,.0f} files/s on one core (issue: ~43,000)")


def serial_pass(folder: Path, scratch: Path, files: int) -> float:
    """Issue 16's reference for a cold `regenerate`: one process, one core, no
    de-duplication: read each file, parse it, pack its record, insert it into a bare SQLite
    table (one transaction), then write one Atom feed of the newest 50."""
    import hashlib
    import sqlite3

    from aggregator.model import Entry
    from aggregator.publish import Site, atom_bytes
    from aggregator.records import article_from_json, pack_record, unpack_record
    from aggregator.sources.seedfile import parse_seed

    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    site = Site(title="Bench", url="http://127.0.0.1:8080/", language="tr", timezone=TZ)
    started = time.perf_counter()
    conn = sqlite3.connect(scratch / "plain.sqlite3", isolation_level=None)
    conn.execute("CREATE TABLE a (path TEXT PRIMARY KEY, published TEXT, record BLOB)")
    conn.execute("CREATE INDEX a_by_published ON a (published)")
    conn.execute("BEGIN")
    for path in sorted(folder.iterdir()):
        article = parse_seed(path.read_bytes(), origin=str(path), source="seeds", tz=TZ)
        conn.execute("INSERT OR REPLACE INTO a VALUES (?, ?, ?)",
                     (str(path), article.published.isoformat(), pack_record(article)))  # fmt: skip
    conn.execute("COMMIT")
    rows = conn.execute("SELECT path, record FROM a ORDER BY published DESC LIMIT 50").fetchall()
    entries = [Entry(id="urn:sha1:" + hashlib.sha1(p.encode()).hexdigest(),
                     article=article_from_json(unpack_record(r))) for p, r in rows]  # fmt: skip
    (scratch / "atom.xml").write_bytes(atom_bytes(site, entries))
    conn.close()
    elapsed = time.perf_counter() - started
    print(f"{'serial pass':>16}: {elapsed:6.2f}s  {files / elapsed:9.0f} files/s  "
          "(read + parse + store + Atom, one process)", flush=True)  # fmt: skip
    return elapsed


def bench_dedupe(n: int) -> None:
    """De-duplication alone: match keys (Turkish folding) + clustering on n records, 20% dups."""
    from aggregator import dedupe
    from aggregator.model import Article

    rnd = random.Random(3)
    start = datetime(2026, 1, 1, 6, 0, tzinfo=TZ)
    originals = int(n / 1.2)
    articles = []
    for i in range(n):
        k = i if i < originals else rnd.randrange(originals)
        r = random.Random(k)
        t = start + timedelta(minutes=k)
        articles.append(Article(title=f"{sentence(r, 7)} {k}", summary=sentence(r, 25),
                                published=t, updated=t + timedelta(minutes=i % 7),
                                source="seeds", origin=str(i)))  # fmt: skip
    t0 = time.perf_counter()
    cands = [dedupe.candidate(i, a) for i, a in enumerate(articles)]
    t1 = time.perf_counter()
    groups = dedupe.cluster(cands)
    t2 = time.perf_counter()
    print(f"dedupe on {n} records: keys {n / (t1 - t0):,.0f}/s, clustering {n / (t2 - t1):,.0f}/s, "
          f"together {n / (t2 - t0):,.0f} records/s -> {len(groups)} articles")  # fmt: skip


if __name__ == "__main__":
    main()
