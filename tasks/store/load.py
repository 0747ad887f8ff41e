"""The idempotent load: one transaction per night.

Stage -> anti-join for what is new -> insert -> update the page state, so a crash leaves
either all of a batch or none of it.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
from prefect import task

from schemas.errors import LoadError
from schemas.ids import normalize_url
from schemas.models import (
    Article,
    BacklogItem,
    Claim,
    Comment,
    Duplicate,
    FetchResult,
    Listing,
    PageBatch,
    PageOutcome,
    PlannedAlert,
    Reject,
    Signature,
    SourceNight,
    Stance,
)
from tasks.store.connection import fault_point, open_for_write, rollback, write_problem


@dataclass
class LoadBatch:
    run_id: str
    pages: list[PageOutcome] = field(default_factory=list)
    articles: list[Article] = field(default_factory=list)
    comments: list[Comment] = field(default_factory=list)
    claims: list[Claim] = field(default_factory=list)
    stances: list[Stance] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    fetch_log: list[FetchResult] = field(default_factory=list)
    alerts: list[PlannedAlert] = field(default_factory=list)
    archive: bool = True
    listings: dict[str, tuple[str, Listing]] = field(default_factory=dict)  # url: (source, ...)
    signatures: list[Signature] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    deferred: list[tuple[str, BacklogItem]] = field(default_factory=list)  # (source, item)
    expired: list[tuple[str, BacklogItem]] = field(default_factory=list)
    nights: list[SourceNight] = field(default_factory=list)
    configured: list[str] | None = None  # all the config's sources: others' backlogs expire

    @classmethod
    def of_pages(cls, run_id: str, batches: Sequence[PageBatch], **analysis: Any) -> LoadBatch:
        """The night's load: every source's pages, and what the analysis found in them
        (`claims`, `stances`, `alerts`; `rejects` given here replace the batches' own)."""
        fields: dict[str, Any] = {
            "pages": [o for b in batches for o in b.outcomes],
            "articles": [a for b in batches for a in b.articles],
            "comments": [c for b in batches for c in b.comments],
            "rejects": [r for b in batches for r in b.rejects],
            "fetch_log": [f for b in batches for f in b.fetch_log],
            "listings": {url: (b.source, li) for b in batches for url, li in b.listings.items()},
            "signatures": [s for b in batches for s in b.signatures],
            "duplicates": [d for b in batches for d in b.duplicates],
            "deferred": [(b.source, i) for b in batches for i in b.deferred],
            "expired": [(b.source, i) for b in batches for i in b.expired],
            "nights": [b.night for b in batches if b.night is not None],
        }
        return cls(run_id=run_id, **(fields | analysis))


@dataclass(frozen=True)
class LoadCounts:
    articles_new: int = 0
    articles_updated: int = 0
    comments_new: int = 0
    claims_new: int = 0
    stances_new: int = 0
    alerts_new: int = 0
    new_claim_ids: tuple[str, ...] = ()


_INSERT = re.compile(r"^\s*INSERT\s+(OR\s+REPLACE\s+)?INTO\s+(\w+)\s*(?:\(([^)]*)\))?\s*"
                     r"VALUES\s*\((.*?)\)\s*(.*)$", re.IGNORECASE | re.DOTALL)


def _many(con: duckdb.DuckDBPyConnection, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """Run a statement for many rows. An INSERT ... VALUES becomes one INSERT ... SELECT over
    typed column arrays (`unnest(?::T[])`): DuckDB's executemany runs a statement per row,
    which costs milliseconds each; this is one statement per batch."""
    if not rows:
        return  # DuckDB refuses an empty executemany
    match = _INSERT.match(sql)
    if match is None or len(rows) == 1:
        con.executemany(sql, rows)
        return
    replace, table, listed, values, rest = match.groups()
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_name = ? ORDER BY ordinal_position",
                             [table]).fetchall())
    columns = [c.strip().strip('"') for c in listed.split(",")] if listed else list(types)
    items = [v.strip() for v in values.split(",")]
    columns_of_rows = list(zip(*rows, strict=True))
    exprs: list[str] = []
    params: list[list[Any]] = []
    for column, item in zip(columns, items, strict=True):
        if item == "?":
            exprs.append(f"unnest(?::{types[column]}[])")
            params.append(list(columns_of_rows[len(params)]))
        else:
            exprs.append(item)  # a literal or now(): the same for every row
    quoted = ", ".join(f'"{c}"' for c in columns)
    con.execute(f"INSERT {replace or ''}INTO {table} ({quoted}) "
                f"SELECT {', '.join(exprs)} {rest}", params)


