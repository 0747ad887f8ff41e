"""Discovery over real HTTP: RSS, Atom, sitemap indexes, news sitemaps, autodiscovery."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

from pytest_httpserver import HTTPServer

from schemas.config import Crawl, Source
from tasks.discover import (
    Discovered,
    discover_source,
    parse_feed,
    parse_sitemap,
    select_items,
)

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def src(**fields: Any) -> Source:
    """A Source from plain strings (pydantic validates the URLs)."""
    return Source.model_validate(fields)

CRAWL = Crawl(obey_robots=False)

RSS = """<?xml version="1.0"?><rss version="2.0"><channel><title>W</title>
<item><title>new</title><link>{base}/new</link>
<pubDate>Sat, 28 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>old</title><link>{base}/old</link>
<pubDate>Sun, 01 Nov 2026 08:00:00 GMT</pubDate></item>
<item><title>undated</title><link>/relative</link></item>
</channel></rss>"""

ATOM = """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">
<title>A</title><entry><title>x</title><link href="https://a.example/x"/>
<updated>2026-11-27T10:00:00Z</updated></entry></feed>"""

INDEX = """<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<sitemap><loc>{base}/news.xml</loc></sitemap></sitemapindex>"""

NEWS = """<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"
 xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">
<url><loc>{base}/fresh</loc><news:news><news:publication_date>2026-11-28T09:00:00+01:00</news:publication_date></news:news></url>
<url><loc>{base}/stale</loc><lastmod>2025-01-01</lastmod></url>
</urlset>"""


def test_feed_entries_keep_dates_and_resolve_links() -> None:
    items = parse_feed(RSS.format(base="https://w.example").encode(), "https://w.example/rss")
    assert [i.url for i in items] == ["https://w.example/new", "https://w.example/old",
                                      "https://w.example/relative"]
    assert items[0].published_at == datetime(2026, 11, 28, 8, tzinfo=UTC)
    assert items[2].published_at is None
    [atom] = parse_feed(ATOM.encode(), "https://a.example/feed")
    assert atom.url == "https://a.example/x"
    assert atom.published_at is not None and atom.published_at.day == 27


def test_news_sitemap_prefers_publication_date() -> None:
    pages, children = parse_sitemap(NEWS.format(base="https://t.example").encode(), "x")
    assert children == []
    assert pages[0].published_at == datetime(2026, 11, 28, 8, tzinfo=UTC)
    assert pages[1].published_at == datetime(2025, 1, 1, tzinfo=UTC)


def test_feed_source_drops_items_outside_the_window(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/rss.xml").respond_with_data(
        RSS.format(base=base), content_type="application/rss+xml")
    source = src(name="w", feed=f"{base}/rss.xml", urls=[f"{base}/pinned-old"])
    found = discover_source(source, CRAWL, now=NOW)
    urls = [i.url for i in found.items]
    assert f"{base}/new" in urls and f"{base}/relative" in urls
    assert f"{base}/old" not in urls  # 28 days old, window is 7
    assert f"{base}/pinned-old" in urls  # urls: are always fetched
    assert not found.rejects


def test_sitemap_index_is_followed(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/sitemap.xml").respond_with_data(
        INDEX.format(base=base), content_type="application/xml")
    httpserver.expect_request("/news.xml").respond_with_data(
        NEWS.format(base=base), content_type="application/xml")
    found = discover_source(src(name="t", sitemap=f"{base}/sitemap.xml"), CRAWL, now=NOW)
    assert [i.url for i in found.items] == [f"{base}/fresh"]


def test_homepage_autodiscovers_its_feed(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_data(
        '<html><head><link rel="alternate" type="application/rss+xml" href="/rss.xml">'
        "</head><body></body></html>", content_type="text/html")
    httpserver.expect_request("/rss.xml").respond_with_data(
        RSS.format(base=base), content_type="application/rss+xml")
    found = discover_source(src(name="h", homepage=f"{base}/"), CRAWL, now=NOW)
    assert f"{base}/new" in [i.url for i in found.items]


def test_a_broken_feed_is_a_reject_not_a_crash(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/rss.xml").respond_with_data("gone", status=404)
    found = discover_source(src(name="w", feed=f"{base}/rss.xml",
                                   urls=[f"{base}/still-here"]), CRAWL, now=NOW)
    assert [i.url for i in found.items] == [f"{base}/still-here"]
    assert found.rejects[0].stage == "discover" and "404" in found.rejects[0].reason


def test_atom_source_applies_the_window(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/atom.xml").respond_with_data(
        """<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">
        <title>A</title>
        <entry><title>n</title><link href="/n"/><published>2026-11-28T10:00:00Z</published>
        </entry>
        <entry><title>o</title><link href="/o"/><updated>2026-10-01T10:00:00Z</updated></entry>
        </feed>""", content_type="application/atom+xml")
    found = discover_source(src(name="a", feed=f"{base}/atom.xml"), CRAWL, now=NOW)
    assert [i.url for i in found.items] == [f"{base}/n"]


def test_gzipped_sitemap_is_read(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/sitemap.xml.gz").respond_with_data(
        gzip.compress(NEWS.format(base=base).encode()), content_type="application/x-gzip")
    found = discover_source(src(name="t", sitemap=f"{base}/sitemap.xml.gz"), CRAWL, now=NOW)
    assert [i.url for i in found.items] == [f"{base}/fresh"]


def test_homepage_without_feed_falls_back_to_robots_sitemaps(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_data("<html><body>hi</body></html>",
                                                     content_type="text/html")
    httpserver.expect_request("/robots.txt").respond_with_data(
        f"User-agent: *\nAllow: /\nSitemap: {base}/news.xml\n", content_type="text/plain")
    httpserver.expect_request("/news.xml").respond_with_data(
        NEWS.format(base=base), content_type="application/xml")
    found = discover_source(src(name="h", homepage=f"{base}/"), CRAWL, now=NOW)
    assert [i.url for i in found.items] == [f"{base}/fresh"] and not found.rejects


def test_one_page_under_two_spellings_is_discovered_once(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/rss.xml").respond_with_data(
        RSS.format(base=base).replace(f"{base}/new<", f"{base}/new?utm_source=rss#top<"),
        content_type="application/rss+xml")
    httpserver.expect_request("/sitemap.xml").respond_with_data(
        f"""<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc>{base}/new/</loc><lastmod>2026-11-28</lastmod></url></urlset>""",
        content_type="application/xml")
    source = src(name="w", feed=f"{base}/rss.xml", sitemap=f"{base}/sitemap.xml")
    urls = [i.url for i in discover_source(source, CRAWL, now=NOW).items]
    assert sum("/new" in u for u in urls) == 1


def test_the_newest_items_are_kept_when_there_are_too_many() -> None:
    items = [Discovered(url=f"https://x.example/{d}", published_at=NOW - timedelta(days=d))
             for d in (5, 1, 3)] + [Discovered(url="https://x.example/undated")]
    items.append(Discovered(url="https://x.example/pinned", from_list=True))
    chosen = select_items(items, NOW, timedelta(days=7), limit=3)
    assert [i.url.rsplit("/", 1)[1] for i in chosen] == ["pinned", "1", "3"]
