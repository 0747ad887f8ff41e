"""The bundled demo site: every page the demo crawls exists, parses and says what it claims.

The demo server serves `policywatch/demo_site/site/` and replaces `{{BASE}}` in text files;
these tests make the same substitution and read the files straight from disk.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import lxml.etree
import lxml.html
import pytest
from bs4 import BeautifulSoup
from protego import Protego

from schemas.config import Config, parse_config

DEMO = Path(__file__).resolve().parent.parent / "policywatch" / "demo_site"
SITE = DEMO / "site"
BASE = "http://127.0.0.1:8765"
SUBSTITUTED = {".html", ".xml", ".txt", ".json"}

HTML_PAGES = sorted(SITE.rglob("*.html"))
ARTICLES = [p for p in HTML_PAGES if p.name != "index.html"]
SAMPLE = SITE / "wire/2026/11/27/us-official-china-chip-design-gap.html"
# sha256 of the sample article's seven paragraphs joined by "\n", as the user sent them
SAMPLE_SHA256 = "8371c38d2657b1f090ba269bc1911f8b1d48c9ec9b987e2e7d6ab56f5bb5cb9a"
SAMPLE_COMMENTERS = ["Eric Cartman", "Stan Marsh", "Raphael", "Michelangelo", "Leonardo"]
# only vocabularies and namespaces may be absolute addresses; the site's own are {{BASE}}
FOREIGN_OK = ("https://schema.org", "http://www.sitemaps.org/", "http://www.google.com/schemas/",
              "http://purl.org/", "http://www.w3.org/", "https://wordpress.org/")
XML_NS = {"sm": "http://www.sitemaps.org/schemas/sitemap/0.9",
          "news": "http://www.google.com/schemas/sitemap-news/0.9",
          "atom": "http://www.w3.org/2005/Atom"}


def served(path: Path) -> str:
    """The file's text as the demo server sends it."""
    text = path.read_text(encoding="utf-8")
    return text.replace("{{BASE}}", BASE) if path.suffix in SUBSTITUTED else text


def local_file(url: str) -> Path:
    """The file the demo server answers `url` with."""
    assert url.startswith(BASE + "/"), url
    path = urlsplit(url).path
    target = SITE / path.lstrip("/")
    return target / "index.html" if path.endswith("/") else target


def html(path: Path) -> lxml.html.HtmlElement:
    return lxml.html.fromstring(served(path).encode("utf-8"))


def json_ld(doc: lxml.html.HtmlElement) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for script in doc.xpath('//script[@type="application/ld+json"]'):
        data = json.loads(script.text)
        found.extend(data.get("@graph", [data]))
    return found


def published(doc: lxml.html.HtmlElement) -> datetime:
    """The article's date from JSON-LD or microdata, whichever the layout uses."""
    for item in json_ld(doc):
        if item.get("@type") == "NewsArticle":
            return datetime.fromisoformat(item["datePublished"])
    (node,) = doc.xpath('//*[@itemtype="https://schema.org/NewsArticle"]'
                        '//*[@itemprop="datePublished"]')
    return datetime.fromisoformat(node.get("datetime") or node.get("content"))


def feed_entries() -> dict[str, datetime]:
    """Every URL that the RSS feed, the Atom feed and the sitemap list, with its date."""
    entries: dict[str, datetime] = {}
    rss = lxml.etree.fromstring(served(SITE / "wire/rss.xml").encode())
    for item in rss.iterfind("channel/item"):
        entries[item.findtext("link")] = datetime.strptime(item.findtext("pubDate"),
                                                           "%a, %d %b %Y %H:%M:%S %z")
    sitemap = lxml.etree.fromstring(served(SITE / "tribune/sitemap.xml").encode())
    for url in sitemap.iterfind("sm:url", XML_NS):
        entries[url.findtext("sm:loc", namespaces=XML_NS)] = datetime.fromisoformat(
            url.findtext("news:news/news:publication_date", namespaces=XML_NS))
        assert url.findtext("sm:lastmod", namespaces=XML_NS)
    atom = lxml.etree.fromstring(served(SITE / "tribune/atom.xml").encode())
    for entry in atom.iterfind("atom:entry", XML_NS):
        link = entry.find("atom:link", XML_NS).get("href")
        entries[link] = datetime.fromisoformat(entry.findtext("atom:published", namespaces=XML_NS))
    return entries


def config() -> Config:
    return parse_config(served(DEMO / "config.yaml").replace("{{BASE}}", BASE))


def test_the_site_has_pages_of_each_kind():
    assert len(ARTICLES) >= 6
    assert {"wire", "tribune"} <= {p.relative_to(SITE).parts[0] for p in ARTICLES}


def test_every_feed_and_sitemap_entry_is_a_page_with_the_same_date():
    entries = feed_entries()
    assert len(entries) >= 6
    for url, when in entries.items():
        page = local_file(url)
        assert page.is_file(), url
        assert published(html(page)) == when, url


