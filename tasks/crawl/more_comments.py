"""Comments that are not on the article page itself: later comment pages, and comments served
as JSON from an endpoint the source's config describes.

The reading is pure (`comment_page_links`, `comments_from_json`); `fetch_more_comments` does
the fetching through tasks/crawl/fetch.py and returns comment records with the same stable ids the
page's own comments get.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from lxml import html as lxml_html

from schemas.config import CommentEndpoint, Crawl, Source
from schemas.errors import ParseError
from schemas.ids import join_url
from schemas.models import Comment, FetchRequest, FetchResult, ParsedComment, Reject
from tasks.crawl.fetch import HTML_TYPES, fetch_many
from tasks.extract import (
    comment_records,
    comment_time,
    comments_by_selectors,
    decode_html,
    extract_comments,
    parse_page,
    parse_tree,
)

MAX_COMMENT_PAGES = 20
JSON_TYPES = ("application/json", "text/json", "text/plain", "application/javascript")


@dataclass
class MoreComments:
    comments: list[Comment] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    fetches: list[FetchResult] = field(default_factory=list)
    # article id -> why some of its comments could not be read: its page is offered again
    incomplete: dict[str, str] = field(default_factory=dict)


def comment_page_links(html: bytes | str, url: str) -> list[str]:
    """Links to further pages of this article's comments (WordPress `comment-page-N` and
    `?cpage=N`, and `rel=next` links inside a comment section), in page order."""
    try:
        doc = lxml_html.fromstring(html)
    except (ValueError, lxml_html.etree.ParserError):
        return []
    here = urlsplit(url)
    found: list[str] = []
    for anchor in doc.iter("a"):
        href = anchor.get("href") or ""
        inside_comments = any(
            "comment" in (node.get("class", "") + " " + node.get("id", "")).lower()
            for node in anchor.iterancestors())
        paged = "comment-page-" in href or "cpage=" in href
        if not (paged or (inside_comments and "next" in (anchor.get("rel") or "").split())):
            continue
        joined = join_url(url, href)
        if joined is None:
            continue  # a malformed link: skipped, it never fails the article
        # WordPress reply links (`?replytocom=N`) repeat the page they are on: one fetch per
        # comment page, not one per reply link
        target = _without_replytocom(joined.split("#", 1)[0])
        parts = urlsplit(target)
        if parts.netloc == here.netloc and target != url.split("#", 1)[0] \
                and target not in found:
            found.append(target)
    return found[:MAX_COMMENT_PAGES]


def _without_replytocom(url: str) -> str:
    parts = urlsplit(url)
    if "replytocom" not in parts.query:
        return url
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                       if k != "replytocom"])
    return urlunsplit(parts._replace(query=query))


def _dig(data: Any, path: str) -> Any:
    for part in [p for p in path.split(".") if p]:
        if isinstance(data, Mapping):
            data = data.get(part)
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return None
    return data


def comments_from_json(payload: bytes | str, endpoint: CommentEndpoint,
                       now: datetime) -> list[ParsedComment]:
    """Comments out of a JSON answer, through the config's field mapping; relative times
    ("2 days ago") resolve against `now`."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return []
    items = _dig(data, endpoint.items) if endpoint.items else data
    comments = []
    for index, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, Mapping):
            continue
        body = _dig(item, endpoint.body)
        if not isinstance(body, str) or not body.strip():
            continue
        local = _dig(item, endpoint.id)
        parent = _dig(item, endpoint.parent)
        author = _dig(item, endpoint.author)
        when = _dig(item, endpoint.time)
        comments.append(ParsedComment(
            local_id=f"api-{local if local is not None else index}",
            author=str(author) if author is not None else None,
            body=" ".join(body.split()),
            posted_at=comment_time(str(when), now) if when is not None else None,
            parent_local_id=f"api-{parent}" if parent not in (None, "", 0) else None))
    return comments


def comments_from_answer(payload: bytes, endpoint: CommentEndpoint, source: Source,
                         now: datetime) -> list[ParsedComment]:
    """Comments of one endpoint answer: JSON items, or an HTML fragment (also inside JSON)."""
    fragment = _html_fragment(payload, endpoint)
    if fragment is None:
        return comments_from_json(payload, endpoint, now)
    if source.comments is not None:
        return comments_by_selectors(fragment, source.comments, now)[0]
    root = parse_tree(f"<html><body>{fragment}</body></html>")
    return extract_comments(root, [], now) if root is not None else []


def _html_fragment(payload: bytes, endpoint: CommentEndpoint) -> str | None:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return decode_html(payload)
    items = _dig(data, endpoint.items) if endpoint.items else data
    return items if isinstance(items, str) else None


