"""Canonical URLs, Turkish-aware text folding, XML-safe text and HTML cleaning. Pure."""

from __future__ import annotations

import functools
import hashlib
import html
import re
import unicodedata
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import nh3

# Characters XML 1.0 forbids (C0 controls but tab/newline/CR, surrogates, U+FFFE/U+FFFF).
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_WORD_RUN = re.compile(r"[^\W_]+")  # str.isalnum() characters, as re's \w less "_"
_LEADING_LABEL = re.compile(
    r"^\s*(?:(?:son\s*dakika|flaş|flas|güncelleme|guncelleme|sıcak\s*gelişme|özel\s*haber"
    r"|canlı|video|breaking)\s*[:|!\-–—]+|(?:son\s*dakika|flaş)\s)\s*",
    re.IGNORECASE,
)
_TRACKING = re.compile(
    r"^(utm_.*|fbclid|gclid|dclid|msclkid|mc_cid|mc_eid|yclid|igshid|_ga|ref_src)$"
)


def xml_safe(text: str) -> str:
    """Drop characters XML 1.0 cannot carry, so no published file is ever malformed."""
    return _XML_FORBIDDEN.sub("", text)


def collapse(text: str) -> str:
    """Whitespace folded, and characters XML 1.0 cannot carry dropped: every source's text
    passes here, and one control character in a title would break every feed."""
    # printable: no whitespace but " " and no character xml_safe drops (all are "Other" or
    # "Separator" in Unicode): with no run of spaces and none at the ends, nothing to do
    if "  " not in text and text.isprintable() and text[:1] != " " and text[-1:] != " ":
        return text
    return _collapsed(text)


def _collapsed(text: str) -> str:
    if text.isprintable():  # its only whitespace is " ", and nothing for xml_safe to drop
        while "  " in text:
            text = text.replace("  ", " ")
        return text.strip(" ")
    joined = " ".join(text.split())  # re's \s is str.isspace(): as \s+ -> " ", 5x faster
    return joined if joined.isprintable() else xml_safe(joined)  # printable: nothing to drop


_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")


def text_only(text: str) -> str:
    """Plain text that stays text where a reader takes it for HTML (RSS titles, to many):
    a `<` that would open a tag, comment or declaration becomes `＜` (U+FF1C), which none
    does. Escaping for the format then happens once, in the writer."""
    return _TAG_OPEN.sub("\uff1c", text) if "<" in text else text


def turkish_lower(text: str) -> str:
    """Lower-case with Turkish dotted/dotless i (Python's str.lower maps I to i)."""
    return text.replace("İ", "i").replace("I", "ı").lower()


def turkish_upper(text: str) -> str:
    return text.replace("i", "İ").replace("ı", "I").upper()


def fold(text: str) -> str:
    """The comparison form of a title or lead: NFKC, Turkish case folding, no punctuation,
    no leading labels such as `SON DAKİKA |`. Equal folds mean the same words."""
    return _word_runs(fold_case(text))


def fold_case(text: str) -> str:
    """fold() before the words are picked out: NFKC, Turkish lower case, no leading
    labels. fold(text) is its runs of letters and digits joined by single spaces."""
    return strip_labels(turkish_lower(unicodedata.normalize("NFKC", text)))


def strip_labels(t: str) -> str:
    """fold_case's last step: leading labels off a text already in NFKC and lower case."""
    while (m := _LEADING_LABEL.match(t)) and m.end():
        t = t[m.end() :]
    return t


def cases(*texts: str) -> list[str] | None:
    """[turkish_lower(NFKC(t)) for t in texts] in one pass over them joined by NUL (no step
    joins across a NUL or a space: see fold_each), or None when a text holds a NUL. So
    fold_case(f"{a} {b}") is strip_labels(f"{cases(a, b)[0]} {cases(a, b)[1]}")."""
    parts = turkish_lower(unicodedata.normalize("NFKC", "\x00".join(texts))).split("\x00")
    return parts if len(parts) == len(texts) else None


# Neither letters nor digits, and common in Turkish news: fold_each's fast path turns them
# into spaces with str.replace (C speed); a text with any other such character takes the
# word-by-word path.
_COMMON_PUNCT = ".,'\":;!?()-/%\u2019\u2018\u201c\u201d\u2013\u2014\xab\xbb"
# After NFKC and Turkish lower case, a label starts with one of these letters (the first
# letters of _LEADING_LABEL's words, checked for every code point in tests/test_dedupe.py):
# a text whose fold starts with none of them has no label to strip.
LABEL_LETTERS = frozenset("sfgöcvb")


