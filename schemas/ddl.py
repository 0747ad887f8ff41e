"""The DuckDB schema: tables, keys and the documented views.

The contract's required columns are all here (docs/contract.md); extra columns are ours.
Every fact table has a natural primary key built from stable ids, so loading is an upsert
and a re-run can never add a duplicate. `SCHEMA_VERSION` is stored in `schema_meta`;
`MIGRATIONS` upgrades an older database in place.
"""

from __future__ import annotations

import hashlib

SCHEMA_VERSION = 3
Z = 1.645  # two-sided 90%: the intervals on stance shares

TABLES: dict[str, str] = {
    "schema_meta": """
        CREATE TABLE IF NOT EXISTS schema_meta (
            key VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL
        )""",
    "runs": """
        CREATE TABLE IF NOT EXISTS runs (
            run_id VARCHAR PRIMARY KEY,
            started_at TIMESTAMPTZ NOT NULL,
            finished_at TIMESTAMPTZ,
            status VARCHAR NOT NULL,          -- running | completed | failed
            articles_new INTEGER NOT NULL DEFAULT 0,
            comments_new INTEGER NOT NULL DEFAULT 0,
            claims_new INTEGER NOT NULL DEFAULT 0,
            stances_new INTEGER NOT NULL DEFAULT 0,
            alerts_sent INTEGER NOT NULL DEFAULT 0,
            alerts_failed INTEGER NOT NULL DEFAULT 0,
            pages_fetched INTEGER NOT NULL DEFAULT 0,
            pages_failed INTEGER NOT NULL DEFAULT 0,
            config_path VARCHAR,
            schema_version INTEGER,
            ddl_hash VARCHAR
        )""",
    "articles": """
        CREATE TABLE IF NOT EXISTS articles (
            article_id VARCHAR PRIMARY KEY,
            source VARCHAR NOT NULL,
            url VARCHAR NOT NULL,
            canonical_url VARCHAR,
            title VARCHAR,
            author VARCHAR,
            published_at TIMESTAMPTZ,
            body VARCHAR NOT NULL,
            language VARCHAR,
            content_hash VARCHAR NOT NULL,
            fetched_at TIMESTAMPTZ NOT NULL,
            first_seen_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR NOT NULL,
            extracted_by VARCHAR              -- dom | json-ld | embedded | trafilatura | main
        )""",
    "article_urls": """
        CREATE TABLE IF NOT EXISTS article_urls (
            url VARCHAR PRIMARY KEY,          -- normalised address
            article_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            first_seen_at TIMESTAMPTZ NOT NULL
        )""",
    "comments": """
        CREATE TABLE IF NOT EXISTS comments (
            comment_id VARCHAR PRIMARY KEY,
            article_id VARCHAR NOT NULL,
            author VARCHAR,
            body VARCHAR NOT NULL,
            posted_at TIMESTAMPTZ,
            parent_id VARCHAR,
            first_seen_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR NOT NULL
        )""",
    "claims": """
        CREATE TABLE IF NOT EXISTS claims (
            claim_id VARCHAR PRIMARY KEY,
            article_id VARCHAR NOT NULL,
            speaker VARCHAR,
            speaker_entity VARCHAR,
            cue VARCHAR,
            content VARCHAR NOT NULL,
            sentence VARCHAR NOT NULL,
            quote_kind VARCHAR NOT NULL,      -- direct | indirect | mixed | event
            claim_key VARCHAR NOT NULL,       -- same words in any outlet: one alert
            first_seen_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR NOT NULL
        )""",
    "claim_entities": """
        CREATE TABLE IF NOT EXISTS claim_entities (
            claim_id VARCHAR NOT NULL,
            entity VARCHAR NOT NULL,
            -- copied from the claim's article so a timeline reads this table first
            article_id VARCHAR,
            claimed_at TIMESTAMPTZ,           -- the article's publication time, else first seen
            PRIMARY KEY (claim_id, entity)
        )""",
    "stances": """
        CREATE TABLE IF NOT EXISTS stances (
            comment_id VARCHAR NOT NULL,
            topic VARCHAR NOT NULL,
            label VARCHAR NOT NULL,           -- favor | against | neutral
            score DOUBLE NOT NULL,
            run_id VARCHAR NOT NULL,
            PRIMARY KEY (comment_id, topic)
        )""",
    "alerts": """
        CREATE TABLE IF NOT EXISTS alerts (
            alert_id VARCHAR PRIMARY KEY,
            claim_id VARCHAR NOT NULL,
            entity VARCHAR NOT NULL,
            channel VARCHAR NOT NULL,         -- the channel URL with secrets masked
            status VARCHAR NOT NULL,          -- pending | sent | failed
            attempts INTEGER NOT NULL DEFAULT 0,
            created_at TIMESTAMPTZ NOT NULL,
            sent_at TIMESTAMPTZ,
            error VARCHAR,
            run_id VARCHAR NOT NULL,
            claim_key VARCHAR NOT NULL,
            rule VARCHAR NOT NULL,
            mode VARCHAR NOT NULL,            -- immediate | digest
            delivery_started_at TIMESTAMPTZ   -- set while a delivery is in flight
        )""",
    "pages": """
        CREATE TABLE IF NOT EXISTS pages (
            url VARCHAR PRIMARY KEY,          -- normalised address as discovered
            source VARCHAR NOT NULL,
            status VARCHAR NOT NULL,          -- ok | failed | gone
            http_status INTEGER,
            etag VARCHAR,
            last_modified VARCHAR,
            content_hash VARCHAR,
            article_id VARCHAR,
            attempts INTEGER NOT NULL DEFAULT 0,
            last_error VARCHAR,
            first_seen_at TIMESTAMPTZ NOT NULL,
            last_fetched_at TIMESTAMPTZ
        )""",
    "raw_pages": """
        CREATE TABLE IF NOT EXISTS raw_pages (
            url VARCHAR PRIMARY KEY,          -- normalised address, as in pages
            final_url VARCHAR NOT NULL,
            encoding VARCHAR,
            html_gz BLOB NOT NULL,
            fetched_at TIMESTAMPTZ NOT NULL
        )""",
    "fetch_log": """
        CREATE TABLE IF NOT EXISTS fetch_log (
            run_id VARCHAR NOT NULL,
            url VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            status INTEGER,
            bytes BIGINT NOT NULL,
            duration_ms INTEGER NOT NULL,
            error VARCHAR,
            fetched_at TIMESTAMPTZ NOT NULL
        )""",
    "health_alerts": """
        CREATE TABLE IF NOT EXISTS health_alerts (
            source VARCHAR NOT NULL,
            last_article_at TIMESTAMPTZ,      -- NULL: the source never yielded an article
            detected_at TIMESTAMPTZ NOT NULL,
            sent_at TIMESTAMPTZ,
            error VARCHAR,
            PRIMARY KEY (source, last_article_at)
        )""",
    "rejects": """
        CREATE TABLE IF NOT EXISTS rejects (
            run_id VARCHAR NOT NULL,
            url VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            stage VARCHAR NOT NULL,           -- discover | fetch | parse | extract | load | notify
            reason VARCHAR NOT NULL,
            rejected_at TIMESTAMPTZ NOT NULL
        )""",
    # Near-duplicate detection (tasks/crawl/dedupe.py): a MinHash signature per article, and its
    # LSH band buckets; two articles sharing a bucket are compared.
    "article_signatures": """
        CREATE TABLE IF NOT EXISTS article_signatures (
            article_id VARCHAR PRIMARY KEY,
            source VARCHAR NOT NULL,
            title_key VARCHAR,
            minhash BLOB NOT NULL,
            first_seen_at TIMESTAMPTZ NOT NULL
        )""",
    "article_bands": """
        CREATE TABLE IF NOT EXISTS article_bands (
            band SMALLINT NOT NULL,
            bucket BIGINT NOT NULL,
            article_id VARCHAR NOT NULL,
            PRIMARY KEY (band, bucket, article_id)
        )""",
    # A page whose article copies an earlier one: its own id, kept so its comments' ids stay
    # stable, and the article it was merged into.
    "article_duplicates": """
        CREATE TABLE IF NOT EXISTS article_duplicates (
            article_id VARCHAR PRIMARY KEY,   -- the copy's own id (from its address)
            duplicate_of VARCHAR NOT NULL,    -- the earlier article it is merged into
            url VARCHAR NOT NULL,             -- normalised address of the copy's page
            reason VARCHAR NOT NULL,          -- canonical | near-duplicate
            similarity DOUBLE,                -- estimated Jaccard of the bodies
            detected_at TIMESTAMPTZ NOT NULL
        )""",
    # Items a listing named that a night had no budget for (`max_items`): later nights take
    # them, newest first, while they are inside `window_days`; one that leaves the window
    # while waiting is kept as `expired` with the reason (the `skipped` view).
    "backlog": """
        CREATE TABLE IF NOT EXISTS backlog (
            url VARCHAR NOT NULL,             -- normalised address
            source VARCHAR NOT NULL,
            listed_url VARCHAR NOT NULL,      -- as the listing named it
            published_at TIMESTAMPTZ,         -- the listing's date, if it gave one
            first_deferred_at TIMESTAMPTZ NOT NULL,
            nights INTEGER NOT NULL,          -- nights it was left over max_items
            status VARCHAR NOT NULL,          -- waiting | expired
            reason VARCHAR,                   -- why it expired
            updated_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR NOT NULL,
            PRIMARY KEY (source, url)
        )""",
    # Per run and source: listed items not stored yet, how many were fetched, left for a
    # later night, or expired; and the backlog left after the night.
    "source_nights": """
        CREATE TABLE IF NOT EXISTS source_nights (
            run_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            found INTEGER NOT NULL,
            fetched INTEGER NOT NULL,
            deferred INTEGER NOT NULL,
            expired INTEGER NOT NULL,
            backlog INTEGER NOT NULL,
            PRIMARY KEY (run_id, source)
        )""",
    # One backlog alert per growth spell: sent when a source's backlog grew three nights in
    # a row, again only after it has shrunk.
    "backlog_alerts": """
        CREATE TABLE IF NOT EXISTS backlog_alerts (
            source VARCHAR PRIMARY KEY,
            raised_at TIMESTAMPTZ NOT NULL,
            backlog INTEGER NOT NULL,
            sent_at TIMESTAMPTZ,
            error VARCHAR
        )""",
    # Feeds and sitemaps as last fetched, so the next run asks for them conditionally.
    "listings": """
        CREATE TABLE IF NOT EXISTS listings (
            url VARCHAR PRIMARY KEY,          -- as configured or linked, not normalised
            source VARCHAR NOT NULL,
            etag VARCHAR,
            last_modified VARCHAR,
            content_gz BLOB NOT NULL,
            fetched_at TIMESTAMPTZ NOT NULL
        )""",
}

