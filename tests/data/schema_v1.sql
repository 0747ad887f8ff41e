-- policywatch schema version 1 (0.1.0 before alert rules), as a SQL fixture.
-- tests/test_migrations.py builds a database from it and upgrades it in place.
CREATE TABLE IF NOT EXISTS schema_meta (
            key VARCHAR PRIMARY KEY,
            value VARCHAR NOT NULL
        );
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
        );
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
            run_id VARCHAR NOT NULL
        );
CREATE TABLE IF NOT EXISTS article_urls (
            url VARCHAR PRIMARY KEY,          -- normalised address
            article_id VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            first_seen_at TIMESTAMPTZ NOT NULL
        );
CREATE TABLE IF NOT EXISTS comments (
            comment_id VARCHAR PRIMARY KEY,
            article_id VARCHAR NOT NULL,
            author VARCHAR,
            body VARCHAR NOT NULL,
            posted_at TIMESTAMPTZ,
            parent_id VARCHAR,
            first_seen_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR NOT NULL
        );
CREATE TABLE IF NOT EXISTS claims (
            claim_id VARCHAR PRIMARY KEY,
            article_id VARCHAR NOT NULL,
            speaker VARCHAR,
            speaker_entity VARCHAR,
            cue VARCHAR,
            content VARCHAR NOT NULL,
            sentence VARCHAR NOT NULL,
            quote_kind VARCHAR NOT NULL,      -- direct | indirect | mixed
            first_seen_at TIMESTAMPTZ NOT NULL,
            run_id VARCHAR NOT NULL
        );
CREATE TABLE IF NOT EXISTS claim_entities (
            claim_id VARCHAR NOT NULL,
            entity VARCHAR NOT NULL,
            PRIMARY KEY (claim_id, entity)
        );
CREATE TABLE IF NOT EXISTS stances (
            comment_id VARCHAR NOT NULL,
            topic VARCHAR NOT NULL,
            label VARCHAR NOT NULL,           -- favor | against | neutral
            score DOUBLE NOT NULL,
            run_id VARCHAR NOT NULL,
            PRIMARY KEY (comment_id, topic)
        );
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
            run_id VARCHAR NOT NULL
        );
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
        );
CREATE TABLE IF NOT EXISTS raw_pages (
            url VARCHAR PRIMARY KEY,          -- normalised address, as in pages
            final_url VARCHAR NOT NULL,
            encoding VARCHAR,
            html_gz BLOB NOT NULL,
            fetched_at TIMESTAMPTZ NOT NULL
        );
CREATE TABLE IF NOT EXISTS fetch_log (
            run_id VARCHAR NOT NULL,
            url VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            status INTEGER,
            bytes BIGINT NOT NULL,
            duration_ms INTEGER NOT NULL,
            error VARCHAR,
            fetched_at TIMESTAMPTZ NOT NULL
        );
CREATE TABLE IF NOT EXISTS rejects (
            run_id VARCHAR NOT NULL,
            url VARCHAR NOT NULL,
            source VARCHAR NOT NULL,
            stage VARCHAR NOT NULL,           -- discover | fetch | parse | extract | load | notify
            reason VARCHAR NOT NULL,
            rejected_at TIMESTAMPTZ NOT NULL
        );
CREATE OR REPLACE VIEW claims_view AS
        SELECT c.claim_id, c.speaker, c.speaker_entity, c.cue, c.content, c.quote_kind,
               c.sentence, a.title AS article_title, a.source, a.url, a.published_at,
               c.first_seen_at, c.article_id
        FROM claims c JOIN articles a USING (article_id);
CREATE OR REPLACE VIEW entity_timeline AS
        SELECT ce.entity, coalesce(a.published_at, c.first_seen_at) AS "at",
               c.speaker, c.cue, c.content, a.title AS article_title, a.source, a.url,
               c.claim_id
        FROM claim_entities ce
        JOIN claims c USING (claim_id)
        JOIN articles a USING (article_id);
