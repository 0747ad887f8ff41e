"""Delivering alerts through apprise, which speaks JSON/form webhooks, email, Slack, ntfy, ...

The outbox lives in the `alerts` table (tasks/store/); this module only formats a message
and hands it to one channel. Secrets in channel URLs (passwords, tokens) never leave this
module: what is stored and logged is `mask_channel(url)`.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from prefect import task
from prefect.events import emit_event

from schemas.config import AlertRule, FirstRunMode
from schemas.ids import stable_id
from schemas.models import AlertMessage, Claim, PlannedAlert
from tasks.store import (
    alerts_to_send,
    fault_point,
    growing_backlogs,
    mark_delivering,
    record_alert_results,
    record_backlog_alert,
    record_health_alert,
    settle_interrupted_deliveries,
    stale_sources,
)


def expand_channel(url: str) -> str:
    """Put `${NAME}` references to environment variables into a channel URL.

    Secrets live in the environment, not in the config file; a missing variable is left as
    it is written, so the failure message names it.
    """
    return Template(url).safe_substitute(os.environ)


# generic webhooks: apprise does not know which part of their path is a secret
_WEBHOOKS = {"json", "jsons", "form", "forms", "xml", "xmls"}
_TOKENISH = re.compile(r"[A-Za-z0-9_\-.~]{8,}")


def _looks_secret(part: str) -> bool:
    """A path segment or host label that may be a token: long, or letters and digits."""
    if len(part) >= 20:
        return True
    return bool(_TOKENISH.fullmatch(part)) and any(c.isdigit() for c in part) \
        and any(c.isalpha() for c in part)


def mask_channel(url: str) -> str:
    """The channel URL without its secrets, as apprise's own privacy form
    (`url(privacy=True)`) gives it, less the query string, with a user name, token-like host
    labels and, for generic webhooks, every path segment after the first masked too.

    Never raises: whatever apprise or urllib make of the URL, the answer is a string
    without the secret (at worst `scheme://****`).
    """
    try:
        return _mask(url)
    except Exception:
        return f"{_scheme(url)}://****"


def _scheme(url: str) -> str:
    head = url.split("://", 1)[0] if "://" in url else ""
    return head.lower() if head.isalnum() and len(head) <= 20 else "unknown"


@contextmanager
def _apprise_silent() -> Iterator[None]:
    """apprise logs a URL it cannot parse whole, secrets and all: not while vetting one."""
    logger = logging.getLogger("apprise")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)


def _instantiate(url: str) -> Any:
    import apprise  # deferred: a config error or --help stays quick

    with _apprise_silent():
        return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def _mask(url: str) -> str:
    scheme = _scheme(url)
    plugin = _instantiate(url)
    if plugin is None:
        return f"{scheme}://****"
    parts = urlsplit(plugin.url(privacy=True))
    userinfo, _, hostport = parts.netloc.rpartition("@")
    if hostport.startswith("["):  # an IPv6 address, kept as it is
        netloc = hostport
    else:
        host, colon, port = hostport.partition(":")
        netloc = ".".join("****" if _looks_secret(label) else label
                          for label in host.split(".")) + colon + port
    if userinfo:
        user, has_password, _ = userinfo.partition(":")
        # a user name beside a password is a name; alone it is often the token (ntfy)
        user = user if has_password or "..." in user else "****"
        netloc = f"{user}:****@{netloc}" if has_password else f"{user}@{netloc}"
    segments = [seg for seg in parts.path.split("/") if seg]
    if scheme in _WEBHOOKS:
        segments = segments[:1] + ["****"] * (len(segments) > 1)
        if segments and _looks_secret(segments[0]):
            segments[0] = "****"
    else:
        segments = ["****" if "..." not in seg and _looks_secret(seg) else seg
                    for seg in segments]
    path = "/" + "/".join(segments) if segments else ""
    return str(urlunsplit((scheme, netloc, path, "", "")))


def channel_problem(url: str) -> str | None:
    """Why apprise cannot use a channel URL, without the URL's secrets; None when it can.

    A URL naming an environment variable that is not set is left to delivery time, where
    the failure names the variable."""
    expanded = expand_channel(url)
    if "${" in expanded:
        return None
    try:
        plugin = _instantiate(expanded)
    except Exception:
        plugin = None
    if plugin is None:
        return (f"not a notification URL apprise understands ({_scheme(url)}://…); see "
                "apprise's list of services for its form")
    return None


def channel_labels(urls: Iterable[str]) -> dict[str, str]:
    """The name each channel URL is stored and keyed under: its masked form, numbered
    (`#2`, `#3`, ... in config order) when masking makes different URLs look the same, such
    as two webhooks that differ only in their token. Without the number they would share
    alert ids, and only one of them would ever get the alerts."""
    labels: dict[str, str] = {}
    seen: dict[str, int] = {}
    for url in urls:
        if url in labels:
            continue
        masked = mask_channel(url)
        seen[masked] = seen.get(masked, 0) + 1
        labels[url] = masked if seen[masked] == 1 else f"{masked}#{seen[masked]}"
    return labels


def rule_channel_labels(rules: Sequence[AlertRule]) -> dict[str, str]:
    """`channel_labels` over every channel of the rules in force."""
    return channel_labels(url for rule in rules for url in rule.channels)


def _when(alert: AlertMessage) -> str:
    return alert.published_at.strftime("%Y-%m-%d %H:%M UTC") if alert.published_at else "n/a"


def format_alert(alert: AlertMessage) -> tuple[str, str]:
    """(title, body) of one alert, as plain text; apprise escapes it for the channel."""
    speaker = alert.speaker or "Unattributed"
    title = f"New claim about {alert.entity}: {speaker} {alert.cue or 'said'}"
    outlets = alert.outlets or (f"{alert.source}: {alert.url}",)
    body = "\n".join([
        f"Entity: {alert.entity}",
        f"Speaker: {speaker}",
        f"Cue: {alert.cue or ''}",
        f"Claim: {alert.content}",
        f"Sentence: {alert.sentence}",
        f"Article: {alert.article_title or alert.url}",
        f"Outlet: {alert.source}",
        f"URL: {alert.url}",
        f"Published: {_when(alert)}",
        *([f"Carried by {len(outlets)} outlets:", *(f"  - {o}" for o in outlets)]
          if len(outlets) > 1 else []),
        f"Alert id: {alert.alert_id}",
    ])
    return title, body


def format_digest(alerts: Sequence[AlertMessage]) -> tuple[str, str]:
    """One message for a run's alerts on one channel, grouped by entity."""
    entities = sorted({a.entity for a in alerts})
    claims = len({a.claim_id for a in alerts})  # a claim about two entities counts once
    title = f"policywatch: {claims} new claim{'s' if claims != 1 else ''} about " \
            + ", ".join(entities)
    lines: list[str] = []
    for entity in entities:
        lines.append(f"== {entity} ==")
        for alert in (a for a in alerts if a.entity == entity):
            outlets = alert.outlets or (f"{alert.source}: {alert.url}",)
            lines.append(f"- {alert.speaker or 'Unattributed'} {alert.cue or 'said'}: "
                         f"{alert.content}")
            lines.append(f"  {alert.article_title or ''} ({_when(alert)})")
            lines.extend(f"  {o}" for o in outlets)
        lines.append("")
    return title, "\n".join(lines).rstrip()