VIEWS: dict[str, str] = {
    # Listed items never fetched: they left the window while waiting over `max_items`.
    "skipped": """
        CREATE OR REPLACE VIEW skipped AS
        SELECT source, listed_url AS url, published_at, nights, reason,
               updated_at AS skipped_at, run_id
        FROM backlog WHERE status = 'expired'""",
    # One row per claim with where it was published: the view most queries start from.
    "claims_view": """
        CREATE OR REPLACE VIEW claims_view AS
        SELECT c.claim_id, c.speaker, c.speaker_entity, c.cue, c.content, c.quote_kind,
               c.sentence, a.title AS article_title, a.source, a.url, a.published_at,
               c.first_seen_at, c.article_id
        FROM claims c JOIN articles a USING (article_id)""",
    # Each entity's claims in time order.
    "entity_timeline": """
        CREATE OR REPLACE VIEW entity_timeline AS
        SELECT ce.entity, ce.claimed_at, c.speaker, c.cue, c.content, a.title AS article_title,
               a.source, a.url, c.claim_id
        FROM claim_entities ce
        JOIN claims c USING (claim_id)
        JOIN articles a ON a.article_id = ce.article_id""",
    # The n newest claims about one entity: the limit applies before the joins, so this
    # stays fast however long the history (`SELECT * FROM entity_latest('Huawei', 20)`).
    "entity_latest": """
        CREATE OR REPLACE MACRO entity_latest(name, n) AS TABLE
        SELECT ce.entity, ce.claimed_at, c.speaker, c.cue, c.content, a.title AS article_title,
               a.source, a.url, c.claim_id
        FROM (SELECT * FROM claim_entities WHERE entity = name
              ORDER BY claimed_at DESC LIMIT n) ce
        JOIN claims c USING (claim_id)
        JOIN articles a ON a.article_id = ce.article_id
        ORDER BY ce.claimed_at DESC""",
    # Share of comments per stance label, per topic, article and day.
    # The 90% Wilson score interval of a share of k in n (z = 1.645): how far a share
    # measured on few comments may be from the share among all such comments.
    # schemas.stats.share_interval computes the same in Python for the briefing.
    "share_low": f"""
        CREATE OR REPLACE MACRO share_low(k, n) AS CASE WHEN n > 0 THEN greatest(0.0,
            (k / n + {Z * Z / 2!r} / n - {Z!r} * sqrt(k / n * (1 - k / n) / n
             + {Z * Z / 4!r} / (n * n))) / (1 + {Z * Z!r} / n)) END""",
    "share_high": f"""
        CREATE OR REPLACE MACRO share_high(k, n) AS CASE WHEN n > 0 THEN least(1.0,
            (k / n + {Z * Z / 2!r} / n + {Z!r} * sqrt(k / n * (1 - k / n) / n
             + {Z * Z / 4!r} / (n * n))) / (1 + {Z * Z!r} / n)) END""",
    # Shares come with the number of comments behind them and their 90% interval, so three
    # comments are not read as a trend.
    "stance_share": """
        CREATE OR REPLACE VIEW stance_share AS
        SELECT *,
               share_low(favor, comments) AS favor_low,
               share_high(favor, comments) AS favor_high,
               share_low(against, comments) AS against_low,
               share_high(against, comments) AS against_high
        FROM (
            SELECT s.topic, cm.article_id, a.source,
                   CAST(coalesce(cm.posted_at, cm.first_seen_at) AS DATE) AS day,
                   count(*) AS comments,
                   avg(CASE WHEN s.label = 'favor' THEN 1 ELSE 0 END) AS favor_share,
                   avg(CASE WHEN s.label = 'against' THEN 1 ELSE 0 END) AS against_share,
                   avg(CASE WHEN s.label = 'neutral' THEN 1 ELSE 0 END) AS neutral_share,
                   count(*) FILTER (s.label = 'favor') AS favor,
                   count(*) FILTER (s.label = 'against') AS against
            FROM stances s
            JOIN comments cm USING (comment_id)
            JOIN articles a ON a.article_id = cm.article_id
            GROUP BY ALL)""",
}

