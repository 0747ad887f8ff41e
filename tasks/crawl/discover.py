"""Discovery: which article URLs a source offers tonight.

Feeds are read with feedparser (RSS 0.9x/1.0/2.0, Atom); sitemaps, sitemap indexes and news
sitemaps (plain or gzipped) with lxml; a homepage's `<link rel="alternate">` points to its
feed, or else its robots.txt names its sitemaps. Items older than
the freshness window are dropped here, before anything is fetched; pages listed under `urls:`
are always kept.

Nothing here raises for a listing or an item: a feed or sitemap that answers with something
else (junk bytes, an HTML page), and an item or listing whose address cannot be fetched (an
invalid URL), each become a `discover` reject with its reason; the other items go on.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import feedparser
from dateutil import parser as dateparser
from lxml import etree
from lxml import html as lxml_html
from protego import Protego

from schemas.config import Crawl, Source
from schemas.ids import join_url, normalize_url
from schemas.models import FetchRequest, FetchResult, Listing, Reject
from tasks.crawl.fetch import FEED_TYPES, fetch_many

_FEED_TYPES = {"application/rss+xml", "application/atom+xml", "application/feed+json",
               "application/rdf+xml", "text/rss+xml", "text/atom+xml"}
# where sites keep a sitemap when neither the homepage nor robots.txt says
WELL_KNOWN_SITEMAPS = ("/sitemap.xml", "/sitemap_index.xml", "/sitemap-index.xml",
                       "/news-sitemap.xml", "/sitemap-news.xml")
_LOC_OPEN = re.compile(rb"<(?:[\w.-]+:)?loc\b[^>]*>")
_LOC_CLOSE = re.compile(rb"</(?:[\w.-]+:)?loc\s*>")
MAX_SITEMAPS = 50
_SITEMAP_ROOTS = {"urlset", "sitemapindex"}


class NotAListing(ValueError):
    """Content fetched as a feed or sitemap that is not one; the message says why."""


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


def url_problem(url: str) -> str | None:
    """Why a discovered address cannot be fetched, or None when it can."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises for a port that is not a number in range
    except ValueError as exc:
        return f"invalid URL: {exc}"
    if parts.scheme.lower() not in ("http", "https"):
        return f"invalid URL: scheme {parts.scheme or '(none)'!r} is not http or https"
    if not parts.hostname:
        return "invalid URL: no host"
    return None


def _resolve(base_url: str, link: str) -> str:
    """A link made absolute; one that cannot be (an invalid URL) is kept as written, for
    `url_problem` to reject with its reason."""
    return join_url(base_url, link) or link.strip()


def _looks_like_html(content: bytes) -> bool:
    return b"<html" in content[:2000].lower()


def parse_feed(content: bytes, base_url: str) -> list[Discovered]:
    """Entries of an RSS or Atom feed, with their dates.

    Raises `NotAListing` when the content is no feed at all (feedparser finds no feed
    version and no entries); a feed with no entries is fine. A feed with small faults
    (feedparser's `bozo`, e.g. an undefined entity) is still read.
    """
    feed = feedparser.parse(content)
    if not feed.get("version") and not feed.entries:
        if not content.strip():
            raise NotAListing("not an RSS/Atom feed: empty response")
        if _looks_like_html(content):
            named = find_feed_links(content, base_url)
            raise NotAListing("not an RSS/Atom feed: an HTML page" + (
                f" (it names the feed {named[0]})" if named else " naming no feed"))
        if feed.get("bozo") and feed.get("bozo_exception") is not None:
            raise NotAListing(f"not an RSS/Atom feed: {feed['bozo_exception']}")
        raise NotAListing("not an RSS/Atom feed: no rss, feed or RDF root element")
    items = []
    for entry in feed.entries:
        link = entry.get("link")
        if not link:
            continue
        stamp = entry.get("published_parsed") or entry.get("updated_parsed")
        when = datetime(*stamp[:6]).replace(tzinfo=UTC) if stamp else None
        items.append(Discovered(url=_resolve(base_url, link), published_at=when))
    return items


