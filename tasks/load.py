"""Everything that touches DuckDB: schema, reading state, the idempotent load, the outbox.

A DuckDB file held open read-write by one process cannot be opened by another, so every
function here opens the file, does its work and closes it again: the writer is held only
while loading. Each load is one transaction: stage -> anti-join for what is new -> insert
-> update the page state, so a crash leaves either all of a batch or none of it.
"""

from __future__ import annotations

import fcntl
import gzip
import os
import re
import signal
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from prefect import task

from schemas.ddl import INDEXES, MIGRATIONS, SCHEMA_VERSION, TABLES, VIEWS, ddl_hash
from schemas.errors import DatabaseBusy, LoadError
from schemas.models import (
    AlertMessage,
    Article,
    Claim,
    Comment,
    FetchResult,
    PlannedAlert,
    Reject,
    RunSummary,
    Stance,
)
from tasks.ids import claim_key_for, normalize_url

DEFAULT_WAIT_S = 30.0


def _is_lock_error(exc: Exception) -> bool:
    text = str(exc).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


@contextmanager
def connect(path: Path | str, *, read_only: bool = False,
            wait_s: float = DEFAULT_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database, waiting up to `wait_s` while another process holds it."""
    path = Path(path)
    if read_only and not path.exists():
        raise LoadError(f"{path}: no such database")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LoadError(f"{path}: cannot create its folder: {exc.strerror}") from exc
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise LoadError(f"{path}: cannot open database: {exc}") from exc
            if time.monotonic() >= deadline:
                raise DatabaseBusy(
                    f"{path}: the database is busy (another policywatch process is "
                    f"writing to it); waited {wait_s:g} s") from exc
            time.sleep(0.2)
        except duckdb.Error as exc:
            raise LoadError(f"{path}: not a usable DuckDB database: {exc}") from exc
    try:
        # times are shown, and views group them by day, in UTC whatever the machine's zone
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create what is missing and upgrade an older schema in place, in one transaction."""
    con.execute(TABLES["schema_meta"])
    meta = dict(con.execute("SELECT key, value FROM schema_meta").fetchall())
    version = int(meta["version"]) if "version" in meta else None
    if version is not None and version > SCHEMA_VERSION:
        raise LoadError(f"database schema version {version} is newer than this "
                        f"policywatch ({SCHEMA_VERSION}); upgrade policywatch")
    if version == SCHEMA_VERSION and meta.get("ddl_hash") == ddl_hash():
        return  # the usual case: nothing to do, so opening stays cheap
    con.create_function("pw_claim_key", claim_key_for, ["VARCHAR"], "VARCHAR",
                        side_effects=False)
    con.execute("BEGIN TRANSACTION")
    try:
        for target in sorted(MIGRATIONS):
            if version is not None and version < target:
                for statement in MIGRATIONS[target]:
                    con.execute(statement)
        for statement in (*TABLES.values(), *VIEWS.values(), *INDEXES):
            con.execute(statement)
        con.execute("INSERT OR REPLACE INTO schema_meta VALUES ('version', ?), ('ddl_hash', ?)",
                    [str(SCHEMA_VERSION), ddl_hash()])
        con.execute("COMMIT")
    except duckdb.Error as exc:
        con.execute("ROLLBACK")
        raise LoadError(f"cannot create or upgrade the schema: {exc}") from exc


# One writer per process: DuckDB connections in one process share the database, and two
# writers in parallel threads hit write-write conflicts instead of waiting for each other.
_WRITE_LOCK = threading.RLock()


@contextmanager
def open_for_write(path: Path | str,
                   wait_s: float = DEFAULT_WAIT_S) -> Iterator[duckdb.DuckDBPyConnection]:
    """A writer connection with the schema in place."""
    with _WRITE_LOCK, connect(path, wait_s=wait_s) as con:
        ensure_schema(con)
        yield con


# -- runs ---------------------------------------------------------------------------------


_HELD_RUN_LOCKS: dict[Path, int] = {}  # held by this process: taking one again is a no-op


@contextmanager
def run_lock(path: Path | str, wait_s: float = 60.0) -> Iterator[None]:
    """Hold `<database>.lock` for a whole run: a second run waits up to `wait_s`, then gives
    up with DatabaseBusy. The OS drops the lock when the process dies, even on kill -9.

    Re-entrant within a process, so the CLI can take it before Prefect starts (a busy
    database is then one line, not a failed flow run) and the flow can take it again."""
    # beside the real file: a run through a symlink must take the same lock
    real = Path(path).resolve()
    lock_path = real.with_name(f"{real.name}.lock")
    if _HELD_RUN_LOCKS.get(lock_path):
        _HELD_RUN_LOCKS[lock_path] += 1
        try:
            yield
        finally:
            _HELD_RUN_LOCKS[lock_path] -= 1
        return
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # noqa: SIM115 - closed by the with below
    except OSError as exc:
        raise LoadError(f"{path}: cannot use this database path: "
                        f"{exc.strerror or exc}") from exc
    deadline = time.monotonic() + wait_s
    with handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() >= deadline:
                    raise DatabaseBusy(f"{path}: another policywatch run is using this "
                                       f"database; waited {wait_s:g} s") from exc
                time.sleep(0.25)
        _HELD_RUN_LOCKS[lock_path] = 1
        try:
            yield
        finally:
            _HELD_RUN_LOCKS.pop(lock_path, None)
            fcntl.flock(handle, fcntl.LOCK_UN)


def fault_point(name: str) -> None:
    """Crash-test hook: with POLICYWATCH_FAULT=<name> the process kills itself here, as
    `kill -9` would. Inert otherwise."""
    if os.environ.get("POLICYWATCH_FAULT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def begin_run(path: Path | str, run_id: str, started_at: datetime,
              config_path: str | None = None) -> None:
    """Record the run as running; runs left 'running' by a crash are marked failed."""
    with open_for_write(path) as con:
        con.execute("UPDATE runs SET status = 'failed' WHERE status = 'running'")
        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, started_at, status, config_path, "
            "schema_version, ddl_hash) VALUES (?, ?, 'running', ?, ?, ?)",
            [run_id, started_at, config_path, SCHEMA_VERSION, ddl_hash()])