INDEXES: tuple[str, ...] = (
    "CREATE INDEX IF NOT EXISTS claim_entities_entity ON claim_entities (entity)",
    "CREATE INDEX IF NOT EXISTS claims_article ON claims (article_id)",
    "CREATE INDEX IF NOT EXISTS comments_article ON comments (article_id)",
    "CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status)",
)

_DROP_INDEXES = tuple(
    f"DROP INDEX IF EXISTS {statement.split(' IF NOT EXISTS ')[1].split()[0]}"
    for statement in INDEXES)  # DuckDB cannot alter a table an index depends on

# version it upgrades *to* -> statements, applied in order to databases below that version.
# `pw_claim_key(text)` is schemas.ids.claim_key_for, registered on the connection.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    # 2: alert rules, digest mode, one alert per claim across outlets, in-flight marker
    2: (
        *_DROP_INDEXES,
        "ALTER TABLE claims ADD COLUMN claim_key VARCHAR",
        "UPDATE claims SET claim_key = pw_claim_key(content)",
        "ALTER TABLE alerts ADD COLUMN claim_key VARCHAR",
        "UPDATE alerts SET claim_key = (SELECT c.claim_key FROM claims c "
        "WHERE c.claim_id = alerts.claim_id)",
        "ALTER TABLE alerts ADD COLUMN rule VARCHAR DEFAULT 'tracked'",
        "ALTER TABLE alerts ADD COLUMN mode VARCHAR DEFAULT 'immediate'",
        "ALTER TABLE alerts ADD COLUMN delivery_started_at TIMESTAMPTZ",
        "UPDATE alerts SET rule = 'tracked', mode = 'immediate' WHERE rule IS NULL",
        "ALTER TABLE claim_entities ADD COLUMN article_id VARCHAR",
        "ALTER TABLE claim_entities ADD COLUMN claimed_at TIMESTAMPTZ",
        "UPDATE claim_entities SET article_id = c.article_id, "
        "claimed_at = coalesce(a.published_at, c.first_seen_at) "
        "FROM claims c JOIN articles a USING (article_id) "
        "WHERE c.claim_id = claim_entities.claim_id",
    ),
    # 3: which opinion of the body chain gave each article's body; every earlier body came
    # from the scorer, the only extractor before the chain
    3: (
        "ALTER TABLE articles ADD COLUMN extracted_by VARCHAR",
        "UPDATE articles SET extracted_by = 'dom' WHERE extracted_by IS NULL",
    ),
}


def ddl_hash() -> str:
    """A fingerprint of the DDL, recorded with every run."""
    text = "\n".join([*TABLES.values(), *VIEWS.values(), *INDEXES])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
