"""Discovery over real HTTP: RSS, Atom, sitemap indexes, news sitemaps, autodiscovery."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from schemas.config import Crawl, Source
from tasks.crawl.discover import (
    Discovered,
    NotAListing,
    discover_source,
    parse_feed,
    parse_sitemap,
    select_items,
    url_problem,
)
from tests.local import LOCAL_SITE

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


def src(**fields: Any) -> Source:
    """A Source from plain strings (pydantic validates the URLs)."""
    return Source.model_validate(fields)

CRAWL = Crawl(allow_private_addresses=LOCAL_SITE, obey_robots=False)

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


# -- a listing that is not one, an item whose address is invalid ------------------------------

BAD_LINK = "http://[::1:bad/x"  # urllib and httpx raise ValueError "Invalid IPv6 URL"
HTML_PAGE = "<!doctype html><html><head><title>Home</title></head><body>hi</body></html>"


def not_a_listing(parse: Any, content: bytes) -> str:
    with pytest.raises(NotAListing) as caught:
        parse(content, "https://w.example/listing")
    return str(caught.value)


def test_junk_is_not_a_feed_but_an_empty_feed_is_one() -> None:
    assert "not well-formed" in not_a_listing(parse_feed, b"\x00\x01\x9c\xff junk \xfe")
    assert not_a_listing(parse_feed, b"hello, this is not a feed").startswith(
        "not an RSS/Atom feed: ")
    assert not_a_listing(parse_feed, HTML_PAGE.encode()) == \
        "not an RSS/Atom feed: an HTML page naming no feed"
    assert "names the feed https://w.example/rss.xml" in not_a_listing(
        parse_feed, b'<html><head><link rel="alternate" type="application/rss+xml" '
                    b'href="/rss.xml"></head></html>')
    assert not_a_listing(parse_feed, b"") == "not an RSS/Atom feed: empty response"
    assert parse_feed(b'<rss version="2.0"><channel><title>T</title></channel></rss>', "x") == []
    assert parse_feed(b'<feed xmlns="http://www.w3.org/2005/Atom"><title>A</title></feed>',
                      "x") == []
    # a small fault (feedparser's bozo) in a real feed: still read
    [item] = parse_feed(b'<rss version="2.0"><channel><item><link>https://w.example/a</link>'
                        b"</item>&undefined;</channel></rss>", "x")
    assert item.url == "https://w.example/a"


def test_junk_is_not_a_sitemap_but_an_empty_sitemap_is_one() -> None:
    assert not_a_listing(parse_sitemap, HTML_PAGE.encode()) == "not a sitemap: an HTML page"
    assert not_a_listing(parse_sitemap, b"<html><body>Not found</body></html>") == \
        "not a sitemap: root element <html>"
    assert not_a_listing(parse_sitemap, b"\x00\x01\x9c\xff junk \xfe").startswith(
        "not a sitemap: ")
    assert not_a_listing(parse_sitemap, b"just some text") == "not a sitemap: no XML root element"
    assert not_a_listing(parse_sitemap, b"") == "not a sitemap: empty response"
    assert not_a_listing(parse_sitemap, gzip.compress(b"<html><p>x</p></html>")) == \
        "not a sitemap: root element <html>"
    ns = 'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"'
    assert parse_sitemap(f"<urlset {ns}/>".encode(), "x") == ([], [])
    assert parse_sitemap(f"<sitemapindex {ns}></sitemapindex>".encode(), "x") == ([], [])
    # blank lines and a BOM before the XML declaration, as some generators write them
    pages, _ = parse_sitemap(f'\n\n\ufeff<?xml version="1.0"?><urlset {ns}><url><loc>'
                             f"https://w.example/a</loc></url></urlset>".encode(), "x")
    assert [p.url for p in pages] == ["https://w.example/a"]


def test_an_invalid_link_is_kept_as_written_for_its_reject() -> None:
    feed = RSS.format(base="https://w.example").replace("/relative", BAD_LINK)
    items = parse_feed(feed.encode(), "https://w.example/rss")
    assert [i.url for i in items] == ["https://w.example/new", "https://w.example/old", BAD_LINK]
    pages, children = parse_sitemap(
        f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc>{BAD_LINK}</loc></url><url><loc>/good</loc></url></urlset>""".encode(),
        "https://w.example/sitemap.xml")
    assert [p.url for p in pages] == [BAD_LINK, "https://w.example/good"] and children == []
    assert url_problem(BAD_LINK) == "invalid URL: Invalid IPv6 URL"
    assert url_problem("https://w.example:99999/a") == "invalid URL: Port out of range 0-65535"
    assert url_problem("mailto:desk@w.example") is not None
    assert url_problem("https://w.example/a?b=c") is None


