"""Plain-text scrapes of Turkish news pages -> Article. Pure: bytes in, record out.

The layouts read here (see README, "Seed files"): the TGRT Haber scrape with its
KAYNAK/GİRİŞ/GÜNCELLEME block, the same with navigation noise, without the block,
body only, and other sites' one-line or month-name meta lines.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from datetime import datetime, tzinfo

from aggregator.errors import ParseError
from aggregator.model import Article
from aggregator.normalize import collapse, fold, mostly_utf8, shorten, turkish_upper, xml_safe
from aggregator.timeparse import FUTURE_SLACK, Stamp, find_stamp

_DATE_LINE = re.compile(r"^\s*date\s+(\d{4}-\d{2}-\d{2})(.*)$", re.DOTALL)
_LABEL = re.compile(
    r"(?P<label>KAYNAK|Kaynak|GİRİŞ TARİHİ|Giriş Tarihi|GİRİŞ|Giriş|Giris|"
    r"SON GÜNCELLEME|Son Güncelleme|GÜNCELLEME TARİHİ|Güncelleme Tarihi|GÜNCELLEME|Güncelleme|"
    r"Güncellenme|Guncelleme|YAYINLANMA|Yayınlanma|Yayınlanma Tarihi|YAYIN TARİHİ|Yayın Tarihi|"
    r"Oluşturulma Tarihi|Oluşturulma)\s*:"
)
_BARE_LABEL = re.compile(r"^(KAYNAK|Kaynak)$")
_SOURCE_WORDS = ("KAYNAK", "Kaynak")
_TIME_ONLY = re.compile(r"^(?:saat ikonu\s*)?\d{1,2}[:.]\d{2}(?::\d{2})?$")
_DATE_ONLY_LINE = re.compile(
    r"^(?:\d{1,2}[./-]\d{1,2}[./-]\d{4}|\d{4}-\d{2}-\d{2}|"
    r"\d{1,2}\s+[A-Za-zÇĞİÖŞÜçğıöşü]+\.?\s+\d{4}(?:\s+[A-Za-zÇĞİÖŞÜçğıöşü]+)?)"
    r"(?:\s*[-,]?\s*(?:saat\s*)?\d{1,2}[:.]\d{2}(?::\d{2})?)?$"
)
_CHROME_PHRASES = (
    "Menü Kapat", "Menu Kapat", "Menu İkon", "Menü İkon", "Arama Kapat", "Ara Kapat",
    "PaylaşHaberi Paylaş", "Haberi Paylaş", "+Aa-", "Avatar", "Editor", "Editör",
)  # fmt: skip
_NOISE_LINE = re.compile(
    r"^(?:Menü Kapat|Menu Kapat|Menu İkon|Menü İkon|Arama Kapat|Ara Kapat|Avatar|Editor|Editör"
    r"|SON DAKİKA!?\s*TÜMÜ.*|Son Dakika!?\s*Tümü.*|-?\d{1,2}\s*°\s*[CF]?"
    r"|PaylaşHaberi Paylaş|Paylaş|Haberi Paylaş"
    r"|\+?A+a?-?|A\+|A-|\+Aa-|Abone Ol|Takip Et|Google News.*|Kopyala|Yazdır|Yorum Yap|Yorumlar"
    r"|Reklam|REKLAM|Haberin Devamı|Galeri|Video|Fotoğraf|Kapat|Menü|Menu|Ara)$"
)
_TAG_LINE = re.compile(r"^(?:#[^\s#]+\s*)+$")
_PROVINCES = frozenset(
    "Adana Adıyaman Afyonkarahisar Ağrı Aksaray Amasya Ankara Antalya Ardahan Artvin Aydın "
    "Balıkesir Bartın Batman Bayburt Bilecik Bingöl Bitlis Bolu Burdur Bursa Çanakkale Çankırı "
    "Çorum Denizli Diyarbakır Düzce Edirne Elazığ Erzincan Erzurum Eskişehir Gaziantep Giresun "
    "Gümüşhane Hakkari Hatay Iğdır Isparta İstanbul İzmir Kahramanmaraş Karabük Karaman Kars "
    "Kastamonu Kayseri Kilis Kırıkkale Kırklareli Kırşehir Kocaeli Konya Kütahya Malatya Manisa "
    "Mardin Mersin Muğla Muş Nevşehir Niğde Ordu Osmaniye Rize Sakarya Samsun Şanlıurfa Siirt "
    "Sinop Sivas Şırnak Tekirdağ Tokat Trabzon Tunceli Uşak Van Yalova Yozgat Zonguldak".split()
)
SECTIONS = frozenset(
    "Gündem Politika Siyaset Ekonomi Dünya Spor Sağlık Yaşam Magazin Teknoloji Bilim Eğitim "
    "Kültür Sanat Asayiş Otomobil Savunma Türkiye Medya Çevre Hava Durumu Finans Futbol "
    "Kadın Seyahat Tarih Din Aktüel Gastronomi Emlak".split()
)
_AUTHOR_SEPARATORS = re.compile(r",|&| ve | - ")
_WORD_CHARS = re.compile(r"[A-Za-zÇĞİÖŞÜçğıöşüÂâÎîÛû]")
_MAX_BYTES = 5 * 1024 * 1024
_C0_FORBIDDEN = bytes([*range(0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
_HEADER_LINES = 12  # content lines (noise aside) a meta block may follow: author, title...


@dataclass(slots=True)
class _Meta:
    agency: str = ""
    published: Stamp | None = None
    updated: Stamp | None = None
    update_label_seen: bool = False
    problems: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    """Bytes -> XML-safe text: UTF-8 (BOM or not), UTF-16 with BOM, else Windows-1254."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return xml_safe(data.decode("utf-16"))
        except UnicodeDecodeError as e:
            raise ParseError(f"broken UTF-16 text ({e.reason})") from None
    if data.find(b"\x00", 0, 8192) != -1:
        raise ParseError("binary file (NUL bytes), not a text scrape")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if mostly_utf8(data):  # a stray byte (a scrape cut mid-character) must not turn
            text = data.decode("utf-8", errors="replace")  # every Turkish letter to mojibake
        else:
            text = data.decode("cp1254", errors="replace")
    # These two decoders yield an XML-forbidden character only from a C0 control byte or
    # U+FFFE/U+FFFF's UTF-8 bytes: looking at the bytes is 4x cheaper than at the text.
    # (Their lead byte 0xEF is rare in Turkish text; one byte is found at memchr speed.)
    if len(data.translate(None, _C0_FORBIDDEN)) != len(data) or (
        b"\xef" in data and (b"\xef\xbf\xbe" in data or b"\xef\xbf\xbf" in data)
    ):
        # line ends first: a control character between CR and LF still ends two lines
        text = xml_safe(text.replace("\r\n", "\n").replace("\r", "\n"))
    return text