def fail_run(path: Path | str, run_id: str, finished_at: datetime) -> None:
    """A run that raised: failed, with the counts its load (if any) recorded kept."""
    with open_for_write(path) as con:
        con.execute("UPDATE runs SET finished_at = ?, status = 'failed' WHERE run_id = ?",
                    [finished_at, run_id])


def finish_run(path: Path | str, summary: RunSummary) -> None:
    with open_for_write(path) as con:
        con.execute(
            "UPDATE runs SET finished_at = ?, status = ?, articles_new = ?, comments_new = ?, "
            "claims_new = ?, stances_new = ?, alerts_sent = ?, alerts_failed = ?, "
            "pages_failed = ? WHERE run_id = ?",
            [summary.finished_at, summary.status, summary.articles_new, summary.comments_new,
             summary.claims_new, summary.stances_new, summary.alerts_sent,
             summary.alerts_failed, summary.pages_failed, summary.run_id])


# -- page state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PageState:
    url: str
    status: str
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    article_id: str | None
    attempts: int
    last_fetched_at: datetime | None = None
    published_at: datetime | None = None  # of the page's article, where one is stored


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


# -- the load -----------------------------------------------------------------------------


@dataclass
class PageOutcome:
    """What happened to one discovered page in this run."""

    url: str  # as discovered
    source: str
    fetch: FetchResult | None
    article_id: str | None = None
    content_hash: str | None = None
    error: str | None = None
    gone: bool = False


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
            con.execute("ROLLBACK")
            raise LoadError(f"load failed and was rolled back: {exc}") from exc
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
        "VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [[a.alert_id, a.claim_id, a.entity, a.channel, now, run, a.claim_key, a.rule, a.mode]
         for a in planned if a.alert_id in new_alerts])

    _record_pages(con, batch, now)
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


# -- the outbox ---------------------------------------------------------------------------