def fold_each(*texts: str) -> list[str]:
    """[fold(t) for t in texts], folded together: each step runs once over the texts joined
    by NUL, which no step joins across (NFKC composes nothing with it, case mapping and
    word splitting stop at it), most of it in str.replace. A record's match keys fold three
    texts: together they cost two thirds of folding each."""
    return fold_cased(texts, turkish_lower(unicodedata.normalize("NFKC", "\x00".join(texts))))


def fold_cased(texts: Sequence[str], t: str) -> list[str]:
    """fold_each(*texts), given `t`: turkish_lower(NFKC(texts joined by NUL))."""
    q = t
    for mark in _COMMON_PUNCT:
        q = q.replace(mark, " ")
    while "  " in q:
        q = q.replace("  ", " ")
    folds = q.split("\x00")
    if len(folds) != len(texts) or not "".join(folds).replace(" ", "a").isalnum():
        return [fold(x) for x in texts]  # a NUL, or a character not in _COMMON_PUNCT
    folds = [f.strip(" ") for f in folds]
    if any(f[:1] in LABEL_LETTERS for f in folds):
        for f, piece in zip(folds, t.split("\x00"), strict=True):
            if f[:1] in LABEL_LETTERS and _LEADING_LABEL.match(piece):
                return [fold(x) for x in texts]  # a label to strip (rare)
    return folds


def _word_runs(t: str) -> str:
    """The runs of letters and digits (str.isalnum, re's [^\\W_]), joined by single spaces:
    re.sub(r"[\\W_]+", " ", t).strip(), twice as fast (most words need no regex)."""
    words: list[str] = []
    for word in t.split():
        if word.isalnum():
            words.append(word)
        else:
            words += _WORD_RUN.findall(word)
    return " ".join(words)


# An absolute http(s) URL with a plain host, no port, user, parameters, query or fragment:
# urllib would split and join it back as it is, so the URL functions below answer for it
# without urllib (the usual feed link; tests/test_feed_records.py compares both ways).
_PLAIN_URL = re.compile(r"(https?)://([A-Za-z0-9.-]+)(/[A-Za-z0-9._~%!$'()*+,=:@/-]*)?")


def plain_host(url: str) -> str | None:
    """The lower-case host of a plain URL (as urlsplit's hostname), None for any other."""
    plain = _PLAIN_URL.fullmatch(url)
    return plain[2].lower() if plain is not None else None


def canonical_url(url: str) -> str:
    """One spelling per page: https, lower-case host, no default port, fragment,
    tracking parameters or trailing slash. A malformed URL stays as written."""
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None and "//" not in (path := plain[3] or "/"):
        return f"https://{plain[2].lower()}{path.rstrip('/') if len(path) > 1 else path}"
    return _canonical_url_parsed(url)


def _canonical_url_parsed(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
        port = parts.port if parts.port not in (None, 80, 443) else None
    except ValueError:  # `http://[oops/`, a port past 65535: still a usable identity key
        return url.strip()
    scheme = parts.scheme.lower()
    if scheme == "http":
        scheme = "https"
    host = (parts.hostname or "").lower()
    netloc = f"{host}:{port}" if port else host
    path = re.sub(r"/{2,}", "/", parts.path or "/")
    if len(path) > 1:
        path = path.rstrip("/")
    query = urlencode(
        sorted(
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if not _TRACKING.match(k)
        )
    )
    return urlunsplit((scheme, netloc, path, query, ""))


def clean_link(url: str) -> str:
    """The link readers follow: as the site wrote it (scheme kept: http-only sites exist),
    without `user:pass@`, fragment or tracking parameters. Identity uses `canonical_url`."""
    plain = _PLAIN_URL.fullmatch(url)
    if plain is not None:
        return url if plain[3] else url + "/"
    return _clean_link_parsed(url)


def _clean_link_parsed(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
         if not _TRACKING.match(k)]
    )  # fmt: skip
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path or "/", query, ""))


def absolute_url(base: str, link: str) -> str | None:
    """`link` resolved against `base`; None for anything but a well-formed http(s) URL
    (no file:, javascript:, `http://[oops/` or port 99999)."""
    if _PLAIN_URL.fullmatch(link) is not None and _joinable(base):
        return link  # urljoin keeps an absolute URL as it is
    return _absolute_url_parsed(base, link)