def _lines(text: str) -> list[str]:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "  " not in text and "\t" not in text and "\xa0" not in text:  # most pages: no line
        return [line.strip() for line in text.split("\n")]  # has a run to squeeze
    return [
        " ".join(line.split()) if ("  " in line or "\t" in line or "\xa0" in line) else line.strip()
        for line in text.split("\n")
    ]


def _is_noise(line: str) -> bool:
    return len(line) <= 40 and (bool(_NOISE_LINE.match(line)) or line in _PROVINCES)


def _is_caps_heading(line: str) -> bool:
    if len(line) > 160 or line.endswith((".", ",", ";")) or line != turkish_upper(line):
        return False
    letters = _WORD_CHARS.findall(line)  # all cased: one isupper() over them says it
    return len(letters) >= 4 and "".join(letters).isupper()


def _strip_chrome(text: str) -> str:
    for phrase in _CHROME_PHRASES:
        text = text.replace(phrase, " ")
    return collapse(text)


def _read_meta(lines: list[str], tz: tzinfo, meta: _Meta) -> None:
    """Fill `meta` from the lines of a meta block (labels and values, possibly one line)."""
    joined = " ".join(lines)
    parts = list(_LABEL.finditer(joined))
    if not parts and joined:
        joined = f"Yayın Tarihi: {joined}"
        parts = list(_LABEL.finditer(joined))
    for i, m in enumerate(parts):
        end = parts[i + 1].start() if i + 1 < len(parts) else len(joined)
        value = joined[m.end() : end].strip(" |-–")
        label = m.group("label")
        if label.startswith(_SOURCE_WORDS):
            meta.agency = value.split(" | ")[0].strip(" |") if value else meta.agency
            continue
        try:
            stamp = find_stamp(value, tz) if value else None
        except ParseError as e:
            meta.problems.append(f"{label}: {e}")
            stamp = None
        if "ncel" in label or "NCEL" in label:  # Güncelleme, Son Güncelleme, Güncellenme
            meta.update_label_seen = True
            meta.updated = meta.updated or stamp
        else:
            meta.published = meta.published or stamp


def _meta_span(lines: list[str], start: int) -> int:
    """Index just past the meta block that begins at `start`."""
    i = start
    expect_value = False
    while i < len(lines):
        line = lines[i]
        if not line:
            if expect_value:
                i += 1
                continue
            break
        if (":" in line and _LABEL.search(line)) or _BARE_LABEL.match(line):
            expect_value = line.startswith(_SOURCE_WORDS) and (
                line.endswith(":") or bool(_BARE_LABEL.match(line))
            )
        elif line == "|" or _TIME_ONLY.match(line) or _DATE_ONLY_LINE.match(line):
            expect_value = False
        elif expect_value:
            expect_value = False  # the agency's name after `KAYNAK:`
        else:
            break
        i += 1
    return i


