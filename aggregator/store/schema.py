"""The store's schema: versioned migrations that run on open, with their data backfills.

Plain SQL (`?` parameters, portable types), run by both backends (store/db.py): the
PostgreSQL one translates the DDL's types. A backfill reads the table's columns through the
backend, never through a backend's own catalogue.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from aggregator.model import MAX_NAME, MAX_NAMES
from aggregator.normalize import SLUG_BYTES, path_slug
from aggregator.records import unpack_record
from aggregator.store.db import Database

SCHEMA_VERSION = 13
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE articles (
        id TEXT PRIMARY KEY,
        published TEXT NOT NULL,
        updated TEXT NOT NULL,
        has_link INTEGER NOT NULL,
        content_hash TEXT NOT NULL,
        source TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_changed TEXT NOT NULL
    );
    CREATE INDEX articles_by_published ON articles (published, id);
    CREATE TABLE article_keys (
        match_key TEXT PRIMARY KEY,
        article_id TEXT NOT NULL
    );
    CREATE INDEX article_keys_by_article ON article_keys (article_id);
    CREATE TABLE revisions (
        id INTEGER PRIMARY KEY,
        article_id TEXT,
        content_hash TEXT NOT NULL,
        updated TEXT NOT NULL,
        origin TEXT NOT NULL,
        record BLOB NOT NULL,
        seen TEXT NOT NULL
    );
    CREATE UNIQUE INDEX revisions_by_article ON revisions (article_id, content_hash);
    CREATE TABLE seed_files (
        path TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL,
        digest TEXT NOT NULL,
        seen TEXT NOT NULL
    );
    CREATE TABLE source_state (
        name TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        last_success TEXT,
        last_error TEXT,
        last_error_at TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        next_due TEXT,
        feed_digest TEXT
    );
    """,
    # per-category feeds and cheap "nothing changed since the last publish"
    2: """
    CREATE TABLE article_categories (
        article_id TEXT NOT NULL,
        slug TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (article_id, slug)
    );
    CREATE INDEX article_categories_by_slug ON article_categories (slug, article_id);
    CREATE TABLE publish_state (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # per-source feeds: the newest articles of one source without scanning them all
    3: """
    CREATE INDEX IF NOT EXISTS articles_by_source ON articles (source, published, id);
    """,
    # records are written zstd-compressed (zlib ones are still read): no table changes, but
    # an older aggregator must refuse this store instead of failing on a record it can't read
    4: "",
    # match keys are looked up by key only; the by-article index served just expiry (now one
    # pass over the keys per run that expires anything) and cost a quarter of a cold merge
    5: "DROP INDEX IF EXISTS article_keys_by_article",
    # when an undated feed item was first seen (its date, never recomputed); `served`: when
    # a feed last served it (the least recently served are forgotten first)
    6: """
    CREATE TABLE IF NOT EXISTS first_seen (
        source TEXT NOT NULL,
        item_key TEXT NOT NULL,
        seen TEXT NOT NULL,
        served TEXT NOT NULL,
        PRIMARY KEY (source, item_key)
    );
    """,
    # `fulltext` feeds: the items (by their feed content hash) whose page was fetched
    7: """
    CREATE TABLE IF NOT EXISTS fulltext_seen (
        source TEXT NOT NULL,
        item TEXT NOT NULL,
        PRIMARY KEY (source, item)
    ) WITHOUT ROWID;
    """,
    # retention counts from first_seen (no index: a scan per run costs less than keeping
    # one up to date through a cold import); what it removed is remembered (by match key and
    # the inputs it came from) so it is not added back every run, and is when retention
    # rises; a seed file rejected is remembered with its reason, so it is reported once
    8: """
    CREATE TABLE IF NOT EXISTS expired (
        article_id TEXT PRIMARY KEY,
        first_seen TEXT NOT NULL,
        expired_at TEXT NOT NULL,
        origins TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS expired_keys (
        match_key TEXT PRIMARY KEY,
        article_id TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS expired_keys_by_article ON expired_keys (article_id);
    """,
    # category slugs are bounded (at most MAX_NAMES per article, SLUG_BYTES long): the rows
    # of articles stored before are redone by the backfill
    9: "",
    # revision identity v2: the article's site, where each published field comes from (with
    # the composed record when it is not one revision's), a text signature (filled when
    # first needed), and the ids retired by a bridging merge (aliases, never reissued)
    # (the columns are added by _add_identity_columns)
    10: """
    CREATE TABLE IF NOT EXISTS article_aliases (
        alias TEXT PRIMARY KEY,
        article_id TEXT NOT NULL
    );
    """,
    # `fulltext` feeds: per item page, its validators and the body it gave (zstd, as records
    # are), so a changed item's page is asked for conditionally and a 304 reuses the body;
    # `item`: the feed content hash it last gave a body to; `fetched`: when last answered
    11: """
    CREATE TABLE IF NOT EXISTS fulltext_pages (
        source TEXT NOT NULL,
        url TEXT NOT NULL,
        item TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        body BLOB NOT NULL,
        fetched TEXT NOT NULL,
        PRIMARY KEY (source, url)
    );
    """,
    # the category list every publish reads (slug, first name, count) from the index alone:
    # with names only in the table it visited every row (0.8 s at 500,000 articles)
    12: "CREATE INDEX IF NOT EXISTS article_categories_by_name ON article_categories (slug, name)",
    # publishing flat in store size: a category's rows carry their article's GİRİŞ, so its
    # feed is a short walk of one index (slug, GİRİŞ, id) newest first, whatever its size;
    # the category list is a count per (slug, name) kept by every write of a category row,
    # never a scan, as is the number of articles (`store_counts` 'articles'; PostgreSQL
    # counts by reading every row); the two indexes they replace go (_category_feeds)
    13: """
    CREATE TABLE IF NOT EXISTS store_counts (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS category_names (
        slug TEXT NOT NULL,
        name TEXT NOT NULL,
        articles INTEGER NOT NULL,
        PRIMARY KEY (slug, name)
    ) WITHOUT ROWID;
    DROP INDEX IF EXISTS article_categories_by_slug;
    DROP INDEX IF EXISTS article_categories_by_name;
    """,
}


STORE_TABLES = frozenset(
    re.findall(r"CREATE TABLE (?:IF NOT EXISTS )?(\w+)", " ".join(MIGRATIONS.values()))
)
"""The store's own tables (what `migrate` copies, with `schema_meta` apart)."""
SHARED_TABLE_PREFIXES = ("cluster_", "output_")
"""Tables of several nodes' coordination (aggregator/cluster.py, aggregator/sharedout.py):
PostgreSQL only, made by a node before or after the store's own, and not store data (a
node rebuilds them), so a database holding just them is still a new store, and `migrate`
leaves them out."""


def category_slugs(categories: Iterable[str]) -> list[tuple[str, str]]:
    """(slug, name) pairs: `#Gündem` and `Gündem` are one category, `gundem`. The slug
    names the category's folder, so it is short enough for any file system."""
    out: dict[str, str] = {}
    for raw in list(categories)[:MAX_NAMES]:
        name = raw.lstrip("#").strip()[:MAX_NAME]
        if name:
            out.setdefault(_slug(name), name)
    return list(out.items())


@functools.lru_cache(maxsize=4096)
def _slug(name: str) -> str:
    """path_slug, once per name: a feed's items share a few category names, and a cold
    merge slugs every article's."""
    return path_slug(name)


def _backfill_categories(conn: Database, where: str = "") -> None:
    """Migration 2: categories of the articles a version-1 store already holds."""
    rows = conn.execute(
        "SELECT a.id, r.record FROM articles a"
        " JOIN revisions r ON r.article_id = a.id AND r.content_hash = a.content_hash" + where
    )
    conn.executemany(
        "INSERT INTO article_categories (article_id, slug, name) VALUES (?, ?, ?)"
        " ON CONFLICT DO NOTHING",
        (
            (aid, slug, name)
            for aid, record in rows
            for slug, name in category_slugs(json.loads(unpack_record(record))["categories"])
        ),
    )


def _unbelieve_future_dates(conn: Database) -> None:
    """Migration 6: articles stored before future dates were refused (GİRİŞ or GÜNCELLEME
    more than FUTURE_SLACK after the run that stored them) take that run's time instead,
    so they neither stay on top nor make every later correction lose. The stored record
    keeps its text; the published time shown and the rank a correction must beat are these
    columns."""
    slack = timedelta(days=1)
    fixes = []
    for aid, published, updated, first_seen, last_changed in conn.execute(
        "SELECT id, published, updated, first_seen, last_changed FROM articles"
    ):
        new_published = published
        if datetime.fromisoformat(published) > datetime.fromisoformat(first_seen) + slack:
            new_published = first_seen
        new_updated = updated
        if datetime.fromisoformat(updated) > datetime.fromisoformat(last_changed) + slack:
            new_updated = new_published
        if (new_published, new_updated) != (published, updated):
            fixes.append((new_published, max(new_updated, new_published), aid))
    conn.executemany("UPDATE articles SET published = ?, updated = ? WHERE id = ?", fixes)


def _seed_file_rejections(conn: Database) -> None:
    """Migration 8: seed_files.rejected, the reason a file as it is now was rejected."""
    columns = set(conn.columns("seed_files"))
    if "rejected" not in columns:
        conn.execute("ALTER TABLE seed_files ADD COLUMN rejected TEXT")


def _bound_categories(conn: Database) -> None:
    """Migration 9: the categories of articles that had too many or too long ones, redone."""
    conn.execute(
        "CREATE TEMP TABLE unbounded AS SELECT article_id FROM article_categories"
        f" GROUP BY article_id HAVING COUNT(*) > {int(MAX_NAMES)}"
        f" OR MAX(length(slug)) > {int(SLUG_BYTES)}"
    )
    unbounded = " IN (SELECT article_id FROM unbounded)"
    conn.execute("DELETE FROM article_categories WHERE article_id" + unbounded)
    _backfill_categories(conn, " WHERE a.id" + unbounded)
    conn.execute("DROP TABLE unbounded")


def _add_identity_columns(conn: Database) -> None:
    """Migration 10: articles.site, fields, record, signature (NULL: one revision gives every
    field; no site fixed yet; signature computed when first needed). No id changes."""
    have = set(conn.columns("articles"))
    for column, kind in (("site", "TEXT"), ("fields", "TEXT"), ("record", "BLOB"),
                         ("signature", "BLOB")):  # fmt: skip
        if column not in have:
            conn.execute(f"ALTER TABLE articles ADD COLUMN {column} {kind}")


def _category_feeds(conn: Database) -> None:
    """Migration 13: article_categories.published (its article's GİRİŞ), the index category
    feeds walk, category_names' and store_counts' counts, from the rows a store holds."""
    if "published" not in set(conn.columns("article_categories")):
        conn.execute("ALTER TABLE article_categories ADD COLUMN published TEXT NOT NULL DEFAULT ''")
    conn.execute(  # rows of no article (none are written, but an old store may hold some)
        "DELETE FROM article_categories WHERE NOT EXISTS"
        " (SELECT 1 FROM articles WHERE articles.id = article_categories.article_id)"
    )
    conn.execute(
        "UPDATE article_categories SET published ="
        " (SELECT a.published FROM articles a WHERE a.id = article_categories.article_id)"
    )
    conn.execute(
        "CREATE INDEX IF NOT EXISTS article_categories_by_feed"
        " ON article_categories (slug, published, article_id)"
    )
    conn.execute("DELETE FROM category_names")
    conn.execute(
        "INSERT INTO category_names (slug, name, articles)"
        " SELECT slug, name, COUNT(*) FROM article_categories GROUP BY slug, name"
    )
    conn.execute("DELETE FROM store_counts")
    conn.execute(  # none in a new store, which `migrate` wants empty
        "INSERT INTO store_counts (name, value)"
        " SELECT 'articles', n FROM (SELECT COUNT(*) AS n FROM articles) c WHERE n > 0"
    )


BACKFILLS: dict[int, Callable[[Database], None]] = {
    2: _backfill_categories,
    6: _unbelieve_future_dates,
    8: _seed_file_rejections,
    9: _bound_categories,
    10: _add_identity_columns,
    13: _category_feeds,
}