def _new_ids(con: duckdb.DuckDBPyConnection, table: str, key: str,
             ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = con.execute(
        f"SELECT id FROM (SELECT unnest(?::VARCHAR[]) AS id) "
        f"WHERE id NOT IN (SELECT {key} FROM {table})", [list(ids)]).fetchall()
    return {row[0] for row in rows}


def load_batch(path: Path | str, batch: LoadBatch) -> LoadCounts:
    """Write one batch in one transaction; rows already present are left as they are."""
    now = datetime.now(UTC)
    with open_for_write(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            counts = _load(con, batch, now)
            fault_point("load")
            con.execute("COMMIT")
        except duckdb.Error as exc:
            rollback(con)
            raise LoadError(f"{path}: load failed and was rolled back: "
                            f"{write_problem(exc)}") from exc
    return counts


def _insert_articles(con: duckdb.DuckDBPyConnection, articles: Sequence[Article],
                     now: datetime, run: str) -> None:
    _many(con,
        "INSERT INTO articles (article_id, source, url, canonical_url, title, author, "
        "published_at, body, language, content_hash, fetched_at, first_seen_at, run_id, "
        "extracted_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[a.article_id, a.source, a.url, a.canonical_url, a.title, a.author, a.published_at,
          a.body, a.language, a.content_hash, a.fetched_at, now, run, a.extracted_by]
         for a in articles])


def _load(con: duckdb.DuckDBPyConnection, batch: LoadBatch, now: datetime) -> LoadCounts:
    run = batch.run_id
    articles = list({a.article_id: a for a in batch.articles}.values())
    new_articles = _new_ids(con, "articles", "article_id", [a.article_id for a in articles])
    updated = [a for a in articles if a.article_id not in new_articles]
    _insert_articles(con, [a for a in articles if a.article_id in new_articles], now, run)
    # a changed page keeps its id and first_seen_at; its text is brought up to date
    _many(con,
        "UPDATE articles SET title = ?, author = ?, published_at = ?, body = ?, language = ?, "
        "content_hash = ?, fetched_at = ?, canonical_url = coalesce(?, canonical_url), "
        "extracted_by = coalesce(?, extracted_by) WHERE article_id = ? AND content_hash <> ?",
        [[a.title, a.author, a.published_at, a.body, a.language, a.content_hash, a.fetched_at,
          a.canonical_url, a.extracted_by, a.article_id, a.content_hash] for a in updated])
    url_rows = {}
    for a in articles:
        for u in {a.url, a.canonical_url} - {None}:
            url_rows[normalize_url(str(u))] = [normalize_url(str(u)), a.article_id, a.source, now]
    for page in batch.pages:
        if page.article_id:
            key = normalize_url(page.url)
            url_rows.setdefault(key, [key, page.article_id, page.source, now])
    _many(con, "INSERT INTO article_urls VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    list(url_rows.values()))

    comments = list({c.comment_id: c for c in batch.comments}.values())
    new_comments = _new_ids(con, "comments", "comment_id", [c.comment_id for c in comments])
    _many(con,
        "INSERT INTO comments VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [[c.comment_id, c.article_id, c.author, c.body, c.posted_at, c.parent_id, now, run]
         for c in comments if c.comment_id in new_comments])

    claims = list({c.claim_id: c for c in batch.claims}.values())
    new_claims = _new_ids(con, "claims", "claim_id", [c.claim_id for c in claims])
    fresh = [c for c in claims if c.claim_id in new_claims]
    _many(con,
        "INSERT INTO claims (claim_id, article_id, speaker, speaker_entity, cue, content, "
        "sentence, quote_kind, claim_key, first_seen_at, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[c.claim_id, c.article_id, c.speaker, c.speaker_entity, c.cue, c.content, c.sentence,
          c.quote_kind, c.claim_key, now, run] for c in fresh])
    published = {a.article_id: a.published_at for a in articles}
    _many(con,
        "INSERT INTO claim_entities (claim_id, entity, article_id, claimed_at) "
        "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [[c.claim_id, e, c.article_id, published.get(c.article_id) or now]
         for c in fresh for e in c.entities])

    stance_keys = {(s.comment_id, s.topic): s for s in batch.stances}
    existing = set()
    if stance_keys:
        existing = set(con.execute(
            "SELECT comment_id, topic FROM stances WHERE comment_id IN "
            "(SELECT unnest(?::VARCHAR[]))", [list({k[0] for k in stance_keys})]).fetchall())
    new_stances = [s for k, s in stance_keys.items() if k not in existing]
    _many(con, "INSERT INTO stances VALUES (?, ?, ?, ?, ?)",
                    [[s.comment_id, s.topic, s.label, s.score, run] for s in new_stances])

    # the outbox, written with the claims that raise it: a crash can never lose an alert.
    # Keyed by the claim's words, so an outlet carrying a known claim adds no second alert.
    new_ids = {c.claim_id for c in fresh}
    planned = [a for a in batch.alerts if a.claim_id in new_ids]
    new_alerts = _new_ids(con, "alerts", "alert_id", [a.alert_id for a in planned])
    _many(con,
        "INSERT INTO alerts (alert_id, claim_id, entity, channel, status, attempts, "
        "created_at, run_id, claim_key, rule, mode) "
        "VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        # a muted alert (first run, `alerts.first_run: none`) is recorded as skipped: kept,
        # so no later run raises it again, and never sent
        [[a.alert_id, a.claim_id, a.entity, a.channel,
          "skipped" if a.mode == "muted" else "pending", now, run, a.claim_key, a.rule, a.mode]
         for a in planned if a.alert_id in new_alerts])

    _record_pages(con, batch, now)
    _record_listings(con, batch.listings, now)
    _record_signatures(con, batch.signatures, now)
    _record_duplicates(con, batch.duplicates, now)
    _record_backlog(con, batch, now)
    # counted with the rows, in the same transaction: a run that dies after its load still
    # says what it stored (finish_run adds the alerts and the status)
    con.execute("UPDATE runs SET articles_new = articles_new + ?, comments_new = comments_new "
                "+ ?, claims_new = claims_new + ?, stances_new = stances_new + ? "
                "WHERE run_id = ?",
                [len(new_articles), len(new_comments), len(fresh), len(new_stances), run])
    return LoadCounts(
        articles_new=len(new_articles), articles_updated=len(updated),
        comments_new=len(new_comments), claims_new=len(fresh), stances_new=len(new_stances),
        alerts_new=len(new_alerts), new_claim_ids=tuple(c.claim_id for c in fresh))


