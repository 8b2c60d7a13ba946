"""Text matching scores only the anchor peers that share a sampled hash (`dedupe.sharing`):
the articles it joins, and every plan, are those of scoring every pair."""

from __future__ import annotations

import random
import struct
from collections.abc import Sequence
from dataclasses import replace
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator import dedupe
from aggregator.model import Article
from aggregator.signature import sampled, signature, similarity
from tests import revstream


def _score_every_pair(
    peers: Sequence[tuple[dedupe.Node, dedupe.Node]], signatures: object
) -> list[tuple[dedupe.Node, dedupe.Node]]:
    return list(peers)  # what join scored before: every pair


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
)
def test_scoring_only_pairs_sharing_a_hash_gives_the_plans_of_scoring_every_pair(
    seed: int, stories: int, events: int, minutes: int, limit: int, stored_share: int
) -> None:
    articles = _records(seed, stories, events, minutes)
    clusters = dedupe.cluster([dedupe.candidate(i, a) for i, a in enumerate(articles)])
    # some clusters play stored articles (compared with this run's as the store pairs them)
    stored = {f"s{i}": g for i, g in enumerate(clusters) if stored_share and i % 4 < stored_share}
    run = [g for i, g in enumerate(clusters) if f"s{i}" not in stored]
    signatures: dict[dedupe.Node, list[bytes]] = {
        i: [signature(articles[c.ref]) for c in g] for i, g in enumerate(run)
    }
    signatures.update({s: [signature(articles[c.ref]) for c in g] for s, g in stored.items()})
    peers = dedupe.anchor_peers(run, limit)
    peers += [(i, s) for i in range(min(len(run), limit)) for s in list(stored)[:limit]]
    held: dict[dedupe.Node, dedupe.Guids] = {i: dedupe.guids(g) for i, g in enumerate(run)}
    held.update({s: dedupe.guids(g) for s, g in stored.items()})

    fast = dedupe.join(len(run), {}, peers, signatures, held)
    store_way = dedupe.join(len(run), {}, dedupe.sharing(peers, signatures), signatures, held)
    with mock.patch.object(dedupe, "SHARING_BATCH", 3):  # parts read a few at a time
        batched = dedupe.join(len(run), {}, peers, signatures, held)
    plans = dedupe.decide(run, {}, {}, dedupe.anchor_peers(run, limit), signatures)
    with mock.patch.object(dedupe, "sharing", _score_every_pair):
        every = dedupe.join(len(run), {}, peers, signatures, held)
        every_plans = dedupe.decide(run, {}, {}, dedupe.anchor_peers(run, limit), signatures)
    assert fast == every == batched
    # pairs left out name fewer stored articles, in another order: the same articles
    assert [(m, sorted(s)) for m, s in store_way] == [(m, sorted(s)) for m, s in every]
    assert plans == every_plans


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


def test_peers_without_a_comparable_signature_share_nothing() -> None:
    few = struct.pack("<BII", 2, 3, 7)  # 3 shingles: too few to compare, even with itself
    assert similarity(few, few) == 0.0
    assert dedupe.sharing([(0, 1), (1, "a")], {0: [b""], 1: [few], "a": [few]}) == []
    assert dedupe.join(2, {}, [(0, 1)], {}) == [([0], []), ([1], [])]
