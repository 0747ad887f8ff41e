"""Discovery: which article URLs a source offers tonight.

Feeds are read with feedparser (RSS 0.9x/1.0/2.0, Atom); sitemaps, sitemap indexes and news
sitemaps with lxml; a homepage's `<link rel="alternate">` points to its feed. Items older than
the freshness window are dropped here, before anything is fetched; pages listed under `urls:`
are always kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import feedparser
from dateutil import parser as dateparser
from lxml import etree
from lxml import html as lxml_html

from schemas.config import Crawl, Source
from schemas.models import FetchRequest, FetchResult, Reject
from tasks.fetch import FEED_TYPES, fetch_many

_FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/feed+json",
               "application/rdf+xml"}
MAX_SITEMAPS = 50


@dataclass(frozen=True)
class Discovered:
    url: str
    published_at: datetime | None = None
    from_list: bool = False  # listed under `urls:`: always fetched whatever its date


@dataclass
class Discovery:
    items: list[Discovered] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    fetches: list[FetchResult] = field(default_factory=list)


def _to_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return _to_utc(dateparser.parse(text.strip()))
    except (ValueError, OverflowError):
        return None


def parse_feed(content: bytes, base_url: str) -> list[Discovered]:
    """Entries of an RSS or Atom feed, with their dates."""
    feed = feedparser.parse(content)
    items = []
    for entry in feed.entries:
        link = entry.get("link")
        if not link:
            continue
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        when = datetime(*stamp[:6], tzinfo=UTC) if stamp else None
        items.append(Discovered(url=urljoin(base_url, link), published_at=when))
    return items


def looks_like_feed(content: bytes) -> bool:
    head = content[:2000].lstrip().lower()
    return b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head


def parse_sitemap(content: bytes, base_url: str) -> tuple[list[Discovered], list[str]]:
    """(pages, child sitemaps) of a sitemap or sitemap index, news:publication_date first."""
    try:
        root = etree.fromstring(content, parser=etree.XMLParser(recover=True,
                                                                resolve_entities=False))
    except etree.XMLSyntaxError:
        return [], []
    if root is None:
        return [], []
    pages: list[Discovered] = []
    children: list[str] = []
    for element in root:
        if not isinstance(element.tag, str):
            continue
        tag = etree.QName(element).localname
        loc = next((c.text for c in element.iter() if isinstance(c.tag, str)
                    and etree.QName(c).localname == "loc" and c.text), None)
        if not loc:
            continue
        loc = urljoin(base_url, loc.strip())
        if tag == "sitemap":
            children.append(loc)
        elif tag == "url":
            dates = {etree.QName(c).localname: c.text for c in element.iter()
                     if isinstance(c.tag, str) and c.text}
            when = _parse_date(dates.get("publication_date")) or _parse_date(dates.get("lastmod"))
            pages.append(Discovered(url=loc, published_at=when))
    return pages, children


def find_feed_links(html: bytes, base_url: str) -> list[str]:
    """Feeds a homepage announces with `<link rel="alternate" type="application/rss+xml">`."""
    try:
        doc = lxml_html.fromstring(html)
    except (etree.ParserError, ValueError):
        return []
    links = []
    for link in doc.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        kind = (link.get("type") or "").lower()
        if "alternate" in rel and kind in _FEED_TYPES and link.get("href"):
            links.append(urljoin(base_url, link.get("href", "")))
    return links


def is_fresh(item: Discovered, now: datetime, window: timedelta) -> bool:
    """Undated items are kept: a feed that gives no dates still deserves to be read."""
    return item.from_list or item.published_at is None or item.published_at >= now - window


def _fetch_listing(url: str, source: Source, crawl: Crawl, out: Discovery) -> bytes | None:
    result = fetch_many([FetchRequest(url=url, source=source.name)], crawl,
                        accept=FEED_TYPES)[0]
    out.fetches.append(result)
    if not result.ok or result.content is None:
        out.rejects.append(Reject(url=url, source=source.name, stage="discover",
                                  reason=result.error or "no content"))
        return None
    return result.content


def discover_source(source: Source, crawl: Crawl, *, now: datetime | None = None) -> Discovery:
    """Every fresh article URL the source offers; fetch failures become rejects."""
    now = now or datetime.now(UTC)
    out = Discovery()
    found: list[Discovered] = [Discovered(url=str(u), from_list=True) for u in source.urls]
    feeds = [str(source.feed)] if source.feed else []
    if source.homepage:
        page = _fetch_listing(str(source.homepage), source, crawl, out)
        if page is not None:
            feeds.extend(find_feed_links(page, str(source.homepage))[:1])
            if not feeds and not source.sitemap:
                out.rejects.append(Reject(url=str(source.homepage), source=source.name,
                                          stage="discover", reason="homepage names no feed"))
    for feed_url in feeds:
        content = _fetch_listing(feed_url, source, crawl, out)
        if content is not None:
            found.extend(parse_feed(content, feed_url))
    pending = [str(source.sitemap)] if source.sitemap else []
    seen_maps: set[str] = set()
    while pending and len(seen_maps) < MAX_SITEMAPS:
        map_url = pending.pop(0)
        if map_url in seen_maps:
            continue
        seen_maps.add(map_url)
        content = _fetch_listing(map_url, source, crawl, out)
        if content is None:
            continue
        if looks_like_feed(content):  # some sites point "sitemap" at their RSS feed
            found.extend(parse_feed(content, map_url))
            continue
        pages, children = parse_sitemap(content, map_url)
        found.extend(pages)
        pending.extend(children)
    window = timedelta(days=crawl.window_days)
    unique: dict[str, Discovered] = {}
    for item in found:
        if is_fresh(item, now, window) and item.url not in unique:
            unique[item.url] = item
    out.items = list(unique.values())[: source.max_items + len(source.urls)]
    return out

