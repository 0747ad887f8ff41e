"""Delivering alerts through apprise, which speaks JSON/form webhooks, email, Slack, ntfy, ...

The outbox lives in the `alerts` table (tasks/load.py); this module only formats a message
and hands it to one channel. Secrets in channel URLs (passwords, tokens) never leave this
module: what is stored and logged is `mask_channel(url)`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from string import Template
from urllib.parse import urlsplit, urlunsplit

import apprise
from prefect import task

from schemas.models import AlertMessage
from tasks.load import alerts_to_send, record_alert_result

_ENV_REF = re.compile(r"\$\{?([A-Z_][A-Z0-9_]*)\}?")


def expand_channel(url: str) -> str:
    """Put `${NAME}` references to environment variables into a channel URL.

    Secrets live in the environment, not in the config file; a missing variable is left as
    it is written, so the failure message names it.
    """
    return Template(url).safe_substitute(os.environ)


def mask_channel(url: str) -> str:
    """The channel URL without its password, query string or any token in the path."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    if parts.username:
        host = f"{parts.username}:****@{host}" if parts.password else f"{parts.username}@{host}"
    path = "/".join("****" if len(seg) >= 20 else seg for seg in parts.path.split("/"))
    return urlunsplit((parts.scheme, host, path, "", ""))


def format_alert(alert: AlertMessage) -> tuple[str, str]:
    """(title, body) of one alert, as plain text; apprise escapes it for the channel."""
    speaker = alert.speaker or "Unattributed"
    title = f"New claim about {alert.entity}: {speaker} {alert.cue or 'said'}"
    when = alert.published_at.strftime("%Y-%m-%d %H:%M UTC") if alert.published_at else "n/a"
    body = "\n".join([
        f"Entity: {alert.entity}",
        f"Speaker: {speaker}",
        f"Cue: {alert.cue or ''}",
        f"Claim: {alert.content}",
        f"Sentence: {alert.sentence}",
        f"Article: {alert.article_title or alert.url}",
        f"Outlet: {alert.source}",
        f"URL: {alert.url}",
        f"Published: {when}",
        f"Alert id: {alert.alert_id}",
    ])
    return title, body


def _with_idempotency_key(url: str, alert_id: str) -> str:
    """JSON and form webhooks get the alert id as a header, so receivers can drop repeats."""
    if urlsplit(url).scheme.lower() not in {"json", "jsons", "form", "forms", "xml", "xmls"}:
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}+Idempotency-Key={alert_id}"


def send_alert(channel_url: str, alert: AlertMessage) -> str | None:
    """Deliver one alert to one channel: None on success, else a secret-free reason."""
    url = _with_idempotency_key(expand_channel(channel_url), alert.alert_id)
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return f"not a notification URL apprise understands: {mask_channel(channel_url)}"
    title, body = format_alert(alert)
    with apprise.LogCapture(level=logging.WARNING) as captured:
        ok = notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
    if ok:
        return None
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    reason = lines[-1] if lines else "delivery failed"
    for secret in {urlsplit(url).password, expand_channel(channel_url)} - {None, ""}:
        reason = reason.replace(str(secret), "****")
    return f"{mask_channel(channel_url)}: {reason[:300]}"


def deliver_pending(db_path: Path | str, channels: Sequence[str], *, max_attempts: int = 10,
                    tries_per_run: int = 3, backoff_s: float = 0.5,
                    sleep: Callable[[float], None] = time.sleep) -> tuple[int, int]:
    """Send every alert waiting in the outbox; (sent, failed) this run.

    Each alert is tried up to `tries_per_run` times with backoff, and its outcome is written
    straight after; a failed alert is offered again on later runs until it has been tried
    `max_attempts` times in all.
    """
    by_mask = {mask_channel(expand_channel(url)): url for url in channels}
    sent = failed = 0
    for alert in alerts_to_send(db_path, max_attempts):
        channel = by_mask.get(alert.channel)
        if channel is None:
            continue  # the channel was removed from the config: keep the row as it is
        error: str | None = "not tried"
        tries = 0
        while tries < min(tries_per_run, max_attempts - alert.attempts):
            tries += 1
            error = send_alert(channel, alert)
            if error is None:
                break
            if tries < tries_per_run:
                sleep(backoff_s * 2 ** (tries - 1))
        record_alert_result(db_path, alert.alert_id, sent=error is None, error=error,
                            tries=tries)
        if error is None:
            sent += 1
        else:
            failed += 1
    return sent, failed


deliver_pending_task = task(name="deliver-alerts")(deliver_pending)
