"""What earlier nights stored about pages, listings and duplicates, read back for a crawl.

A source's night enters the store to read here three times, each with one connection:
before discovery for its `CrawlState` (`read_crawl_state`), once its listings name the
night's addresses for their pages' states (`read_pages`), and after parsing to look up
what its new articles may copy (`reading`). Everything it learns goes back in the night's
one load transaction (tasks.store.load).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from schemas.ids import normalize_url
from schemas.models import BacklogItem, Listing, PageState
from tasks.store.connection import connect, open_for_write

MAX_ATTEMPTS = 10  # a page failing this often is no longer offered again
_PAGE_STATE = ("SELECT p.url, p.status, p.etag, p.last_modified, p.content_hash, p.article_id, "
               "p.attempts, p.last_fetched_at, a.published_at FROM pages p "
               "LEFT JOIN articles a ON a.article_id = p.article_id ")


@dataclass
class CrawlState:
    """Everything the store knows of one source's night, read in two steps.

    Keys are normalised URLs. `read_crawl_state`, before discovery: the source's
    `listings`, its `failed` pages, its `backlog` of listed items earlier nights had no budget
    for (tasks.crawl.budget) and the keys of those that `expired`. `read_pages`, once the
    night's addresses are known: their `pages` states, `duplicates` (pages merged into an
    earlier article: their own id, the article) and `article_ids`, whichever source stored
    them.
    """

    source: str
    listings: dict[str, Listing] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    backlog: dict[str, BacklogItem] = field(default_factory=dict)  # items still waiting
    expired: set[str] = field(default_factory=set)
    pages: dict[str, PageState] = field(default_factory=dict)
    duplicates: dict[str, tuple[str, str]] = field(default_factory=dict)
    article_ids: dict[str, str] = field(default_factory=dict)

    def page_states(self, urls: Iterable[str]) -> tuple[dict[str, PageState], dict[str, str]]:
        """These pages' states, and {copy's own id: article it was merged into}.

        A page merged into an earlier article is given its own id back, so its comments get
        the same ids as on the night it was merged; `apply_merges` then points the batch at
        the earlier article again.
        """
        states = {}
        merged = {}
        for key in {normalize_url(u) for u in urls}:
            state = self.pages.get(key)
            copy = self.duplicates.get(key)
            if copy is not None:
                own, into = copy
                merged[own] = into
                if state is not None and state.article_id in (None, into):
                    state = replace(state, article_id=own)
            if state is not None:
                states[key] = state
        return states, merged


def read_crawl_state(path: Path | str, source: str,
                     max_attempts: int = MAX_ATTEMPTS) -> CrawlState:
    """A source's `CrawlState` before discovery: one connection, one query per table."""
    state = CrawlState(source)
    if not Path(path).exists():
        return state
    with open_for_write(path) as con:
        state.listings = {
            u: Listing(e, m, gzip.decompress(c)) for u, e, m, c in con.execute(
                "SELECT url, etag, last_modified, content_gz FROM listings WHERE source = ?",
                [source]).fetchall()}
        state.failed = [url for (url,) in con.execute(
            "SELECT url FROM pages WHERE source = ? AND status = 'failed' AND attempts < ? "
            "ORDER BY url", [source, max_attempts]).fetchall()]
        for url, listed, published, since, nights, status in con.execute(
                "SELECT url, listed_url, published_at, first_deferred_at, nights, status "
                "FROM backlog WHERE source = ?", [source]).fetchall():
            if status == "waiting":
                state.backlog[url] = BacklogItem(url, listed, published, since, nights)
            else:
                state.expired.add(url)
    return state


def read_pages(path: Path | str, state: CrawlState, urls: Iterable[str]) -> CrawlState:
    """`state` with the pages, merged copies and article addresses of `urls`, whichever
    source stored them: one connection."""
    keys = sorted({normalize_url(u) for u in urls})
    with reading(path) as store:
        return replace(state, pages=store.page_states(keys), duplicates=store.duplicates(keys),
                       article_ids=store.article_ids(keys))