def test_a_junk_feed_or_sitemap_is_a_reject(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/rss.xml").respond_with_data(
        b"\x00\x01\x9c\xff\x00 not a feed", content_type="application/rss+xml")
    httpserver.expect_request("/sitemap.xml").respond_with_data(HTML_PAGE,
                                                                content_type="text/html")
    source = src(name="j", feed=f"{base}/rss.xml", sitemap=f"{base}/sitemap.xml",
                 urls=[f"{base}/pinned"])
    found = discover_source(source, CRAWL, now=NOW)
    assert [i.url for i in found.items] == [f"{base}/pinned"]  # the source goes on
    reasons = {r.url: r.reason for r in found.rejects}
    assert {r.stage for r in found.rejects} == {"discover"} and len(found.rejects) == 2
    assert reasons[f"{base}/rss.xml"].startswith("not an RSS/Atom feed: ")
    assert reasons[f"{base}/sitemap.xml"] == "not a sitemap: an HTML page"


def test_an_empty_feed_and_sitemap_are_no_reject(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/rss.xml").respond_with_data(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>W</title></channel></rss>',
        content_type="application/rss+xml")
    httpserver.expect_request("/sitemap.xml").respond_with_data(
        '<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"/>',
        content_type="application/xml")
    found = discover_source(src(name="e", feed=f"{base}/rss.xml",
                                sitemap=f"{base}/sitemap.xml"), CRAWL, now=NOW)
    assert found.items == [] and found.rejects == []


def test_an_invalid_link_is_one_reject_and_the_other_items_stay(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/rss.xml").respond_with_data(
        RSS.format(base=base).replace("/relative", BAD_LINK),
        content_type="application/rss+xml")
    httpserver.expect_request("/sitemap.xml").respond_with_data(
        f"""<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
        <url><loc>{base}/from-map</loc></url><url><loc>{BAD_LINK}2</loc></url>
        <url><loc>https://w.example:99999/x</loc></url></urlset>""",
        content_type="application/xml")
    source = src(name="w", feed=f"{base}/rss.xml", sitemap=f"{base}/sitemap.xml")
    found = discover_source(source, CRAWL, now=NOW)
    assert sorted(i.url for i in found.items) == [f"{base}/from-map", f"{base}/new"]
    assert [(r.url, r.stage, r.reason) for r in found.rejects] == [
        (BAD_LINK, "discover", "invalid URL: Invalid IPv6 URL"),
        (f"{BAD_LINK}2", "discover", "invalid URL: Invalid IPv6 URL"),
        ("https://w.example:99999/x", "discover", "invalid URL: Port out of range 0-65535")]


def test_invalid_listing_addresses_are_rejects(httpserver: HTTPServer) -> None:
    """A homepage's feed link, an index's child sitemap, a robots.txt Sitemap: line."""
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_data(
        f'<html><head><link rel="alternate" type="application/rss+xml" href="{BAD_LINK}">'
        '<link rel="alternate" type="application/atom+xml" href="/rss.xml"></head></html>',
        content_type="text/html")
    httpserver.expect_request("/rss.xml").respond_with_data(
        RSS.format(base=base), content_type="application/rss+xml")
    httpserver.expect_request("/index.xml").respond_with_data(
        INDEX.format(base=base).replace(f"{base}/news.xml", BAD_LINK),
        content_type="application/xml")
    found = discover_source(src(name="h", homepage=f"{base}/", sitemap=f"{base}/index.xml"),
                            CRAWL, now=NOW)
    assert f"{base}/new" in [i.url for i in found.items]  # the feed link that works is read
    assert [(r.url, r.reason) for r in found.rejects] == [
        (BAD_LINK, "invalid URL: Invalid IPv6 URL")]


def test_an_invalid_robots_sitemap_is_a_reject(httpserver: HTTPServer) -> None:
    base = httpserver.url_for("").rstrip("/")
    httpserver.expect_request("/").respond_with_data(HTML_PAGE, content_type="text/html")
    httpserver.expect_request("/robots.txt").respond_with_data(
        f"User-agent: *\nSitemap: {BAD_LINK}\n", content_type="text/plain")
    found = discover_source(src(name="h", homepage=f"{base}/"), CRAWL, now=NOW)
    assert found.items == []
    assert [(r.url, r.reason) for r in found.rejects] == [
        (BAD_LINK, "invalid URL: Invalid IPv6 URL")]
