"""Seed files in the real TGRT Haber scrape layout, for tests and benchmarks."""

from __future__ import annotations

from datetime import datetime


def tgrt_seed(
    *,
    title: str,
    spot: str,
    giris: datetime,
    guncelleme: datetime | None = None,
    author: str = "Haber Merkezi Editörü",
    agency: str = "Haber Merkezi",
    body: tuple[str, ...] = ("Birinci paragraf metni.", "ARA BAŞLIK", "İkinci paragraf metni."),
) -> str:
    lines = [
        f" date {giris:%Y-%m-%d} Menü Kapat",
        f" {author}",
        "",
        title,
        "",
        spot,
        "",
        title,
        "KAYNAK:",
        agency,
        "|",
        "GİRİŞ:",
        f"{giris:%d.%m.%Y}",
        f"{giris:%H:%M}",
    ]
    if guncelleme is not None:
        lines += ["|", "GÜNCELLEME:", f"{guncelleme:%d.%m.%Y}", f"{guncelleme:%H:%M}"]
    lines.append("")
    for paragraph in body:
        lines += [paragraph, ""]
    return "\n".join(lines)