def _record_pages(con: duckdb.DuckDBPyConnection, batch: LoadBatch, now: datetime) -> None:
    pages: dict[str, list[Any]] = {}
    raw: dict[str, list[Any]] = {}
    for page in batch.pages:  # keyed, so one statement never touches a row twice
        key = normalize_url(page.url)
        fetch = page.fetch
        status = "gone" if page.gone else ("failed" if page.error else "ok")
        pages[key] = [key, page.source, status, fetch.status if fetch else None,
                      fetch.etag if fetch and fetch.ok else None,
                      fetch.last_modified if fetch and fetch.ok else None, page.content_hash,
                      page.article_id, 0 if status == "ok" else 1, page.error, now,
                      fetch.fetched_at if fetch else now]
        if batch.archive and fetch and fetch.ok and fetch.content:
            raw[key] = [key, fetch.final_url or fetch.url, fetch.encoding,
                        gzip.compress(fetch.content, compresslevel=6), fetch.fetched_at]
    _many(con,
        "INSERT INTO pages (url, source, status, http_status, etag, last_modified, "
        "content_hash, article_id, attempts, last_error, first_seen_at, last_fetched_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (url) DO UPDATE SET "
        "status = excluded.status, http_status = excluded.http_status, "
        "etag = coalesce(excluded.etag, pages.etag), "
        "last_modified = coalesce(excluded.last_modified, pages.last_modified), "
        "content_hash = coalesce(excluded.content_hash, pages.content_hash), "
        "article_id = coalesce(excluded.article_id, pages.article_id), "
        "attempts = CASE WHEN excluded.status = 'ok' THEN 0 ELSE pages.attempts + 1 END, "
        "last_error = excluded.last_error, last_fetched_at = excluded.last_fetched_at",
        list(pages.values()))
    _many(con, "INSERT OR REPLACE INTO raw_pages VALUES (?, ?, ?, ?, ?)", list(raw.values()))
    _many(con,
        "INSERT INTO fetch_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [[batch.run_id, f.url, f.source, f.status, f.bytes, f.duration_ms, f.error,
          f.fetched_at] for f in batch.fetch_log])
    _many(con,
        "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
        [[batch.run_id, r.url, r.source, r.stage, r.reason, now] for r in batch.rejects])