def _find_meta(lines: list[str]) -> int | None:
    """Index of the meta block: the first labelled line, else a lone date line near the top
    (`1 Ocak 2026 Perşembe 19:18`)."""
    content = 0
    for i, line in enumerate(lines):
        if ":" in line and _LABEL.search(line):  # the cheap test first: labels end in ":"
            start = i
            if i > 0 and _BARE_LABEL.match(lines[i - 1]):
                start = i - 1
            return start
        if line and not _is_noise(line):
            content += 1
            if content > _HEADER_LINES:  # a closing "Kaynak: AA" under the body is no header
                break
    seen = 0
    for i, line in enumerate(lines):
        if not line:
            continue
        if _DATE_ONLY_LINE.match(line):
            return i
        seen += 1
        if seen > 8:
            break
    return None


def _name_like(line: str) -> bool:
    words = line.split()
    return (
        0 < len(words) <= 5
        and len(line) <= 60
        and not any(ch.isdigit() for ch in line)
        and not line.endswith((".", "!", "?", ":", ";", ","))
        and all(w[0].isupper() for w in words if w[0].isalpha())
    )


def _split_authors(text: str) -> tuple[str, ...]:
    names = [collapse(n) for n in _AUTHOR_SEPARATORS.split(text)]
    return tuple(n for n in names if n)


def parse_seed(
    data: bytes, *, origin: str, source: str, tz: tzinfo, language: str = "tr",
    now: datetime | None = None,
) -> Article:  # fmt: skip
    """One scraped page -> one Article. Raises ParseError with a reason a user can act on.
    `now`: the run's time; a GİRİŞ or GÜNCELLEME more than FUTURE_SLACK after it is not
    believed (a GÜNCELLEME of 2099 would win over every later correction)."""
    if len(data) > _MAX_BYTES:
        raise ParseError(f"file is {len(data)} bytes, over the {_MAX_BYTES}-byte limit for a page")
    lines = _lines(decode(data))
    if not any(lines):
        raise ParseError("empty file")
    warnings: list[str] = []
    scrape_day: Stamp | None = None
    body_lead = ""
    first = next(i for i, line in enumerate(lines) if line)
    m = _DATE_LINE.match(lines[first])
    rest_lines = lines[first + 1 :]
    header_extra: list[str] = []
    if m:
        try:
            scrape_day = find_stamp(m.group(1), tz)
        except ParseError as e:
            warnings.append(f"scrape date: {e}")
        rest = _strip_chrome(m.group(2))
        if len(rest) > 80 or re.search(r"[.!?]\s", rest):
            body_lead = rest  # body only: the date is glued to the first paragraph
        elif rest:
            header_extra.append(rest)
    meta = _Meta()
    meta_at = _find_meta(rest_lines)
    if meta_at is not None:
        end = _meta_span(rest_lines, meta_at)
        _read_meta(rest_lines[meta_at:end], tz, meta)
        head, body = rest_lines[:meta_at], rest_lines[end:]
        if body_lead and meta.published is None and not meta.update_label_seen:
            # body only: a dateless "Kaynak: AA" is the closing credit, not a header's end
            head, body = [], rest_lines[:meta_at] + rest_lines[end:]
    else:
        head, body = [], rest_lines
    if scrape_day is None and meta.published is None and meta_at is None:
        raise ParseError("no article layout: no ' date YYYY-MM-DD' line and no GİRİŞ/Yayın date")

    # header: noise out, then author / category / title / spot
    authors: tuple[str, ...] = ()
    categories: list[str] = []
    kept: list[str] = []
    raw_head = header_extra + head
    for line in raw_head:
        if not line:
            continue
        if line.startswith("|"):
            authors = _split_authors(line.strip("| "))
            continue
        if line in ("Avatar", "Editor", "Editör") and kept and len(kept[-1].split()) <= 3:
            if kept[-1] in SECTIONS or _name_like(kept[-1]):
                categories.append(kept.pop())
            continue
        if _is_noise(line):
            continue
        if line in SECTIONS and not kept:
            categories.append(line)
            continue
        if meta.published is None and _DATE_ONLY_LINE.match(line):
            _read_meta([f"Yayın Tarihi: {line}"], tz, meta)
            continue
        kept.append(line)
    if meta_at is None and body_lead == "":
        kept, body = _header_without_meta(body, kept)
    title, spot, author_lines, leftover = _title_and_spot(kept, have_author=bool(authors))
    if author_lines and not authors:
        authors = _split_authors(author_lines)
    if body_lead:
        body = [body_lead, *body]
    body = leftover + body

    # body: tags out (kept as categories), paragraphs and subheadings in
    paragraphs: list[str] = []
    for line in body:
        if not line:
            continue
        if line[0] == "#" and _TAG_LINE.match(line):
            categories.extend(t for t in line.replace("#", " ").split() if t)
            continue
        if _is_noise(line) or line == title:
            continue
        paragraphs.append(line)
    if not _WORD_CHARS.search(title):
        wordy = [p for p in paragraphs if _WORD_CHARS.search(p)]
        if not wordy:
            raise ParseError("no text: neither a title nor a paragraph")
        title = shorten(wordy[0]).removesuffix(".")

    published, updated, date_only, published_source = _resolve_times(
        meta, scrape_day, warnings, now
    )
    content = "".join(
        f"<h2>{html.escape(p, quote=False)}</h2>" if _is_caps_heading(p)
        else f"<p>{html.escape(p, quote=False)}</p>"
        for p in paragraphs
    )  # fmt: skip
    return Article(
        title=title,
        summary=spot,
        content_html=content,
        authors=authors,
        agency=meta.agency,
        categories=tuple(dict.fromkeys(categories)),
        language=language,
        published=published,
        updated=updated,
        date_only=date_only,
        published_source=published_source,
        source=source,
        origin=origin,
        warnings=tuple(warnings + meta.problems),
    )