def alerts_to_send(path: Path | str, max_attempts: int) -> list[AlertMessage]:
    """Pending alerts, and failed ones with attempts left, oldest first, with every outlet
    that carries the claim."""
    with open_for_write(path) as con:
        rows = con.execute(
            "SELECT al.alert_id, al.claim_id, al.entity, al.channel, c.speaker, c.cue, "
            "c.content, c.sentence, a.title, a.source, a.url, a.published_at, al.attempts, "
            "al.rule, al.mode, "
            "(SELECT list(DISTINCT a2.source || ': ' || a2.url ORDER BY a2.source || ': ' || "
            " a2.url) FROM claims c2 JOIN articles a2 USING (article_id) "
            " WHERE c2.claim_key = al.claim_key) "
            "FROM alerts al JOIN claims c USING (claim_id) JOIN articles a USING (article_id) "
            "WHERE al.status = 'pending' OR (al.status = 'failed' AND al.attempts < ?) "
            "ORDER BY al.created_at, a.published_at, al.alert_id", [max_attempts]).fetchall()
    fields = list(AlertMessage.model_fields)
    return [AlertMessage(**dict(zip(fields, [*row[:-1], tuple(row[-1] or ())], strict=True)))
            for row in rows]


def mark_delivering(path: Path | str, alert_ids: Sequence[str]) -> None:
    """Written just before a delivery: if the run dies before the outcome is recorded, the
    next run knows the alert may have gone out and does not send it again."""
    with open_for_write(path) as con:
        con.execute("UPDATE alerts SET delivery_started_at = now() "
                    "WHERE alert_id IN (SELECT unnest(?::VARCHAR[]))", [list(alert_ids)])


def settle_interrupted_deliveries(path: Path | str) -> int:
    """Alerts whose delivery was cut off by a crash count as sent, never as sent twice."""
    if not Path(path).exists():
        return 0
    with open_for_write(path) as con:
        rows = con.execute(
            "UPDATE alerts SET status = 'sent', sent_at = delivery_started_at, "
            "attempts = attempts + 1, delivery_started_at = NULL, "
            "error = 'unconfirmed: the run stopped while delivering; not sent again' "
            "WHERE status <> 'sent' AND delivery_started_at IS NOT NULL "
            "RETURNING alert_id").fetchall()
    return len(rows)


def record_alert_results(path: Path | str, alert_ids: Sequence[str], *, sent: bool,
                         error: str | None = None, tries: int = 1) -> None:
    """Write the outcome of one delivery (one alert, or a digest of several)."""
    with open_for_write(path) as con:
        con.execute(
            "UPDATE alerts SET status = ?, attempts = attempts + ?, "
            "sent_at = CASE WHEN ? THEN now() ELSE sent_at END, error = ?, "
            "delivery_started_at = NULL WHERE alert_id IN (SELECT unnest(?::VARCHAR[]))",
            ["sent" if sent else "failed", tries, sent, None if sent else error,
             list(alert_ids)])


# -- source health ------------------------------------------------------------------------


def stale_sources(path: Path | str, sources: Sequence[str], days: float,
                  now: datetime) -> list[tuple[str, datetime | None]]:
    """Sources watched for over `days` that yielded no new article in the last `days`, with
    when they last did, and that no health alert has covered yet."""
    cutoff = now - timedelta(days=days)
    with open_for_write(path) as con:
        rows = con.execute("""
            WITH watched AS (
                SELECT source, min(first_seen_at) AS since FROM pages
                WHERE source IN (SELECT unnest(?::VARCHAR[])) GROUP BY source),
            latest AS (SELECT source, max(first_seen_at) AS last_at FROM articles GROUP BY source)
            SELECT w.source, l.last_at FROM watched w LEFT JOIN latest l USING (source)
            WHERE w.since < ? AND (l.last_at IS NULL OR l.last_at < ?)
              AND NOT EXISTS (SELECT 1 FROM health_alerts h WHERE h.source = w.source
                              AND h.sent_at IS NOT NULL
                              AND h.last_article_at IS NOT DISTINCT FROM l.last_at)
            ORDER BY w.source""", [list(sources), cutoff, cutoff]).fetchall()
    return [(source, last) for source, last in rows]


def record_health_alert(path: Path | str, source: str, last_article_at: datetime | None, *,
                        sent: bool, error: str | None) -> None:
    with open_for_write(path) as con:
        con.execute("INSERT OR REPLACE INTO health_alerts VALUES (?, ?, now(), "
                    "CASE WHEN ? THEN now() END, ?)", [source, last_article_at, sent, error])


# -- reading ------------------------------------------------------------------------------


