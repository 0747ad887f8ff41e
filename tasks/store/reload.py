"""Re-processing: an article's claims and its comments' stances replaced in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from schemas.errors import LoadError
from schemas.models import (
    Article,
    Claim,
    Comment,
    Stance,
)
from tasks.store.connection import open_for_write, rollback, write_problem
from tasks.store.load import _insert_articles, _many, _new_ids


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
            rollback(con)
            raise LoadError(f"re-processing load failed and was rolled back: "
                            f"{write_problem(exc)}") from exc
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