@functools.lru_cache(maxsize=256)
def _joinable(base: str) -> bool:
    """urljoin(base, ...) does not raise (a feed's or page's address: a few per run)."""
    try:
        urljoin(base, "x")
    except ValueError:
        return False
    return True


def _absolute_url_parsed(base: str, link: str) -> str | None:
    try:
        joined = urljoin(base, link.strip())
        parts = urlsplit(joined)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    return joined if parts.scheme in ("http", "https") else None


_ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div", "dl",
    "dt", "em", "figcaption", "figure", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "li", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
}


MAX_DEPTH = 32  # elements open at once; deeper ones lose their tags (not their text)
_TAG_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)[^<>]*>")  # [^<>]: linear, even unclosed
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_SELF_CLOSING = frozenset("p li dd dt tr td th option".split())  # `<li>a<li>b`: siblings


def flatten_deep(fragment: str) -> str:
    """The fragment with tags past MAX_DEPTH open elements dropped, in one linear pass:
    html5ever (nh3) takes time quadratic in nesting depth (100,000 nested `<blockquote>`s:
    about a minute). Text is kept; only structure deeper than any real article goes."""
    if fragment.count("<") <= MAX_DEPTH:
        return fragment
    open_tags: list[str] = []
    dropped: dict[str, int] = {}
    pieces: list[str] = []
    kept_until = 0
    for m in _TAG_TOKEN.finditer(fragment):
        closing, name = m.group(1), m.group(2).lower()
        keep = True
        if closing:
            if dropped.get(name):
                dropped[name] -= 1
                keep = False
            elif name in open_tags:
                while open_tags.pop() != name:
                    pass
        elif name not in _VOID and not m.group(0).endswith("/>"):
            if open_tags and open_tags[-1] == name and name in _SELF_CLOSING:
                open_tags.pop()
            if len(open_tags) >= MAX_DEPTH:
                dropped[name] = dropped.get(name, 0) + 1
                keep = False
            else:
                open_tags.append(name)
        if not keep:
            pieces.append(fragment[kept_until : m.start()])
            kept_until = m.end()
    if not pieces:
        return fragment
    pieces.append(fragment[kept_until:])
    return "".join(pieces)


# Markup that nh3 (html5ever's parse and serialization) gives back as it is: paragraphs at
# the top, properly nested inline tags without attributes, and text with no character the
# parser or serializer rewrites (`&`, `<`, `>`, NBSP, CR, NUL and what xml_safe drops). Most
# feed descriptions are like this; they skip nh3's round trip (tests/test_feed_records.py
# compares both ways on generated markup).
_PLAIN_CHARS = "[^<>&\r\xa0\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]"
_INLINE_TAGS = "b|i|em|strong|u|s|small|code|sub|sup|span"
_SIMPLE_TAG = re.compile(r"<(/?)([a-z]+)>")
_SIMPLE_NAMES = frozenset(["p", "br", *_INLINE_TAGS.split("|")])
_NOT_PLAIN = re.compile(_PLAIN_CHARS.replace("[^", "[", 1))
_INLINE_TAG = re.compile(f"</?(?:{_INLINE_TAGS})>")
_SIMPLE_DEPTH = 8  # far below MAX_DEPTH: flatten_deep leaves it as it is


_SIMPLE_CACHED = 16_384  # characters: longer fragments are checked every time, not kept


def _simple_markup(fragment: str) -> bool:
    """True when nh3 would return `fragment` unchanged: text of _PLAIN_CHARS, `<p>` only
    outside any other element, inline tags closed in order, `<br>` anywhere."""
    if len(fragment) > _SIMPLE_CACHED:
        return _simple_markup_checked(fragment)
    return _simple_markup_cached(fragment)


# a feed's descriptions are read as text (all items), then as bodies: a feed's worth kept
@functools.lru_cache(maxsize=256)
def _simple_markup_cached(fragment: str) -> bool:
    return _simple_markup_checked(fragment)


def _simple_markup_checked(fragment: str) -> bool:
    """Read as the text between tags (_SIMPLE_TAG.split): text of printable characters
    holds none that _PLAIN_CHARS excludes but `<`, `>` and `&`, so only those are looked
    for (tests/test_feed_shortcuts.py compares it with a regex over the whole fragment)."""
    # html5ever drops a U+FEFF (a byte order mark pasted in) only as the first character
    if fragment.startswith("\ufeff"):
        return False
    pieces = _SIMPLE_TAG.split(fragment)  # text, "/" or "", name, text, ...
    text = "".join(pieces[::3])
    if (
        "<" in text
        or ">" in text
        or "&" in text
        or (not text.isprintable() and _NOT_PLAIN.search(text))
    ):
        return False
    open_tags: list[str] = []
    for closing, name in zip(pieces[1::3], pieces[2::3], strict=True):
        if name not in _SIMPLE_NAMES:
            return False
        if closing:  # (`</br>` too: br is never open)
            if not open_tags or open_tags.pop() != name:
                return False
        elif name == "br":
            continue
        elif (name == "p" and open_tags) or len(open_tags) >= _SIMPLE_DEPTH:
            return False
        else:
            open_tags.append(name)
    return not open_tags


