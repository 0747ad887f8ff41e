"""The nightly flow: crawl every source, extract, load, alert. It only composes tasks."""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from flows.analysis import analyse_night, cores, unwalked
from schemas.config import Config, load_config
from schemas.models import PageBatch, Reject, RunSummary
from tasks.alerts import (
    apprise_log_to,
    channel_problem,
    deliver_pending_task,
    emit_claim_events_task,
    fold_first_run,
    plan_alerts_task,
    send_backlog_alerts_task,
    send_health_alerts_task,
    write_entity_feeds_task,
)
from tasks.crawl import crawl_source_task, merge_night_copies
from tasks.report import copy_report_task, write_report_task
from tasks.store import (
    LoadBatch,
    begin_run_task,
    fail_run,
    finish_run_task,
    has_completed_run,
    load_batch_task,
    run_lock,
)

# One line per stage and per source, for `policywatch run`'s live progress display.
progress = logging.getLogger("policywatch.progress")


@flow(name="policywatch-nightly", log_prints=True)
def nightly(config_path: str, db_path: str | None = None,
            extra_channels: list[str] | None = None, lock_wait_s: float = 60.0,
            backfill: bool = False, only_source: str | None = None,
            budget: int | None = None) -> RunSummary:
    """One night: every source is crawled, new articles are analysed and loaded, alerts sent.

    The run holds the database's run lock throughout, so a second run waits for it (up to
    `lock_wait_s`) instead of sending the same alerts twice. The first run on a database
    (no completed run yet) and a `backfill` run fold their alerts as `alerts.first_run`
    says: by default one digest per channel instead of an alert per claim. `only_source`
    and `budget` crawl one source with `budget` pages instead of its `max_items`.
    """
    config = load_config(config_path, channel_problem)
    if only_source is not None:
        config = config.model_copy(update={
            "sources": tuple(s for s in config.sources if s.name == only_source)})
    db = Path(db_path) if db_path else config.database
    run_id = datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    started = datetime.now(UTC)
    with run_lock(db, wait_s=lock_wait_s):
        fold = backfill or not has_completed_run(db)
        begin_run_task(db, run_id, started, str(config_path))
        try:
            summary = _night(config, db, run_id, started, extra_channels or [], fold,
                             budget, backfill=only_source is not None)
        except BaseException:
            fail_run(db, run_id, datetime.now(UTC))  # keeps the counts its load recorded
            raise
    return summary