def _record_signatures(con: duckdb.DuckDBPyConnection, rows: Sequence[Signature],
                       now: datetime) -> None:
    """Store new articles' MinHashes and band buckets; the first one stays."""
    if not rows:
        return
    # one statement over parallel lists: executemany costs a statement per row
    con.execute(
        "INSERT INTO article_signatures SELECT DISTINCT ON (a) a, s, t, m, ? FROM "
        "(SELECT unnest(?::VARCHAR[]) AS a, unnest(?::VARCHAR[]) AS s, "
        "unnest(?::VARCHAR[]) AS t, unnest(?::BLOB[]) AS m) ON CONFLICT DO NOTHING",
        [now, [r.article_id for r in rows], [r.source for r in rows],
         [r.title_key for r in rows], [r.minhash for r in rows]])
    bands = sorted({(band, bucket, r.article_id) for r in rows for band, bucket in r.bands})
    con.execute(
        "INSERT INTO article_bands SELECT unnest(?::SMALLINT[]), unnest(?::BIGINT[]), "
        "unnest(?::VARCHAR[]) ON CONFLICT DO NOTHING",
        [[b[0] for b in bands], [b[1] for b in bands], [b[2] for b in bands]])


def _record_duplicates(con: duckdb.DuckDBPyConnection, rows: Sequence[Duplicate],
                       now: datetime) -> None:
    _many(con, "INSERT INTO article_duplicates VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
          [[d.article_id, d.duplicate_of, normalize_url(d.url), d.reason, d.similarity, now]
           for d in rows])


def _record_backlog(con: duckdb.DuckDBPyConnection, batch: LoadBatch, now: datetime) -> None:
    """Tonight's leftovers wait, expired items keep their reason, stored pages leave."""
    _many(con, "INSERT OR REPLACE INTO backlog VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
          [[i.url, source, i.listed_url, i.published_at, i.first_deferred_at, i.nights,
            "expired" if i.reason else "waiting", i.reason, now, batch.run_id]
           for source, i in (*batch.deferred, *batch.expired)])
    _many(con, "INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?)",
          [[batch.run_id, i.listed_url, source, "backlog", i.reason, now]
           for source, i in batch.expired])
    if batch.pages:  # stored tonight, by whichever source: no longer waiting nor skipped
        con.execute("DELETE FROM backlog WHERE url IN (SELECT url FROM pages "
                    "WHERE url IN (SELECT unnest(?::VARCHAR[])))",
                    [[normalize_url(p.url) for p in batch.pages]])
    if batch.configured is not None:  # a source gone from the config: its items never come
        con.execute("UPDATE backlog SET status = 'expired', updated_at = ?, run_id = ?, "
                    "reason = 'not fetched: its source is no longer in the config' "
                    "WHERE status = 'waiting' AND source NOT IN (SELECT unnest(?::VARCHAR[]))",
                    [now, batch.run_id, list(batch.configured)])
    _many(con, "INSERT OR REPLACE INTO source_nights VALUES (?, ?, ?, ?, ?, ?, ?)",
          [[batch.run_id, n.source, n.found, n.fetched, n.deferred, n.expired, n.backlog]
           for n in batch.nights])


def _record_listings(con: duckdb.DuckDBPyConnection,
                     listings: Mapping[str, tuple[str, Listing]], now: datetime) -> None:
    """The feeds and sitemaps fetched afresh replace their earlier versions."""
    _many(con, "INSERT OR REPLACE INTO listings VALUES (?, ?, ?, ?, ?, ?)",
          [[url, source, li.etag, li.last_modified,
            gzip.compress(li.content, compresslevel=6), now]
           for url, (source, li) in listings.items()])


load_batch_task = task(name="load")(load_batch)
