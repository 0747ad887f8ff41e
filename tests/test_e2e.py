"""End to end: the demo site over real HTTP, a real Prefect flow, a real DuckDB file and a real
webhook receiver, all on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from flows.nightly import nightly
from policywatch.demo import serve_demo_site, write_demo_config
from tasks.store import query

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture
def site(tmp_path: Path, httpserver: HTTPServer) -> Iterator[tuple[Path, str]]:
    """The demo site plus one page that does not exist, and a config pointing at both."""
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    with serve_demo_site(port=None) as (base, _receiver):
        config = write_demo_config(base, tmp_path)
        text = config.read_text().replace(
            "sources:\n",
            f"sources:\n  - name: broken\n    urls: ['{base}/wire/2026/11/01/missing.html']\n",
            1).replace("channels: []",
                       f"channels: ['json://127.0.0.1:{httpserver.port}/hook']")
        config.write_text(text)
        yield config, base


def _events(name: str, resource_ids: list[str]) -> int:
    """How many events of this name about these resources the Prefect server holds; they
    arrive asynchronously, so poll until two answers a second apart agree."""
    import time

    import httpx
    from prefect.settings import PREFECT_API_URL

    query = {"filter": {"event": {"name": [name]}, "resource": {"id": resource_ids},
                        "occurred": {"since": "2000-01-01T00:00:00Z",
                                     "until": "2100-01-01T00:00:00Z"}}, "limit": 1}
    previous, deadline = -1, time.monotonic() + 30
    while time.monotonic() < deadline:
        total = httpx.post(f"{PREFECT_API_URL.value()}/events/filter", json=query).json()["total"]
        if total == previous and total > 0:
            return int(total)
        previous = total
        time.sleep(1)
    return previous


def _one(db: Path, sql: str) -> object:
    return query(db, sql)[1][0][0]


def test_nightly_flow_end_to_end_then_nothing_new(site: tuple[Path, str], db_path: Path,
                                                   httpserver: HTTPServer) -> None:
    config, _ = site
    first = nightly(str(config), str(db_path))
    assert first.status == "completed"
    assert first.articles_new >= 6 and first.comments_new >= 20 and first.claims_new >= 30
    assert _one(db_path, "SELECT count(*) FROM articles") == first.articles_new
    # every body says which opinion of the extraction chain gave it, and the summary counts them
    assert _one(db_path, "SELECT count(*) FROM articles WHERE extracted_by IS NULL") == 0
    assert sum(first.extracted_by.values()) >= first.articles_new
    assert _one(db_path, "SELECT count(DISTINCT source) FROM articles") == 3

    # the sample article, its five comments and their stances
    sample = query(db_path, "SELECT article_id, title, published_at FROM articles "
                            "WHERE body LIKE '%bypassing US export controls%'")[1]
    assert len(sample) == 1
    sample_id = sample[0][0]
    _, comments = query(db_path, "SELECT author FROM comments WHERE article_id = ? "
                                 "ORDER BY posted_at NULLS LAST, author", [sample_id])
    assert {c[0] for c in comments} == {"Eric Cartman", "Stan Marsh", "Raphael",
                                        "Michelangelo", "Leonardo"}
    assert _one(db_path, "SELECT count(*) FROM stances") == \
        _one(db_path, "SELECT count(*) FROM comments")

    # the claims about the sample article carry their speakers
    _, claims = query(db_path, "SELECT speaker, content FROM claims WHERE article_id = ?",
                      [sample_id])
    speakers = {s for s, _ in claims}
    assert "David Sacks" in speakers
    assert any(s and "analyst" in s for s in speakers)
    assert any("bypassing" in c and s and "official" in s.lower() for s, c in claims)

    # alerts: one per new claim and tracked entity, every one recorded sent; a first run
    # folds them into one digest per channel (alerts.first_run: digest)
    sent = _one(db_path, "SELECT count(*) FROM alerts WHERE status = 'sent'")
    assert sent == first.alerts_sent > 0
    assert _one(db_path, "SELECT list(DISTINCT mode) FROM alerts") == ["summary"]
    posts = [json.loads(r.data) for r, _ in httpserver.log if r.path == "/hook"]
    [digest] = posts
    assert digest["title"].startswith("policywatch digest:")
    assert "Huawei: " in digest["message"] and "Briefing page: file://" in digest["message"]

    # the run's briefing page carries the finished run's figures, alerts included
    page = Path(first.report_path or "").read_text()
    assert "(completed," in page and "(running," not in page
    assert f"{first.alerts_sent} / {first.alerts_failed}" in page

    # an Atom feed per tracked entity, readable by any feed reader
    import feedparser

    feed = feedparser.parse((db_path.parent / f"{db_path.stem}-feeds" / "huawei.atom").read_bytes())
    assert not feed.bozo and feed.entries
    assert all(e.id.startswith("urn:policywatch:claim:") for e in feed.entries)
    assert any("Huawei" in e.title or "Huawei" in e.summary for e in feed.entries)

    # a Prefect event per new claim about a tracked entity, on the flow's Prefect server
    _, about_tracked = query(db_path, "SELECT DISTINCT claim_id FROM claim_entities "
                                      "WHERE entity IN ('Huawei', 'David Sacks', 'DeepSeek', "
                                      "'Nvidia', 'AI diffusion rule')")
    ids = [f"policywatch.claim.{row[0]}" for row in about_tracked]
    assert _events("policywatch.claim.new", ids) == len(ids) > 0

    # the failing page is recorded with its reason and the run went on
    _, rejects = query(db_path, "SELECT source, stage, reason FROM rejects")
    assert ("broken", "fetch", "HTTP 404") in rejects
    assert _one(db_path, "SELECT status FROM pages WHERE url LIKE '%missing.html'") == "gone"
    assert _one(db_path, "SELECT count(*) FROM fetch_log WHERE status = 200") >= 6

    # the second night over an unchanged site adds nothing and sends nothing
    tables = ("articles", "comments", "claims", "claim_entities", "stances", "alerts")
    before = {t: _one(db_path, f"SELECT count(*) FROM {t}") for t in tables}
    second = nightly(str(config), str(db_path))
    assert (second.articles_new, second.comments_new, second.claims_new,
            second.alerts_sent) == (0, 0, 0, 0)
    assert {t: _one(db_path, f"SELECT count(*) FROM {t}") for t in tables} == before
    assert len([r for r, _ in httpserver.log if r.path == "/hook"]) == 1
    # nothing was downloaded again: pages and listings were revalidated (304) or, for
    # articles older than crawl.revisit_days, not requested at all
    second_log = query(db_path, "SELECT status, count(*) FROM fetch_log WHERE run_id = ? "
                                "GROUP BY ALL", [second.run_id])[1]
    assert dict(second_log).get(200, 0) == 0 and dict(second_log).get(304, 0) >= 3
    _, runs = query(db_path, "SELECT status, articles_new FROM runs ORDER BY started_at")
    assert runs == [("completed", first.articles_new), ("completed", 0)]