def query(path: Path | str, sql: str, params: Sequence[Any] = (),
          wait_s: float = 5.0) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run SQL on a read-only connection: (column names, rows)."""
    with connect(path, read_only=True, wait_s=wait_s) as con:
        try:
            cursor = con.execute(sql, list(params))
        except duckdb.Error as exc:
            raise LoadError(str(exc).splitlines()[0]) from exc
        columns = [d[0] for d in cursor.description or []]
        return columns, cursor.fetchall()


# -- near duplicates (tasks/dedupe.py) and re-processing (tasks/reprocess.py) -------------


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


def record_signatures(path: Path | str,
                      rows: Sequence[tuple[str, str, str | None, bytes,
                                           Sequence[tuple[int, int]]]]) -> None:
    """Store (article id, source, title key, MinHash, band buckets); the first one stays."""
    if not rows:
        return
    now = datetime.now(UTC)
    with open_for_write(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            # one statement over parallel lists: executemany costs a statement per row
            con.execute(
                "INSERT INTO article_signatures SELECT DISTINCT ON (a) a, s, t, m, ? FROM "
                "(SELECT unnest(?::VARCHAR[]) AS a, unnest(?::VARCHAR[]) AS s, "
                "unnest(?::VARCHAR[]) AS t, unnest(?::BLOB[]) AS m) ON CONFLICT DO NOTHING",
                [now, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                 [r[3] for r in rows]])
            bands = sorted({(band, bucket, r[0]) for r in rows for band, bucket in r[4]})
            con.execute(
                "INSERT INTO article_bands SELECT unnest(?::SMALLINT[]), unnest(?::BIGINT[]), "
                "unnest(?::VARCHAR[]) ON CONFLICT DO NOTHING",
                [[b[0] for b in bands], [b[1] for b in bands], [b[2] for b in bands]])
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise LoadError(f"cannot store article signatures: {exc}") from exc


def record_duplicates(path: Path | str,
                      rows: Sequence[tuple[str, str, str, str, float | None]]) -> None:
    """Store (copy's own id, earlier article id, page URL, reason, similarity)."""
    if not rows:
        return
    now = datetime.now(UTC)
    with open_for_write(path) as con:
        _many(con, "INSERT INTO article_duplicates VALUES (?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT DO NOTHING",
              [[a, d, normalize_url(u), r, s, now] for a, d, u, r, s in rows])


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


def record_listings(path: Path | str, source: str,
                    listings: dict[str, tuple[str | None, str | None, bytes]]) -> None:
    """Store the feeds and sitemaps fetched afresh, replacing their earlier versions."""
    if not listings:
        return
    now = datetime.now(UTC)
    with open_for_write(path) as con:
        _many(con, "INSERT OR REPLACE INTO listings VALUES (?, ?, ?, ?, ?, ?)",
              [[u, source, e, m, gzip.compress(c, compresslevel=6), now]
               for u, (e, m, c) in listings.items()])


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


@dataclass(frozen=True)
class ReloadCounts:
    articles_new: int = 0
    articles_updated: int = 0
    comments_new: int = 0
    comments_updated: int = 0
    claims_new: int = 0
    claims_kept: int = 0
    claims_removed: int = 0
    stances_new: int = 0
    stances_updated: int = 0
    stances_removed: int = 0  # of topics no longer in the config


def reload_articles(path: Path | str, run_id: str, articles: Sequence[Article],
                    comments: Sequence[Comment], claims: Sequence[Claim],
                    stances: Sequence[Stance], *,
                    topics: Sequence[str] | None = None) -> ReloadCounts:
    """Replace what was extracted from these articles in place, in one transaction.

    Ids stay: articles, comments and stances are updated under their keys (first_seen_at
    kept), new ones inserted. The claims of each article are replaced: claims found again
    are updated, new ones inserted, ones no longer found deleted with their entities. A
    claim whose id changed because the extractor now names its speaker differently (same
    article, same words) takes over the old one's first_seen_at, run and alerts.
    `topics` None leaves claims and stances alone (articles and comments only); otherwise
    stances of these comments on topics not in it are deleted.
    Alerts are not raised here: re-processing is maintenance, not news.
    """
    now = datetime.now(UTC)
    with open_for_write(path) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            counts = _reload(con, run_id, articles, comments, claims, stances, now, topics)
            con.execute("COMMIT")
        except duckdb.Error as exc:
            con.execute("ROLLBACK")
            raise LoadError(f"re-processing load failed and was rolled back: {exc}") from exc
    return counts


def _reload(con: duckdb.DuckDBPyConnection, run: str, articles: Sequence[Article],
            comments: Sequence[Comment], claims: Sequence[Claim], stances: Sequence[Stance],
            now: datetime, topics: Sequence[str] | None) -> ReloadCounts:
    by_article = list({a.article_id: a for a in articles}.values())
    new_articles = _new_ids(con, "articles", "article_id", [a.article_id for a in by_article])
    _insert_articles(con, [a for a in by_article if a.article_id in new_articles], now,
                     run)
    _many(con,
        "UPDATE articles SET canonical_url = ?, title = ?, author = ?, published_at = ?, "
        "body = ?, language = ?, content_hash = ?, extracted_by = coalesce(?, extracted_by) "
        "WHERE article_id = ?",
        [[a.canonical_url, a.title, a.author, a.published_at, a.body, a.language,
          a.content_hash, a.extracted_by, a.article_id]
         for a in by_article if a.article_id not in new_articles])

    by_comment = list({c.comment_id: c for c in comments}.values())
    new_comments = _new_ids(con, "comments", "comment_id", [c.comment_id for c in by_comment])
    _many(con,
        "INSERT INTO comments (comment_id, article_id, author, body, posted_at, parent_id, "
        "first_seen_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [[c.comment_id, c.article_id, c.author, c.body, c.posted_at, c.parent_id, now, run]
         for c in by_comment if c.comment_id in new_comments])
    _many(con,
        "UPDATE comments SET article_id = ?, author = ?, body = ?, posted_at = ?, "
        "parent_id = ? WHERE comment_id = ?",
        [[c.article_id, c.author, c.body, c.posted_at, c.parent_id, c.comment_id]
         for c in by_comment if c.comment_id not in new_comments])

    counts = ReloadCounts(
        articles_new=len(new_articles), articles_updated=len(by_article) - len(new_articles),
        comments_new=len(new_comments), comments_updated=len(by_comment) - len(new_comments))
    if topics is None:
        return counts
    return replace(counts, **asdict(_reload_claims(con, run, by_article, claims, now)),
                   **asdict(_reload_stances(con, run, by_comment, stances, topics)))


