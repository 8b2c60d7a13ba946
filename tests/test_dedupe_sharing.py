"""Text matching finds the alike pairs of anchor peers without listing the pairs
(`peers.alike`): the pairs it finds, their order, the articles joined and every plan are
those of scoring every pair with `similarity`."""

from __future__ import annotations

import random
import struct
from dataclasses import replace
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import dedupe, peers
from aggregator.model import Article
from aggregator.signature import SIGNATURE_SIZE, sampled, signature, similarity
from tests import revstream


def _every_pair(
    groups: list[peers.Group], signatures: dict[peers.Node, list[bytes]]
) -> list[tuple[peers.Node, peers.Node]]:
    """What deciding did before: score every pair."""
    return [(a, b) for a, b in peers.pairs(groups)
            if peers.similar(signatures.get(a, ()), signatures.get(b, ()))]  # fmt: skip


def _records(seed: int, stories: int, events: int, minutes: int) -> list[Article]:
    """A revision stream whose stories all fall in `minutes` GİRİŞ minutes (many different
    articles per minute, sharing the stream's small vocabulary and its boilerplate), with
    some feed copies under guids of their own (kept apart, so the order of joins counts)."""
    rnd = random.Random(seed)
    out = []
    for i, a in enumerate(revstream.records(revstream.stream(rnd, stories, events))):
        story = int(a.origin[1:].split("-")[0])
        at = revstream.T0.replace(minute=story * 7 % minutes)
        a = replace(a, published=at, updated=max(at, a.updated))
        if a.guid and i % 3 == 0:
            a = replace(a, guid=f"{a.guid}#{i}")
        out.append(a)
    return out


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    stories=st.integers(2, 24),
    events=st.integers(0, 60),
    minutes=st.integers(1, 3),
    limit=st.integers(2, dedupe.MAX_PEERS),
    stored_share=st.integers(0, 3),
    threshold=st.sampled_from([peers.SIMILAR, 0.2, 0.05]),
)
def test_alike_pairs_are_those_of_scoring_every_pair(
    seed: int, stories: int, events: int, minutes: int, limit: int, stored_share: int,
    threshold: float,
) -> None:  # fmt: skip
    articles = _records(seed, stories, events, minutes)
    clusters = dedupe.cluster([dedupe.candidate(i, a) for i, a in enumerate(articles)])
    # some clusters play stored articles (compared with this run's as the store groups them)
    stored = {f"s{i}": g for i, g in enumerate(clusters) if stored_share and i % 4 < stored_share}
    run = [g for i, g in enumerate(clusters) if f"s{i}" not in stored]
    signatures: dict[peers.Node, list[bytes]] = {
        i: [signature(articles[c.ref]) for c in g] for i, g in enumerate(run)
    }
    signatures.update({s: [signature(articles[c.ref]) for c in g] for s, g in stored.items()})
    groups = dedupe.anchor_groups(run, limit)
    if stored:
        groups.append((list(range(min(len(run), limit))), list(stored)[:limit]))
    held: dict[peers.Node, dedupe.Guids] = {i: dedupe.guids(g) for i, g in enumerate(run)}
    held.update({s: dedupe.guids(g) for s, g in stored.items()})

    with mock.patch.object(peers, "SIMILAR", threshold):
        every = _every_pair(groups, signatures)
        found = peers.alike(groups, signatures)
        with mock.patch.object(peers, "ALIKE_BATCH", 3):  # groups read a few at a time
            batched = peers.alike(groups, signatures)
        own = dedupe.anchor_groups(run, limit)  # no stored articles: those of this run only
        plans = dedupe.decide(run, {}, {}, own, signatures)
        every_own = _every_pair(own, signatures)
    assert found == every == batched
    assert dedupe.join(len(run), {}, found, held) == dedupe.join(len(run), {}, every, held)
    every_plans = dedupe.distinct_ids([
        dedupe.plan([c for i in members for c in run[i]], [])
        for members, _ in dedupe.join(len(run), {}, every_own, dedupe.held_guids(run, {}))
    ], {})  # fmt: skip
    assert plans == every_plans