def test_robots_txt_allows_every_page_and_names_the_sitemap():
    robots = Protego.parse(served(SITE / "robots.txt"))
    for page in HTML_PAGES:
        assert robots.can_fetch(f"{BASE}/{page.relative_to(SITE)}", "policywatch")
    assert list(robots.sitemaps) == [f"{BASE}/tribune/sitemap.xml"]


@pytest.mark.parametrize("page", HTML_PAGES, ids=lambda p: str(p.relative_to(SITE)))
def test_page_is_well_formed_with_charset_canonical_and_title(page):
    text = served(page)
    lxml.etree.fromstring(text.encode("utf-8"))  # stricter than HTML: every tag is closed
    doc = html(page)
    assert doc.xpath("//meta/@charset") == ["utf-8"]
    (canonical,) = doc.xpath('//link[@rel="canonical"]/@href')
    assert local_file(canonical) == page
    assert doc.findtext(".//title").strip()


@pytest.mark.parametrize("page", ARTICLES, ids=lambda p: str(p.relative_to(SITE)))
def test_article_has_headline_date_body_and_comments(page):
    doc = html(page)
    assert len(doc.xpath("//h1")) == 1
    assert datetime(2026, 11, 20, tzinfo=UTC) < published(doc) < datetime(2026, 11, 29, tzinfo=UTC)
    paragraphs = doc.xpath('//*[contains(@class, "entry-content") or @itemprop="articleBody"'
                           ' or contains(@class, "tr-copy")]/p')
    assert 5 <= len(paragraphs) <= 10
    assert 2 <= len(comments(doc)) <= 6


def comments(doc: lxml.html.HtmlElement) -> list[lxml.html.HtmlElement]:
    found: list[lxml.html.HtmlElement] = doc.xpath(
        '//li[contains(@class, "comment")]'
        ' | //*[@itemtype="https://schema.org/Comment"]'
        ' | //article[contains(@class, "reader-note")]')
    return found


def test_the_three_comment_markups_are_complete():
    layouts = {"wordpress": 0, "microdata": 0, "custom": 0}
    replies = 0
    for page in ARTICLES:
        doc = html(page)
        for li in doc.xpath('//ol[@class="comment-list"]//li[contains(@class, "comment")]'):
            layouts["wordpress"] += 1
            assert re.fullmatch(r"comment-\d+", li.get("id"))
            assert li.xpath('./article//*[contains(@class, "comment-author")]//*[@class="fn"]')
            assert li.xpath("./article//time/@datetime")
            assert li.xpath('./article//*[@class="comment-content"]/p')
            replies += li.getparent().tag == "ul"
        for item in doc.xpath('//*[@itemtype="https://schema.org/Comment"]'):
            layouts["microdata"] += 1
            assert item.xpath('.//*[@itemprop="author"]//*[@itemprop="name"]')
            assert item.xpath('.//*[@itemprop="text"]')
            assert item.xpath('.//*[@itemprop="dateCreated"]/@datetime')
            replies += bool(item.xpath('ancestor::*[@itemtype="https://schema.org/Comment"]'))
    for page in (SITE / "tribune").rglob("2026/**/*.html"):
        layouts["custom"] += len(html(page).xpath('//article[contains(@class, "reader-note")]'))
    assert all(count >= 4 for count in layouts.values()), layouts
    assert replies >= 3


def test_custom_layout_comments_are_read_by_the_configured_selectors():
    (tribune,) = [s for s in config().sources if s.comments is not None]
    sel = tribune.comments
    assert sel is not None and sel.parent_attr
    pages = [local_file(url) for url in feed_entries() if "/tribune/" in url]
    assert pages
    for page in pages:
        soup = BeautifulSoup(served(page), "lxml")
        items = soup.select(sel.item)
        assert len(items) >= 2
        ids = {item["id"] for item in items}
        parents = [item.get(sel.parent_attr) for item in items if item.get(sel.parent_attr)]
        assert parents and set(parents) <= ids
        for item in items:
            body, author, time = (item.select_one(css or "-") for css in (sel.body, sel.author,
                                                                          sel.time))
            assert body is not None and body.get_text(strip=True)
            assert author is not None and author.get_text(strip=True)
            assert time is not None
            datetime.fromisoformat(str(time["datetime"]))
        # no standard markup: only the configured selectors can find these notes
        assert not html(page).xpath('//*[@itemtype="https://schema.org/Comment"]'
                                    ' | //ol[@class="comment-list"]')


