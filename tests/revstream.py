"""Revision streams as Turkish newsrooms make them, for identity tests and measurements.

A stream is a list of events over a few stories: seed files written (body growth, title
edits, Turkish case changes, `SON DAKİKA |` labels added and removed, a rewritten title and
spot, title + spot + first paragraph lightly edited in one go), files renamed or deleted,
late copies of old revisions, and the story arriving through the site's own RSS feed with
its URL (summary only). Two stories share each GİRİŞ minute (two of them also share the
agency's closing paragraph), and two stories on different days share a title, so "different
articles, same minute" and "recurring title" are always in play. Every revision carries its
story in its origin (`s<story>-...`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import format_datetime

from aggregator.model import Article
from aggregator.normalize import turkish_lower, turkish_upper
from tests.conftest import ISTANBUL
from tests.seedmaker import tgrt_seed

SITE = "haber.test"
T0 = datetime(2026, 2, 2, 9, 0, tzinfo=ISTANBUL)
WORDS = (
    "Ankara İstanbul İzmir Bursa bakanlık açıklama görüşme ekonomi seçim deprem yağış futbol "
    "meclis bütçe enflasyon faiz ihracat turizm eğitim sağlık ulaşım metro köprü belediye vali "
    "çalışma toplantı karar uyarı rekor artış düşüş yatırım proje hastane okul öğrenci sınav "
    "fiyat zam maaş emekli vergi kredi banka borsa dolar altın petrol doğalgaz elektrik su "
    "kuraklık orman yangın sel kar fırtına trafik kaza polis mahkeme dava tutuklama"
).split()
KINDS = ("grow", "retitle", "case", "label", "rewrite", "light", "rename", "late", "delete",
         "feed")  # fmt: skip
RECURRING = "Günün özeti: öne çıkan gelişmeler ve son durum"
BOILERPLATE = (
    "Ajansımızın haberlerini kaynak göstermeden kullanmak yasaktır; ayrıntılar gelişmeler "
    "oldukça güncellenecek, son dakika haberleri için bildirimleri açmayı unutmayın, "
    "sosyal medya hesaplarımızdan bizi takip edebilir ve görüşlerinizi yorum bölümünde "
    "paylaşabilirsiniz."
)


def _sentence(rnd: random.Random, n: int) -> str:
    text = " ".join(rnd.choice(WORDS) for _ in range(n))
    return text[:1].replace("i", "İ").upper() + text[1:]


@dataclass(frozen=True)
class Revision:
    story: int
    rev: int
    title: str
    spot: str
    body: tuple[str, ...]
    giris: datetime
    guncelleme: datetime

    @property
    def url(self) -> str:
        return f"https://{SITE}/haber/{self.story}"

    def scrape(self, name: str) -> Article:
        """The record a seed file of this revision parses to."""
        return Article(
            title=self.title, summary=self.spot,
            content_html="".join(f"<p>{p}</p>" for p in self.body),
            published=self.giris, updated=self.guncelleme, source="seeds",
            origin=f"s{self.story}-{name}", authors=("Haber Merkezi",),
        )  # fmt: skip

    def feed_item(self) -> Article:
        """The site's own RSS item: its URL and guid, the spot only."""
        return Article(
            title=self.title, summary=self.spot, content_html=f"<p>{self.spot}</p>",
            published=self.giris, updated=self.guncelleme, source="feed",
            origin=f"s{self.story}-feed", link=self.url, guid=self.url,
        )  # fmt: skip

    def seed_text(self) -> str:
        return tgrt_seed(title=self.title, spot=self.spot, giris=self.giris,
                         guncelleme=self.guncelleme, body=self.body)  # fmt: skip

    def rss_item(self) -> str:
        return (
            f"<item><title>{self.title}</title><link>{self.url}</link>"
            f"<guid isPermaLink='true'>{self.url}</guid>"
            f"<pubDate>{format_datetime(self.giris)}</pubDate>"
            f"<description>{self.spot}</description></item>"
        )


@dataclass(frozen=True)
class Event:
    """`write` a seed file, `delete` one, or publish `feed` items (one per story, newest)."""

    action: str
    name: str
    revision: Revision | None = None


