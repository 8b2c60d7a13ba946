"""Text signatures: a compact sketch of an article's whole text, so that two revisions
sharing their GİRİŞ minute can be told one article by text alone (dedupe's last match rule)
without keeping any body in memory. Pure.

A signature (format v2) is a version byte (2), then little-endian uint32s: the number of
distinct 3-word shingles among the first SIGNATURE_WORDS words of title, spot and body, and
the SIGNATURE_SIZE smallest of their hashes (a bottom-k MinHash). Words are fold()'s: runs
of letters and digits after NFKC and Turkish lower case, leading labels stripped. A word is
hashed as a polynomial over its code points (mod 2^64), a shingle's hash is the high 32 bits
of a mix of its three word hashes, all in numpy: a signature costs about what a record's
match keys do (hashing each shingle from Python, as v1 did, cost four times as much).

Format v1 (stores written before): the same layout without the version byte, over CRC-32s
of the shingles' UTF-8. `is_current` tells them apart (a v1 signature is 4n bytes long, a v2
one 4n + 1); a store recomputes an old one from the article's record when it next needs it.
"""

from __future__ import annotations

import bisect
import html
import re
import struct
from collections.abc import Iterable
from typing import Any

from aggregator.model import Article
from aggregator.normalize import fold_case

VERSION = 2
SIGNATURE_WORDS = 300  # words of title + spot + body a signature reads (a bound on work)
SIGNATURE_HTML = 20_000  # characters of the body's HTML read for them (the same bound)
SIGNATURE_SIZE = 64  # bottom-k sketch: the k smallest shingle hashes
MIN_SHINGLES = 8  # fewer says too little to call two texts the same article

_TAG = re.compile(r"<[^>]*>")
_P = 0x100000001B3  # the polynomial's base (odd, so invertible mod 2^64)
_MIX = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0xFF51AFD7ED558CCD)  # odd 64-bit constants


def signature(article: Article) -> bytes:
    """The article's signature; empty for a record dated when seen (GİRİŞ is no anchor
    for it)."""
    if article.published_source == "seen":
        return b""
    import numpy as np  # here: a run that compares no texts never loads numpy

    body = html.unescape(_TAG.sub(" ", article.content_html[:SIGNATURE_HTML]))
    text = fold_case(f"{article.title} {article.summary} {body}")
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    table, powers, inverses, (a, b, m) = _tables(len(points))
    wordy = np.zeros(len(points) + 2, dtype=np.bool_)  # a non-word either side
    if len(points) and points.max() > 0xFFFF:  # beyond the table (rare): Python says
        wordy[1:-1] = [chr(p).isalnum() for p in points.tolist()]
    else:
        wordy[1:-1] = table[points]
    edges = np.flatnonzero(wordy[1:] != wordy[:-1])  # where each word starts, ends, ...
    starts = edges[0 : 2 * SIGNATURE_WORDS : 2]
    ends = edges[1 : 2 * SIGNATURE_WORDS : 2]
    if len(starts) < 3:
        return struct.pack("<BI", VERSION, 0)
    prefix = np.zeros(int(ends[-1]) + 1, dtype=np.uint64)
    np.cumsum(points[: ends[-1]] * powers[: ends[-1]], out=prefix[1:])
    words = (prefix[ends] - prefix[starts]) * inverses[starts]  # each from its own start
    x = (words[:-2] * a + words[1:-1]) * b + words[2:]
    x ^= x >> np.uint64(31)
    x *= m
    hashes = np.sort((x >> np.uint64(32)).astype(np.uint32))  # a multiply's best-mixed bits
    distinct = hashes[np.concatenate(([True], hashes[1:] != hashes[:-1]))]
    head = struct.pack("<BI", VERSION, len(distinct))
    return head + distinct[:SIGNATURE_SIZE].astype("<u4").tobytes()


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

    parts: list[bytes] = []
    tags: list[int] = []
    owners: list[int] = []
    sizes: list[int] = []
    for i, sig in enumerate(sigs):
        if len(sig) < 8:  # empty, or no hash
            continue
        skip = len(sig) % 4  # the version byte
        if struct.unpack_from("<I", sig, skip)[0] >= MIN_SHINGLES:
            parts.append(sig[skip + 4 :])
            tags.append((len(sig) - 1) % 4)  # 0 for the current format
            owners.append(i)
            sizes.append((len(sig) - skip) // 4 - 1)
    hashes = np.frombuffer(b"".join(parts), dtype="<u4").astype(np.uint64)
    hashes |= np.repeat(np.array(tags, dtype=np.uint64) << np.uint64(32), sizes)
    return hashes, np.repeat(np.array(owners, dtype=np.int64), sizes)


_cached: list[Any] = []


def _tables(n: int) -> tuple[Any, Any, Any, tuple[Any, Any, Any]]:
    """str.isalnum of every code point below U+10000 (fold()'s word characters); _P**i
    and its inverse mod 2^64 for i < n at least (grown as needed); the mixing constants."""
    import numpy as np

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
