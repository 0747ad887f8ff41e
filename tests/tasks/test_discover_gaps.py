"""Discovery gaps of issue #19, over real HTTP: feed media types feedparser reads, plain-text
sitemaps, a sitemap cut off inside a <loc>, a homepage answering 404, and feed links
relative to a Content-Location header."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pytest_httpserver import HTTPServer

from schemas.config import Crawl, Source
from tasks.crawl.discover import discover_source, parse_sitemap
from tests.local import LOCAL_SITE

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)
CRAWL = Crawl(allow_private_addresses=LOCAL_SITE, obey_robots=False)
RSS = ("<?xml version='1.0'?><rss version='2.0'><channel><title>W</title>"
       "<item><title>a</title><link>{link}</link>"
       "<pubDate>Sat, 28 Nov 2026 08:00:00 GMT</pubDate></item></channel></rss>")
URLSET = ("<?xml version='1.0'?><urlset xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>"
          "<url><loc>{base}/2026/11/28/one</loc><lastmod>2026-11-28</lastmod></url>"
          "<url><loc>{base}/2026/11/28/two</loc><lastmod>2026-11-28</lastmod></url>")


def _source(**fields: str) -> Source:
    return Source.model_validate({"name": "s", **fields})


@pytest.mark.parametrize("media_type", [
    "text/rss+xml", "text/atom+xml", "application/xml-dtd",
    "text/xml-external-parsed-entity", "application/xml-external-parsed-entity"])
def test_feeds_under_every_type_feedparser_reads(httpserver: HTTPServer,
                                                 media_type: str) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        RSS.format(link=httpserver.url_for("/a")), content_type=media_type)
    found = discover_source(_source(feed=httpserver.url_for("/feed")), CRAWL, now=NOW)
    assert [i.url for i in found.items] == [httpserver.url_for("/a")]
    assert found.rejects == []


def test_a_homepage_names_a_feed_of_a_text_type(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data(
        "<html><head><link rel='alternate' type='text/rss+xml' href='/feed'></head></html>",
        content_type="text/html")
    httpserver.expect_request("/feed").respond_with_data(
        RSS.format(link=httpserver.url_for("/a")), content_type="text/rss+xml")
    found = discover_source(_source(homepage=httpserver.url_for("/")), CRAWL, now=NOW)
    assert [i.url for i in found.items] == [httpserver.url_for("/a")]


def test_a_plain_text_sitemap(httpserver: HTTPServer) -> None:
    lines = f"{httpserver.url_for('/one')}\n\n{httpserver.url_for('/two')}\r\n"
    httpserver.expect_request("/sitemap.txt").respond_with_data(lines, content_type="text/plain")
    found = discover_source(_source(sitemap=httpserver.url_for("/sitemap.txt")), CRAWL, now=NOW)
    assert sorted(i.url for i in found.items) == [httpserver.url_for("/one"),
                                                  httpserver.url_for("/two")]
    assert found.rejects == []


def test_text_that_is_not_one_url_a_line_is_no_sitemap() -> None:
    with pytest.raises(ValueError, match="not a sitemap"):
        parse_sitemap(b"Hello, this is not a sitemap\nhttps://x.example/a\n", "https://x.example/")


def test_a_sitemap_cut_off_inside_a_loc_drops_the_fragment() -> None:
    base = "https://w.example"
    whole = URLSET.format(base=base)
    cut = (whole + f"<url><loc>{base}/2026/11/28/thr").encode()
    pages, _ = parse_sitemap(cut, base + "/sitemap.xml")
    assert [p.url for p in pages] == [f"{base}/2026/11/28/one", f"{base}/2026/11/28/two"]
    # cut after a whole <loc>: that page is kept
    pages, _ = parse_sitemap((whole + f"<url><loc>{base}/three</loc><lastm").encode(), base)
    assert [p.url for p in pages][-1] == f"{base}/three"
    # a cut plain-text sitemap: the last, unfinished line goes
    [page] = parse_sitemap(f"{base}/one\n{base}/tw".encode(), base)[0]
    assert page.url == f"{base}/one"


def test_a_homepage_answering_404_falls_back_to_robots_sitemaps(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("gone", status=404)
    httpserver.expect_request("/robots.txt").respond_with_data(
        f"User-agent: *\nAllow: /\nSitemap: {httpserver.url_for('/maps/news.xml')}\n",
        content_type="text/plain")
    httpserver.expect_request("/maps/news.xml").respond_with_data(
        URLSET.format(base=httpserver.url_for("")).replace("//2026", "/2026") + "</urlset>",
        content_type="application/xml")
    found = discover_source(_source(homepage=httpserver.url_for("/")), CRAWL, now=NOW)
    assert len(found.items) == 2
    assert found.rejects == []


def test_a_homepage_answering_404_falls_back_to_well_known_sitemaps(
        httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("gone", status=404)
    httpserver.expect_request("/robots.txt").respond_with_data("", status=404)
    httpserver.expect_request("/sitemap.xml").respond_with_data("nope", status=404)
    httpserver.expect_request("/sitemap_index.xml").respond_with_data(
        URLSET.format(base=httpserver.url_for("")).replace("//2026", "/2026") + "</urlset>",
        content_type="text/xml")
    found = discover_source(_source(homepage=httpserver.url_for("/")), CRAWL, now=NOW)
    assert len(found.items) == 2 and found.rejects == []
    asked = [r.path for r, _ in httpserver.log]
    assert asked.count("/sitemap_index.xml") == 1  # the probe's answer is not fetched again


def test_a_homepage_404_with_nothing_to_fall_back_on_is_one_reject(
        httpserver: HTTPServer) -> None:
    httpserver.expect_request("/").respond_with_data("gone", status=404)
    httpserver.no_handler_status_code = 404
    found = discover_source(_source(homepage=httpserver.url_for("/")), CRAWL, now=NOW)
    assert found.items == []
    assert [(r.url, "404" in r.reason) for r in found.rejects] == [
        (httpserver.url_for("/"), True)]


def test_feed_links_resolve_against_content_location(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        RSS.format(link="2026/11/28/story.html"), content_type="application/rss+xml",
        headers={"Content-Location": "/news/en/feed.xml"})
    found = discover_source(_source(feed=httpserver.url_for("/feed")), CRAWL, now=NOW)
    assert [i.url for i in found.items] == [httpserver.url_for("/news/en/2026/11/28/story.html")]