class StoreReader:
    """Look-ups across every source, on one open connection (see `reading`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection | None) -> None:
        self._con = con

    def _rows(self, sql: str, params: Sequence[object]) -> list[tuple[Any, ...]]:
        return [] if self._con is None else self._con.execute(sql, params).fetchall()

    def page_states(self, urls: Sequence[str]) -> dict[str, PageState]:
        """What earlier runs learnt about these URLs, keyed by normalised URL."""
        if not urls:
            return {}
        rows = self._rows(_PAGE_STATE + "WHERE p.url IN (SELECT unnest(?::VARCHAR[]))",
                          [[normalize_url(u) for u in urls]])
        return {row[0]: PageState(*row) for row in rows}

    def article_ids(self, urls: Iterable[str]) -> dict[str, str]:
        """Normalised URL -> article id, for every address an article was stored under."""
        keys = sorted({normalize_url(u) for u in urls})
        if not keys:
            return {}
        return {u: a for u, a in self._rows(
            "SELECT url, article_id FROM article_urls WHERE url IN "
            "(SELECT unnest(?::VARCHAR[]))", [keys])}

    def duplicates(self, urls: Sequence[str]) -> dict[str, tuple[str, str]]:
        """Normalised page URL -> (the copy's own article id, the article it joined)."""
        if not urls:
            return {}
        return {u: (a, d) for u, a, d in self._rows(
            "SELECT url, article_id, duplicate_of FROM article_duplicates WHERE url IN "
            "(SELECT unnest(?::VARCHAR[]))", [[normalize_url(u) for u in urls]])}

    def signed_articles(self, article_ids: Sequence[str]) -> set[str]:
        """Which of these articles already have a stored signature (were seen before)."""
        if not article_ids:
            return set()
        return {a for (a,) in self._rows(
            "SELECT article_id FROM article_signatures WHERE article_id IN "
            "(SELECT unnest(?::VARCHAR[]))", [list(article_ids)])}

    def similar_signatures(self, buckets: Sequence[tuple[int, int]]
                           ) -> list[tuple[str, str | None, bytes]]:
        """(article id, title key, MinHash) of stored articles sharing a (band, bucket)."""
        if not buckets:
            return []
        rows = self._rows(
            "SELECT s.article_id, s.title_key, s.minhash FROM article_signatures s "
            "WHERE s.article_id IN (SELECT b.article_id FROM article_bands b JOIN "
            "(SELECT unnest(?::SMALLINT[]) AS band, unnest(?::BIGINT[]) AS bucket) q "
            "USING (band, bucket))",
            [[b for b, _ in buckets], [k for _, k in buckets]])
        return [(a, t, bytes(m)) for a, t, m in rows]

    def stored_comments(self, article_ids: Iterable[str]
                        ) -> list[tuple[str, str, str | None, str, datetime | None]]:
        """(article id, comment id, author, body, posted_at) of these articles' comments."""
        ids = sorted(article_ids)
        if not ids:
            return []
        return [(a, c, au, b, p) for a, c, au, b, p in self._rows(
            "SELECT article_id, comment_id, author, body, posted_at FROM comments "
            "WHERE article_id IN (SELECT unnest(?::VARCHAR[]))", [ids])]


@contextmanager
def reading(path: Path | str) -> Iterator[StoreReader]:
    """One connection for a batch of look-ups; a database not made yet knows nothing."""
    if not Path(path).exists():
        yield StoreReader(None)
        return
    with open_for_write(path) as con:
        yield StoreReader(con)


def read_page_states(path: Path | str, urls: Sequence[str]) -> dict[str, PageState]:
    """What earlier runs learnt about these URLs, keyed by normalised URL."""
    with reading(path) as store:
        return store.page_states(urls)


def read_raw_pages(path: Path | str, source: str | None = None
                   ) -> list[tuple[str, str, str, str | None, bytes, datetime]]:
    """(url, source, final_url, encoding, html, fetched_at) of every archived page."""
    with connect(path, read_only=True) as con:
        rows = con.execute(
            "SELECT r.url, p.source, r.final_url, r.encoding, r.html_gz, r.fetched_at "
            "FROM raw_pages r JOIN pages p USING (url) "
            "WHERE ? IS NULL OR p.source = ? ORDER BY r.url", [source, source]).fetchall()
    return [(u, s, f, e, gzip.decompress(h), t) for u, s, f, e, h, t in rows]


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