def first_revisions(stories: int, seed: int = 0) -> list[Revision]:
    out = []
    for s in range(stories):
        r = random.Random(seed * 1000 + s)
        giris = T0 + timedelta(minutes=10 * (s // 2))  # two stories per minute
        title = f"{_sentence(r, 6)} {s}"
        if s == 1:
            title = RECURRING
        if s == 3:
            title, giris = RECURRING, giris + timedelta(days=1)
        body = tuple(_sentence(r, 40) + "." for _ in range(4))
        if s in (4, 5):  # one minute, two stories, the agency's closing paragraph in both
            body += (BOILERPLATE,)
        out.append(Revision(s, 0, title, _sentence(r, 22) + ".", body, giris,
                            giris + timedelta(minutes=2)))  # fmt: skip
    return out


def _edit(text: str, rnd: random.Random) -> str:
    words = text.split()
    words[rnd.randrange(len(words))] = rnd.choice(WORDS)
    return " ".join(words)


def revise(rev: Revision, kind: str, rnd: random.Random) -> Revision:
    """The next revision of a story, one edit kind applied."""
    if kind == "grow":
        rev = replace(rev, body=(*rev.body, _sentence(rnd, 30) + "."))
    elif kind == "retitle":
        rev = replace(rev, title=_edit(rev.title, rnd))
    elif kind == "case":
        upper = turkish_upper(rev.title)
        lower = rev.title[:1] + turkish_lower(rev.title[1:])
        rev = replace(rev, title=upper if upper != rev.title else lower)
    elif kind == "label":
        label = "SON DAKİKA | "
        t = rev.title
        rev = replace(rev, title=t[len(label) :] if t.startswith(label) else label + t)
    elif kind == "rewrite":
        rev = replace(rev, title=f"{_sentence(rnd, 7)} {rev.story}", spot=_sentence(rnd, 20) + ".")
    elif kind == "light":
        rev = replace(rev, title=_edit(rev.title, rnd), spot=_edit(rev.spot, rnd),
                      body=(_edit(rev.body[0], rnd), *rev.body[1:]))  # fmt: skip
    return replace(rev, rev=rev.rev + 1, guncelleme=rev.guncelleme + timedelta(minutes=3))


def stream(rnd: random.Random, stories: int = 8, events: int = 40) -> list[Event]:
    """A stream: every story first written, then `events` edits of random kinds."""
    current = {r.story: r for r in first_revisions(stories, rnd.randrange(1000))}
    history: dict[int, list[Revision]] = {s: [r] for s, r in current.items()}
    files: dict[int, list[str]] = {s: [f"s{s}-0.txt"] for s in current}
    out = [Event("write", f"s{s}-0.txt", r) for s, r in current.items()]
    for n in range(events):
        s = rnd.randrange(stories)
        kind = rnd.choice(KINDS)
        name = f"s{s}-e{n}.txt"
        if kind == "rename" and files[s]:
            old = files[s].pop(rnd.randrange(len(files[s])))
            out += [Event("delete", old), Event("write", name, current[s])]
            files[s].append(name)
        elif kind == "late":
            out.append(Event("write", name, rnd.choice(history[s])))
            files[s].append(name)
        elif kind == "delete" and files[s]:
            out.append(Event("delete", files[s].pop(rnd.randrange(len(files[s])))))
        elif kind == "feed":
            out.append(Event("feed", f"s{s}", current[s]))
        elif kind not in ("rename", "delete"):
            current[s] = revise(current[s], kind, rnd)
            history[s].append(current[s])
            out.append(Event("write", name, current[s]))
            files[s].append(name)
    return out


def records(events: list[Event]) -> list[Article]:
    """The records a stream's events give, in order (deletions give none)."""
    out = []
    for e in events:
        if e.revision is not None:
            rev = e.revision
            out.append(rev.feed_item() if e.action == "feed" else rev.scrape(e.name))
    return out


def expected(events: list[Event]) -> dict[int, tuple[str, str | None]]:
    """story -> (the newest revision's title, the site's URL if any copy had one)."""
    newest: dict[int, Revision] = {}
    linked: set[int] = set()
    for e in events:
        rev = e.revision
        if rev is None:
            continue
        if rev.story not in newest or rev.guncelleme > newest[rev.story].guncelleme:
            newest[rev.story] = rev
        if e.action == "feed":
            linked.add(rev.story)
    return {s: (r.title, r.url if s in linked else None) for s, r in newest.items()}
