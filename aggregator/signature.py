"""Text signatures: a compact sketch of an article's whole text, so that two revisions
sharing their GİRİŞ minute can be told one article by text alone (dedupe's last match rule)
without keeping any body in memory. Pure.

A signature (format v2) is a version byte (2), then little-endian uint32s: the number of
distinct 3-word shingles among the first SIGNATURE_WORDS words of title, spot and body, and
the SIGNATURE_SIZE smallest of their hashes (a bottom-k MinHash). Words are fold()'s: runs
of letters and digits after NFKC and Turkish lower case, leading labels stripped. A word is
hashed as a polynomial over its code points (mod 2^64), a shingle's hash is the high 32 bits
of a mix of its three word hashes, all in numpy, over many articles' texts at once
(`signatures`: a feed's items, where they are parsed), which spreads numpy's per-call cost
over them (hashing each shingle from Python, as v1 did, cost four times a lone v2 one).

Format v1 (stores written before): the same layout without the version byte, over CRC-32s
of the shingles' UTF-8. `is_current` tells them apart (a v1 signature is 4n bytes long, a v2
one 4n + 1); a store recomputes an old one from the article's record when it next needs it.
"""

from __future__ import annotations

import bisect
import html
import re
import struct
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from aggregator.model import Article
from aggregator.normalize import fold_case

VERSION = 2
SIGNATURE_WORDS = 300  # words of title + spot + body a signature reads (a bound on work)
SIGNATURE_HTML = 20_000  # characters of the body's HTML read for them (the same bound)
SIGNATURE_SIZE = 64  # bottom-k sketch: the k smallest shingle hashes
MIN_SHINGLES = 8  # fewer says too little to call two texts the same article
BATCH_POINTS = 1 << 18  # code points `signatures` reads in one pass (its tables: 4 MiB)

_TAG = re.compile(r"<[^>]*>")
_HEAD = struct.Struct("<BI")  # the version byte, the count of distinct shingles
_P = 0x100000001B3  # the polynomial's base (odd, so invertible mod 2^64)
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0xFF51AFD7ED558CCD)  # odd 64-bit constants


def signature(article: Article) -> bytes:
    """The article's signature; empty for a record dated when seen (GİRİŞ is no anchor
    for it)."""
    return signatures((article,))[0]


def signatures(articles: Sequence[Article]) -> list[bytes]:
    """Each article's signature, in one numpy pass over all their texts joined by spaces
    (a feed's items, a batch of records): a word never spans two texts, and a word's hash
    does not depend on where it starts (see below), so each is the bytes `signature`
    defines, at a fraction of the cost of a pass per article (numpy's per-call overhead is
    most of a short text's). Texts are taken BATCH_POINTS code points at a time (a bound on
    the tables and buffers)."""
    return _sketches((None if a.published_source == "seen" else signed_text(a) for a in articles),
                     len(articles))  # fmt: skip


def signed_text(article: Article, body: str | None = None) -> str:
    """The folded text an article's signature is made of. `body`: body_text(article)."""
    body = body_text(article) if body is None else body
    return fold_case(f"{article.title} {article.summary} {body}")


def body_text(article: Article) -> str:
    """The body's text as the signature reads it (tags as spaces, entities decoded)."""
    return html.unescape(_TAG.sub(" ", article.content_html[:SIGNATURE_HTML]))


def sketches(texts: Sequence[str | None]) -> list[bytes]:
    """The signature of each signed_text (b"" for None: a record dated when seen)."""
    return _sketches(texts, len(texts))


def _sketches(texts: Iterable[str | None], count: int) -> list[bytes]:
    out = [b""] * count
    batch: list[str] = []
    owners: list[int] = []
    size = 0
    for i, text in enumerate(texts):
        if text is None:
            continue
        batch.append(text)
        owners.append(i)
        size += len(text) + 1
        if size >= BATCH_POINTS:
            _sketch(batch, owners, out)
            batch, owners, size = [], [], 0
    if batch:
        _sketch(batch, owners, out)
    return out