def test_config_validates_and_points_at_the_site():
    cfg = config()
    assert [s.name for s in cfg.sources] == ["policy-wire", "beltway-tribune", "hand-picked"]
    assert cfg.crawl.window_days == 7  # the served dates are from the last few days
    assert cfg.alerts.channels == ()
    assert {e.name for e in cfg.tracked_entities} == {
        "Huawei", "David Sacks", "DeepSeek", "Nvidia", "AI diffusion rule"}
    assert [t.name for t in cfg.topics] == ["us-tech-controls"]
    feeds = feed_entries()
    for source in cfg.sources:
        for url in (source.feed, source.sitemap, *source.urls):
            if url is not None:
                assert local_file(str(url)).is_file(), url
    (hand_picked,) = [s for s in cfg.sources if s.urls]
    assert all(str(url) not in feeds for url in hand_picked.urls)


def test_site_addresses_are_written_with_the_base_placeholder():
    for path in SITE.rglob("*"):
        if path.suffix not in SUBSTITUTED:
            continue
        text = path.read_text(encoding="utf-8")
        for url in re.findall(r"https?://[^\s\"'<>]+", text):
            assert url.startswith(FOREIGN_OK), f"{path.relative_to(SITE)}: {url}"


def test_links_to_pages_of_the_site_resolve():
    for page in HTML_PAGES:
        for href in html(page).xpath("//a/@href"):
            if href.startswith(BASE):
                href = href[len(BASE):]
            if href.startswith("/") and href.split("#")[0].endswith((".html", ".xml")):
                assert (SITE / href.split("#")[0].lstrip("/")).is_file(), (page, href)


def test_sample_article_is_the_users_text_with_its_five_comments():
    doc = html(SAMPLE)
    paragraphs = [p.text_content() for p in doc.xpath('//div[@class="entry-content"]/p')]
    text = "\n".join(paragraphs)
    assert len(paragraphs) == 7
    assert len(re.findall(r"[.!?](?=\s|$)", text)) == 21
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == SAMPLE_SHA256
    assert doc.xpath('//*[@class="comments-title"]/text()') == ["5 Comments"]
    assert doc.xpath('//*[contains(@class, "comment-author")]/*[@class="fn"]/text()') == (
        SAMPLE_COMMENTERS)
    assert all(c.strip() for c in doc.xpath('//*[@class="comment-content"]/p/text()'))
    assert published(doc).date().isoformat() == "2026-11-27"
    assert doc.xpath('//time[contains(@class, "published")]/@datetime')[0].startswith("2026-11-27")


# -- dates relative to the day the demo runs --------------------------------------------------


def test_shift_dates_moves_every_date_form_the_site_writes() -> None:
    from policywatch.demo import shift_dates, unshift_path

    text = ("<pubDate>Sat, 28 Nov 2026 07:30:00 +0000</pubDate> {{BASE}}/wire/2026/11/28/x.html"
            " 2026-11-28T11:00:00+00:00 on November 27, Nov. 25, 2026, 10:05 a.m. "
            "Nov 28, 8:12 AM <b>Nov. 30, 9:12 a.m.</b> 1234-56-78")
    assert shift_dates(text, 7) == (
        "<pubDate>Sat, 05 Dec 2026 07:30:00 +0000</pubDate> {{BASE}}/wire/2026/12/05/x.html"
        " 2026-12-05T11:00:00+00:00 on December 4, Dec. 2, 2026, 10:05 a.m. "
        "Dec 5, 8:12 AM <b>Dec. 7, 9:12 a.m.</b> 1234-56-78")
    assert shift_dates(text, 0) == text
    assert unshift_path("/wire/2026/12/05/x.html", 7) == "/wire/2026/11/28/x.html"


def test_served_dates_follow_the_day_the_demo_runs() -> None:
    """A week after the files' dates, the newest article is still from yesterday, and its
    shifted address is served; the config's hand-picked page is dated the same way."""
    import email.utils
    import tempfile
    from datetime import date, timedelta

    import httpx

    from policywatch.demo import serve_demo_site, write_demo_config

    for today in (date(2026, 12, 6), datetime.now(UTC).date(), date(2027, 3, 1)):
        with serve_demo_site(port=None, today=today) as (base, _):
            rss = httpx.get(f"{base}/wire/rss.xml").text
            dates = [email.utils.parsedate_to_datetime(d).date()
                     for d in re.findall(r"<pubDate>([^<]+)</pubDate>", rss)]
            assert max(dates) == today - timedelta(days=1)
            links = re.findall(r"<link>([^<]+\.html)</link>", rss)
            assert links and all(httpx.get(link).status_code == 200 for link in links)
            page = httpx.get(links[0]).text
            assert f"{today - timedelta(days=1):%Y-%m-%d}" in page or "2026-11-2" not in page
            assert "2026-11-2" not in page  # nothing left of the files' own dates
            with tempfile.TemporaryDirectory() as folder:
                config = write_demo_config(base, Path(folder), today=today).read_text()
            [url] = re.findall(r'"(http[^"]+netherlands[^"]+)"', config)
            assert httpx.get(url).status_code == 200
