"""A source whose feed is junk, or lists an invalid address, over real HTTP through
crawl_source and the load: each fault is one `rejects` row, the rest of the night goes on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pytest_httpserver import HTTPServer

from schemas.config import Crawl, Source
from tasks.crawl import crawl_source
from tasks.store import LoadBatch, load_batch, query
from tests.local import LOCAL_SITE

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
CRAWL = Crawl(allow_private_addresses=LOCAL_SITE, retries=0, obey_robots=False)
BAD_LINK = "http://[::1:bad/x"
BODY = ("The commerce department said on Tuesday that it would tighten export rules for "
        "advanced chips sold to several countries, citing national security concerns. ") * 3


def src(**fields: Any) -> Source:
    return Source.model_validate(fields)


def article(title: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><article><h1>{title}</h1><p>{title}. {BODY}</p></article></body></html>")


def night(source: Source, db: Path) -> list[tuple[Any, ...]]:
    batch = crawl_source(source, CRAWL, db, now=NOW)
    load_batch(db, LoadBatch.of_pages("r1", [batch]))
    return query(db, "SELECT url, source, stage, reason FROM rejects ORDER BY url", [])[1]


def test_an_invalid_feed_link_is_one_reject_and_the_good_items_are_fetched(
        httpserver: HTTPServer, db_path: Path) -> None:
    base = httpserver.url_for("").rstrip("/")
    items = "".join(f"<item><title>{t}</title><link>{link}</link></item>"
                    for t, link in (("One", f"{base}/one"), ("Bad", BAD_LINK),
                                    ("Two", f"{base}/two")))
    httpserver.expect_request("/rss.xml").respond_with_data(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>S</title>{items}'
        "</channel></rss>", content_type="application/rss+xml")
    for path in ("/one", "/two"):
        httpserver.expect_request(path).respond_with_data(article(path[1:].title()),
                                                          content_type="text/html")
    rejects = night(src(name="news", feed=f"{base}/rss.xml"), db_path)
    assert rejects == [(BAD_LINK, "news", "discover", "invalid URL: Invalid IPv6 URL")]
    stored = query(db_path, "SELECT url FROM articles ORDER BY url", [])[1]
    assert stored == [(f"{base}/one",), (f"{base}/two",)]


def test_a_junk_feed_is_a_reject_and_the_other_pages_are_fetched(
        httpserver: HTTPServer, db_path: Path) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/rss.xml").respond_with_data(
        b"\x1f\x00\x9c\xff random bytes, not a feed", content_type="application/rss+xml")
    httpserver.expect_request("/pinned").respond_with_data(article("Pinned"),
                                                           content_type="text/html")
    rejects = night(src(name="news", feed=f"{base}/rss.xml", urls=[f"{base}/pinned"]),
                    db_path)
    assert [(u, s, st) for u, s, st, _ in rejects] == [(f"{base}/rss.xml", "news", "discover")]
    assert rejects[0][3].startswith("not an RSS/Atom feed: ")
    assert query(db_path, "SELECT url FROM articles", [])[1] == [(f"{base}/pinned",)]
