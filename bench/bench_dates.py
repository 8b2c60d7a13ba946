"""The cost of reading dates in other languages (dateparser), next to a same-run reference.

Prints: dateparser's first call in a fresh process (import and language data), and
parse_feed on one 50-item feed four ways: RFC 822 English dates (the reference:
dateparser never runs), Portuguese dates without and with the feed's <language> (dateparser
for every item; the language is tried first), and no dates at all (first-seen).
Usage: python bench/bench_dates.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Europe/Istanbul")
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=TZ)
PT_DAYS = ("Seg", "Ter", "Qua", "Qui", "Sex", "Sáb", "Dom")
PT_MONTHS = ("Jan", "Fev", "Mar", "Abr", "Mai", "Jun", "Jul", "Ago", "Set", "Out", "Nov", "Dez")
EN_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EN_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
COLD = """
import time
from zoneinfo import ZoneInfo
t = time.perf_counter()
from aggregator.timeparse import parse_foreign
assert parse_foreign("Seg, 24 Set 2018 19:42:40 -0300", ZoneInfo("UTC"))
print(time.perf_counter() - t)
"""


def rfc822(when: datetime, days: tuple[str, ...], months: tuple[str, ...]) -> str:
    return (f"{days[when.weekday()]}, {when.day:02d} {months[when.month - 1]} {when.year} "
            f"{when:%H:%M:%S} -0300")  # fmt: skip


def feed(dates: list[str | None], language: str = "") -> bytes:
    items = "".join(
        f"<item><title>Notícia número {i} de hoje</title><link>http://site.test/n/{i}</link>"
        + (f"<pubDate>{d}</pubDate>" if d else "")
        + "<description>Um parágrafo curto.</description></item>"
        for i, d in enumerate(dates)
    )
    head = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
    return f"{head}<link>http://site.test/</link>{language}{items}</channel></rss>".encode()


def per_feed(data: bytes, rounds: int) -> float:
    from aggregator.sources.feed import parse_feed
    from aggregator.timeparse import parse_foreign

    times = []
    for _ in range(rounds):
        parse_foreign.cache_clear()  # every feed brings new date strings
        t = time.perf_counter()
        result = parse_feed(data, url="http://site.test/f", source="s", tz=TZ, now=NOW)
        times.append(time.perf_counter() - t)
        assert len(result.articles) == 50
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=20)
    args = ap.parse_args()
    cold = [float(subprocess.run([sys.executable, "-c", COLD], capture_output=True, text=True,
                                 check=True).stdout) for _ in range(3)]  # fmt: skip
    print(f"dateparser first call in a fresh process (import + data): "
          f"{statistics.median(cold) * 1000:.0f} ms")  # fmt: skip
    moments = [NOW - timedelta(hours=7 * i, minutes=i) for i in range(50)]
    english = feed([rfc822(m, EN_DAYS, EN_MONTHS) for m in moments])
    portuguese = feed([rfc822(m, PT_DAYS, PT_MONTHS) for m in moments])
    declared = feed([rfc822(m, PT_DAYS, PT_MONTHS) for m in moments], "<language>pt-BR</language>")
    undated = feed([None] * 50)
    per_feed(portuguese, 1)  # warm: import and language data
    ref = per_feed(english, args.rounds)
    pt = per_feed(portuguese, args.rounds)
    pt_declared = per_feed(declared, args.rounds)
    none = per_feed(undated, args.rounds)
    print(f"50-item feed, English RFC 822 dates (reference): {ref * 1000:.1f} ms")
    for label, cost in (("no <language>", pt), ("<language>pt-BR", pt_declared)):
        print(
            f"50-item feed, Portuguese dates, {label}: {cost * 1000:.1f} ms"
            f" = {(cost - ref) / 50 * 1000:.2f} ms more per item ({cost / ref:.1f}x)"
        )
    print(f"50-item feed, no dates (first-seen):             {none * 1000:.1f} ms")


if __name__ == "__main__":
    main()
