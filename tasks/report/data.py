"""What the briefing page shows, read from the database (read-only, through tasks.store.query).

A fixed handful of queries whatever the number of entities: each reads every tracked entity
at once and Python groups the rows. Days are bucketed here, in UTC, from the timestamps, so
the claim chart and the stance chart agree on what "a day" is whatever the session time zone.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from schemas.errors import LoadError
from tasks.store import query

TOP_SPEAKERS = 6
UNATTRIBUTED = "Unattributed"


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    articles_new: int
    comments_new: int
    claims_new: int
    alerts_sent: int
    alerts_failed: int
    previous: tuple[str, datetime] | None  # the run before it: what "new" is measured from


@dataclass(frozen=True)
class Outlet:
    source: str
    url: str
    title: str | None
    at: datetime  # published, else first seen
    published: bool


@dataclass
class ClaimGroup:
    """One claim (one claim_key) with every outlet of this run that carries it."""

    claim_key: str
    speaker: str | None
    cue: str | None
    content: str
    quote_kind: str
    sentence: str
    outlets: list[Outlet] = field(default_factory=list)
    earlier: list[Outlet] = field(default_factory=list)  # outlets from earlier runs


@dataclass(frozen=True)
class StanceSummary:
    topic: str
    total: dict[str, int]  # label -> comments over the window
    per_day: list[dict[str, int]]  # one Counter of labels per day of the window


@dataclass
class EntityReport:
    name: str
    new: list[ClaimGroup] = field(default_factory=list)
    per_day: list[int] = field(default_factory=list)
    speakers: list[tuple[str, int, int]] = field(default_factory=list)  # name, claims, outlets
    stance: list[StanceSummary] = field(default_factory=list)

    @property
    def window_total(self) -> int:
        return sum(self.per_day)


@dataclass(frozen=True)
class SourceHealth:
    source: str
    fetched: int
    ok: int
    not_modified: int
    failed: int
    problems: tuple[tuple[str, str, int | None, str], ...]  # (stage, url, http status, why)
    # listed items not stored yet, and those left for a later night or expired (max_items)
    found: int = 0
    deferred: int = 0
    expired: int = 0


@dataclass
class Briefing:
    now: datetime
    since: datetime
    days: list[date]
    run: RunInfo | None
    entities: list[EntityReport]
    overall_stance: list[StanceSummary]
    sources: list[SourceHealth]


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def window_days(since: datetime, now: datetime) -> list[date]:
    first, last = utc(since).date(), utc(now).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _rows(db: Path | str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    return query(db, sql, params)[1]


def read_run(db: Path | str, run_id: str | None) -> RunInfo | None:
    """The run (default: the latest completed one) and the completed run before it."""
    rows = _rows(db, """
        SELECT r.run_id, r.started_at, r.finished_at, r.status, r.articles_new,
               r.comments_new, r.claims_new, r.alerts_sent, r.alerts_failed,
               (SELECT arg_max(p.run_id, p.started_at) FROM runs p
                WHERE p.status = 'completed' AND p.started_at < r.started_at),
               (SELECT max(p.started_at) FROM runs p
                WHERE p.status = 'completed' AND p.started_at < r.started_at)
        FROM runs r
        WHERE (? IS NULL AND r.status = 'completed') OR r.run_id = ?
        ORDER BY r.started_at DESC LIMIT 1""", [run_id, run_id])
    if not rows and run_id is not None:
        raise LoadError(f"{db}: no run {run_id!r} (see the runs table)")
    if not rows:
        return None
    row = rows[0]
    articles, comments, claims, sent, failed = (int(v or 0) for v in row[4:9])
    return RunInfo(row[0], utc(row[1]), utc(row[2]) if row[2] else None, row[3], articles,
                   comments, claims, sent, failed,
                   previous=(row[9], utc(row[10])) if row[9] else None)


def tracked_entities(db: Path | str) -> list[str]:
    return [r[0] for r in _rows(db, "SELECT DISTINCT entity FROM claim_entities ORDER BY 1")]


def _outlet(source: str, url: str, title: str | None, published: datetime | None,
            seen: datetime) -> Outlet:
    return Outlet(source, url, title, utc(published or seen), published is not None)


def covered_runs(db: Path | str, run_id: str) -> list[str]:
    """The run, and the failed runs since the completed one before it: a run that died
    after its load stored claims no briefing showed, so the next briefing shows them."""
    return [r[0] for r in _rows(db, """
        WITH cur AS (SELECT started_at AS t0 FROM runs WHERE run_id = ?),
             prev AS (SELECT max(started_at) AS t0 FROM runs
                      WHERE status = 'completed' AND started_at < (SELECT t0 FROM cur))
        SELECT run_id FROM runs
        WHERE run_id = ? OR (status = 'failed' AND started_at < (SELECT t0 FROM cur)
                             AND started_at > coalesce((SELECT t0 FROM prev),
                                                       '-infinity'::TIMESTAMPTZ))
        ORDER BY started_at""",
        [run_id, run_id])]


def new_claims(db: Path | str, run_id: str, entities: Sequence[str]
               ) -> dict[str, list[ClaimGroup]]:
    """Per entity, the run's new claims grouped by claim_key, most-carried first (with
    those of failed runs since the last completed one: `covered_runs`)."""
    runs = covered_runs(db, run_id) or [run_id]
    # the runs' claims (entity set), then earlier runs' outlets of the same claims (NULL)
    rows = _rows(db, """
        WITH fresh AS (
            SELECT ce.entity, c.claim_key, c.speaker, c.cue, c.content, c.quote_kind,
                   c.sentence, a.source, a.url, a.title, a.published_at, c.first_seen_at
            FROM claim_entities ce JOIN claims c ON c.claim_id = ce.claim_id
            JOIN articles a ON a.article_id = c.article_id
            WHERE c.run_id IN (SELECT unnest(?::VARCHAR[]))
              AND ce.entity IN (SELECT unnest(?::VARCHAR[]))
              AND c.quote_kind <> 'event')  -- events (a launch, a signing) are not claims
        SELECT * FROM fresh
        UNION ALL
        SELECT NULL, c.claim_key, c.speaker, c.cue, c.content, c.quote_kind, c.sentence,
               a.source, a.url, a.title, a.published_at, c.first_seen_at
        FROM claims c JOIN articles a ON a.article_id = c.article_id
        WHERE c.run_id NOT IN (SELECT unnest(?::VARCHAR[]))
          AND c.claim_key IN (SELECT claim_key FROM fresh)
        ORDER BY coalesce(published_at, first_seen_at), source, url""",
        [runs, list(entities), runs])
    earlier: dict[str, list[Outlet]] = defaultdict(list)
    for entity, key, *_, source, url, title, published, seen in rows:
        if entity is None:
            earlier[key].append(_outlet(source, url, title, published, seen))
    groups: dict[str, dict[str, ClaimGroup]] = defaultdict(dict)
    for (entity, key, speaker, cue, content, kind, sentence, source, url, title, published,
         seen) in rows:
        if entity is None:
            continue
        group = groups[entity].setdefault(key, ClaimGroup(key, speaker, cue, content, kind,
                                                          sentence,
                                                          earlier=earlier.get(key, [])))
        if not group.speaker and speaker:  # one outlet may name who another leaves out
            group.speaker, group.cue = speaker, cue
        outlet = _outlet(source, url, title, published, seen)
        if all(o.url != outlet.url for o in group.outlets):
            group.outlets.append(outlet)
    return {entity: sorted(found.values(),
                           key=lambda g: (-len(g.outlets), -max(o.at for o in g.outlets)
                                          .timestamp()))
            for entity, found in groups.items()}


def claim_activity(db: Path | str, entities: Sequence[str], since: datetime, now: datetime,
                   days: Sequence[date]) -> tuple[dict[str, list[int]],
                                                  dict[str, list[tuple[str, int, int]]]]:
    """Per entity: claims per day (distinct claim per outlet) and the top speakers."""
    rows = _rows(db, """
        SELECT t.entity, t.claimed_at, t.speaker, c.claim_key
        FROM entity_timeline t JOIN claims c ON c.claim_id = t.claim_id
        WHERE t.entity IN (SELECT unnest(?::VARCHAR[]))
          AND t.claimed_at >= ? AND t.claimed_at <= ?""",
        [list(entities), since, now])
    index = {day: i for i, day in enumerate(days)}
    per_day = {entity: [0] * len(days) for entity in entities}
    claims: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    outlets: dict[str, Counter[str]] = defaultdict(Counter)
    for entity, at, speaker, key in rows:
        day = index.get(utc(at).date())
        if day is not None:
            per_day[entity][day] += 1
        name = speaker or UNATTRIBUTED
        claims[entity][name].add(key)
        outlets[entity][name] += 1
    speakers = {
        entity: sorted(((name, len(keys), outlets[entity][name])
                        for name, keys in by_speaker.items()),
                       key=lambda s: (-s[1], -s[2], s[0]))[:TOP_SPEAKERS]
        for entity, by_speaker in claims.items()}
    return per_day, speakers


def _summaries(by_topic: dict[str, list[Counter[str]]]) -> list[StanceSummary]:
    return [StanceSummary(topic, dict(sum(per_day, Counter[str]())),
                          [dict(c) for c in per_day])
            for topic, per_day in sorted(by_topic.items())]


def stance(db: Path | str, entities: Sequence[str], since: datetime, now: datetime,
           days: Sequence[date]) -> tuple[dict[str, list[StanceSummary]], list[StanceSummary]]:
    """Comment stance per topic over the window: for the comments under articles that carry
    a claim about each entity, and for all comments. The stance_share view's join, counted
    here per UTC day (entity None: all comments)."""
    rows = _rows(db, """
        WITH s AS (
            SELECT s.topic, s.label, cm.article_id,
                   coalesce(cm.posted_at, cm.first_seen_at) AS "at"
            FROM stances s JOIN comments cm USING (comment_id)
            WHERE coalesce(cm.posted_at, cm.first_seen_at) BETWEEN ? AND ?)
        SELECT NULL AS entity, topic, label, "at" FROM s
        UNION ALL
        SELECT e.entity, s.topic, s.label, s."at" FROM s JOIN (
            SELECT DISTINCT ce.entity, c.article_id FROM claim_entities ce
            JOIN claims c ON c.claim_id = ce.claim_id
            WHERE ce.entity IN (SELECT unnest(?::VARCHAR[]))) e ON e.article_id = s.article_id""",
        [since, now, list(entities)])
    index = {day: i for i, day in enumerate(days)}
    counts: dict[str | None, dict[str, list[Counter[str]]]] = defaultdict(dict)
    for entity, topic, label, at in rows:
        day = index.get(utc(at).date())
        if day is not None:
            counts[entity].setdefault(topic, [Counter() for _ in days])[day][label] += 1
    by_entity = {entity: _summaries(by_topic) for entity, by_topic in counts.items()
                 if entity is not None}
    return by_entity, _summaries(counts.get(None, {}))


def source_health(db: Path | str, run_id: str) -> list[SourceHealth]:
    """Per source, this run's fetches and everything not fetched or dropped, with why."""
    # fetch_log rows come first, so a reject of the same page then adds its own reason
    rows = _rows(db, """
        SELECT 0 AS kind, 'fetch' AS stage, source, url, status, error, fetched_at AS "at"
        FROM fetch_log WHERE run_id = ?
        UNION ALL
        SELECT 1, stage, source, url, NULL, reason, rejected_at FROM rejects WHERE run_id = ?
        ORDER BY 1, 7, 3, 4""", [run_id, run_id])
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    problems: dict[str, dict[tuple[str, str], tuple[str, str, int | None, str]]] = \
        defaultdict(dict)
    for kind, stage, source, url, status, why, _ in rows:
        if kind == 0:
            failed = why is not None or status is None or status >= 400
            counts[source]["fetched"] += 1
            counts[source]["failed" if failed else
                           "not_modified" if status == 304 else "ok"] += 1
            if failed:
                problems[source][(stage, url)] = (
                    stage, url, status, why or (f"HTTP {status}" if status else "no response"))
        else:
            known = problems[source].get((stage, url))
            problems[source][(stage, url)] = (stage, url, known[2] if known else None, why)
    # a database no run of this version has opened yet has no source_nights table
    nights = {source: (found, deferred, expired) for source, found, deferred, expired in _rows(
        db, "SELECT source, found, deferred, expired FROM source_nights WHERE run_id = ?",
        [run_id])} if _rows(db, "SELECT count(*) FROM duckdb_tables() "
                                "WHERE table_name = 'source_nights'")[0][0] else {}
    return [SourceHealth(source, counts[source]["fetched"], counts[source]["ok"],
                         counts[source]["not_modified"], counts[source]["failed"],
                         tuple(problems.get(source, {}).values()),
                         *nights.get(source, (0, 0, 0)))
            for source in sorted(set(counts) | set(problems) | set(nights))]


def read_briefing(db: Path | str, *, since: datetime, now: datetime, run_id: str | None,
                  tracked: Sequence[str] | None) -> Briefing:
    days = window_days(since, now)
    run = read_run(db, run_id)
    names = list(dict.fromkeys(tracked)) if tracked is not None else tracked_entities(db)
    fresh = new_claims(db, run.run_id, names) if run and names else {}
    per_day, speakers = (claim_activity(db, names, since, now, days) if names
                         else ({}, {}))
    by_entity, overall = stance(db, names, since, now, days)
    entities = [EntityReport(name, fresh.get(name, []), per_day.get(name, [0] * len(days)),
                             speakers.get(name, []), by_entity.get(name, []))
                for name in names]
    # most news first: new claims in this run, then activity over the window
    entities.sort(key=lambda r: (-len(r.new), -r.window_total, r.name.lower()))
    return Briefing(now=now, since=since, days=days, run=run, entities=entities,
                    overall_stance=overall,
                    sources=source_health(db, run.run_id) if run else [])
