"""What earlier nights stored about pages, listings and duplicates, read back for a crawl."""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from schemas.ids import normalize_url
from schemas.models import (
    PageState,
)
from tasks.store.connection import connect, open_for_write


def read_page_states(path: Path | str, urls: Sequence[str]) -> dict[str, PageState]:
    """What earlier runs learnt about these URLs, keyed by normalised URL."""
    if not Path(path).exists() or not urls:
        return {}
    keys = [normalize_url(u) for u in urls]
    with open_for_write(path) as con:
        rows = con.execute(
            "SELECT p.url, p.status, p.etag, p.last_modified, p.content_hash, p.article_id, "
            "p.attempts, p.last_fetched_at, a.published_at FROM pages p "
            "LEFT JOIN articles a ON a.article_id = p.article_id "
            "WHERE p.url IN (SELECT unnest(?::VARCHAR[]))", [keys]).fetchall()
    return {row[0]: PageState(*row) for row in rows}


def read_failed_pages(path: Path | str, source: str, max_attempts: int = 10) -> list[str]:
    """Pages of a source whose last fetch or parse failed: offered again on this run."""
    if not Path(path).exists():
        return []
    with open_for_write(path) as con:
        rows = con.execute("SELECT url FROM pages WHERE source = ? AND status = 'failed' "
                           "AND attempts < ? ORDER BY url", [source, max_attempts]).fetchall()
    return [row[0] for row in rows]


def read_article_ids(path: Path | str, urls: Sequence[str]) -> dict[str, str]:
    """Normalised URL -> article id, for every address an article was stored under."""
    if not Path(path).exists() or not urls:
        return {}
    with open_for_write(path) as con:
        rows = con.execute(
            "SELECT url, article_id FROM article_urls WHERE url IN "
            "(SELECT unnest(?::VARCHAR[]))", [[normalize_url(u) for u in urls]]).fetchall()
    return dict(rows)


def read_raw_pages(path: Path | str, source: str | None = None
                   ) -> list[tuple[str, str, str, str | None, bytes, datetime]]:
    """(url, source, final_url, encoding, html, fetched_at) of every archived page."""
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT r.url, p.source, r.final_url, r.encoding, r.html_gz, r.fetched_at "
            "FROM raw_pages r JOIN pages p USING (url) "
            "WHERE ? IS NULL OR p.source = ? ORDER BY r.url", [source, source]).fetchall()
    return [(u, s, f, e, gzip.decompress(h), t) for u, s, f, e, h, t in rows]


def read_similar_signatures(path: Path | str, buckets: Sequence[tuple[int, int]]
                            ) -> list[tuple[str, str | None, bytes]]:
    """(article id, title key, MinHash) of stored articles sharing any (band, bucket)."""
    if not Path(path).exists() or not buckets:
        return []
    with open_for_write(path) as con:
        rows = con.execute(
            "SELECT s.article_id, s.title_key, s.minhash FROM article_signatures s "
            "WHERE s.article_id IN (SELECT b.article_id FROM article_bands b JOIN "
            "(SELECT unnest(?::SMALLINT[]) AS band, unnest(?::BIGINT[]) AS bucket) q "
            "USING (band, bucket))",
            [[b for b, _ in buckets], [k for _, k in buckets]]).fetchall()
    return [(a, t, bytes(m)) for a, t, m in rows]


def read_signed_articles(path: Path | str, article_ids: Sequence[str]) -> set[str]:
    """Which of these articles already have a stored signature (were seen before)."""
    if not Path(path).exists() or not article_ids:
        return set()
    with open_for_write(path) as con:
        rows = con.execute("SELECT article_id FROM article_signatures WHERE article_id IN "
                           "(SELECT unnest(?::VARCHAR[]))", [list(article_ids)]).fetchall()
    return {row[0] for row in rows}


def read_stored_comments(path: Path | str, article_ids: Iterable[str]
                         ) -> list[tuple[str, str, str | None, str, datetime | None]]:
    """(article id, comment id, author, body, posted_at) of these articles' stored comments."""
    ids = sorted(article_ids)
    if not Path(path).exists() or not ids:
        return []
    with open_for_write(path) as con:
        rows = con.execute(
            "SELECT article_id, comment_id, author, body, posted_at FROM comments "
            "WHERE article_id IN (SELECT unnest(?::VARCHAR[]))", [ids]).fetchall()
    return [(a, c, au, b, p) for a, c, au, b, p in rows]


def read_duplicates(path: Path | str, urls: Sequence[str]) -> dict[str, tuple[str, str]]:
    """Normalised page URL -> (the copy's own article id, the article it was merged into)."""
    if not Path(path).exists() or not urls:
        return {}
    with open_for_write(path) as con:
        rows = con.execute(
            "SELECT url, article_id, duplicate_of FROM article_duplicates WHERE url IN "
            "(SELECT unnest(?::VARCHAR[]))", [[normalize_url(u) for u in urls]]).fetchall()
    return {u: (a, d) for u, a, d in rows}


def read_listings(path: Path | str, source: str
                  ) -> dict[str, tuple[str | None, str | None, bytes]]:
    """URL -> (ETag, Last-Modified, content) of the source's feeds and sitemaps."""
    if not Path(path).exists():
        return {}
    with open_for_write(path) as con:
        rows = con.execute("SELECT url, etag, last_modified, content_gz FROM listings "
                           "WHERE source = ?", [source]).fetchall()
    return {u: (e, m, gzip.decompress(c)) for u, e, m, c in rows}


def read_archived_sources(path: Path | str) -> list[str]:
    """Sources with at least one page in the raw archive."""
    if not Path(path).exists():
        return []
    with connect(path, read_only=True) as con:
        rows = con.execute("SELECT DISTINCT p.source FROM raw_pages r JOIN pages p USING (url) "
                           "ORDER BY 1").fetchall()
    return [row[0] for row in rows]


def read_article_addresses(path: Path | str) -> dict[str, str]:
    """Article id -> the address it was first stored from (`articles.url`)."""
    if not Path(path).exists():
        return {}
    with open_for_write(path) as con:
        return dict(con.execute("SELECT article_id, url FROM articles").fetchall())