def next_page(payload: bytes, endpoint: CommentEndpoint, current: str) -> str | None:
    """The URL of the endpoint's next page after this answer, if it names one."""
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        data = None
    if data is None or isinstance(_dig(data, endpoint.items) if endpoint.items else data, str):
        link = _load_more_link(payload if data is None else
                               str(_dig(data, endpoint.items) or "").encode())
        if link is None and data is not None and endpoint.next:
            link = _dig(data, endpoint.next)
    else:
        link = _dig(data, endpoint.next) if endpoint.next else None
    if link in (None, "", False, 0) or isinstance(link, (dict, list)):
        return None
    if endpoint.page_param:
        parts = urlsplit(current)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
                 if k != endpoint.page_param] + [(endpoint.page_param, str(link))]
        return urlunsplit(parts._replace(query=urlencode(query)))
    return join_url(current, str(link))


def _load_more_link(fragment: bytes) -> str | None:
    root = parse_tree(decode_html(fragment)) if fragment.strip() else None
    if root is None:
        return None
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        hint = f"{node.get('class', '')} {node.get('id', '')}".lower()
        if "next" in (node.get("rel") or "").split() or any(
                word in hint for word in ("load-more", "loadmore", "more-comments")):
            for attr in ("href", "data-href", "data-url", "data-next"):
                if node.get(attr):
                    return str(node.get(attr))
    return None


def endpoint_url(endpoint: CommentEndpoint, page_url: str, canonical: str | None,
                 article_id: str) -> str:
    return endpoint.url.format(url=quote(page_url, safe=""),
                               canonical=quote(canonical or page_url, safe=""),
                               article_id=article_id)


def fetch_more_comments(pages: Sequence[tuple[str, str, str | None, bytes]], source: Source,
                        crawl: Crawl, fetched_at: datetime) -> MoreComments:
    """Further comment pages and endpoint comments for (article id, url, canonical, html)."""
    out = MoreComments()
    follow = [(article_id, link) for article_id, url, _canonical, html in pages
              for link in comment_page_links(html, url)]
    for article_id, link, result in _fetched(out, follow, source, crawl, "comment page"):
        try:
            page = parse_page(result.content or b"", link, fetched_at=fetched_at,
                              encoding=result.encoding, comment_selectors=source.comments)
        except ParseError as exc:
            out.rejects.append(Reject(url=link, source=source.name, stage="parse",
                                      reason=f"comment page: {exc}"))
            out.incomplete.setdefault(article_id, f"comment page {link}: {exc}")
            continue
        out.comments.extend(comment_records(page.comments, article_id))
    if source.comments_api is not None:
        endpoint = source.comments_api
        calls = [(article_id, endpoint_url(endpoint, url, canonical, article_id))
                 for article_id, url, canonical, _ in pages]
        seen = {call for _, call in calls}
        # every page of an article's comments first, then their ids: a reply on page 2 finds
        # its parent on page 1
        found: dict[str, list[ParsedComment]] = {}
        for _page in range(endpoint.max_pages):  # "load more": one round per page
            following: list[tuple[str, str]] = []
            for article_id, call, result in _fetched(out, calls, source, crawl,
                                                     "comments endpoint",
                                                     accept=(*JSON_TYPES, *HTML_TYPES)):
                payload = result.content or b""
                found.setdefault(article_id, []).extend(
                    comments_from_answer(payload, endpoint, source, fetched_at))
                more = next_page(payload, endpoint, call)
                if more is not None and more not in seen:
                    seen.add(more)
                    following.append((article_id, more))
            if not following:
                break
            calls = following
        for article_id, comments in found.items():
            out.comments.extend(comment_records(comments, article_id))
    return out


def _fetched(out: MoreComments, targets: Sequence[tuple[str, str]], source: Source,
             crawl: Crawl, what: str, *, accept: Sequence[str] = HTML_TYPES
             ) -> Iterator[tuple[str, str, FetchResult]]:
    """(article id, url, result) of each target fetched with content; the fetches are kept
    in `out`, and each failure becomes a reject there."""
    if not targets:
        return
    results = fetch_many([FetchRequest(url=u, source=source.name) for _, u in targets], crawl,
                         accept=accept)
    out.fetches.extend(results)
    for (article_id, url), result in zip(targets, results, strict=True):
        if result.ok and result.content is not None:
            yield article_id, url, result
        else:
            out.rejects.append(Reject(url=url, source=source.name, stage="fetch",
                                      reason=f"{what}: {result.error}"))
            if result.status not in (404, 410):  # gone for good: nothing to come back for
                out.incomplete.setdefault(article_id, f"{what} {url}: {result.error}")