SUMMARY_TOP = 10  # claims a first-run or backfill digest quotes


def fold_first_run(planned: Sequence[PlannedAlert], policy: FirstRunMode
                   ) -> list[PlannedAlert]:
    """The alerts of a first or backfill run under `alerts.first_run`: `digest` folds them
    into one summary per channel (mode `summary`), `none` records them unsent (`muted`),
    `each` leaves them as they are. Every alert is still written to the outbox, so a later
    run never raises it again."""
    if policy == "each":
        return list(planned)
    mode = "summary" if policy == "digest" else "muted"
    return [alert.model_copy(update={"mode": mode}) for alert in planned]


def format_summary(alerts: Sequence[AlertMessage], report_url: str | None = None, *,
                   top: int = SUMMARY_TOP) -> tuple[str, str]:
    """(title, body) of one channel's digest of a first or backfill run: how many claims
    per tracked entity, the `top` claims most outlets carry, and the briefing page's link.

    A claim about two entities counts once in the total and once under each entity."""
    claims: dict[str, AlertMessage] = {}
    per_entity: dict[str, set[str]] = {}
    for alert in alerts:
        claims.setdefault(alert.claim_id, alert)
        per_entity.setdefault(alert.entity, set()).add(alert.claim_id)
    total = len(claims)
    noun = "claim" if total == 1 else "claims"
    title = (f"policywatch digest: {total} {noun} about {len(per_entity)} tracked "
             f"entit{'y' if len(per_entity) == 1 else 'ies'}")
    lines = [f"{total} {noun} about tracked entities, in one message instead of one alert "
             "each (a first run, or a backfill).", "", "Claims per tracked entity:"]
    for entity, ids in sorted(per_entity.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        lines.append(f"  {entity}: {len(ids)}")
    ranked = sorted(claims.values(), key=lambda a: (
        -len(a.outlets), -(a.published_at.timestamp() if a.published_at else 0), a.claim_id))
    lines += ["", f"Top {min(top, total)} {'claim' if min(top, total) == 1 else 'claims'}:"]
    for alert in ranked[:top]:
        carried = len(alert.outlets) or 1
        lines.append(f"- {alert.speaker or 'Unattributed'} {alert.cue or 'said'}: "
                     f"{alert.content}")
        lines.append(f"  {alert.source}: {alert.url}"
                     + (f" (and {carried - 1} more outlets)" if carried > 1 else ""))
    if report_url:
        lines += ["", f"Briefing page: {report_url}"]
    return title, "\n".join(lines)


@contextmanager
def apprise_log_to(path: Path | str) -> Iterator[Path]:
    """Apprise's own log lines (connection errors, retries) go to the file `path`, not to
    the console where the run's summary is printed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.getLogger("apprise")
    handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    before = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield target
    finally:
        logger.removeHandler(handler)
        logger.propagate = before
        handler.close()


def format_overflow(alerts: Sequence[AlertMessage], max_per_article: int,
                    max_per_run: int) -> tuple[str, str]:
    """One message for a channel's alerts past the caps: counts per entity and article."""
    title = (f"policywatch: {len(alerts)} more new claim{'s' if len(alerts) != 1 else ''} "
             "not sent one by one")
    lines = [f"Alerts are sent one by one up to {max_per_article} per article and "
             f"{max_per_run} per run (alerts.max_per_article, alerts.max_per_run).", ""]
    lines.append("By entity:")
    for entity in sorted({a.entity for a in alerts}):
        lines.append(f"  {entity}: {sum(a.entity == entity for a in alerts)}")
    lines.append("By article:")
    articles: dict[str, int] = {}
    for alert in alerts:
        articles[alert.url] = articles.get(alert.url, 0) + 1
    for url, count in sorted(articles.items(), key=lambda kv: -kv[1])[:20]:
        lines.append(f"  {count}  {url}")
    if len(articles) > 20:
        lines.append(f"  ... and {len(articles) - 20} more articles")
    return title, "\n".join(lines)


def _with_idempotency_key(url: str, alert_id: str) -> str:
    """JSON and form webhooks get the alert id as a header, so receivers can drop repeats."""
    if urlsplit(url).scheme.lower() not in {"json", "jsons", "form", "forms", "xml", "xmls"}:
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}+Idempotency-Key={alert_id}"


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:,\d+)? - [A-Z]+ - ")


