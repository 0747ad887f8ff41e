"""The revisit policy: old stored articles are not requested every night; young ones are."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from schemas.config import Crawl
from schemas.models import PageState
from tasks.crawl import settled
from tests.test_incremental import CRAWL, NOW, PARAS, Site, article_html, night, site

__all__ = ["site"]  # the fixture, shared with tests/test_incremental.py


def _dated(title: str, published: datetime) -> str:
    return article_html(title, PARAS).replace(
        "<title>", f'<meta property="article:published_time" content="{published.isoformat()}">'
                   "<title>", 1)


def test_old_articles_are_left_alone_young_ones_rechecked(site: Site, db_path: Path) -> None:
    site.add("/old.html", _dated("Old", NOW - timedelta(days=5)))
    site.add("/young.html", _dated("Young", NOW - timedelta(hours=20)))
    night(site, db_path)
    assert site.hits("/old.html") == site.hits("/young.html") == 1
    night(site, db_path)
    assert site.hits("/old.html") == 1  # settled: its feed entry shows no change
    assert site.hits("/young.html") == 2  # still collecting comments: a conditional GET
    night(site, db_path, crawl=CRAWL.model_copy(update={"revisit_days": None}))
    assert site.hits("/old.html") == 2  # the policy switched off


def test_settled_needs_an_old_article_an_ok_page_and_no_newer_listing() -> None:
    fetched = NOW - timedelta(days=1)
    state = PageState(url="u", status="ok", etag=None, last_modified=None, content_hash="h",
                      article_id="a", attempts=0, last_fetched_at=fetched,
                      published_at=NOW - timedelta(days=10))
    assert settled(state, NOW - timedelta(days=10), 2, NOW)
    assert settled(state, None, 2, NOW)
    assert not settled(state, NOW - timedelta(hours=1), 2, NOW)  # listing changed since
    assert not settled(state, None, 20, NOW)  # younger than the revisit window
    assert not settled(state, None, None, NOW)
    failed = state.__class__(**{**state.__dict__, "status": "failed"})
    assert not settled(failed, None, 2, NOW)
    unknown = state.__class__(**{**state.__dict__, "published_at": None})
    assert not settled(unknown, None, 2, NOW)
    assert Crawl().revisit_days == 2