def _header_without_meta(body: list[str], kept: list[str]) -> tuple[list[str], list[str]]:
    """No meta block: the header ends at the repeated title (image caption), else after
    author, title and spot."""
    lines = [line for line in body]
    folded: dict[str, int] = {}
    content_idx = [i for i, line in enumerate(lines) if line and not _is_noise(line)]
    for n, i in enumerate(content_idx[:6]):
        key = fold(lines[i])
        if key in folded:
            return kept + [lines[j] for j in content_idx[: n + 1]], lines[i + 1 :]
        folded[key] = n
    take = 3 if content_idx and _name_like(lines[content_idx[0]]) and not kept else 2
    take = max(0, take - len(kept))
    if len(content_idx) <= take:
        take = max(0, len(content_idx) - 1)
    head = [lines[j] for j in content_idx[:take]]
    cut = content_idx[take - 1] + 1 if take else 0
    return kept + head, lines[cut:]


def _title_and_spot(kept: list[str], *, have_author: bool) -> tuple[str, str, str, list[str]]:
    """(title, spot, author text, leftover body lines) from the cleaned header lines."""
    if not kept:
        return "", "", "", []
    for same in (str, fold):  # the caption repeats the title: exactly (cheap), else folded
        seen: dict[str, int] = {}
        for i, line in enumerate(kept):
            key = same(line)
            if key and key in seen:
                t = seen[key]
                author = " ".join(kept[:t]) if t and all(_name_like(x) for x in kept[:t]) else ""
                spot = " ".join(kept[t + 1 : i])
                return kept[t], spot, author, kept[i + 1 :]
            seen.setdefault(key, i)
    if not have_author and len(kept) >= 3 and _name_like(kept[0]):
        return kept[1], kept[2], kept[0], kept[3:]
    if len(kept) >= 2:
        return kept[0], kept[1], "", kept[2:]
    return kept[0], "", "", []


def _resolve_times(
    meta: _Meta, scrape_day: Stamp | None, warnings: list[str], now: datetime | None
) -> tuple[datetime, datetime, bool, str]:
    """(published, updated, date only, published_source). A date more than FUTURE_SLACK
    after `now` is not believed: a GİRİŞ gives way to the scrape day, else to `now` (a
    first-seen date); a GÜNCELLEME to the published time."""

    def believed(stamp: Stamp | None, label: str) -> Stamp | None:
        if stamp is None or now is None or stamp.when <= now + FUTURE_SLACK:
            return stamp
        warnings.append(f"{label} {stamp.when:%d.%m.%Y %H:%M} is in the future; not believed")
        return None

    published = believed(meta.published, "GİRİŞ") or believed(scrape_day, "scrape date")
    source_of_date = "source"
    if published is None and now is not None and (meta.published or scrape_day):
        published, source_of_date = Stamp(now, has_time=True), "seen"
    if published is None:
        raise ParseError("; ".join(meta.problems) or "no valid date")
    if meta.published is None and meta.problems:
        warnings.append("GİRİŞ unreadable; using the scrape date")
    updated = believed(meta.updated, "GÜNCELLEME") or published
    if updated.when < published.when:
        warnings.append(
            f"GÜNCELLEME {updated.when:%d.%m.%Y %H:%M} is before GİRİŞ; updated set to published"
        )
        updated = published
    return published.when, updated.when, not published.has_time, source_of_date
