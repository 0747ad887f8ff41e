"""Alerts delivered through apprise to a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pytest_httpserver import HTTPServer

from schemas.models import AlertMessage
from tasks.load import load_batch, query
from tasks.notify import deliver_pending, format_alert, mask_channel, send_alert
from tests.tasks.test_load import _batch

ALERT = AlertMessage(
    alert_id="a1", claim_id="c1", entity="Huawei", channel="json://x", speaker="David Sacks",
    cue="noted", content="Huawei is <b>closing</b> the gap", sentence="He noted that ...",
    article_title="Chips", source="wire", url="https://wire.example/a",
    published_at=datetime(2026, 11, 27, 9, tzinfo=UTC))


def _hook(server: HTTPServer) -> str:
    return f"json://127.0.0.1:{server.port}/hook"


def test_webhook_gets_the_claim_and_an_idempotency_key(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    assert send_alert(_hook(httpserver), ALERT) is None
    [(request, _)] = httpserver.log
    payload = json.loads(request.data)
    assert "Huawei" in payload["title"] and "David Sacks" in payload["title"]
    for part in ("Huawei is <b>closing</b> the gap", "Outlet: wire", "https://wire.example/a",
                 "2026-11-27 09:00 UTC"):
        assert part in payload["message"]
    assert request.headers["Idempotency-Key"] == "a1"


def test_failure_reason_has_no_secret(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("no", status=500)
    url = f"json://bot:s3cret-token@127.0.0.1:{httpserver.port}/hook"
    error = send_alert(url, ALERT)
    assert error is not None and "s3cret-token" not in error
    assert "bot:****@127.0.0.1" in error


def test_mask_channel_hides_passwords_tokens_and_queries() -> None:
    assert mask_channel("json://u:pw@h:9/hook?+X-Token=abc") == "json://u:****@h:9/hook"
    assert mask_channel("slack://T1/B2/abcdefghijklmnopqrstuvwx") == "slack://t1/B2/****"


def test_format_alert_has_every_field() -> None:
    title, body = format_alert(ALERT)
    assert title == "New claim about Huawei: David Sacks noted"
    assert "Sentence: He noted that ..." in body and "Article: Chips" in body


def test_outbox_retries_in_run_then_sends_once(httpserver: HTTPServer, db_path: Path) -> None:
    hook = _hook(httpserver)
    batch = _batch("r1")
    batch.channels = (mask_channel(hook),)
    load_batch(db_path, batch)
    httpserver.expect_ordered_request("/hook").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/hook").respond_with_data("ok")
    sent, failed = deliver_pending(db_path, [hook], sleep=lambda s: None)
    assert (sent, failed) == (1, 0)
    assert deliver_pending(db_path, [hook], sleep=lambda s: None) == (0, 0)
    assert len(httpserver.log) == 2
    _, rows = query(db_path, "SELECT status, attempts, sent_at IS NOT NULL FROM alerts")
    assert rows == [("sent", 2, True)]


def test_a_failed_alert_waits_for_the_next_run(httpserver: HTTPServer, db_path: Path) -> None:
    hook = _hook(httpserver)
    batch = _batch("r1")
    batch.channels = (mask_channel(hook),)
    load_batch(db_path, batch)
    httpserver.expect_request("/hook").respond_with_data("down", status=500)
    assert deliver_pending(db_path, [hook], max_attempts=4, sleep=lambda s: None) == (0, 1)
    _, rows = query(db_path, "SELECT status, attempts, error FROM alerts")
    assert rows[0][:2] == ("failed", 3) and "127.0.0.1" in rows[0][2]
    # the next run tries again, but only the attempt it has left
    assert deliver_pending(db_path, [hook], max_attempts=4, sleep=lambda s: None) == (0, 1)
    assert deliver_pending(db_path, [hook], max_attempts=4, sleep=lambda s: None) == (0, 0)
    assert len(httpserver.log) == 4  # 3 tries, then 1; the third run offers nothing
