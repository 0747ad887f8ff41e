"""Alerts: which new claims each rule alerts on, delivery through apprise with an outbox,
per-entity Atom feeds and source-health alerts.

Start at `plan_alerts` (`rules`), then `deliver_pending` (`delivery`).
"""

from __future__ import annotations

from tasks.alerts.delivery import (
    channel_problem,
    deliver_pending,
    deliver_pending_task,
    emit_claim_events_task,
    mask_channel,
    send_health_alerts,
    send_health_alerts_task,
)
from tasks.alerts.feeds import slug, write_entity_feeds_task
from tasks.alerts.rules import plan_alerts, plan_alerts_task

__all__ = [
    "channel_problem",
    "deliver_pending",
    "deliver_pending_task",
    "emit_claim_events_task",
    "mask_channel",
    "plan_alerts",
    "plan_alerts_task",
    "send_health_alerts",
    "send_health_alerts_task",
    "slug",
    "write_entity_feeds_task",
]