def looks_like_feed(content: bytes) -> bool:
    head = content[:2000].lstrip().lower()
    return b"<rss" in head or b"<feed" in head or b"<rdf:rdf" in head


SITEMAP_MAX_BYTES = 10_000_000  # unpacked, when no crawl settings say otherwise


def _gunzip(content: bytes, limit: int) -> bytes:
    """A gzipped sitemap (sitemap.xml.gz) unpacked; `NotAListing` past `limit` bytes."""
    if not content.startswith(b"\x1f\x8b"):
        return content
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(content, limit + 1)
    except zlib.error:
        return content
    if len(out) > limit:
        raise NotAListing(f"too large: over {limit} bytes unpacked (crawl.max_bytes)")
    return out


def parse_sitemap(content: bytes, base_url: str, *, max_bytes: int = SITEMAP_MAX_BYTES,
                  limit: int | None = None) -> tuple[list[Discovered], list[str]]:
    """(pages, child sitemaps) of a sitemap or sitemap index, news:publication_date first.

    Raises `NotAListing` when the content is not a `<urlset>` or `<sitemapindex>` (junk
    bytes, an HTML page), or unpacks to more than `max_bytes`; an empty one is fine. At
    most `limit` pages and children are read.
    """
    content = _gunzip(content, max_bytes)
    # blank lines or a BOM before `<?xml` (common in generated sitemaps) are not fatal
    content = content.lstrip().removeprefix(b"\xef\xbb\xbf").lstrip()
    if not content:
        raise NotAListing("not a sitemap: empty response")
    if not content.startswith(b"<"):
        return _text_sitemap(content, base_url), []
    try:
        root = etree.fromstring(content, parser=etree.XMLParser(recover=True,
                                                                resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise NotAListing(f"not a sitemap: {exc}") from exc
    if root is None:
        raise NotAListing("not a sitemap: " + ("an HTML page" if _looks_like_html(content)
                                               else "no XML root element"))
    if not isinstance(root.tag, str) or etree.QName(root).localname not in _SITEMAP_ROOTS:
        name = etree.QName(root).localname if isinstance(root.tag, str) else "?"
        raise NotAListing(f"not a sitemap: root element <{name}>")
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
        if limit is not None and len(pages) + len(children) >= limit:
            break
        loc = _resolve(base_url, loc)
        if tag == "sitemap":
            children.append(loc)
        elif tag == "url":
            dates = {etree.QName(c).localname: c.text for c in element.iter()
                     if isinstance(c.tag, str) and c.text}
            when = _parse_date(dates.get("publication_date")) or _parse_date(dates.get("lastmod"))
            pages.append(Discovered(url=loc, published_at=when))
    if _last_loc_cut(content):
        # a sitemap cut off inside its last <loc>: that address is a fragment, not a page
        if children and (not pages or _last_tag_is(root, "sitemap")):
            children.pop()
        elif pages:
            pages.pop()
    return pages, children


def _last_loc_cut(content: bytes) -> bool:
    """Whether the file ends inside a <loc> element (a download cut short)."""
    opened = list(_LOC_OPEN.finditer(content))
    return bool(opened) and _LOC_CLOSE.search(content, opened[-1].end()) is None


def _last_tag_is(root: etree._Element, name: str) -> bool:
    last = [e for e in root if isinstance(e.tag, str)]
    return bool(last) and etree.QName(last[-1]).localname == name


def _text_sitemap(content: bytes, base_url: str) -> list[Discovered]:
    """A sitemap in plain text, one absolute URL a line (sitemaps.org allows it).

    Raises `NotAListing` unless every non-blank line is one http(s) URL; a last line cut
    short (no line break at the end of a file that fills its lines) is kept only if it is
    a whole URL, which the test cannot tell: it is dropped when the file does not end in a
    line break and other lines do."""
    lines = [line.strip() for line in content.decode("utf-8", errors="replace").splitlines()]
    urls = [line for line in lines if line]
    if not urls or not all(re.fullmatch(r"https?://\S+", u, flags=re.IGNORECASE) for u in urls):
        raise NotAListing("not a sitemap: " + ("an HTML page" if _looks_like_html(content)
                                               else "no XML root element"))
    if len(urls) > 1 and not content.endswith((b"\n", b"\r")):
        urls.pop()  # the file stops mid-line: the last address may be cut
    return [Discovered(url=_resolve(base_url, u)) for u in urls]


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
            links.append(_resolve(base_url, link.get("href", "")))
    return links


def is_fresh(item: Discovered, now: datetime, window: timedelta) -> bool:
    """Undated items are kept: a feed that gives no dates still deserves to be read."""
    return item.from_list or item.published_at is None or item.published_at >= now - window


def _fetch_listing(url: str, source: Source, crawl: Crawl, out: Discovery,
                   known: Mapping[str, Listing]) -> bytes | None:
    """A listing's content; an unchanged one (304) is served from the last fetch."""
    got = _fetch_listing_at(url, source, crawl, out, known)
    return got[0] if got is not None else None


def _fetch_listing_at(url: str, source: Source, crawl: Crawl, out: Discovery,
                      known: Mapping[str, Listing], *, quiet: bool = False
                      ) -> tuple[bytes, str] | None:
    """(content, base URL for its relative links): the `Content-Location` header resolved
    against the URL when the answer has one, else the URL itself. `quiet`: a failure is
    no reject (a guess at a well-known address)."""
    problem = url_problem(url)
    if problem is not None:  # fetching it would raise: a reject, not a request
        _reject(out, url, source, problem)
        return None
    if len(out.fetches) >= crawl.max_listing_fetches:
        _reject(out, url, source, f"not fetched: over {crawl.max_listing_fetches} feeds and "
                                  "sitemaps for this source tonight (crawl.max_listing_fetches)")
        return None
    before = known.get(url)
    request = FetchRequest(url=url, source=source.name,
                           etag=before.etag if before else None,
                           last_modified=before.last_modified if before else None)
    result = fetch_many([request], crawl, accept=FEED_TYPES)[0]
    out.fetches.append(result)
    base = url
    if result.content_location:
        base = join_url(result.final_url or url, result.content_location) or url
    if result.not_modified and before is not None:
        return before.content, base
    if result.ok and result.content is not None and (result.etag or result.last_modified):
        out.listings[url] = Listing(result.etag, result.last_modified, result.content)
    if not result.ok or result.content is None:
        if not quiet:
            _reject(out, url, source, result.error or "no content")
        return None
    return result.content, base


def _robots_sitemaps(homepage: str, source: Source, crawl: Crawl, out: Discovery) -> list[str]:
    """`Sitemap:` lines of the homepage origin's robots.txt (a fallback, so no reject)."""
    parts = urlsplit(homepage)
    url = f"{parts.scheme}://{parts.netloc}/robots.txt"
    result = fetch_many([FetchRequest(url=url, source=source.name)],
                        crawl.model_copy(update={"obey_robots": False}), accept=FEED_TYPES)[0]
    out.fetches.append(result)
    if not result.ok or result.content is None:
        return []
    robots = Protego.parse(result.content.decode("utf-8", errors="replace"))
    return [_resolve(url, s) for s in robots.sitemaps][:MAX_SITEMAPS]


def _well_known_sitemaps(homepage: str, source: Source, crawl: Crawl, out: Discovery,
                         known: Mapping[str, Listing],
                         prefetched: dict[str, tuple[bytes, str]]) -> list[str]:
    """The first well-known sitemap address of the homepage's origin that answers with a
    sitemap; its content is kept in `prefetched` so it is not fetched twice."""
    parts = urlsplit(homepage)
    for path in WELL_KNOWN_SITEMAPS:
        url = f"{parts.scheme}://{parts.netloc}{path}"
        got = _fetch_listing_at(url, source, crawl, out, known, quiet=True)
        if got is None:
            continue
        try:
            parse_sitemap(got[0], got[1], max_bytes=crawl.max_bytes, limit=1)
        except NotAListing:
            continue
        prefetched[url] = got
        return [url]
    return []


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
    prefetched: dict[str, tuple[bytes, str]] = {}
    if source.homepage:
        homepage = str(source.homepage)
        rejected = len(out.rejects)
        page = _fetch_listing(homepage, source, crawl, out, known)
        if page is not None:
            named = find_feed_links(page, homepage)
            # the first feed that can be fetched; if none can, the first is rejected
            feeds.extend([next((u for u in named if url_problem(u) is None), named[0])]
                         if named else [])
        if not feeds and not pending:
            # no feed named, or no homepage at all (a 404): the sitemaps robots.txt names,
            # else a sitemap at a well-known address
            pending.extend(_robots_sitemaps(homepage, source, crawl, out))
            if not pending:
                pending.extend(_well_known_sitemaps(homepage, source, crawl, out, known,
                                                    prefetched))
            if pending:
                del out.rejects[rejected:]  # the homepage's failure cost nothing
            elif page is not None:
                _reject(out, homepage, source,
                        "homepage names no feed, robots.txt no sitemap, and no sitemap at "
                        "the well-known addresses")
    # what one source's listings may name: a multiple of what is kept, so a hostile
    # sitemap of millions of addresses costs neither memory nor time
    cap = source.max_items * crawl.max_listed_per_item + len(source.urls)
    for feed_url in feeds:
        got = _fetch_listing_at(feed_url, source, crawl, out, known)
        if got is None:
            continue
        try:
            found.extend(parse_feed(*got))
        except NotAListing as exc:
            _reject(out, feed_url, source, str(exc))
    seen_maps: set[str] = set()
    while pending and len(seen_maps) < MAX_SITEMAPS and len(found) < cap:
        map_url = pending.pop(0)
        if map_url in seen_maps:
            continue
        seen_maps.add(map_url)
        got = prefetched.pop(map_url, None) or _fetch_listing_at(map_url, source, crawl, out,
                                                                 known)
        if got is None:
            continue
        base = got[1]
        try:
            content = _gunzip(got[0], crawl.max_bytes)
            if looks_like_feed(content):  # some sites point "sitemap" at their RSS feed
                found.extend(parse_feed(content, base))
                continue
            pages, children = parse_sitemap(content, base, max_bytes=crawl.max_bytes,
                                            limit=cap - len(found) + 1)
        except NotAListing as exc:
            _reject(out, map_url, source, str(exc))
            continue
        del content, got
        found.extend(pages)
        pending.extend(children[:MAX_SITEMAPS])
    if len(found) > cap or (pending and len(found) >= cap):
        _reject(out, str(source.sitemap or source.feed or source.homepage or ""), source,
                f"listings cut: over {cap} addresses ({crawl.max_listed_per_item} x "
                "max_items, crawl.max_listed_per_item); the rest is not read tonight")
        found = found[:cap]
    found = _fetchable(found, source, out)
    # the night's budget (max_items) is spent by tasks.crawl.budget: here only the bound on
    # the work, and what is over it waits for a later night
    out.items = select_items(found, now, timedelta(days=crawl.window_days), cap)
    return out


def _reject(out: Discovery, url: str, source: Source, reason: str) -> None:
    out.rejects.append(Reject(url=url, source=source.name, stage="discover", reason=reason))


def _fetchable(found: list[Discovered], source: Source, out: Discovery) -> list[Discovered]:
    """The items whose address can be fetched; each other one is a reject with its reason."""
    kept = []
    for item in found:
        problem = url_problem(item.url)
        if problem is None:
            kept.append(item)
        else:
            _reject(out, item.url, source, problem)
    return kept


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

