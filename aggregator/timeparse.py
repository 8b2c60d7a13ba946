"""Turkish date/time layouts -> timezone-aware datetimes. Pure; regex, not strptime (it is hot)."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo

from aggregator.errors import ParseError

_MONTHS = {
    "ocak": 1, "oca": 1,
    "şubat": 2, "şub": 2, "subat": 2, "sub": 2,
    "mart": 3, "mar": 3,
    "nisan": 4, "nis": 4,
    "mayıs": 5, "may": 5, "mayis": 5,
    "haziran": 6, "haz": 6,
    "temmuz": 7, "tem": 7,
    "ağustos": 8, "ağu": 8, "agustos": 8, "agu": 8,
    "eylül": 9, "eyl": 9, "eylul": 9,
    "ekim": 10, "eki": 10, "ekm": 10,
    "kasım": 11, "kas": 11, "kasim": 11,
    "aralık": 12, "ara": 12, "aralik": 12,
}  # fmt: skip
MONTH_NAMES = ("Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran", "Temmuz",
               "Ağustos", "Eylül", "Ekim", "Kasım", "Aralık")  # fmt: skip
FUTURE_SLACK = timedelta(days=1)
"""A date further than this after the run's `now` is not believed (clock skew and zone
mistakes stay within it; an input dated 2099 does not pin itself to the top for good)."""
WEEKDAY_NAMES = ("Pazartesi", "Salı", "Çarşamba", "Perşembe", "Cuma", "Cumartesi", "Pazar")

_WORD = r"[A-Za-zÇĞİÖŞÜçğıöşüÂâÎîÛû]+"
_TIME = r"(?P<h>\d{1,2})[:.](?P<mi>\d{2})(?::(?P<s>\d{2}))?"
_DATE_NUM = r"(?P<d>\d{1,2})[./-](?P<m>\d{1,2})[./-](?P<y>\d{4})"
_DATE_ISO = r"(?P<iy>\d{4})-(?P<im>\d{1,2})-(?P<id>\d{1,2})"
_DATE_TXT = rf"(?P<td>\d{{1,2}})\s+(?P<tm>{_WORD})\.?,?\s+(?P<ty>\d{{4}})"
_STAMP = re.compile(
    rf"(?:{_DATE_ISO}|{_DATE_NUM}|{_DATE_TXT})"
    rf"(?:(?:\s*(?:[-,|/T]|saat|,)?\s*(?:{_WORD}\s*,?\s*)?){_TIME})?(?![\d])"
)


@dataclass(frozen=True, slots=True)
class Stamp:
    """A moment read from text; `has_time` is False for date-only precision."""

    when: datetime
    has_time: bool


def _month(word: str) -> int | None:
    w = word.replace("İ", "i").replace("I", "ı").lower().rstrip(".")
    return _MONTHS.get(w)


@functools.lru_cache(maxsize=4096)  # a folder's pages share scrape days and GİRİŞ minutes
def find_stamp(text: str, tz: tzinfo) -> Stamp | None:
    """The first date (with its time, if one follows) in `text`, in zone `tz`.

    Returns None when the text holds no date; raises ParseError for an impossible one.
    """
    for m in _STAMP.finditer(text):
        iy, y_num, hour = m.group("iy", "y", "h")
        if iy:
            y, mo, d = int(iy), int(m.group("im")), int(m.group("id"))
        elif y_num:
            y, mo, d = int(y_num), int(m.group("m")), int(m.group("d"))
        else:
            month = _month(m.group("tm"))
            if month is None:
                continue  # "12 kişi 2026" is not a date
            y, mo, d = int(m.group("ty")), month, int(m.group("td"))
        try:  # one constructor checks day and clock; which was wrong matters only then
            if hour is None:
                when = datetime(y, mo, d, tzinfo=tz)
            else:
                mi, sec = m.group("mi", "s")
                when = datetime(y, mo, d, int(hour), int(mi), int(sec or 0), tzinfo=tz)
        except ValueError:
            try:
                date(y, mo, d)
            except ValueError:
                raise ParseError(f"impossible date {m.group(0).strip()!r}") from None
            raise ParseError(f"impossible time {m.group(0).strip()!r}") from None
        if (y <= 1 or y >= 9999) and in_utc_range(when) is None:
            raise ParseError(f"date out of range {m.group(0).strip()!r}")
        return Stamp(when, has_time=hour is not None)
    return None


def parse_iso(text: str, tz: tzinfo) -> datetime | None:
    """ISO 8601 / W3C datetime as found in JSON-LD and meta tags; naive values get `tz`."""
    raw = text.strip()
    if not raw:
        return None
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        stamp = _safe_find(raw, tz)
        return stamp.when if stamp else None
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return in_utc_range(value)


def _safe_find(text: str, tz: tzinfo) -> Stamp | None:
    try:
        return find_stamp(text, tz)
    except ParseError:
        return None


def turkish_long(value: datetime, tz: tzinfo) -> str:
    """`1 Ocak 2026 Perşembe 19:16`, the way Turkish sites print a moment."""
    local = value.astimezone(tz)
    return (
        f"{local.day} {MONTH_NAMES[local.month - 1]} {local.year} "
        f"{WEEKDAY_NAMES[local.weekday()]} {local:%H:%M}"
    )


def in_utc_range(value: datetime) -> datetime | None:
    """`value`, or None when it has no UTC equivalent (year 1 or 9999 pushed past the
    edge by its offset): such a date would crash every later stage that compares times."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        return None
    return value


def printable(value: datetime) -> datetime:
    """The same instant with an offset RFC 3339 and RFC 822 can write (whole minutes):
    a zone's historic local mean time (Istanbul before 1910: +01:56:56) becomes UTC."""
    offset = value.utcoffset()
    if offset is not None and offset.total_seconds() % 60:
        return value.astimezone(UTC)
    return value


FOREIGN_MAX_CHARS = 100
"""Longer date text is not handed to dateparser (its cost grows with the text)."""
_FOREIGN_SETTINGS = {
    "PARSERS": ["custom-formats", "absolute-time"],  # never "2 hours ago": no clock here
    "REQUIRE_PARTS": ["day", "month", "year"],  # a missing part would come from the clock
}
_FOREIGN_SHAPE = re.compile(r"(?<!\d)\d{4}(?!\d)")  # a year: without one it is no full date


@functools.lru_cache(maxsize=1024)
def parse_foreign(text: str, tz: tzinfo, language: str = "") -> datetime | None:
    """A date with another language's day and month names (`Seg, 24 Set 2018 19:42:40
    -0300`) via dateparser: a last resort, imported on first use. `language` (the feed's,
    `pt-BR`) is tried first: about 1 ms a call, where guessing among all languages costs
    15-70 ms. Naive results get `tz`; None when it reads no full date."""
    raw = text.strip()
    if len(raw) > FOREIGN_MAX_CHARS or not _FOREIGN_SHAPE.search(raw):
        return None
    import dateparser  # here: a heavy import (and data load) most runs never need

    hint = language.split("-")[0].split("_")[0].lower()
    value = None
    for languages in ([hint], None) if hint.isalpha() else (None,):
        try:
            value = dateparser.parse(raw, languages=languages, settings=_FOREIGN_SETTINGS)
        except Exception:  # an unknown language code, a date it cannot hold, its own bugs
            value = None  # on odd text: whatever it is, it is no date we can use
        if value is not None:
            break
    if value is None:
        return None
    offset = value.utcoffset()  # dateparser's own tzinfo class becomes a plain offset
    value = value.replace(tzinfo=tz if offset is None else timezone(offset))
    return in_utc_range(value)