def _night(config: Config, db: Path, run_id: str, started: datetime,
           extra_channels: list[str], fold: bool, budget: int | None = None, *,
           backfill: bool = False) -> RunSummary:
    logger = get_run_logger()
    progress.info("crawling %d sources", len(config.sources))
    rules = tuple(rule.model_copy(update={"channels": (*rule.channels, *extra_channels)})
                  for rule in config.alert_rules())
    tracked = [e.name for e in config.tracked_entities]

    futures = [crawl_source_task.submit(source, config.crawl, db, processes=cores(config),
                                        budget=budget)
               for source in config.sources]
    batches: list[PageBatch] = []
    failures: list[Reject] = []
    for source, future in zip(config.sources, futures, strict=True):
        state = future.wait() or future.state
        if future.state.is_completed():
            batches.append(future.result())
            progress.info("%s: %d pages, %d new or changed articles, %d comments",
                          source.name, len(batches[-1].outcomes), len(batches[-1].articles),
                          len(batches[-1].comments))
        else:  # a source that crashes outright never stops the others
            reason = str(state.message or "crawl failed")[:300]
            logger.error("source %s failed: %s", source.name, reason)
            failures.append(Reject(url=str(source.feed or source.sitemap or source.homepage
                                          or (source.urls[0] if source.urls else "")),
                                   source=source.name, stage="discover", reason=reason))

    merge_night_copies(batches)  # a story two sources carried tonight is one article
    articles = [a for b in batches for a in b.articles]
    comments = [c for b in batches for c in b.comments]
    claims, stances, analysis_rejects = analyse_night(articles, comments, config)
    failures.extend(r for b in batches for r in b.rejects)
    failures.extend(analysis_rejects)
    alerts = plan_alerts_task(unwalked(claims), rules, config.topics) if claims else []
    if fold:  # a first or backfill run: no flood of alerts about old claims
        alerts = fold_first_run(alerts, config.alerts.first_run)
    progress.info("loading %d articles, %d claims", len(articles), len(claims))
    counts = load_batch_task(db, unwalked(LoadBatch.of_pages(
        run_id, batches, claims=claims, stances=stances, alerts=alerts, rejects=failures,
        # a whole night knows every configured source: backlogs of others expire
        configured=None if backfill else [s.name for s in config.sources])))
    new_ids = set(counts.new_claim_ids)  # built once: a set per claim was O(n^2)
    new_claims = [c for c in claims if c.claim_id in new_ids]
    if new_claims:
        emit_claim_events_task(unwalked(new_claims), tracked)
    reports = config.reports_dir or db.with_name(db.stem + "-reports")
    report = write_report_task(db, reports / f"{run_id}.html", run_id=run_id, tracked=tracked)
    progress.info("sending alerts")
    with apprise_log_to(reports / "alerts.log"):  # apprise's own lines: not the summary's
        sent, failed = deliver_pending_task(db, rules, max_attempts=config.alerts.max_attempts,
                                            report_url=report.resolve().as_uri(),
                                            max_per_article=config.alerts.max_per_article,
                                            max_per_run=config.alerts.max_per_run)
        send_backlog_alerts_task(db, {s.name: s.max_items for s in config.sources},
                                 [*config.alerts.channels, *extra_channels])
        send_health_alerts_task(db, [s.name for s in config.sources],
                                [*config.alerts.channels, *extra_channels],
                                config.crawl.stale_after_days)
    write_entity_feeds_task(db, tracked,
                            config.alerts.feeds_dir or db.with_name(db.stem + "-feeds"))
    summary = RunSummary(
        run_id=run_id, started_at=started, finished_at=datetime.now(UTC), status="completed",
        articles_new=counts.articles_new, comments_new=counts.comments_new,
        claims_new=counts.claims_new, stances_new=counts.stances_new, alerts_sent=sent,
        alerts_failed=failed,
        pages_failed=sum(1 for b in batches for o in b.outcomes if o.error),
        extracted_by=dict(Counter(a.extracted_by or "dom" for a in articles).most_common()),
        failures=tuple(failures),
        sources=tuple(b.night for b in batches if b.night is not None),
    )
    finish_run_task(db, summary)
    # again, now that the runs row is final: the page written before delivery (the digest
    # links to it) still said "running" and had no alert figures
    report = write_report_task(db, reports / f"{run_id}.html", run_id=run_id, tracked=tracked)
    logger.info("run %s: %d new articles, %d new comments, %d new claims, %d alerts sent, "
                "%d failures", run_id, summary.articles_new, summary.comments_new,
                summary.claims_new, sent, len(failures))
    # counted as everywhere (CLI, briefing, digest): a claim once however many outlets carry
    # it, and once under each tracked entity it is about
    said = [c for c in new_claims if c.quote_kind != "event"]  # events are not claims
    per_entity = {name: len({c.claim_key for c in said if name in c.entities})
                  for name in tracked}
    about_tracked = len({c.claim_key for c in said if set(tracked) & set(c.entities)})
    latest = copy_report_task(report, reports / "latest.html")
    create_markdown_artifact(
        key="policywatch-run", description=f"policywatch run {run_id}",
        markdown=_artifact(summary, about_tracked, per_entity)
        + f"\n\nBriefing page: {latest.as_uri()}\n")
    return summary.model_copy(update={"report_path": str(latest)})


def _artifact(summary: RunSummary, about_tracked: int, per_entity: dict[str, int]) -> str:
    lines = [
        f"# policywatch run {summary.run_id}", "",
        "| new articles | new comments | new claims (all) | new claims about tracked entities "
        "| alerts sent | alerts failed | failures |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {summary.articles_new} | {summary.comments_new} | {summary.claims_new} | "
        f"{about_tracked} | {summary.alerts_sent} | {summary.alerts_failed} | "
        f"{len(summary.failures)} |",
    ]
    if per_entity:
        lines += ["", "## New claims about tracked entities, per entity", "",
                  "A claim counts once however many outlets carry it, and under each entity "
                  "it is about.", "", "| entity | new claims |",
                  "| --- | --- |", *(f"| {name} | {n} |" for name, n in per_entity.items())]
    if summary.sources:
        lines += ["", "## Listed items per source", "",
                  "| source | new items found | fetched | deferred | expired | backlog |",
                  "| --- | --- | --- | --- | --- | --- |",
                  *(f"| {n.source} | {n.found} | {n.fetched} | {n.deferred} | {n.expired} | "
                    f"{n.backlog} |" for n in summary.sources)]
    if summary.failures:
        lines += ["", "## Failures", "", "| source | stage | url | reason |",
                  "| --- | --- | --- | --- |"]
        lines += [f"| {r.source} | {r.stage} | {r.url} | {r.reason.replace('|', '/')} |"
                  for r in summary.failures[:50]]
    return "\n".join(lines)
