"""`max_items` is a budget per night, not a cut: what a night leaves waits in the backlog.

A local site over real HTTP lists more new stories than one night may fetch. The real flow
(or crawl_source and the real load, where the clock has to move) runs night after night
against a real DuckDB file.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flows.nightly import nightly
from schemas.config import Crawl, Source
from tasks.crawl import crawl_source
from tasks.store import LoadBatch, load_batch, query
from tests.local import LOCAL_SITE


@dataclass
class Feed:
    """A news site whose RSS feed lists `items`: (path, published) pairs, newest first."""

    server: HTTPServer
    items: list[tuple[str, datetime]] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return self.server.url_for(path)

    def handle(self, request: Request) -> Response:
        if request.path == "/robots.txt":
            return Response("User-agent: *\nAllow: /\n", content_type="text/plain")
        if request.path == "/rss.xml":
            entries = "".join(
                f"<item><title>{p}</title><link>{self.url(p)}</link>"
                f"<pubDate>{format_datetime(when)}</pubDate></item>" for p, when in self.items)
            return Response(f'<?xml version="1.0"?><rss version="2.0"><channel><title>T'
                            f"</title>{entries}</channel></rss>",
                            content_type="application/rss+xml")
        self.fetched.append(request.path)
        number = request.path.rsplit("/", 1)[-1].split(".")[0]
        body = "".join(f"<p>Paragraph {k} of story {number}, which is about budgets and "
                       f"nothing else, told plainly for the test.</p>" for k in range(4))
        return Response(f"<html><head><title>Story {number}</title></head><body><article>"
                        f"<h1>Story {number}</h1>{body}</article></body></html>",
                        content_type="text/html")


@pytest.fixture
def feed(httpserver: HTTPServer) -> Feed:
    made = Feed(httpserver)
    httpserver.expect_request(re.compile(".*")).respond_with_handler(made.handle)
    return made


def _one(db: Path, sql: str, params: list[Any] | None = None) -> Any:
    return query(db, sql, params or [])[1][0][0]


def _config(tmp_path: Path, feed: Feed, db: Path) -> Path:
    config = tmp_path / "policywatch.yaml"
    config.write_text(f"database: {db}\nsources:\n  - name: busy\n"
                      f"    feed: {feed.url('/rss.xml')}\n"
                      f"crawl:\n  user_agent_contact: test@example.org\n"
                      f"  allow_private_addresses: ['127.0.0.1']\n"
                      f"  per_host_delay_s: 0\n  revisit_days: null\n")
    return config


@pytest.mark.usefixtures("prefect_harness")
def test_a_feed_of_300_new_items_is_stored_over_two_nights(tmp_path: Path, feed: Feed,
                                                            db_path: Path) -> None:
    now = datetime.now(UTC)
    feed.items = [(f"/2026/story-{i:03d}.html", now - timedelta(minutes=10 * i))
                  for i in range(300)]
    config = _config(tmp_path, feed, db_path)

    first = nightly(str(config), str(db_path))
    [night] = first.sources
    assert (night.found, night.fetched, night.deferred, night.expired) == (300, 200, 100, 0)
    assert _one(db_path, "SELECT count(*) FROM articles") == 200
    assert _one(db_path, "SELECT count(*) FROM backlog WHERE status = 'waiting'") == 100
    # the newest 200 went first; the oldest 100 wait
    assert _one(db_path, "SELECT min(listed_url) FROM backlog") == \
        feed.url("/2026/story-200.html")
    # the briefing's sources section says what waits
    assert first.report_path is not None
    page = Path(first.report_path).read_text()
    assert ">Deferred</th>" in page and '<td class="num failed">100</td>' in page

    second = nightly(str(config), str(db_path))
    [night] = second.sources
    assert (night.found, night.fetched, night.deferred, night.expired) == (100, 100, 0, 0)
    assert _one(db_path, "SELECT count(*) FROM articles") == 300
    assert _one(db_path, "SELECT count(*) FROM backlog") == 0
    # each story fetched once for its first store; the rest of night 2's budget revisits
    stories = [p for p in feed.fetched if p.startswith("/2026/")]
    assert len(set(stories)) == 300 and len(stories) == 400
    assert _one(db_path, "SELECT deferred FROM source_nights WHERE run_id = ?",
                [first.run_id]) == 100


def _night(feed: Feed, db: Path, now: datetime, run: str, max_items: int) -> Any:
    source = Source.model_validate({"name": "busy", "feed": feed.url("/rss.xml"),
                                    "max_items": max_items})
    crawl = Crawl.model_validate({"user_agent_contact": "t@example.org",
                                  "per_host_delay_s": 0, "revisit_days": None,
                                  "allow_private_addresses": LOCAL_SITE})
    batch = crawl_source(source, crawl, db, now=now)
    load_batch(db, LoadBatch.of_pages(run, [batch]))
    return batch.night


def test_items_that_leave_the_window_while_waiting_are_recorded_with_the_reason(
        feed: Feed, db_path: Path) -> None:
    start = datetime(2026, 11, 20, 12, tzinfo=UTC)
    old = [(f"/old/story-{i}.html", start - timedelta(hours=i)) for i in range(8)]
    feed.items = list(old)
    first = _night(feed, db_path, start, "r1", max_items=5)
    assert (first.fetched, first.deferred) == (5, 3)

    three_days = start + timedelta(days=3)
    feed.items = [(f"/new/story-{i}.html", three_days - timedelta(hours=i))
                  for i in range(5)] + old
    second = _night(feed, db_path, three_days, "r2", max_items=5)
    assert (second.found, second.fetched, second.deferred) == (8, 5, 3)  # newer stories first

    later = start + timedelta(days=8)
    feed.items = old  # still listed, but now outside the 7-day window
    third = _night(feed, db_path, later, "r3", max_items=5)
    assert (third.fetched, third.deferred, third.expired) == (0, 0, 3)
    skipped = query(db_path, "SELECT url, nights, reason FROM skipped ORDER BY url")[1]
    assert [row[0] for row in skipped] == [feed.url(p) for p, _ in old[5:]]
    assert all(row[1] == 2 for row in skipped)
    assert {row[2] for row in skipped} == {
        "not fetched within the 7-day window: over max_items for 2 nights"}
    # shown with the night's failures too, and never fetched
    assert _one(db_path, "SELECT count(*) FROM rejects WHERE stage = 'backlog'") == 3
    assert not {p for p, _ in old[5:]} & set(feed.fetched)


def test_pages_under_urls_are_never_capped(feed: Feed, db_path: Path) -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    pages = [feed.url(f"/picked/story-{i}.html") for i in range(6)]
    source = Source.model_validate({"name": "picked", "urls": pages, "max_items": 2})
    crawl = Crawl.model_validate({"user_agent_contact": "t@example.org",
                                  "per_host_delay_s": 0, "allow_private_addresses": LOCAL_SITE})
    batch = crawl_source(source, crawl, db_path, now=now)
    assert len(batch.articles) == 6 and batch.night is not None
    assert (batch.night.found, batch.night.fetched, batch.night.deferred) == (6, 6, 0)


def test_a_growing_backlog_raises_one_health_alert_naming_the_setting(
        feed: Feed, db_path: Path, httpserver: HTTPServer) -> None:
    from tasks.alerts import send_backlog_alerts

    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    hook = f"json://127.0.0.1:{httpserver.port}/hook"
    start = datetime.now(UTC) - timedelta(days=3)
    for night in range(4):
        when = start + timedelta(hours=12 * night)
        feed.items = [(f"/n{night}/story-{i}.html", when - timedelta(minutes=i))
                      for i in range(4)] + feed.items
        _night(feed, db_path, when, f"r{night}", max_items=2)
        _start_run_row(db_path, f"r{night}", when)
        send_backlog_alerts(db_path, {"busy": 2}, [hook])
    posts = [r for r, _ in httpserver.log if r.path == "/hook"]
    assert len(posts) == 1  # grew three nights in a row: told once, not every night
    text = posts[0].get_data(as_text=True)
    assert "max_items" in text and "policywatch backfill" in text and "busy" in text


def _start_run_row(db: Path, run_id: str, when: datetime) -> None:
    from tasks.store import begin_run

    begin_run(db, run_id, when, "test")


@pytest.fixture
def crash_site(feed: Feed) -> Iterator[Feed]:
    now = datetime.now(UTC)
    feed.items = [(f"/2026/story-{i:03d}.html", now - timedelta(minutes=10 * i))
                  for i in range(30)]
    yield feed


@pytest.mark.usefixtures("prefect_harness")
def test_a_killed_night_keeps_the_backlog_and_stores_nothing_twice(
        tmp_path: Path, crash_site: Feed, db_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    config = _config(tmp_path, crash_site, db_path)
    config.write_text(config.read_text().replace("feed:", "max_items: 12\n    feed:"))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}

    def run(fault: str | None = None) -> int:
        extra = {"POLICYWATCH_FAULT": fault} if fault else {}
        return subprocess.run([sys.executable, "-m", "policywatch.cli", "run", "--config",
                               str(config)], env={**env, **extra}, capture_output=True,
                              timeout=300).returncode

    assert run() == 0
    assert _one(db_path, "SELECT count(*) FROM backlog WHERE status = 'waiting'") == 18
    assert run(fault="fetch") != 0  # killed with night 2's pages fetched, nothing stored
    assert _one(db_path, "SELECT count(*) FROM backlog WHERE status = 'waiting'") == 18
    assert run(fault="load") != 0  # killed inside the load transaction
    assert _one(db_path, "SELECT count(*) FROM backlog WHERE status = 'waiting'") == 18
    assert run() == 0 and run() == 0
    assert _one(db_path, "SELECT count(*) FROM articles") == 30
    assert _one(db_path, "SELECT count(*) FROM backlog") == 0
    # across the completed nights, each story was fetched in full exactly once: the killed
    # nights' fetches were never stored, and no deferred item was fetched twice
    assert _one(db_path, "SELECT sum(fetched) FROM source_nights") == 30
    assert _one(db_path, "SELECT count(DISTINCT url) FROM fetch_log "
                         "WHERE url LIKE '%/2026/story-%' AND status = 200") == 30


@pytest.mark.usefixtures("prefect_harness")
def test_backfill_drains_a_source_backlog_on_demand(tmp_path: Path, crash_site: Feed,
                                                     db_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL

    config = _config(tmp_path, crash_site, db_path)
    config.write_text(config.read_text().replace("feed:", "max_items: 12\n    feed:"))
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "policywatch.cli", *args, "--config",
                               str(config)], env=env, capture_output=True, text=True,
                              timeout=300)

    first = cli("run")
    assert first.returncode == 0, first.stderr
    assert "busy: 30 new items found, 12 fetched, 18 deferred, 0 expired (over max_items" \
        in first.stdout
    partial = cli("backfill", "--source", "busy", "--limit", "5")
    assert partial.returncode == 0, partial.stderr
    assert _one(db_path, "SELECT count(*) FROM backlog WHERE status = 'waiting'") == 13
    rest = cli("backfill", "--source", "busy")
    assert rest.returncode == 0, rest.stderr
    assert _one(db_path, "SELECT count(*) FROM articles") == 30
    assert _one(db_path, "SELECT count(*) FROM backlog") == 0
    unknown = cli("backfill", "--source", "nope")
    assert unknown.returncode == 2 and "--source nope: no such source" in unknown.stderr


def test_a_page_another_source_stored_is_not_new_and_two_sources_keep_their_backlogs(
        feed: Feed, db_path: Path) -> None:
    now = datetime(2026, 11, 20, 12, tzinfo=UTC)
    feed.items = [(f"/shared/story-{i}.html", now - timedelta(hours=i)) for i in range(3)]
    assert _night(feed, db_path, now, "r1", max_items=5).fetched == 3
    later = now + timedelta(hours=6)
    feed.items = [(f"/fresh/story-{i}.html", later - timedelta(minutes=i)) for i in range(3)] \
        + feed.items
    # a second source listing the same feed: the three stored pages are revisits, not new
    other = Source.model_validate({"name": "other", "feed": feed.url("/rss.xml"),
                                   "max_items": 2})
    crawl = Crawl.model_validate({"user_agent_contact": "t@example.org",
                                  "allow_private_addresses": LOCAL_SITE, "revisit_days": None})
    batch = crawl_source(other, crawl, db_path, now=later)
    assert batch.night is not None
    assert (batch.night.found, batch.night.fetched, batch.night.deferred) == (3, 2, 1)
    # and the first source leaves the same fresh story waiting too: both keep their row
    first = Source.model_validate({"name": "busy", "feed": feed.url("/rss.xml"),
                                   "max_items": 2})
    mine = crawl_source(first, crawl, db_path, now=later)
    load_batch(db_path, LoadBatch.of_pages("r2", [batch, mine]))
    waiting = query(db_path, "SELECT source, url FROM backlog WHERE status = 'waiting' "
                             "ORDER BY source")[1]
    assert [s for s, _ in waiting] == ["busy", "other"] and waiting[0][1] == waiting[1][1]


def test_an_expired_item_listed_again_stays_skipped(feed: Feed, db_path: Path) -> None:
    start = datetime(2026, 11, 20, 12, tzinfo=UTC)
    feed.items = [(f"/old/story-{i}.html", start - timedelta(hours=i)) for i in range(3)]
    assert _night(feed, db_path, start, "r1", max_items=2).deferred == 1
    later = start + timedelta(days=8)
    assert _night(feed, db_path, later, "r2", max_items=2).expired == 1
    # listed again, now with a fresh date: reported once, not deferred again nor fetched
    feed.items = [(f"/old/story-{i}.html", later) for i in range(3)]
    again = _night(feed, db_path, later + timedelta(hours=1), "r3", max_items=2)
    assert (again.found, again.deferred, again.expired) == (0, 0, 0)
    assert _one(db_path, "SELECT count(*) FROM skipped") == 1


def test_a_backlog_alert_that_failed_is_tried_again(db_path: Path) -> None:
    from tasks.store import begin_run, growing_backlogs, open_for_write, record_backlog_alert

    start = datetime(2026, 11, 20, tzinfo=UTC)
    with open_for_write(db_path) as con:
        for night, backlog in enumerate((10, 20, 30, 40)):
            con.execute("INSERT INTO source_nights VALUES (?, 's', 0, 0, 0, 0, ?)",
                        [f"r{night}", backlog])
    for night in range(4):
        begin_run(db_path, f"r{night}", start + timedelta(days=night), "test")
    assert growing_backlogs(db_path, ["s"]) == [("s", 40)]
    record_backlog_alert(db_path, "s", 40, sent=False, error="connection refused")
    assert growing_backlogs(db_path, ["s"]) == [("s", 40)]  # not sent: still due
    record_backlog_alert(db_path, "s", 40, sent=True, error=None)
    assert growing_backlogs(db_path, ["s"]) == []
