"""A feed body's staged records (`web._feed_records`: parse -> Articles -> de-duplication
candidate + packed record) stay what they were when tests/data/feed_records.json was frozen:
every feed document under tests/data and a few documents shaped like bench_sources' feeds,
read by the fast path and by feedparser, give the same candidates (keys, hashes, anchors),
the same records (JSON and packed bytes), rejections and ttl. The reference is rewritten
deliberately with UPDATE_GOLDEN=1 (after checking that a change of records is meant).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from datetime import datetime
from typing import Any

import pytest

from aggregator.errors import ParseError
from aggregator.records import unpack_record
from aggregator.sources import fastfeed
from aggregator.sources.web import _feed_records
from tests.conftest import DATA, ISTANBUL

REFERENCE = DATA / "feed_records.json"
URL = "https://haber.test/feeds/son-dakika.xml"
NOW = datetime(2026, 1, 5, 12, 0, tzinfo=ISTANBUL)
_SUFFIXES = {".xml", ".rss", ".atom", ".json"}
_WORDS = "ekonomi meclis belediye seçim İzmir ÇAĞ ığdır şampiyon döviz altın".split()


def bench_shaped(index: int) -> bytes:
    """A feed like bench_sources' (HTML descriptions in CDATA), in a few variations."""
    rng = random.Random(index)

    def story() -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 12)))

    items = []
    for j in range(12):
        link = rng.choice([f"https://site{index}.test/haber/{j}-x", f"/haber/{j}",
                           f"http://Site.test:8080/a//b/?utm_source=x&b=2#f{j}"])  # fmt: skip
        guid = rng.choice([f"site{index}-{j}", f"https://site.test/g/{j}", ""])
        desc = rng.choice([
            f"<p>{story()} <b>kısa</b> {story()}.</p><p>{story()}.</p>",
            f"{story()} <i>x</i><br>{story()}",
            f'<p><a href="/a/{j}">{story()}</a> &amp; {story()}</p>',
            f"<p>{story()}</p>\n<p><strong><em>{story()}</em></strong></p>",
            story(),
            f"<p>{story()}<p>{story()}</b></p>",
        ])  # fmt: skip
        date = rng.choice(["Fri, 09 Jan 2026 08:07:00 +0300", "9 Jan 2026 08:07 GMT",
                           "2026-01-09T08:07:00+03:00", "Cuma, 9 Ocak 2026 08:07", ""])  # fmt: skip
        title = rng.choice([f"Haber {j}: {story()}", "", "SON DAKİKA | " + story()])
        items.append(
            f"<item><title>{title}</title><link>{link}</link><guid>{guid}</guid>"
            f"<pubDate>{date}</pubDate><category>Gündem</category>"
            f"<description><![CDATA[{desc}]]></description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Kaynak {index}</title><link>https://site{index}.test/</link>"
        + "".join(items)
        + "</channel></rss>"
    ).encode("utf-8")


def documents() -> dict[str, bytes]:
    files = sorted(p for p in DATA.rglob("*") if p.suffix in _SUFFIXES and p != REFERENCE
                   and (p.suffix != ".json" or b"jsonfeed.org" in p.read_bytes()))  # fmt: skip
    docs = {str(p.relative_to(DATA)): p.read_bytes().replace(b"{base}", b"https://haber.test")
            for p in files}  # fmt: skip
    docs.update({f"bench-shaped-{i}": bench_shaped(i) for i in range(24)})
    return docs


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def staged_form(name: str, data: bytes) -> dict[str, Any]:
    """What the store would get from this body, as digests (the records in full are large)."""
    kind = "application/feed+json" if name.endswith(".json") else "application/xml"
    try:
        records, rejected, ttl = _feed_records(
            data, url=URL, content_type=kind, source="src", tz=ISTANBUL, language="tr", now=NOW
        )
    except ParseError as e:
        return {"error": str(e)}
    candidates = [list(c) for c, _ in records]
    return {
        "records": len(records),
        "candidates": _sha(json.dumps(candidates, ensure_ascii=False).encode()),
        "json": _sha(b"\n".join(bytes(unpack_record(r)) for _, r in records)),
        "packed": _sha(b"".join(r for _, r in records)),
        "rejected": [str(r) for r in rejected],
        "ttl": ttl,
    }


DOCUMENTS = documents()


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    if os.environ.get("UPDATE_GOLDEN") == "1":
        frozen = {name: staged_form(name, data) for name, data in DOCUMENTS.items()}
        REFERENCE.write_text(json.dumps(frozen, ensure_ascii=False, indent=1) + "\n")
    loaded: dict[str, Any] = json.loads(REFERENCE.read_text())
    return loaded


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_feed_document_stages_its_frozen_records(name: str, reference: Any) -> None:
    data = DOCUMENTS[name]
    assert staged_form(name, data) == reference[name]
    with fastfeed.disabled():
        assert staged_form(name, data) == reference[name]


def test_the_reference_covers_every_document(reference: Any) -> None:
    assert sorted(reference) == sorted(DOCUMENTS)
    assert sum(r.get("records", 0) for r in reference.values()) > 300