def sanitize_html(fragment: str, base_url: str | None = None) -> str:
    """Untrusted HTML -> safe HTML: no script/style/iframe, handlers or javascript: URLs;
    relative links and images made absolute against `base_url`."""
    if _simple_markup(fragment):
        return fragment
    return _sanitize_nh3(fragment, base_url)


def _sanitize_nh3(fragment: str, base_url: str | None) -> str:
    def rewrite(element: str, attribute: str, value: str) -> str | None:
        if attribute not in ("href", "src"):
            return value
        if base_url:
            return absolute_url(base_url, value)
        return value if urlsplit(value).scheme in ("http", "https") else None

    cleaned: str = nh3.clean(
        flatten_deep(xml_safe(fragment)),
        tags=_ALLOWED_TAGS,
        clean_content_tags={"script", "style", "iframe", "noscript", "template", "object"},
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https"},
        attribute_filter=rewrite,
        link_rel="noopener noreferrer",
    )
    return cleaned


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment, for summaries and comparison."""
    return collapse(html.unescape(_ANY_TAG.sub(" ", fragment)))


_ANY_TAG = re.compile(r"<[^>]*>")


def slugify(text: str) -> str:
    """`Dünya Haberleri` -> `dunya-haberleri`: Turkish letters mapped to ASCII, not dropped."""
    t = turkish_lower(unicodedata.normalize("NFKC", text))
    t = t.translate(str.maketrans("çğıöşüâîû", "cgiosuaiu"))
    t = unicodedata.normalize("NFKD", t).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", t).strip("-") or "genel"


SLUG_BYTES = 80  # a folder name on any file system (NAME_MAX is 255 bytes, eCryptfs 143)


def path_slug(text: str) -> str:
    """slugify, short enough to be a folder name: a longer slug is cut and given a short
    hash of the whole, so distinct long names stay distinct. (A slug is ASCII: a byte a
    character.)"""
    slug = slugify(text)
    if len(slug) <= SLUG_BYTES:
        return slug
    digest = hashlib.blake2b(slug.encode("ascii"), digest_size=5).hexdigest()
    return f"{slug[: SLUG_BYTES - len(digest) - 1].rstrip('-')}-{digest}"


def shorten(text: str, limit: int = 110) -> str:
    """A title derived from running text: the first sentence, cut at a word boundary."""
    text = collapse(text)
    sentence = re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]
    if len(sentence) <= limit:
        return sentence
    cut = sentence[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:-–") + "…"


_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|li|ul|ol|h[1-6]|tr|td|th|table|blockquote|section|article|figure|hr)\b[^>]*>",
    re.IGNORECASE,
)


def plain_text(fragment: str) -> str:
    """Text of an HTML fragment: script/style dropped, inline tags glued (`<b>x</b>.` is
    `x.`, not `x .` as with html_to_text), block tags as spaces."""
    if "<" not in fragment:
        return html_to_text(fragment)
    if _simple_markup(fragment):  # what nh3 would keep of it: the text, blocks as spaces
        spaced = fragment.replace("<p>", " ").replace("</p>", " ").replace("<br>", " ")
        return _collapsed(_INLINE_TAG.sub("", spaced))  # (nothing for xml_safe to drop)
    return _plain_text_nh3(fragment)


def _plain_text_nh3(fragment: str) -> str:
    spaced = _BLOCK_TAG.sub(" ", fragment)  # block tags gone: nesting left is inline only
    text: str = nh3.clean(flatten_deep(spaced), tags=set(), clean_content_tags={"script", "style"})
    return collapse(html.unescape(text))


def mostly_utf8(data: bytes) -> bool:
    """Valid UTF-8 but for a few stray bytes: at most one bad byte per 20 good non-ASCII
    characters (a Windows-1254 page decoded as UTF-8 has almost no good ones)."""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = sum(1 for ch in text if ch > "\x7f") - bad
    return bad * 20 <= good