@dataclass(frozen=True)
class _ClaimCounts:
    claims_new: int
    claims_kept: int
    claims_removed: int


@dataclass(frozen=True)
class _StanceCounts:
    stances_new: int
    stances_updated: int
    stances_removed: int


def _reload_claims(con: duckdb.DuckDBPyConnection, run: str, by_article: Sequence[Article],
                   claims: Sequence[Claim], now: datetime) -> _ClaimCounts:
    ids = [a.article_id for a in by_article]
    by_claim = list({c.claim_id: c for c in claims if c.article_id in set(ids)}.values())
    stored = {row[0]: row[1:] for row in con.execute(
        "SELECT claim_id, article_id, claim_key, first_seen_at, run_id FROM claims "
        "WHERE article_id IN (SELECT unnest(?::VARCHAR[]))", [ids]).fetchall()} if ids else {}
    old = set(stored)
    keep = {c.claim_id for c in by_claim}
    gone = sorted(old - keep)
    # the same words in the same article under a new id (a better speaker): the same claim
    was: dict[tuple[str, str], tuple[str, datetime, str]] = {}
    for claim_id in gone:
        article_id, claim_key, first_seen, old_run = stored[claim_id]
        was.setdefault((article_id, claim_key), (claim_id, first_seen, old_run))
    if gone:
        con.execute("DELETE FROM claim_entities WHERE claim_id IN "
                    "(SELECT unnest(?::VARCHAR[]))", [gone])
        con.execute("DELETE FROM claims WHERE claim_id IN (SELECT unnest(?::VARCHAR[]))",
                    [gone])
    new_claims = _new_ids(con, "claims", "claim_id", [c.claim_id for c in by_claim])
    moved: dict[str, tuple[str, datetime, str]] = {}
    for claim in by_claim:
        if claim.claim_id in new_claims:
            earlier = was.pop((claim.article_id, claim.claim_key), None)
            if earlier is not None:
                moved[claim.claim_id] = earlier
    _many(con,
        "INSERT INTO claims (claim_id, article_id, speaker, speaker_entity, cue, content, "
        "sentence, quote_kind, claim_key, first_seen_at, run_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [[c.claim_id, c.article_id, c.speaker, c.speaker_entity, c.cue, c.content, c.sentence,
          c.quote_kind, c.claim_key, *(moved[c.claim_id][1:] if c.claim_id in moved
                                       else (now, run))]
         for c in by_claim if c.claim_id in new_claims])
    _many(con, "UPDATE alerts SET claim_id = ? WHERE claim_id = ?",
          [[new_id, old_id] for new_id, (old_id, _, _) in moved.items()])
    _many(con,
        "UPDATE claims SET speaker = ?, speaker_entity = ?, cue = ?, content = ?, "
        "sentence = ?, quote_kind = ?, claim_key = ? WHERE claim_id = ?",
        [[c.speaker, c.speaker_entity, c.cue, c.content, c.sentence, c.quote_kind,
          c.claim_key, c.claim_id] for c in by_claim if c.claim_id not in new_claims])
    published = {a.article_id: a.published_at for a in by_article}
    pairs = {(c.claim_id, e) for c in by_claim for e in c.entities}
    claim_article = {c.claim_id: c.article_id for c in by_claim}
    kept_ids = sorted(keep & old)
    if kept_ids:  # entities no longer named go; ones still named are left untouched
        current = set(con.execute(
            "SELECT claim_id, entity FROM claim_entities WHERE claim_id IN "
            "(SELECT unnest(?::VARCHAR[]))", [kept_ids]).fetchall())
        for claim_id, entity in sorted(current - pairs):
            con.execute("DELETE FROM claim_entities WHERE claim_id = ? AND entity = ?",
                        [claim_id, entity])
    _many(con, "INSERT INTO claim_entities (claim_id, entity, article_id, claimed_at) "
               "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
          [[claim_id, entity, claim_article[claim_id],
            published.get(claim_article[claim_id]) or now]
           for claim_id, entity in sorted(pairs)])

    return _ClaimCounts(claims_new=len(new_claims) - len(moved),
                        claims_kept=len(keep & old) + len(moved),
                        claims_removed=len(gone) - len(moved))


