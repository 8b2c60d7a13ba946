"""De-duplication decisions on N records with 20% revisions, half of them rewrites that
share no exact key (title, spot and first paragraph each lightly edited), two articles per
GİRİŞ minute (`--per-minute`: 64 is a busy first pass's worst, every pair of a minute
compared by text); and the precision/recall of the text-similarity threshold on revision
streams.

    python bench/bench_dedupe.py [--records 100000] [--streams 300] [--per-minute 2]

Prints, from the same run: exact keys only (match keys + clustering, the reference: what
de-duplication did before text similarity) and the whole decision (keys, clustering,
signatures of the clusters sharing a minute from their packed records, joining, a plan per
article), in records/s, with how many articles each found against the truth; the seconds of
signatures and of finding the alike pairs and joining, beside scoring every peer pair (the
reference, which must find the same pairs); and the process time of one record's
candidate (its match keys) beside one signature.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from aggregator import dedupe, peers  # noqa: E402
from aggregator.model import Article  # noqa: E402
from aggregator.records import article_from_json, pack_record, unpack_record  # noqa: E402
from bench.bench_seeds import WORDS, sentence  # noqa: E402
from tests import revstream  # noqa: E402

TZ = ZoneInfo("Europe/Istanbul")


def _edit(text: str, r: random.Random) -> str:
    words = text.split()
    words[r.randrange(len(words))] = r.choice(WORDS)
    return " ".join(words)


def records(n: int, per_minute: int = 2) -> tuple[list[Article], int]:
    rnd = random.Random(3)
    start = datetime(2026, 1, 1, 6, 0, tzinfo=TZ)
    originals = int(n / 1.2)
    out = []
    for i in range(n):
        k = i if i < originals else rnd.randrange(originals)
        r = random.Random(k)
        t = start + timedelta(minutes=k // per_minute)  # articles per GİRİŞ minute
        title, spot = f"{sentence(r, 7)} {k}", sentence(r, 25) + "."
        body = [sentence(r, 40) + "." for _ in range(6)]
        if i >= originals:
            if i % 2:  # a revision sharing the spot
                title += " (güncellendi)"
            else:  # a rewrite: no exact key left
                title, spot, body[0] = _edit(title, rnd), _edit(spot, rnd), _edit(body[0], rnd)
        out.append(Article(
            title=title, summary=spot, content_html="".join(f"<p>{p}</p>" for p in body),
            published=t, updated=t + timedelta(minutes=i % 7 + (i >= originals)),
            source="seeds", origin=str(i),
        ))  # fmt: skip
    return out, originals


def decide_all(cands: list[dedupe.Candidate], packed: list[bytes]) -> int:
    clusters = dedupe.cluster(cands)
    groups = dedupe.anchor_groups(clusters)
    nodes = {n for ids, _ in groups for n in ids}
    t0 = time.perf_counter()
    signatures: dict[peers.Node, list[bytes]] = {
        i: [dedupe.signature(article_from_json(unpack_record(packed[c.ref])))
            for c in clusters[i]]
        for i in nodes
    }  # fmt: skip
    t1 = time.perf_counter()
    alike = peers.alike(groups, signatures)
    joined = dedupe.join(len(clusters), {}, alike)
    t2 = time.perf_counter()
    plans = [dedupe.plan([c for i in members for c in clusters[i]], []) for members, _ in joined]
    pairs = peers.pairs(groups)
    t3 = time.perf_counter()
    every = [(a, b) for a, b in pairs if peers.similar(signatures[a], signatures[b])]
    t4 = time.perf_counter()
    assert every == alike
    print(
        f"  signatures {t1 - t0:.2f} s; alike + join {t2 - t1:.2f} s ({len(alike):,} of "
        f"{len(pairs):,} peer pairs alike); scoring every pair (reference) {t4 - t3:.2f} s"
    )
    return len(plans)


def bench(n: int, per_minute: int) -> None:
    articles, truth = records(n, per_minute)
    packed = [pack_record(a) for a in articles]
    t0 = time.perf_counter()
    cands = [dedupe.candidate(i, a) for i, a in enumerate(articles)]
    t1 = time.perf_counter()
    exact = len(dedupe.cluster(cands))
    t2 = time.perf_counter()
    found = decide_all(cands, packed)
    t3 = time.perf_counter()
    print(f"cores: {os.cpu_count()}; {n} records, {truth} articles in truth, "
          f"{per_minute} per minute")  # fmt: skip
    print(f"exact keys only (reference): {n / (t2 - t0):9,.0f} records/s -> {exact} articles")
    print(f"whole decision:              {n / (t1 - t0 + t3 - t2):9,.0f} records/s -> "
          f"{found} articles")  # fmt: skip
    sample = articles[:2000]
    per_record: dict[str, float] = {}
    works = {"candidate (match keys)": lambda a: dedupe.candidate(0, a),
             "signature": dedupe.signature}  # fmt: skip
    for label, work in works.items():
        best = float("inf")
        for _ in range(5):
            started = time.process_time()
            for a in sample:
                work(a)
            best = min(best, time.process_time() - started)
        per_record[label] = best / len(sample) * 1e6
    print("one record, process time (best of 5): "
          + ", ".join(f"{k} {v:.1f} us" for k, v in per_record.items()))  # fmt: skip


def precision_recall(streams: int) -> None:
    """Every pair of records sharing a GİRİŞ minute in random revision streams, by kind
    (two scrapes; a scrape and the site's summary-only feed item): same story or not,
    against the threshold. Pairs are scored alone: in a run, keys and transitivity also
    join (a feed item of the first revision meets a scrape rewritten since through its URL
    or title)."""
    scored: dict[str, list[tuple[float, bool]]] = {"scrape-scrape": [], "feed-scrape": []}
    for seed in range(streams):
        events = revstream.stream(random.Random(seed), stories=8, events=40)
        recs = [(dedupe.anchor(a), a.origin.split("-")[0], a.source, dedupe.signature(a))
                for a in revstream.records(events)]  # fmt: skip
        for i, (anchor_a, story_a, source_a, sig_a) in enumerate(recs):
            for anchor_b, story_b, source_b, sig_b in recs[i + 1 :]:
                kind = "-".join(sorted((source_a, source_b))).replace("seeds", "scrape")
                if anchor_a == anchor_b and kind in scored:
                    scored[kind].append((dedupe.similarity(sig_a, sig_b), story_a == story_b))
    for kind, pairs in scored.items():
        same = sum(1 for _, s in pairs if s)
        print(
            f"{kind}: {len(pairs)} same-minute pairs from {streams} streams ({same} of one story)"
        )
        for threshold in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
            tp = sum(1 for v, s in pairs if v >= threshold and s)
            fp = sum(1 for v, s in pairs if v >= threshold and not s)
            mark = "  <- SIMILAR" if threshold == dedupe.SIMILAR else ""
            print(f"  threshold {threshold:.1f}: precision {tp / max(tp + fp, 1):.4f}, "
                  f"recall {tp / max(same, 1):.4f}{mark}")  # fmt: skip
        lowest = min((v for v, s in pairs if s), default=1.0)
        highest = max((v for v, s in pairs if not s), default=0.0)
        print(f"  lowest score of one story {lowest:.3f}; highest of two stories {highest:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--streams", type=int, default=300)
    ap.add_argument("--per-minute", type=int, default=2, help="articles per GİRİŞ minute")
    args = ap.parse_args()
    if args.streams:
        precision_recall(args.streams)
    bench(args.records, args.per_minute)


if __name__ == "__main__":
    main()
