"""Turkish date/time layouts and the folding/URL rules de-duplication relies on."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.errors import ParseError
from aggregator.normalize import canonical_url, fold, slugify, turkish_lower
from aggregator.timeparse import find_stamp, parse_iso, turkish_long
from tests.conftest import ISTANBUL


@pytest.mark.parametrize(
    ("text", "expected", "has_time"),
    [
        ("01.01.2026 19:16", datetime(2026, 1, 1, 19, 16), True),
        ("01.01.2026 - 19:16", datetime(2026, 1, 1, 19, 16), True),
        ("03 Ocak 2026 17:47", datetime(2026, 1, 3, 17, 47), True),
        ("1 Ocak 2026 Perşembe 19:18", datetime(2026, 1, 1, 19, 18), True),
        ("24 Nis 2011", datetime(2011, 4, 24), False),
        ("13.01.2026 13:04:00", datetime(2026, 1, 13, 13, 4), True),
        ("05.03.2026 saat ikonu 21:01", datetime(2026, 3, 5, 21, 1), True),
        ("2026-08-30", datetime(2026, 8, 30), False),
        ("29 ŞUBAT 2028, 08.15", datetime(2028, 2, 29, 8, 15), True),
        ("7 Ağustos 2026 Cuma", datetime(2026, 8, 7), False),
    ],
)
def test_layouts(text: str, expected: datetime, has_time: bool) -> None:
    stamp = find_stamp(text, ISTANBUL)
    assert stamp is not None
    assert stamp.when == expected.replace(tzinfo=ISTANBUL)
    assert stamp.when.utcoffset().total_seconds() == 3 * 3600
    assert stamp.has_time is has_time


@pytest.mark.parametrize("text", ["32.13.2026", "30.02.2026 10:00", "01.01.2026 25:61"])
def test_impossible_dates_raise(text: str) -> None:
    with pytest.raises(ParseError, match="impossible"):
        find_stamp(text, ISTANBUL)


def test_no_date_is_none() -> None:
    assert find_stamp("12 kişi 2026 yılında", ISTANBUL) is None
    assert find_stamp("", ISTANBUL) is None


def test_iso_and_turkish_long() -> None:
    when = parse_iso("2026-01-01T19:16:00", ISTANBUL)
    assert when == datetime(2026, 1, 1, 19, 16, tzinfo=ISTANBUL)
    assert parse_iso("2026-01-01T16:16:00Z", ISTANBUL) == when
    assert turkish_long(when, ISTANBUL) == "1 Ocak 2026 Perşembe 19:16"


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80))
def test_any_text_gives_an_aware_moment_none_or_parse_error(text: str) -> None:
    try:
        stamp = find_stamp(text, ISTANBUL)
    except ParseError:
        return
    if stamp is not None:
        assert stamp.when.tzinfo is not None and stamp.when.utcoffset() is not None


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 31), st.integers(1, 12), st.integers(1900, 2200),
       st.integers(0, 23), st.integers(0, 59))  # fmt: skip
def test_numeric_dates_round_trip(d: int, m: int, y: int, h: int, mi: int) -> None:
    text = f"{d:02d}.{m:02d}.{y} {h:02d}:{mi:02d}"
    try:
        expected = datetime(y, m, d, h, mi, tzinfo=ISTANBUL)
    except ValueError:
        with pytest.raises(ParseError):
            find_stamp(text, ISTANBUL)
        return
    stamp = find_stamp(text, ISTANBUL)
    assert stamp is not None and stamp.when == expected


def test_turkish_folding() -> None:
    assert turkish_lower("İZMİR'DE IŞIK") == "izmir'de ışık"
    assert fold("İZMİR'DE") == fold("İzmir'de")
    assert fold("SON DAKİKA | İzmir'de deprem!") == fold("izmir de deprem")
    assert fold("Son dakika: İzmir'de deprem") == fold("İZMİR'DE DEPREM")
    assert fold("FLAŞ - İzmir'de deprem") == fold("İzmir'de deprem")
    assert fold("Canlı yayın başladı") != fold("yayın başladı")


def test_canonical_urls() -> None:
    same = {
        canonical_url("https://www.ornek.com.tr/haber/1"),
        canonical_url("HTTP://WWW.ORNEK.COM.TR:80/haber/1/"),
        canonical_url("https://www.ornek.com.tr:443/haber/1?utm_source=x&fbclid=y#a"),
        canonical_url("http://www.ornek.com.tr/haber/1?gclid=z"),
    }
    assert len(same) == 1
    assert canonical_url("https://ornek.com/a?id=2") != canonical_url("https://ornek.com/a?id=3")
    assert canonical_url("https://ornek.com:8443/a") == "https://ornek.com:8443/a"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_fold_is_idempotent_and_slugs_are_ascii(text: str) -> None:
    assert fold(fold(text)) == fold(text)
    slug = slugify(text)
    assert slug and slug.isascii() and " " not in slug


def test_slugs() -> None:
    assert slugify("Gündem") == "gundem"
    assert slugify("Dünya") == "dunya"
    assert slugify("İŞ DÜNYASI") == "is-dunyasi"


@settings(max_examples=500, deadline=None)
@given(st.text(st.characters(codec="utf-8"), max_size=60))
def test_collapse_folds_whitespace_runs_as_the_regex_did(text: str) -> None:
    """Every run of whitespace (re's \\s) is one space, none at the ends."""
    import re

    from aggregator.normalize import collapse, xml_safe

    assert collapse(text) == xml_safe(re.sub(r"\s+", " ", text).strip())


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_fold_keeps_the_word_rule_stored_match_keys_were_made_with(text: str) -> None:
    """Match keys in existing stores hash fold()'s output: a faster fold must not change
    it. The rule: every run of non-word characters (re's \\W and "_") is one space."""
    import re
    import unicodedata

    from aggregator.normalize import _LEADING_LABEL

    t = unicodedata.normalize("NFKC", text)
    t = turkish_lower(t)
    while (m := _LEADING_LABEL.match(t)) and m.end():
        t = t[m.end() :]
    assert fold(text) == re.sub(r"[\W_]+", " ", t).strip()