def _reload_stances(con: duckdb.DuckDBPyConnection, run: str, by_comment: Sequence[Comment],
                    stances: Sequence[Stance], topics: Sequence[str]) -> _StanceCounts:
    keyed = {(s.comment_id, s.topic): s for s in stances}
    comment_ids = sorted({c.comment_id for c in by_comment} | {k[0] for k in keyed})
    stored: set[tuple[str, str]] = set()
    if comment_ids:
        stored = set(con.execute(
            "SELECT comment_id, topic FROM stances WHERE comment_id IN "
            "(SELECT unnest(?::VARCHAR[]))", [comment_ids]).fetchall())
    stale = sorted(k for k in stored if k[1] not in set(topics))  # a topic since removed
    _many(con, "DELETE FROM stances WHERE comment_id = ? AND topic = ?",
          [list(k) for k in stale])
    existing = stored & set(keyed)
    _many(con, "INSERT INTO stances (comment_id, topic, label, score, run_id) "
               "VALUES (?, ?, ?, ?, ?)",
          [[s.comment_id, s.topic, s.label, s.score, run]
           for k, s in keyed.items() if k not in existing])
    _many(con, "UPDATE stances SET label = ?, score = ? WHERE comment_id = ? AND topic = ?",
          [[s.label, s.score, s.comment_id, s.topic] for k, s in keyed.items() if k in existing])
    return _StanceCounts(stances_new=len(keyed) - len(existing),
                         stances_updated=len(existing), stances_removed=len(stale))


begin_run_task = task(name="begin-run")(begin_run)
load_batch_task = task(name="load")(load_batch)
finish_run_task = task(name="finish-run")(finish_run)


def export_parquet(path: Path | str, sql: str, out: Path | str, wait_s: float = 5.0) -> int:
    """Write a query's result to a Parquet file; returns the number of rows."""
    with connect(path, read_only=True, wait_s=wait_s) as con:
        try:
            relation = con.sql(sql)
            relation.write_parquet(str(out))
            return int(con.execute("SELECT count(*) FROM read_parquet(?)",
                                   [str(out)]).fetchone()[0])  # type: ignore[index]
        except duckdb.Error as exc:
            raise LoadError(str(exc).splitlines()[0]) from exc