def send_alert(channel_url: str, alert: AlertMessage) -> str | None:
    """Deliver one alert to one channel: None on success, else a secret-free reason."""
    title, body = format_alert(alert)
    return send_message(channel_url, title, body, key=alert.alert_id)


def send_message(channel_url: str, title: str, body: str, *, key: str) -> str | None:
    """Deliver one message; `key` goes out as the webhook's Idempotency-Key."""
    url = _with_idempotency_key(expand_channel(channel_url), key)
    import apprise  # when there is something to send: a quiet night does without it

    notifier = apprise.Apprise()
    if not notifier.add(url):
        return f"not a notification URL apprise understands: {mask_channel(channel_url)}"
    with apprise.LogCapture(level=logging.WARNING) as captured:  # type: ignore[no-untyped-call]
        ok = notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT)
    if ok:
        return None
    lines = [line for line in captured.getvalue().splitlines() if line.strip()]
    # apprise's log lines start "2026-11-29 18:07:16,048 - WARNING - ": keep the message
    reason = _LOG_PREFIX.sub("", lines[-1]) if lines else "delivery failed"
    for secret in {urlsplit(url).password, expand_channel(channel_url)} - {None, ""}:
        reason = reason.replace(str(secret), "****")
    return f"{mask_channel(channel_url)}: {reason[:300]}"


