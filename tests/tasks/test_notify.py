"""Alerts delivered through apprise to real receivers on 127.0.0.1: a webhook and SMTP."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from pytest_httpserver import HTTPServer

import tasks.alerts.delivery as notify
from schemas.config import AlertRule
from schemas.models import AlertMessage
from tasks.alerts import deliver_pending, mask_channel
from tasks.alerts.delivery import channel_labels, format_alert, send_alert
from tasks.store import load_batch, query
from tests.tasks.test_load import _batch

ALERT = AlertMessage(
    alert_id="a1", claim_id="c1", entity="Huawei", channel="json://x", speaker="David Sacks",
    cue="noted", content="Huawei is <b>closing</b> the gap", sentence="He noted that ...",
    article_title="Chips", source="wire", url="https://wire.example/a",
    published_at=datetime(2026, 11, 27, 9, tzinfo=UTC))
NO_SLEEP = {"sleep": lambda s: None}


def _hook(server: HTTPServer) -> str:
    return f"json://127.0.0.1:{server.port}/hook"


def _rule(channel: str, **kw: object) -> AlertRule:
    return AlertRule(name="tracked", entities=("Huawei",), channels=(channel,),
                     mode="immediate", **kw)


def _posts(server: HTTPServer) -> list[dict[str, str]]:
    return [json.loads(r.data) for r, _ in server.log if r.path == "/hook"]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 OK"


@pytest.fixture
def smtp() -> Iterator[tuple[int, _Inbox]]:
    inbox = _Inbox()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, inbox
    finally:
        controller.stop()


def test_webhook_gets_the_claim_and_an_idempotency_key(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    assert send_alert(_hook(httpserver), ALERT) is None
    [(request, _)] = httpserver.log
    payload = json.loads(request.data)
    assert "Huawei" in payload["title"] and "David Sacks" in payload["title"]
    for part in ("Huawei is <b>closing</b> the gap", "Outlet: wire", "https://wire.example/a",
                 "2026-11-27 09:00 UTC", "Article: Chips", "Cue: noted"):
        assert part in payload["message"]
    assert request.headers["Idempotency-Key"] == "a1"


def test_email_arrives_with_the_claim_escaped(smtp: tuple[int, _Inbox]) -> None:
    port, inbox = smtp
    url = (f"mailto://127.0.0.1:{port}?from=policywatch@example.org"
           "&to=analyst@example.org&mode=insecure")
    assert send_alert(url, ALERT) is None
    [raw] = inbox.messages
    mail = message_from_bytes(raw)
    assert "New claim about Huawei" in mail["Subject"]
    assert mail["To"].endswith("analyst@example.org>") or "analyst@example.org" in mail["To"]
    # article text is data, never markup: it goes out as text/plain, quoted as written
    assert [p.get_content_type() for p in mail.walk()] == ["text/plain"]
    text = mail.get_payload(decode=True).decode()
    for part in ("Speaker: David Sacks", "Claim: Huawei is <b>closing</b> the gap",
                 "URL: https://wire.example/a", "Outlet: wire", "Published: 2026-11-27 09:00"):
        assert part in text


def test_failure_reason_has_no_secret(httpserver: HTTPServer,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("no", status=500)
    monkeypatch.setenv("PW_HOOK_TOKEN", "s3cret-token")
    url = f"json://bot:${{PW_HOOK_TOKEN}}@127.0.0.1:{httpserver.port}/hook"
    error = send_alert(url, ALERT)
    assert error is not None and "s3cret-token" not in error
    assert "bot:****@127.0.0.1" in error
    assert not re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", error)  # no log time stamp
    assert json.loads(httpserver.log[0][0].data)  # it really was sent, with the secret


def test_mask_channel_hides_passwords_tokens_and_queries() -> None:
    assert mask_channel("json://u:pw@h:9/hook?+X-Token=abc") == "json://u:****@h:9/hook"
    # apprise's own privacy form: it knows which parts of a Slack URL are secret
    assert mask_channel("slack://T1/B2/abcdefghijklmnopqrstuvwx") == "slack://T...1/B...2/a...x"


@pytest.mark.parametrize(("url", "secret"), [
    # a literal Telegram bot token: urllib cannot read its "port"; masking crashed the run
    ("tgram://123456789:AAHdEfGhIjKlMnOpQrStUvWxYz0123456789/12345", "AAHdEf"),
    ("json://hooks.example/hook/sh0rtT0k", "sh0rtT0k"),  # a path token under 20 chars
    ("json://hooks.example/hook/plainsecret", "plainsecret"),  # any segment past the first
    ("json://t0ken1234abcd.hooks.example/x", "t0ken1234abcd"),  # a token in the host
    ("ntfy://tok3nvalue99@ntfy.sh/topic", "tok3nvalue99"),  # a token as the user name
    ("json://h:notaport/x?secret=s3cr3tvalue", "s3cr3tvalue"),  # unreadable: all masked
    ("mailto://user:hunter2pw@example.com", "hunter2pw"),
])
def test_mask_channel_never_shows_a_token_and_never_raises(url: str, secret: str) -> None:
    masked = mask_channel(url)
    assert secret not in masked and masked.split("://")[0] == url.split("://")[0]
    assert channel_labels([url, url + "x"])  # labels are made without raising either


def test_a_channel_apprise_cannot_use_is_a_config_error_without_the_secret(
        tmp_path: Path) -> None:
    from schemas.config import load_config
    from schemas.errors import ConfigError
    from tasks.alerts import channel_problem

    config = tmp_path / "c.yaml"
    config.write_text("sources:\n  - name: s\n    urls: ['http://example.org/a']\n"
                      "alerts:\n  channels:\n    - json://127.0.0.1:9/ok\n"
                      "    - tgram://s3cr3tT0kenXYZ/12345\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config, channel_problem)
    message = str(caught.value)
    assert "alerts.channels[1] (line 7)" in message and "apprise" in message
    assert "s3cr3tT0kenXYZ" not in message
    assert load_config(config)  # without the check (schemas alone) it loads


def test_format_alert_has_every_field() -> None:
    title, body = format_alert(ALERT)
    assert title == "New claim about Huawei: David Sacks noted"
    assert "Sentence: He noted that ..." in body and "Article: Chips" in body


def test_flaky_webhook_gets_each_alert_exactly_once(httpserver: HTTPServer,
                                                    db_path: Path) -> None:
    rule = _rule(_hook(httpserver))
    load_batch(db_path, _batch("r1", rule))
    httpserver.expect_ordered_request("/hook").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    assert deliver_pending(db_path, [rule], **NO_SLEEP) == (1, 0)
    assert deliver_pending(db_path, [rule], **NO_SLEEP) == (0, 0)  # a re-run sends nothing
    assert len(httpserver.log) == 2
    _, rows = query(db_path, "SELECT status, attempts, sent_at IS NOT NULL FROM alerts")
    assert rows == [("sent", 2, True)]


def test_a_failed_alert_waits_for_the_next_run(httpserver: HTTPServer, db_path: Path) -> None:
    rule = _rule(_hook(httpserver))
    load_batch(db_path, _batch("r1", rule))
    httpserver.expect_request("/hook").respond_with_data("down", status=500)
    assert deliver_pending(db_path, [rule], max_attempts=4, **NO_SLEEP) == (0, 1)
    _, rows = query(db_path, "SELECT status, attempts, error FROM alerts")
    assert rows[0][:2] == ("failed", 3) and "127.0.0.1" in rows[0][2]
    # the next run tries again, but only the attempt it has left
    assert deliver_pending(db_path, [rule], max_attempts=4, **NO_SLEEP) == (0, 1)
    assert deliver_pending(db_path, [rule], max_attempts=4, **NO_SLEEP) == (0, 0)
    assert len(httpserver.log) == 4


def test_crash_between_sending_and_recording_never_sends_twice(
        httpserver: HTTPServer, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rule = _rule(_hook(httpserver))
    load_batch(db_path, _batch("r1", rule))
    httpserver.expect_request("/hook").respond_with_data("ok")

    def crash(*args: object, **kwargs: object) -> None:
        raise SystemExit("killed after sending, before recording")

    monkeypatch.setattr(notify, "record_alert_results", crash)
    with pytest.raises(SystemExit):
        deliver_pending(db_path, [rule], **NO_SLEEP)
    monkeypatch.undo()
    assert len(httpserver.log) == 1
    assert deliver_pending(db_path, [rule], **NO_SLEEP) == (0, 0)
    assert len(httpserver.log) == 1
    _, rows = query(db_path, "SELECT status, error FROM alerts")
    assert rows[0][0] == "sent" and rows[0][1].startswith("unconfirmed")


def test_a_crash_while_waiting_to_retry_leaves_the_alert_to_be_sent(
        httpserver: HTTPServer, db_path: Path) -> None:
    # every attempt so far failed; the run dies in the backoff before the next one. The
    # alert never went out, so the next run must send it, not settle it as "unconfirmed"
    rule = _rule(_hook(httpserver))
    load_batch(db_path, _batch("r1", rule))
    httpserver.expect_ordered_request("/hook").respond_with_data("down", status=500)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")

    def killed(seconds: float) -> None:
        raise SystemExit("killed during the backoff")

    with pytest.raises(SystemExit):
        deliver_pending(db_path, [rule], sleep=killed)
    _, rows = query(db_path, "SELECT status, attempts, delivery_started_at FROM alerts")
    assert rows == [("failed", 1, None)]
    assert deliver_pending(db_path, [rule], **NO_SLEEP) == (1, 0)
    _, rows = query(db_path, "SELECT status, attempts, error FROM alerts")
    assert rows == [("sent", 2, None)]
    assert len(_posts(httpserver)) == 2


def test_channels_that_mask_alike_each_get_their_alerts(httpserver: HTTPServer,
                                                        db_path: Path) -> None:
    # two webhooks differing only in a token: masked, both read .../hooks/****
    desk = f"json://127.0.0.1:{httpserver.port}/hooks/DESK{'A' * 24}"
    editor = f"json://127.0.0.1:{httpserver.port}/hooks/EDITOR{'B' * 24}"
    rule = AlertRule(name="tracked", entities=("Huawei",), channels=(desk, editor),
                     mode="immediate")
    httpserver.expect_request(re.compile("/hooks/.*")).respond_with_data("ok")
    batch = _batch("r1", rule)
    assert len({a.alert_id for a in batch.alerts}) == 2
    load_batch(db_path, batch)
    assert deliver_pending(db_path, [rule], **NO_SLEEP) == (2, 0)
    paths = sorted(r.path for r, _ in httpserver.log)
    assert paths == [f"/hooks/DESK{'A' * 24}", f"/hooks/EDITOR{'B' * 24}"]
    _, rows = query(db_path, "SELECT channel FROM alerts ORDER BY channel")
    masked = f"json://127.0.0.1:{httpserver.port}/hooks/****"
    assert [r[0] for r in rows] == [masked, masked + "#2"]  # no token stored
    assert deliver_pending(db_path, [rule], **NO_SLEEP) == (0, 0)


def test_two_outlets_with_the_same_claim_give_one_alert(httpserver: HTTPServer,
                                                        db_path: Path) -> None:
    rule = _rule(_hook(httpserver))
    httpserver.expect_request("/hook").respond_with_data("ok")
    wire = _batch("r1", rule)
    tribune = _batch("r1", rule, url="https://tribune.example/x.html", source="tribune")
    wire.articles += tribune.articles
    wire.claims += tribune.claims
    wire.pages += tribune.pages
    wire.alerts += tribune.alerts
    counts = load_batch(db_path, wire)
    assert counts.claims_new == 2 and counts.alerts_new == 1
    assert deliver_pending(db_path, [rule], **NO_SLEEP) == (1, 0)
    [post] = _posts(httpserver)
    assert "Carried by 2 outlets" in post["message"]
    assert "tribune: https://tribune.example/x.html" in post["message"]
    # the same claim in a third outlet on a later night raises nothing new
    later = _batch("r2", rule, url="https://third.example/y.html", source="third")
    assert load_batch(db_path, later).alerts_new == 0


def test_digest_mode_sends_one_message_per_run(httpserver: HTTPServer, db_path: Path) -> None:
    rule = AlertRule(name="digest", entities=("Huawei", "David Sacks"),
                     channels=(_hook(httpserver),), mode="digest")
    httpserver.expect_request("/hook").respond_with_data("ok")
    load_batch(db_path, _batch("r1", rule))
    assert deliver_pending(db_path, [rule], **NO_SLEEP) == (2, 0)
    [post] = _posts(httpserver)
    # one claim about two entities: two alerts, one claim (counted as everywhere)
    assert post["title"] == "policywatch: 1 new claim about David Sacks, Huawei"
    assert "== Huawei ==" in post["message"] and "== David Sacks ==" in post["message"]


def test_rules_filter_by_speaker_and_wait_for_outlets(httpserver: HTTPServer,
                                                     db_path: Path) -> None:
    hook = _hook(httpserver)
    httpserver.expect_request("/hook").respond_with_data("ok")
    nobody = _rule(hook, speakers=("Someone Else",))
    assert load_batch(db_path, _batch("r1", nobody)).alerts_new == 0
    patient = AlertRule(name="two-outlets", entities=("Huawei",), channels=(hook,),
                        mode="immediate", min_outlets=2)
    db2 = db_path.with_name("two.duckdb")
    load_batch(db2, _batch("r1", patient))
    assert deliver_pending(db2, [patient], **NO_SLEEP) == (0, 0)  # one outlet so far
    load_batch(db2, _batch("r2", patient, url="https://t.example/z", source="t"))
    assert deliver_pending(db2, [patient], **NO_SLEEP) == (1, 0)


def test_a_quiet_source_raises_one_health_alert(httpserver: HTTPServer, db_path: Path) -> None:
    from datetime import timedelta

    from tasks.alerts import send_health_alerts

    httpserver.expect_request("/hook").respond_with_data("ok")
    load_batch(db_path, _batch("r1"))  # source "wire": one article, first seen now
    later = datetime.now(UTC) + timedelta(days=5)
    hook = [_hook(httpserver)]
    assert send_health_alerts(db_path, ["wire"], hook, 3, now=later) == ["wire"]
    [post] = _posts(httpserver)
    assert "'wire' has yielded nothing for 3 days" in post["title"]
    # the same quiet spell is reported once; a source still fresh is not reported at all
    assert send_health_alerts(db_path, ["wire"], hook, 3, now=later) == []
    assert send_health_alerts(db_path, ["wire"], hook, 10, now=later) == []
    assert len(_posts(httpserver)) == 1


def test_rules_can_ask_for_claims_on_a_topic() -> None:
    from schemas.config import Topic
    from schemas.models import Claim
    from tasks.alerts import plan_alerts

    topic = Topic(name="us-tech-controls", description="The US should restrict China's "
                  "access to advanced chips and AI technology.")
    rule = AlertRule(name="controls", entities=("Huawei",), topics=("us-tech-controls",),
                     channels=("json://127.0.0.1:9/hook",), mode="immediate")

    def claim(claim_id: str, sentence: str) -> Claim:
        return Claim(claim_id=claim_id, article_id="a", speaker="X", speaker_entity=None,
                     cue="said", content=sentence, sentence=sentence, quote_kind="indirect",
                     entities=("Huawei",), claim_key=claim_id)

    chips = claim("c1", "Huawei says US export controls on advanced chips have failed.")
    football = claim("c2", "Huawei sponsors the football team that won the league.")
    planned = plan_alerts([chips, football], [rule], [topic])
    assert [a.claim_id for a in planned] == ["c1"]
    # without the topic filter both would alert
    open_rule = rule.model_copy(update={"topics": ()})
    assert len(plan_alerts([chips, football], [open_rule], [topic])) == 2


def test_events_alert_only_when_a_rule_includes_them() -> None:
    from schemas.config import parse_config
    from schemas.models import Claim
    from tasks.alerts import plan_alerts

    def claim(claim_id: str, kind: str, cue: str) -> Claim:
        return Claim(claim_id=claim_id, article_id="a", speaker="Huawei",
                     speaker_entity="Huawei", cue=cue, content=f"{claim_id} words",
                     sentence="s", quote_kind=kind,  # type: ignore[arg-type]
                     entities=("Huawei",), claim_key=claim_id)

    launch = claim("c1", "event", "unveiled")
    said = claim("c2", "indirect", "said")
    config = parse_config("sources: [{name: a, urls: [https://example.com/a]}]\n"
                          "entities: [{name: Huawei, kind: org, tracked: true}]\n"
                          "alerts: {channels: ['json://127.0.0.1:9/hook']}\n")
    # the default rule (no rules configured) leaves events out
    assert [a.claim_id for a in plan_alerts([launch, said], config.alert_rules())] == ["c2"]
    rule = AlertRule(name="all", entities=("Huawei",), channels=("json://127.0.0.1:9/hook",),
                     mode="immediate")
    assert not rule.include_events
    assert [a.claim_id for a in plan_alerts([launch, said], [rule])] == ["c2"]
    with_events = rule.model_copy(update={"include_events": True})
    assert sorted(a.claim_id for a in plan_alerts([launch, said], [with_events])) == ["c1", "c2"]
    configured = parse_config("sources: [{name: a, urls: [https://example.com/a]}]\n"
                              "entities: [{name: Huawei, kind: org, tracked: true}]\n"
                              "alerts: {channels: ['json://127.0.0.1:9/hook'], rules: "
                              "[{name: launches, include_events: true}]}\n")
    assert configured.alert_rules()[0].include_events


def test_a_rule_naming_an_unknown_topic_is_refused() -> None:
    from schemas.config import parse_config
    from schemas.errors import ConfigError

    text = ("sources:\n  - name: a\n    urls: [https://a.example/x]\n"
            "alerts:\n  rules:\n    - name: r\n      topics: [nope]\n")
    with pytest.raises(ConfigError, match=r"alerts.rules\[0\].topics\[0\] \(line 7\)"):
        parse_config(text)


def _event_payloads(name: str, resource_ids: list[str], want: int) -> list[dict[str, Any]]:
    """Payloads of the events the Prefect server holds; they arrive asynchronously."""
    import time

    import httpx
    from prefect.settings import PREFECT_API_URL

    query = {"filter": {"event": {"name": [name]}, "resource": {"id": resource_ids},
                        "occurred": {"since": "2000-01-01T00:00:00Z",
                                     "until": "2100-01-01T00:00:00Z"}}, "limit": 50}
    deadline = time.monotonic() + 30
    while True:
        found = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json=query).json()
        if len(found["events"]) >= want or time.monotonic() > deadline:
            return [e["payload"] for e in found["events"]]
        time.sleep(0.5)


def test_claim_events_stop_at_the_cap_and_say_how_many_were_left(prefect_harness: None) -> None:
    """Past `limit`, no per-claim event: one summary per tracked entity carries the rest."""
    import uuid

    from schemas.ids import claim_id_for, claim_key_for
    from schemas.models import Claim

    tag = uuid.uuid4().hex[:8]  # the session's server is shared: only look at this test's
    claims = [Claim(claim_id=claim_id_for(tag, "An analyst", f"Huawei gains {i}"),
                    article_id=tag, speaker="An analyst", speaker_entity=None, cue="said",
                    content=f"Huawei gains {i}", sentence=f"Huawei gains {i}, he said.",
                    quote_kind="indirect", entities=("Huawei",) if i % 2 else ("Nvidia",),
                    claim_key=claim_key_for(f"Huawei gains {i} {tag}"))
              for i in range(7)]
    assert notify.emit_claim_events(claims, ["Huawei", "Nvidia"], limit=3) == 3
    # the four past the cap: 2 about Huawei (i = 3, 5), 2 about Nvidia (i = 4, 6)
    more = _event_payloads("policywatch.claims.more",
                           ["policywatch.entity.Huawei", "policywatch.entity.Nvidia"], 2)
    mine = [p for p in more if any(cid in {c.claim_id for c in claims[3:]}
                                   for cid in p["claim_ids"])]
    assert sorted(p["count"] for p in mine) == [2, 2]
    per_claim = _event_payloads("policywatch.claim.new",
                                [f"policywatch.claim.{c.claim_id}" for c in claims], 3)
    assert sorted(str(p["content"]) for p in per_claim) == [
        "Huawei gains 0", "Huawei gains 1", "Huawei gains 2"]
