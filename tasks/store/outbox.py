"""The alert outbox (`alerts` table) and source health: what to send, what was sent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

from schemas.models import (
    AlertMessage,
)
from tasks.store.connection import open_for_write


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


def growing_backlogs(path: Path | str, sources: Sequence[str], nights: int = 3
                     ) -> list[tuple[str, int]]:
    """(source, backlog) of sources whose backlog grew on each of their last `nights` runs
    and that no backlog alert covers yet; a source whose backlog shrank is re-armed."""
    with open_for_write(path) as con:
        rows = con.execute("""
            SELECT source, list(backlog ORDER BY started_at DESC)[1:?] FROM (
                SELECT n.source, n.backlog, r.started_at FROM source_nights n
                JOIN runs r USING (run_id) WHERE n.source IN (SELECT unnest(?::VARCHAR[])))
            GROUP BY source ORDER BY source""", [nights + 1, list(sources)]).fetchall()
        # an alert that failed to go out is tried again on the next growing night
        alerted = {s for (s,) in con.execute(
            "SELECT source FROM backlog_alerts WHERE sent_at IS NOT NULL").fetchall()}
        growing = []
        for source, sizes in rows:
            steps = [*sizes, *[0] * (nights + 1 - len(sizes))]
            if len(sizes) >= nights and all(a > b for a, b in pairwise(steps)):
                if source not in alerted:
                    growing.append((source, sizes[0]))
            elif source in alerted and len(sizes) > 1 and sizes[0] < sizes[1]:
                con.execute("DELETE FROM backlog_alerts WHERE source = ?", [source])
    return growing


def record_backlog_alert(path: Path | str, source: str, backlog: int, *, sent: bool,
                         error: str | None) -> None:
    with open_for_write(path) as con:
        con.execute("INSERT OR REPLACE INTO backlog_alerts VALUES (?, now(), ?, "
                    "CASE WHEN ? THEN now() END, ?)", [source, backlog, sent, error])
