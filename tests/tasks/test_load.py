"""The idempotent load, the outbox and the schema, on a real DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from schemas.config import AlertRule
from schemas.ddl import TABLES
from schemas.errors import DatabaseBusy, LoadError
from schemas.ids import alert_id_for, article_id_for, claim_id_for, claim_key_for, comment_id_for
from schemas.models import Article, Claim, Comment, FetchResult, PageOutcome, Stance
from tasks.alerts import plan_alerts
from tasks.store import (
    LoadBatch,
    alerts_to_send,
    connect,
    load_batch,
    query,
    read_page_states,
    record_alert_results,
)

NOW = datetime(2026, 11, 29, 2, tzinfo=UTC)
URL = "https://wire.example/2026/11/27/chips.html"
CONTRACT = {  # docs/contract.md: the required columns of every table
    "articles": "article_id source url title author published_at body fetched_at",
    "comments": "comment_id article_id author body posted_at parent_id",
    "claims": "claim_id article_id speaker speaker_entity cue content sentence quote_kind "
              "first_seen_at",
    "claim_entities": "claim_id entity",
    "stances": "comment_id topic label score",
    "alerts": "alert_id claim_id entity channel status attempts created_at sent_at error",
    "runs": "run_id started_at finished_at status articles_new comments_new claims_new "
            "alerts_sent",
}


RULE = AlertRule(name="tracked", entities=("Huawei",), channels=("json://127.0.0.1:9/hook",),
                 mode="immediate")


def _batch(run_id: str, rule: AlertRule = RULE, url: str = URL,
           source: str = "wire") -> LoadBatch:
    aid = article_id_for(url, None)
    cid = comment_id_for(aid, "comment-1")
    claim = Claim(claim_id=claim_id_for(aid, "David Sacks", "Huawei is closing the gap"),
                  article_id=aid, speaker="David Sacks", speaker_entity="David Sacks",
                  cue="noted", content="Huawei is closing the gap",
                  sentence="He noted that Huawei is closing the gap.", quote_kind="indirect",
                  entities=("Huawei", "David Sacks"),
                  claim_key=claim_key_for("Huawei is closing the gap"))
    fetch = FetchResult(url=url, source=source, final_url=url, status=200, ok=True,
                        content=b"<html>page</html>", etag='"e1"', fetched_at=NOW, bytes=17)
    return LoadBatch(
        run_id=run_id,
        pages=[PageOutcome(url=url, source=source, fetch=fetch, article_id=aid,
                           content_hash="h1")],
        articles=[Article(article_id=aid, source=source, url=url, title="Chips", body="Body.",
                          content_hash="h1", fetched_at=NOW, published_at=NOW)],
        comments=[Comment(comment_id=cid, article_id=aid, author="Stan", body="Good move.")],
        claims=[claim],
        stances=[Stance(comment_id=cid, topic="controls", label="favor", score=0.9)],
        fetch_log=[fetch],
        alerts=plan_alerts([claim], [rule]),
    )


def _counts(db: Path) -> dict[str, int]:
    with connect(db, read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("articles", "comments", "claims", "claim_entities", "stances",
                          "alerts", "pages", "raw_pages", "article_urls")}


def test_contract_columns_exist(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    with connect(db_path, read_only=True) as con:
        for table, columns in CONTRACT.items():
            have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            assert set(columns.split()) <= have, table
        types = dict(con.execute("SELECT column_name, data_type FROM "
                                 "information_schema.columns WHERE table_name='articles'")
                     .fetchall())
    assert types["published_at"] == "TIMESTAMP WITH TIME ZONE"


def test_loading_twice_adds_nothing(db_path: Path) -> None:
    first = load_batch(db_path, _batch("r1"))
    assert (first.articles_new, first.comments_new, first.claims_new, first.stances_new,
            first.alerts_new) == (1, 1, 1, 1, 1)
    before = _counts(db_path)
    second = load_batch(db_path, _batch("r2"))
    assert (second.articles_new, second.comments_new, second.claims_new,
            second.stances_new) == (0, 0, 0, 0)
    assert _counts(db_path) == before
    # the outbox holds one alert: tracked Huawei x one channel, not the untracked speaker
    [alert] = alerts_to_send(db_path, max_attempts=3)
    assert alert.entity == "Huawei" and alert.speaker == "David Sacks"
    assert alert.alert_id == alert_id_for(claim_key_for("Huawei is closing the gap"), "Huawei",
                                          "json://127.0.0.1:9/hook", "tracked")


def test_page_state_remembers_validators(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    state = read_page_states(db_path, [URL + "?utm_source=x"])  # same page, tracking param
    [page] = state.values()
    assert page.etag == '"e1"' and page.status == "ok" and page.content_hash == "h1"


def test_outbox_sent_is_never_offered_again(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    [alert] = alerts_to_send(db_path, max_attempts=2)
    record_alert_results(db_path, [alert.alert_id], sent=False, error="HTTP 500")
    assert alerts_to_send(db_path, max_attempts=2)  # failed once: retried
    record_alert_results(db_path, [alert.alert_id], sent=True)
    assert alerts_to_send(db_path, max_attempts=2) == []
    _, rows = query(db_path, "SELECT status, attempts, error FROM alerts")
    assert rows == [("sent", 2, None)]


def test_sql_is_read_only(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    with pytest.raises(LoadError, match="read-only"):
        query(db_path, "DELETE FROM articles")


def test_busy_database_is_reported_not_corrupted(db_path: Path, tmp_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    # another *process* holding the file: simulated by a subprocess keeping it open
    import subprocess
    import sys
    holder = subprocess.Popen([sys.executable, "-c",
                               f"import duckdb,time; c=duckdb.connect({str(db_path)!r}); "
                               "print('ready', flush=True); time.sleep(30)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseBusy, match="busy"):
            query(db_path, "SELECT 1", wait_s=0.5)
    finally:
        holder.kill()
        holder.wait()
    assert query(db_path, "SELECT count(*) FROM articles")[1] == [(1,)]


def test_ddl_declares_every_table_once() -> None:
    con = duckdb.connect()
    for statement in TABLES.values():
        con.execute(statement)
    assert len(con.execute("SHOW TABLES").fetchall()) == len(TABLES)


def test_concurrent_loads_in_one_process_do_not_duplicate(db_path: Path) -> None:
    errors: list[BaseException] = []

    def go(run: str) -> None:
        try:
            load_batch(db_path, _batch(run))
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=go, args=(f"r{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []  # writers in one process wait for each other
    assert _counts(db_path)["claims"] == 1


def test_times_are_shown_and_grouped_by_day_in_utc_whatever_the_machine_zone(
        db_path: Path) -> None:
    # 23:30 UTC is already the next day at UTC+14: a view's day must not depend on the zone
    load_batch(db_path, _batch("r1"))
    script = (
        "import sys; from tasks.store import query; "
        "print(query(sys.argv[1], \"SELECT (TIMESTAMPTZ '2026-11-28 23:30:00+00')::DATE, "
        "strftime(TIMESTAMPTZ '2026-11-28 23:30:00+00', '%H:%M %z')\")[1])")
    env = {**os.environ, "TZ": "Pacific/Kiritimati"}
    done = subprocess.run([sys.executable, "-c", script, str(db_path)], env=env,
                          capture_output=True, text=True, check=True,
                          cwd=Path(__file__).parents[2])
    assert done.stdout.strip() == "[(datetime.date(2026, 11, 28), '23:30 +00')]"