def _sketch(texts: Sequence[str], owners: Sequence[int], out: list[bytes]) -> None:
    """out[owners[t]] = the signature of folded text t."""
    import numpy as np  # here: a run that compares no texts never loads numpy

    joined = " ".join(texts)
    points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    begins = np.cumsum(lengths + 1) - (lengths + 1)  # where each text starts in `joined`
    table, powers, inverses, (a, b, m) = _tables(len(points))
    wordy = np.zeros(len(points) + 2, dtype=np.bool_)  # a non-word either side
    np.take(table, points.astype(np.uint16), out=wordy[1:-1])  # right below U+10000
    if len(points) and points.max() > 0xFFFF:  # beyond the table (rare): Python says
        beyond = np.flatnonzero(points > 0xFFFF)
        wordy[beyond + 1] = [chr(p).isalnum() for p in points[beyond].tolist()]
    edges = np.flatnonzero(wordy[1:] != wordy[:-1])  # where each word starts, ends, ...
    starts, ends = edges[0::2], edges[1::2]
    firsts = np.searchsorted(starts, begins)  # each text's first word
    bounds = np.empty(len(firsts) + 1, dtype=np.int64)  # each text's words: from, to
    bounds[:-1], bounds[-1] = firsts, len(starts)
    counts = bounds[1:] - bounds[:-1]
    if len(counts) and counts.max() > SIGNATURE_WORDS:  # a long text: its first words only
        nth = np.arange(len(starts)) - np.repeat(firsts, counts)
        starts, ends = starts[nth < SIGNATURE_WORDS], ends[nth < SIGNATURE_WORDS]
        counts = np.minimum(counts, SIGNATURE_WORDS)
        firsts = np.cumsum(counts) - counts
    keys = np.zeros(0, dtype=np.uint64)
    if len(starts) >= 3:
        last = int(ends[-1])
        prefix = np.zeros(last + 1, dtype=np.uint64)
        np.cumsum(points[:last] * powers[:last], out=prefix[1:])
        # a word's polynomial from its own start, wherever it sits in `joined`
        words = (prefix[ends] - prefix[starts]) * inverses[starts]
        x = (words[:-2] * a + words[1:-1]) * b + words[2:]
        x ^= x >> np.uint64(31)
        x *= m
        within = np.ones(len(x), dtype=np.bool_)  # three words of one text: not those
        for back in (1, 2):  # ending in the next text's first word or the one after it
            at = firsts[firsts >= back] - back
            within[at[at < len(x)]] = False
        shingles = np.repeat(np.arange(len(texts), dtype=np.uint64), np.maximum(counts - 2, 0))
        keys = (shingles << np.uint64(32)) | (x[within] >> np.uint64(32))  # best-mixed bits
        keys.sort()  # by text, then hash
        if len(keys):  # (none: each text under three words)
            distinct = np.empty(len(keys), dtype=np.bool_)
            distinct[0] = True
            np.not_equal(keys[1:], keys[:-1], out=distinct[1:])
            keys = keys[distinct]  # each distinct once
    of_text = (keys >> np.uint64(32)).astype(np.int64)
    firsts = np.searchsorted(of_text, np.arange(len(texts) + 1)).tolist()
    hashes = (keys & np.uint64(0xFFFFFFFF)).astype("<u4").tobytes()
    head = _HEAD.pack
    for t, owner in enumerate(owners):
        lo, hi = firsts[t], firsts[t + 1]
        out[owner] = head(VERSION, hi - lo) + hashes[4 * lo : 4 * min(hi, lo + SIGNATURE_SIZE)]


def is_current(sig: bytes) -> bool:
    """Made by this version (an empty signature is the same in every version)."""
    return not sig or (len(sig) % 4 == 1 and sig[0] == VERSION)


