"""Which anchor peers are one article by text: of the pairs of records (or stored articles)
sharing a GİRİŞ anchor, those whose signatures `similar` finds alike. Pure.

The pairs come in groups, as the anchors make them: every pair within a group of this run's
clusters (a minute's first MAX_PEERS), or every pair across a group's clusters and the
stored articles of its anchor. A group's pairs are never listed one by one (a busy first
pass has 843,200 of them, most between different articles): its nodes' sampled hashes are
sorted together, the pairs of signatures sharing one fall out of each run of equal hashes
with how many they share, and `similarity` follows from that count in numpy (a pair it
cannot settle there, such as two of equal shingle counts whose order by bytes would decide,
is scored by `similarity` itself), so the pairs found alike, and their order, are exactly
those of scoring every pair (tests/test_dedupe_sharing.py).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from aggregator.signature import sampled, similarity

SIMILAR = 0.5  # overlap of word shingles from which same-anchor texts are one article
ALIKE_BATCH = 4096  # signatures `alike` compares at once (whole groups)
MAX_SHARED = 1 << 21  # signature pairs sharing a hash `alike` lists at once (~100 MB of arrays)

Node = int | str  # a cluster of this run (its index) or a stored article (its id)
Group = tuple[Sequence[Node], Sequence[Node]]
"""(nodes, others): with no others, every pair of two nodes (in order: the first node with
each later one, then the second...); else every (node, other) pair, node by node. A group's
nodes are distinct."""


def similar(a: Sequence[bytes], b: Sequence[bytes]) -> bool:
    """Any of one node's signatures similar to any of the other's: one article by text."""
    return any(similarity(x, y) >= SIMILAR for x in a for y in b)


def pairs(groups: Sequence[Group]) -> list[tuple[Node, Node]]:
    """Every pair of the groups, in their order (what `alike` looks among)."""
    out: list[tuple[Node, Node]] = []
    for nodes, others in groups:
        if others:
            out += [(a, b) for a in nodes for b in others]
        else:
            out += [(a, b) for x, a in enumerate(nodes) for b in nodes[x + 1 :]]
    return out


def alike(
    groups: Sequence[Group], signatures: Mapping[Node, Sequence[bytes]]
) -> list[tuple[Node, Node]]:
    """The pairs of `groups` (`pairs`' order; a pair in two groups, twice) whose signatures
    are `similar`. Whole groups are read about ALIKE_BATCH signatures at a time; a batch
    whose signatures share hashes in more than MAX_SHARED pairs (many revisions of one
    wire story: the pairs grow as their square) is read group by group, and a group that
    alone would, is scored pair by pair: memory stays bounded whatever the texts."""
    out: list[tuple[Node, Node]] = []
    batch = _Batch()
    for nodes, others in groups:
        batch.add(nodes, others, signatures)
        if len(batch.sigs) >= ALIKE_BATCH:
            out += _alike_in(batch, signatures)
            batch = _Batch()
    return out + _alike_in(batch, signatures)


def _alike_in(batch: _Batch, signatures: Mapping[Node, Sequence[bytes]]) -> list[tuple[Node, Node]]:
    found = batch.alike()
    if found is not None:
        return found
    out: list[tuple[Node, Node]] = []
    for every, size in zip(batch.groups, batch.sizes, strict=True):
        nodes, others = every[:size], every[size:]
        one = _Batch()
        one.add(nodes, others, signatures)
        got = one.alike() if len(batch.groups) > 1 else None
        if got is None:  # scored as `pairs` lists them: what the batch finds, by definition
            got = [(a, b) for a, b in pairs([(nodes, others)])
                   if similar(signatures.get(a, ()), signatures.get(b, ()))]  # fmt: skip
        out += got
    return out


class _Batch:
    """Groups' signatures, one entry each, numbered group by group, node by node."""

    def __init__(self) -> None:
        self.groups: list[tuple[Node, ...]] = []  # each group's nodes, then its others
        self.sizes: list[int] = []  # each group's nodes (the others follow them)
        self.others: list[int] = []  # each group's others (none: every pair of its nodes)
        self.sigs: list[bytes] = []
        self.per_node: list[int] = []  # signatures of each node of each group

    def add(
        self, nodes: Sequence[Node], others: Sequence[Node],
        signatures: Mapping[Node, Sequence[bytes]],
    ) -> None:  # fmt: skip
        every = (*nodes, *others)
        # a node's equal signatures (revisions of one text) are one: `similar` is any of them
        each = [list(dict.fromkeys(map(bytes, signatures.get(node, ())))) for node in every]
        self.groups.append(every)
        self.sizes.append(len(nodes))
        self.others.append(len(others))
        self.per_node += map(len, each)
        self.sigs += itertools.chain.from_iterable(each)

    def alike(self) -> list[tuple[Node, Node]] | None:
        """The batch's alike pairs; None when its signatures share hashes in more than
        MAX_SHARED pairs (listing them would take memory as their square)."""
        import numpy as np  # here: a run that compares no texts never loads numpy

        hashes, which = sampled(self.sigs)  # each signature's ascending (checked in _decided)
        if len(hashes) < 2:
            return []
        bits = np.uint64(max(len(self.sigs) - 1, 1).bit_length())  # a tagged hash: 34 bits
        keys = np.sort((hashes << bits) | which.astype(np.uint64))  # by hash, then entry
        entry = (keys & ((np.uint64(1) << bits) - np.uint64(1))).astype(np.int64)
        # each entry's group, its node's place there, and whether that node is an other
        sizes, others = np.array(self.sizes), np.array(self.others)
        per_node = np.array(self.per_node, dtype=np.int64)
        nodes = sizes + others
        node_group = np.repeat(np.arange(len(nodes)), nodes)
        node_place = np.arange(len(node_group)) - np.repeat(np.cumsum(nodes) - nodes, nodes)
        group = np.repeat(node_group, per_node)
        place = np.repeat(node_place, per_node)
        other = place >= sizes[group]
        h, g = keys >> bits, group[entry]
        same = (h[1:] == h[:-1]) & (g[1:] == g[:-1])  # a hash met again in its group
        edges = np.flatnonzero(np.diff(np.concatenate(([0], same.view(np.int8), [0]))))
        run = edges[1::2] - edges[::2] + 1  # entries of each run of one (group, hash)
        if int((run * (run - 1) // 2).sum()) > MAX_SHARED:
            return None
        # every two entries of a run of one (group, hash): entries i and i + step
        firsts, seconds = [], []
        live = np.flatnonzero(same)
        step = 1
        while len(live):
            firsts.append(entry[live])
            seconds.append(entry[live + step])
            live = live[live + step < len(same)]
            live = live[same[live + step]]
            step += 1
        if not firsts:
            return []
        first, second = np.concatenate(firsts), np.concatenate(seconds)  # first < second
        paired = (place[first] != place[second]) & (  # two nodes, not one node's two
            (others[group[first]] == 0) | (other[first] != other[second])  # node and other
        )
        width = np.int64(len(self.sigs))
        found, shared = np.unique(first[paired] * width + second[paired], return_counts=True)
        if not len(found):
            return []
        a, b = found // width, found % width
        keep = _decided(a, b, shared, hashes, which, self.sigs)
        ga, pa, pb = group[a[keep]], place[a[keep]], place[b[keep]]
        order = np.lexsort((pb, pa, ga))  # the pairs' order
        out: list[tuple[Node, Node]] = []
        last = (-1, -1, -1)
        for here in zip(ga[order].tolist(), pa[order].tolist(), pb[order].tolist(), strict=True):
            if here != last:  # once per node pair (any two of their signatures alike)
                last = here
                every = self.groups[here[0]]
                out.append((every[here[1]], every[here[2]]))
        return out


def _decided(a: Any, b: Any, shared: Any, hashes: Any, which: Any, sigs: Sequence[bytes]) -> Any:
    """For signature pairs (entries a[i], b[i]) sharing shared[i] sampled hashes: is their
    `similarity` at least SIMILAR? It is the hashes they share over `seen`: the hashes of the
    one of fewer shingles up to the other's largest when the other kept only some of its
    own, else all of them. Of equal shingle counts, their bytes' order names the smaller:
    when the two readings disagree, and for signatures whose hashes do not rise, the pair is
    scored by `similarity` itself."""
    import numpy as np

    start = np.searchsorted(which, np.arange(len(sigs) + 1))  # each entry's sampled hashes
    kept = np.diff(start)
    count = np.zeros(len(sigs), dtype=np.int64)  # each signature's shingles
    involved = np.unique(np.concatenate((a, b))).tolist()
    count[involved] = [struct.unpack_from("<I", sigs[e], len(sigs[e]) % 4)[0] for e in involved]
    rising = np.ones(len(hashes), dtype=np.bool_)
    rising[1:] = (which[1:] != which[:-1]) | (hashes[1:] > hashes[:-1])
    odd = np.zeros(len(sigs), dtype=np.bool_)
    odd[which[~rising]] = True

    def alike_as(small: Any, large: Any) -> Any:
        span = kept[small]
        heads = np.cumsum(span) - span  # where each pair's run of the smaller's hashes begins
        at = np.repeat(start[small] - heads, span) + np.arange(int(span.sum()))
        largest = np.repeat(hashes[start[large + 1] - 1], span)
        upto = np.add.reduceat((hashes[at] <= largest).astype(np.int64), heads)
        seen = np.where(count[large] > kept[large], upto, span)
        # similarity's own arithmetic: a float quotient (correctly rounded, as Python's)
        return (seen > 0) & (shared / np.maximum(seen, 1) >= SIMILAR)

    one, other = alike_as(a, b), alike_as(b, a)
    decided = np.where(count[a] < count[b], one, other)
    unsure = ((count[a] == count[b]) & (one != other)) | odd[a] | odd[b]
    for i in np.flatnonzero(unsure).tolist():
        decided[i] = similarity(sigs[int(a[i])], sigs[int(b[i])]) >= SIMILAR
    return decided