def deliver_pending(db_path: Path | str, rules: Sequence[AlertRule], *, max_attempts: int = 10,
                    tries_per_run: int = 3, backoff_s: float = 0.5,
                    report_url: str | None = None,
                    sleep: Callable[[float], None] = time.sleep,
                    max_per_article: int = 10, max_per_run: int = 100) -> tuple[int, int]:
    """Send every alert waiting in the outbox; (sent, failed) deliveries this run.

    Each delivery is marked in flight, tried up to `tries_per_run` times with backoff, and
    its outcome written straight after; a failed alert is offered again on later runs until
    tried `max_attempts` times. Immediate rules send a message per alert, at most
    `max_per_article` per article and `max_per_run` per channel (alerts.max_per_article,
    alerts.max_per_run); the rest go out as one extra message per channel with their
    counts. Digest rules send one message per channel with all of the run's alerts; alerts
    folded by `fold_first_run` one summary per channel (`format_summary`).
    """
    settle_interrupted_deliveries(db_path)
    channels = {label: url for url, label in rule_channel_labels(rules).items()}
    by_rule = {rule.name: rule for rule in rules}
    ready: list[AlertMessage] = []
    for alert in alerts_to_send(db_path, max_attempts):
        rule = by_rule.get(alert.rule)
        if rule is None or alert.channel not in channels:
            continue  # rule or channel since removed from the config: the row stays as it is
        if len(alert.outlets) < rule.min_outlets:
            continue  # waits, untried, until enough outlets carry the claim
        ready.append(alert)
    deliveries: list[tuple[list[AlertMessage], str, str, str]] = []
    digests: dict[str, list[AlertMessage]] = {}
    summaries: dict[str, list[AlertMessage]] = {}
    folded: dict[str, list[AlertMessage]] = {}
    per_channel: dict[str, int] = {}
    per_article: dict[tuple[str, str], int] = {}
    for alert in ready:
        if alert.mode == "summary":
            summaries.setdefault(alert.channel, []).append(alert)
        elif alert.mode == "digest":
            digests.setdefault(alert.channel, []).append(alert)
        elif alert.mode == "immediate":
            # one page with 500 claims must not become 500 posts: past the caps, the
            # channel's alerts go out as one message with the counts
            article = (alert.channel, alert.url)
            if per_channel.get(alert.channel, 0) >= max_per_run \
                    or per_article.get(article, 0) >= max_per_article:
                folded.setdefault(alert.channel, []).append(alert)
                continue
            per_channel[alert.channel] = per_channel.get(alert.channel, 0) + 1
            per_article[article] = per_article.get(article, 0) + 1
            deliveries.append(([alert], alert.channel, *format_alert(alert)))
    for channel, group in summaries.items():
        deliveries.append((group, channel, *format_summary(group, report_url)))
    for channel, group in folded.items():
        title, body = format_overflow(group, max_per_article, max_per_run)
        if report_url:
            body += f"\n\nBriefing page: {report_url}"
        deliveries.append((group, channel, title, body))
    for channel, group in digests.items():
        title, body = format_digest(group)
        if report_url:
            body += f"\n\nBriefing page: {report_url}"
        deliveries.append((group, channel, title, body))
    sent = failed = 0
    for group, channel, title, body in deliveries:
        ids = [a.alert_id for a in group]
        tries_left = min(tries_per_run, max_attempts - max(a.attempts for a in group))
        key = ids[0] if len(ids) == 1 else stable_id("digest", *ids)
        error: str | None = "not tried"
        for attempt in range(1, tries_left + 1):
            # marked per attempt and settled straight after: a crash during the backoff
            # after failed attempts must leave the alert failed, not "sent (unconfirmed)"
            mark_delivering(db_path, ids)
            error = send_message(channels[channel], title, body, key=key)
            fault_point("alert")
            record_alert_results(db_path, ids, sent=error is None, error=error)
            if error is None:
                break
            if attempt < tries_left:
                sleep(backoff_s * 2 ** (attempt - 1))
        if error is None:
            sent += len(ids)
        else:
            failed += len(ids)
    return sent, failed


deliver_pending_task = task(name="deliver-alerts")(deliver_pending)


