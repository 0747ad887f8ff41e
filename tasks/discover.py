"""Discovery: which article URLs a source offers tonight.

Feeds are read with feedparser (RSS 0.9x/1.0/2.0, Atom); sitemaps, sitemap indexes and news
sitemaps (plain or gzipped) with lxml; a homepage's `<link rel="alternate">` points to its
feed, or else its robots.txt names its sitemaps. Items older than
the freshness window are dropped here, before anything is fetched; pages listed under `urls:`
are always kept.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin, urlsplit

import feedparser
from dateutil import parser as dateparser
from lxml import etree
from lxml import html as lxml_html
from protego import Protego

from schemas.config import Crawl, Source
from schemas.models import FetchRequest, FetchResult, Reject
from tasks.fetch import FEED_TYPES, fetch_many
from tasks.ids import normalize_url

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
    listings: dict[str, Listing] = field(default_factory=dict)  # fetched afresh tonight


@dataclass(frozen=True)
class Listing:
    """A feed or sitemap as last fetched: its validators and content, for a conditional GET."""

    etag: str | None
    last_modified: str | None
    content: bytes


def _to_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse_date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:  # ISO 8601, what sitemaps use, without dateutil's slower general parser
        return _to_utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        pass
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
        when = datetime(*stamp[:6]).replace(tzinfo=UTC) if stamp else None
        items.append(Discovered(url=urljoin(base_url, link), published_at=when))
    return items


def looks_like_feed(content: bytes) -> bool:
    head = content[:2000].lstrip().lower()
    return b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head


def _gunzip(content: bytes, limit: int) -> bytes:
    """A gzipped sitemap (sitemap.xml.gz) unpacked, at most `limit` bytes of it."""
    if not content.startswith(b"\x1f\x8b"):
        return content
    try:
        return zlib.decompressobj(wbits=31).decompress(content, limit)
    except zlib.error:
        return content


def parse_sitemap(content: bytes, base_url: str) -> tuple[list[Discovered], list[str]]:
    """(pages, child sitemaps) of a sitemap or sitemap index, news:publication_date first."""
    content = _gunzip(content, 50_000_000)  # the sitemaps protocol caps a file at 50 MB
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


def _fetch_listing(url: str, source: Source, crawl: Crawl, out: Discovery,
                   known: Mapping[str, Listing]) -> bytes | None:
    """A listing's content; an unchanged one (304) is served from the last fetch."""
    before = known.get(url)
    request = FetchRequest(url=url, source=source.name,
                           etag=before.etag if before else None,
                           last_modified=before.last_modified if before else None)
    result = fetch_many([request], crawl, accept=FEED_TYPES)[0]
    out.fetches.append(result)
    if result.not_modified and before is not None:
        return before.content
    if result.ok and result.content is not None and (result.etag or result.last_modified):
        out.listings[url] = Listing(result.etag, result.last_modified, result.content)
    if not result.ok or result.content is None:
        out.rejects.append(Reject(url=url, source=source.name, stage="discover",
                                  reason=result.error or "no content"))
        return None
    return result.content


def _robots_sitemaps(homepage: str, source: Source, crawl: Crawl) -> list[str]:
    """`Sitemap:` lines of the homepage origin's robots.txt (a fallback, so no reject)."""
    parts = urlsplit(homepage)
    url = f"{parts.scheme}://{parts.netloc}/robots.txt"
    result = fetch_many([FetchRequest(url=url, source=source.name)],
                        crawl.model_copy(update={"obey_robots": False}), accept=FEED_TYPES)[0]
    if not result.ok or result.content is None:
        return []
    robots = Protego.parse(result.content.decode("utf-8", errors="replace"))
    return [urljoin(url, s) for s in robots.sitemaps][:MAX_SITEMAPS]


def discover_source(source: Source, crawl: Crawl, *, now: datetime | None = None,
                    listings: Mapping[str, Listing] | None = None) -> Discovery:
    """Every fresh article URL the source offers; fetch failures become rejects.

    `listings` are the feeds and sitemaps as an earlier run fetched them: they are asked
    for conditionally, and the ones fetched afresh come back in `Discovery.listings`.
    """
    now = now or datetime.now(UTC)
    known = listings or {}
    out = Discovery()
    found: list[Discovered] = [Discovered(url=str(u), from_list=True) for u in source.urls]
    feeds = [str(source.feed)] if source.feed else []
    pending = [str(source.sitemap)] if source.sitemap else []
    if source.homepage:
        page = _fetch_listing(str(source.homepage), source, crawl, out, known)
        if page is not None:
            feeds.extend(find_feed_links(page, str(source.homepage))[:1])
            if not feeds and not pending:  # no feed named: the sitemaps robots.txt names
                pending.extend(_robots_sitemaps(str(source.homepage), source, crawl))
            if not feeds and not pending:
                out.rejects.append(Reject(url=str(source.homepage), source=source.name,
                                          stage="discover",
                                          reason="homepage names no feed and robots.txt "
                                                 "no sitemap"))
    for feed_url in feeds:
        content = _fetch_listing(feed_url, source, crawl, out, known)
        if content is not None:
            found.extend(parse_feed(content, feed_url))
    seen_maps: set[str] = set()
    while pending and len(seen_maps) < MAX_SITEMAPS:
        map_url = pending.pop(0)
        if map_url in seen_maps:
            continue
        seen_maps.add(map_url)
        content = _fetch_listing(map_url, source, crawl, out, known)
        if content is None:
            continue
        content = _gunzip(content, 50_000_000)
        if looks_like_feed(content):  # some sites point "sitemap" at their RSS feed
            found.extend(parse_feed(content, map_url))
            continue
        pages, children = parse_sitemap(content, map_url)
        found.extend(pages)
        pending.extend(children)
    out.items = select_items(found, now, timedelta(days=crawl.window_days),
                             source.max_items + len(source.urls))
    return out


def select_items(found: list[Discovered], now: datetime, window: timedelta,
                 limit: int) -> list[Discovered]:
    """Fresh items, one per normalised address, listed pages first, then newest first.

    A feed and a sitemap often name one page twice, once with utm_* parameters; the
    first spelling found is kept. Undated items keep their listing order, after dated ones.
    """
    unique: dict[str, Discovered] = {}
    for item in found:
        key = normalize_url(item.url)
        if not is_fresh(item, now, window):
            continue
        if key not in unique:
            unique[key] = item
        elif item.from_list and not unique[key].from_list:
            unique[key] = Discovered(unique[key].url, unique[key].published_at, from_list=True)
    ordered = sorted(unique.values(), key=lambda i: (
        not i.from_list, i.published_at is None,
        -(i.published_at.timestamp() if i.published_at else 0.0)))
    return ordered[:limit]