def _odd_signature(rnd: random.Random, universe: int) -> bytes:
    """A signature of any layout `similarity` reads: v2 or v1, its count above or below
    the hashes it keeps, hashes usually rising (as made), sometimes not, or repeated."""
    count = rnd.choice([rnd.randint(0, 12), rnd.randint(8, 80), rnd.randint(60, 200)])
    kept = min(count, SIGNATURE_SIZE) if rnd.random() < 0.8 else rnd.randint(1, 70)
    hashes = sorted(rnd.sample(range(universe), min(kept, universe)))
    if rnd.random() < 0.05:
        rnd.shuffle(hashes)
    if rnd.random() < 0.05 and hashes:
        hashes.append(hashes[-1])
    head = rnd.choice([b"\x02", b"\x02", b"\x02", b"", b"\x02\x00"])
    return head + struct.pack(f"<{len(hashes) + 1}I", count, *hashes)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 100_000), universe=st.sampled_from([40, 120, 1000]))
def test_alike_scores_every_signature_layout_as_similarity_does(seed: int, universe: int) -> None:
    rnd = random.Random(seed)
    signatures: dict[peers.Node, list[bytes]] = {}
    for n in range(30):
        node: peers.Node = n if n % 3 else f"s{n}"
        base = _odd_signature(rnd, universe)
        # a node's signatures: some alike one another, some copies with equal counts
        signatures[node] = [base if rnd.random() < 0.3 else _odd_signature(rnd, universe)
                            for _ in range(rnd.choice([0, 1, 1, 1, 2, 3]))]  # fmt: skip
    nodes = list(signatures)
    groups: list[peers.Group] = []
    for _ in range(rnd.randint(1, 6)):
        chosen = rnd.sample(nodes, rnd.randint(2, 12))
        if rnd.random() < 0.5:
            groups.append((chosen, ()))
        else:
            cut = rnd.randint(1, len(chosen) - 1)
            groups.append((chosen[:cut], chosen[cut:]))
    threshold = rnd.choice([peers.SIMILAR, 0.25, 0.75, 1.0])
    with mock.patch.object(peers, "SIMILAR", threshold):
        every = _every_pair(groups, signatures)
        assert peers.alike(groups, signatures) == every
        with mock.patch.object(peers, "ALIKE_BATCH", 2):
            assert peers.alike(groups, signatures) == every
        for most in (0, rnd.randint(1, 200)):  # batches read group by group, pair by pair
            with mock.patch.object(peers, "MAX_SHARED", most):
                assert peers.alike(groups, signatures) == every


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), old_format=st.booleans())
def test_signatures_sharing_no_sampled_hash_have_similarity_zero(
    seed: int, old_format: bool
) -> None:
    articles = _records(seed, 12, 40, 1)
    sigs = [signature(a) for a in articles]
    if old_format:  # v1's layout (no version byte): never alike a v2 signature
        sigs += [s[1:] for s in sigs[::3]]
    for a in sigs:
        for b in sigs:
            if set(sampled([a])[0].tolist()).isdisjoint(sampled([b])[0].tolist()):
                assert similarity(a, b) == 0.0
            else:
                assert similarity(a, b) > 0.0


def test_peers_without_a_comparable_signature_are_not_alike() -> None:
    few = struct.pack("<BII", 2, 3, 7)  # 3 shingles: too few to compare, even with itself
    assert similarity(few, few) == 0.0
    groups: list[peers.Group] = [([0, 1], ()), ([1], ["a"])]
    assert peers.alike(groups, {0: [b""], 1: [few], "a": [few]}) == []
    assert dedupe.join(2, {}, [], {}) == [([0], []), ([1], [])]


def test_many_revisions_of_one_wire_story_stay_in_bounded_memory() -> None:
    """64 copies of one wire story in one GİRİŞ minute, each cluster holding 12 revisions
    (a cold archive run): their signatures share hashes in millions of pairs, which are
    never listed all at once; the pairs found are still those of scoring every pair."""
    import tracemalloc

    rnd = random.Random(7)
    story = rnd.sample(range(2**32), SIGNATURE_SIZE)

    def revision() -> bytes:
        hashes = set(story)
        for _ in range(4):  # an edit: a few shingles of its own
            hashes.discard(rnd.choice(story))
            hashes.add(rnd.randrange(2**32))
        return b"\x02" + struct.pack(f"<{len(hashes) + 1}I", 300, *sorted(hashes))

    signatures: dict[peers.Node, list[bytes]] = {
        n: [revision() for _ in range(12)] for n in range(dedupe.MAX_PEERS)
    }
    signatures[0] += signatures[0]  # and repeats of one text: one signature to compare
    groups: list[peers.Group] = [(list(range(dedupe.MAX_PEERS)), ())]
    tracemalloc.start()
    try:
        found = peers.alike(groups, signatures)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found == _every_pair(groups, signatures)
    assert len(found) == dedupe.MAX_PEERS * (dedupe.MAX_PEERS - 1) // 2
    assert peak < 150_000_000, peak