def send_health_alerts(db_path: Path | str, sources: Sequence[str], channels: Sequence[str],
                       days: float | None, now: datetime | None = None) -> list[str]:
    """Tell every channel about sources that went quiet; returns the sources reported.

    Each quiet spell is reported once: a source is reported again only after it has
    yielded an article and gone quiet anew.
    """
    if days is None or not channels:
        return []
    reported = []
    for source, last in stale_sources(db_path, sources, days, now or datetime.now(UTC)):
        since = last.strftime("%Y-%m-%d %H:%M UTC") if last else "never"
        title = f"policywatch: source '{source}' has yielded nothing for {days:g} days"
        body = (f"Source: {source}\nLast new article: {since}\n"
                f"Check its feed or sitemap, and the `rejects` and `fetch_log` tables:\n"
                f"  policywatch sql \"SELECT * FROM rejects WHERE source = '{source}'\"")
        errors = [e for e in (send_message(c, title, body, key=stable_id("health", source,
                                                                           since))
                              for c in channels) if e]
        record_health_alert(db_path, source, last, sent=not errors,
                            error="; ".join(errors) or None)
        reported.append(source)
    return reported


# Per-claim events a run emits at most. A first night over a large site finds thousands of
# claims about tracked entities; Prefect's in-memory event queues hold 10,000 messages and
# drop the rest (measured: "Subscription queue is full"), each event costs ~1.7 ms of the
# flow's time, and an Automation firing thousands of times helps nobody. Past the cap, one
# `policywatch.claims.more` event per tracked entity carries the count instead.
EVENTS_PER_RUN = 500


def emit_claim_events(claims: Sequence[Claim], tracked: Sequence[str], *,
                      limit: int = EVENTS_PER_RUN) -> int:
    """A Prefect event per new claim about a tracked entity (up to `limit`), so Automations
    can route alerts, then one summary event per entity for the claims past it; returns how
    many per-claim events were emitted.

    Resource ids follow Prefect's dotted convention; the tracked entities the claim is about
    are related resources, so an Automation can match `policywatch.entity.Huawei`.
    """
    count = 0
    watched = set(tracked)
    about = [c for c in claims if watched & set(c.entities)]
    for claim in about[:limit]:
        related = [{"prefect.resource.id": f"policywatch.entity.{entity}",
                    "prefect.resource.role": "entity", "tracked": str(entity in watched)}
                   for entity in claim.entities]
        event = emit_event(
            event="policywatch.claim.new",
            resource={"prefect.resource.id": f"policywatch.claim.{claim.claim_id}",
                      "prefect.resource.name": (claim.speaker or "unattributed")[:100]},
            related=related,
            payload={"speaker": claim.speaker, "cue": claim.cue, "content": claim.content,
                     "article_id": claim.article_id, "quote_kind": claim.quote_kind,
                     "entities": list(claim.entities)},
        )
        count += event is not None
    rest = about[limit:]
    for entity in sorted(watched):
        skipped = [c.claim_id for c in rest if entity in c.entities]
        if skipped:
            emit_event(event="policywatch.claims.more",
                       resource={"prefect.resource.id": f"policywatch.entity.{entity}",
                                 "prefect.resource.name": entity},
                       payload={"count": len(skipped), "limit": limit,
                                "claim_ids": skipped[:100]})
    return count


emit_claim_events_task = task(name="emit-claim-events")(emit_claim_events)
send_health_alerts_task = task(name="source-health")(send_health_alerts)


def send_backlog_alerts(db_path: Path | str, budgets: Mapping[str, int],
                        channels: Sequence[str]) -> list[str]:
    """Tell every channel, once per growth spell, about a source whose backlog of listed
    items grew three nights in a row; returns the sources reported."""
    if not channels:
        return []
    reported = []
    for source, backlog in growing_backlogs(db_path, list(budgets)):
        title = f"policywatch: source '{source}' lists more than one night can fetch"
        body = (f"Source: {source}\nWaiting in its backlog: {backlog} items, more every "
                f"night for three nights.\nEach night fetches at most max_items = "
                f"{budgets[source]} of its listed pages; items that leave the window before "
                f"their turn are skipped. Raise `max_items` for this source in the config, or "
                f"drain the backlog now:\n  policywatch backfill --config CONFIG "
                f"--source {source}\nWhat was skipped: policywatch sql "
                f"\"SELECT * FROM skipped WHERE source = '{source}'\"")
        errors = [e for e in (send_message(c, title, body,
                                           key=stable_id("backlog", source, str(backlog)))
                              for c in channels) if e]
        record_backlog_alert(db_path, source, backlog, sent=not errors,
                             error="; ".join(errors) or None)
        reported.append(source)
    return reported


send_backlog_alerts_task = task(name="backlog-health")(send_backlog_alerts)
