"""Alerts: which new claims each rule alerts on, delivery through apprise with an outbox,
per-entity Atom feeds and source-health alerts.

Start at `plan_alerts` (`rules`), then `deliver_pending` (`delivery`). A first run, or a
backfill, passes its planned alerts through `fold_first_run` first: one digest per channel
(`format_summary`) instead of an alert per claim.
"""

from __future__ import annotations

from tasks.alerts.delivery import (
    SUMMARY_TOP,
    apprise_log_to,
    channel_problem,
    deliver_pending,
    deliver_pending_task,
    emit_claim_events_task,
    fold_first_run,
    format_summary,
    mask_channel,
    send_backlog_alerts,
    send_backlog_alerts_task,
    send_health_alerts,
    send_health_alerts_task,
)
from tasks.alerts.feeds import slug, write_entity_feeds_task
from tasks.alerts.rules import plan_alerts, plan_alerts_task

__all__ = [
    "SUMMARY_TOP",
    "apprise_log_to",
    "channel_problem",
    "deliver_pending",
    "deliver_pending_task",
    "emit_claim_events_task",
    "fold_first_run",
    "format_summary",
    "mask_channel",
    "plan_alerts",
    "plan_alerts_task",
    "send_backlog_alerts",
    "send_backlog_alerts_task",
    "send_health_alerts",
    "send_health_alerts_task",
    "slug",
    "write_entity_feeds_task",
]