CREATE OR REPLACE VIEW stance_share AS
        SELECT s.topic, cm.article_id, a.source,
               CAST(coalesce(cm.posted_at, cm.first_seen_at) AS DATE) AS day,
               count(*) AS comments,
               avg(CASE WHEN s.label = 'favor' THEN 1 ELSE 0 END) AS favor_share,
               avg(CASE WHEN s.label = 'against' THEN 1 ELSE 0 END) AS against_share,
               avg(CASE WHEN s.label = 'neutral' THEN 1 ELSE 0 END) AS neutral_share
        FROM stances s
        JOIN comments cm USING (comment_id)
        JOIN articles a ON a.article_id = cm.article_id
        GROUP BY ALL;
CREATE INDEX IF NOT EXISTS claim_entities_entity ON claim_entities (entity);
CREATE INDEX IF NOT EXISTS claims_article ON claims (article_id);
CREATE INDEX IF NOT EXISTS comments_article ON comments (article_id);
CREATE INDEX IF NOT EXISTS alerts_status ON alerts (status);
-- a night's worth of rows, as version 1 wrote them
INSERT INTO schema_meta VALUES ('version', '1');
INSERT INTO runs (run_id, started_at, finished_at, status, articles_new, comments_new, claims_new, alerts_sent)
  VALUES ('20261120T020000-aaaaaa', '2026-11-20 02:00:00+00', '2026-11-20 02:03:00+00', 'completed', 1, 1, 2, 1);
INSERT INTO articles VALUES ('art1', 'wire', 'https://wire.example/a', NULL, 'Chips', 'K. Lau',
  '2026-11-19 08:00:00+00', 'Sacks said Huawei is closing the gap.', 'en', 'h1',
  '2026-11-20 02:01:00+00', '2026-11-20 02:01:00+00', '20261120T020000-aaaaaa');
INSERT INTO article_urls VALUES ('https://wire.example/a', 'art1', 'wire', '2026-11-20 02:01:00+00');
INSERT INTO comments VALUES ('com1', 'art1', 'Stan', 'Good move.', NULL, NULL, '2026-11-20 02:01:00+00', '20261120T020000-aaaaaa');
INSERT INTO claims VALUES ('cl1', 'art1', 'David Sacks', 'David Sacks', 'said', 'Huawei is closing the gap',
  'Sacks said Huawei is closing the gap.', 'indirect', '2026-11-20 02:02:00+00', '20261120T020000-aaaaaa');
INSERT INTO claims VALUES ('cl2', 'art1', NULL, NULL, NULL, 'China is months behind',
  'It was suggested that China is months behind.', 'indirect', '2026-11-20 02:02:00+00', '20261120T020000-aaaaaa');
INSERT INTO claim_entities VALUES ('cl1', 'Huawei'), ('cl1', 'David Sacks'), ('cl2', 'China');
INSERT INTO stances VALUES ('com1', 'us-tech-controls', 'favor', 0.8, '20261120T020000-aaaaaa');
INSERT INTO alerts VALUES ('al1', 'cl1', 'Huawei', 'json://127.0.0.1:9/hook', 'sent', 1,
  '2026-11-20 02:02:00+00', '2026-11-20 02:02:30+00', NULL, '20261120T020000-aaaaaa');
INSERT INTO alerts VALUES ('al2', 'cl1', 'David Sacks', 'json://127.0.0.1:9/hook', 'failed', 2,
  '2026-11-20 02:02:00+00', NULL, 'HTTP 500', '20261120T020000-aaaaaa');
INSERT INTO pages (url, source, status, http_status, etag, content_hash, article_id, attempts, first_seen_at, last_fetched_at)
  VALUES ('https://wire.example/a', 'wire', 'ok', 200, '"e1"', 'h1', 'art1', 0, '2026-11-20 02:01:00+00', '2026-11-20 02:01:00+00');