def similarity(a: bytes, b: bytes) -> float:
    """Estimated share of the smaller text's shingles the other has (the overlap
    coefficient: a summary-only copy is as much the article as its full scrape): of the
    smaller one's sampled hashes up to the other's largest, those the other has (the other
    keeps every hash of its own up to there). Two signatures of different versions sample
    different hashes: never similar."""
    if not a or not b or len(a) % 4 != len(b) % 4:
        return 0.0
    skip = len(a) % 4  # the version byte
    na, *sa = struct.unpack_from(f"<{len(a) // 4}I", a, skip)
    nb, *sb = struct.unpack_from(f"<{len(b) // 4}I", b, skip)
    if (na, a) > (nb, b):  # the same answer in either order
        na, sa, nb, sb = nb, sb, na, sa
    if na < MIN_SHINGLES:
        return 0.0
    # every hash of theirs is known up to their largest (all of them, if none was left out)
    seen = bisect.bisect_right(sa, sb[-1]) if nb > len(sb) else len(sa)
    return len(set(sb).intersection(sa[:seen])) / seen if seen else 0.0


def sampled(sigs: Iterable[bytes]) -> tuple[Any, Any]:
    """The sampled hashes of these signatures that can make one similar to another, each
    tagged with its format (`similarity` compares only signatures of one format), as a
    numpy uint64 array, and which signature each came from (its index): none from one of
    too few shingles (of two, the smaller count decides). Signatures sharing no tagged hash
    have `similarity` 0 exactly: it counts the hashes the two have in common."""
    import numpy as np

    sigs = list(sigs)
    given = [i for i, sig in enumerate(sigs) if len(sig) >= 8]  # not empty, nor hashless
    # each without its version byte: whole little-endian uint32s, its count first
    words = np.frombuffer(b"".join([sigs[i][len(sigs[i]) % 4 :] for i in given]), dtype="<u4")
    lengths = np.fromiter((len(sigs[i]) for i in given), dtype=np.int64, count=len(given))
    sizes = lengths // 4  # uint32s of each: its count, then its hashes
    heads = np.cumsum(sizes) - sizes
    of = np.repeat(np.arange(len(given)), sizes)  # the signature of each uint32
    hashed = np.ones(len(words), dtype=np.bool_)
    hashed[heads] = False
    hashed &= (words[heads] >= MIN_SHINGLES)[of]
    tags = ((lengths - 1) % 4).astype(np.uint64) << np.uint64(32)  # 0 for the current format
    hashes = words[hashed].astype(np.uint64) | tags[of[hashed]]
    return hashes, np.array(given, dtype=np.int64)[of[hashed]]


_cached: list[Any] = []
_cache_lock = threading.Lock()  # the daemon signs on its web loop's and store's threads


def _tables(n: int) -> tuple[Any, Any, Any, tuple[Any, Any, Any]]:
    """str.isalnum of every code point below U+10000 (fold()'s word characters); _P**i
    and its inverse mod 2^64 for i < n at least (grown as needed); the mixing constants.
    Under a lock: a thread growing the tables must not hand another shorter ones."""
    import numpy as np

    with _cache_lock:
        if not _cached:
            table = np.array([chr(i).isalnum() for i in range(0x10000)], dtype=np.bool_)
            _cached[:] = [table, (), (), tuple(np.uint64(k) for k in _MIX)]
        if len(_cached[1]) < n:
            size = max(n, 4096, 2 * len(_cached[1]))
            powers = np.empty(size, dtype=np.uint64)
            inverses = np.empty(size, dtype=np.uint64)
            powers[0] = inverses[0] = 1
            powers[1:] = _P
            inverses[1:] = pow(_P, -1, 1 << 64)
            np.cumprod(powers, out=powers)  # wraps mod 2^64, as wanted
            np.cumprod(inverses, out=inverses)
            _cached[1:3] = [powers, inverses]
        table, powers, inverses, mix = _cached
    return table, powers, inverses, mix
