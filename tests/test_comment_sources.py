"""Every kind of comment source, end to end: a real crawl of pages served on 127.0.0.1, loaded
into a real DuckDB file."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from schemas.config import Crawl, Source
from tasks.crawl import crawl_source
from tasks.store import LoadBatch, load_batch, query
from tests.local import LOCAL_SITE

CRAWL = Crawl(allow_private_addresses=LOCAL_SITE, obey_robots=False, window_days=3650)
BODY = "".join(f"<p>Paragraph {i} of a long enough article about export controls on chips, "
               f"with several sentences. Officials said the rules would tighten.</p>"
               for i in range(6))


def _page(title: str, comments: str = "", head: str = "") -> str:
    return (f"<html><head><title>{title}</title>{head}</head><body><article><h1>{title}</h1>"
            f"{BODY}</article>{comments}</body></html>")


def _wp(items: list[tuple[int, str, str, str | None]], nav: str = "") -> str:
    """WordPress comment markup: (id, author, text, parent id or None)."""
    def li(cid: int, author: str, text: str) -> str:
        children = "".join(li(c, a, t) for c, a, t, p in items if p == str(cid))
        return (f'<li class="comment" id="comment-{cid}"><article class="comment-body">'
                f'<footer class="comment-meta"><div class="comment-author vcard">'
                f'<b class="fn">{author}</b></div><div class="comment-metadata">'
                f'<time datetime="2026-11-2{cid % 9}T10:00:00+00:00">Nov</time></div></footer>'
                f'<div class="comment-content"><p>{text}</p></div></article>'
                + (f'<ol class="children">{children}</ol>' if children else "") + "</li>")
    top = "".join(li(c, a, t) for c, a, t, p in items if p is None or
                  p not in {str(i[0]) for i in items})
    return (f'<div id="comments" class="comments-area"><ol class="comment-list">{top}</ol>'
            f'{nav}</div>')


def _stored(tmp_path: Path, server: HTTPServer, source: Source) -> list[tuple[str, ...]]:
    db = tmp_path / "c.duckdb"
    batch = crawl_source(source, CRAWL, db, now=datetime(2026, 11, 29, tzinfo=UTC))
    load_batch(db, LoadBatch.of_pages("r1", [batch]))
    _, rows = query(db, "SELECT c.author, c.body, p.author FROM comments c "
                        "LEFT JOIN comments p ON p.comment_id = c.parent_id ORDER BY c.body")
    return rows


def test_paginated_wordpress_comments(tmp_path: Path, httpserver: HTTPServer) -> None:
    first = _wp([(1, "Ann", "First page comment.", None), (2, "Bob", "Reply to Ann.", "1")],
                nav='<nav class="comment-navigation"><a class="next" '
                    'href="/a.html?cpage=2#comments">Newer comments</a></nav>')
    second = _wp([(3, "Cy", "Second page comment.", None)],
                 nav='<nav class="comment-navigation"><a href="/a.html?cpage=1#comments">'
                     "Older comments</a></nav>")
    httpserver.expect_request("/a.html", query_string="cpage=2").respond_with_data(
        _page("Chips", second), content_type="text/html")
    httpserver.expect_request("/a.html", query_string="").respond_with_data(
        _page("Chips", first), content_type="text/html")
    source = Source(name="wp", urls=[httpserver.url_for("/a.html")])
    rows = _stored(tmp_path, httpserver, source)
    assert rows == [("Ann", "First page comment.", None), ("Bob", "Reply to Ann.", "Ann"),
                    ("Cy", "Second page comment.", None)]


def test_json_ld_comments(tmp_path: Path, httpserver: HTTPServer) -> None:
    data = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": "Chips",
            "comment": [{"@type": "Comment", "@id": "#c1", "text": "JSON-LD comment.",
                         "author": {"@type": "Person", "name": "Dee"},
                         "dateCreated": "2026-11-27T10:00:00Z",
                         "comment": [{"@type": "Comment", "@id": "#c2", "text": "Its reply.",
                                      "author": {"@type": "Person", "name": "Eve"}}]}]}
    head = f'<script type="application/ld+json">{json.dumps(data)}</script>'
    httpserver.expect_request("/b.html").respond_with_data(_page("Chips", head=head),
                                                           content_type="text/html")
    rows = _stored(tmp_path, httpserver, Source(name="ld", urls=[httpserver.url_for("/b.html")]))
    assert rows == [("Eve", "Its reply.", "Dee"), ("Dee", "JSON-LD comment.", None)]


def test_comments_from_a_json_endpoint(tmp_path: Path, httpserver: HTTPServer) -> None:
    page_url = httpserver.url_for("/c.html")
    httpserver.expect_request("/c.html").respond_with_data(_page("Chips"),
                                                           content_type="text/html")
    httpserver.expect_request("/api/thread", query_string={"page": page_url}).respond_with_json(
        {"data": {"posts": [
            {"key": 7, "user": {"name": "Flo"}, "message": "From the API.",
             "created": "2 days ago", "reply_to": None},
            {"key": 8, "user": {"name": "Gus"}, "message": "API reply.",
             "created": "2026-11-28T09:00:00Z", "reply_to": 7}]}})
    source = Source.model_validate({
        "name": "api", "urls": [page_url],
        "comments_api": {"url": httpserver.url_for("/api/thread") + "?page={url}",
                         "items": "data.posts", "id": "key", "author": "user.name",
                         "body": "message", "time": "created", "parent": "reply_to"}})
    rows = _stored(tmp_path, httpserver, source)
    assert rows == [("Gus", "API reply.", "Flo"), ("Flo", "From the API.", None)]
    _, times = query(tmp_path / "c.duckdb", "SELECT author, posted_at FROM comments "
                                            "ORDER BY author")
    assert times[0][1] is not None  # "2 days ago" resolved against the fetch time


def test_a_failing_endpoint_is_a_reject_and_the_page_stays(tmp_path: Path,
                                                          httpserver: HTTPServer) -> None:
    httpserver.expect_request("/d.html").respond_with_data(_page("Chips"),
                                                           content_type="text/html")
    httpserver.expect_request("/api/none").respond_with_data("gone", status=404)
    source = Source.model_validate({"name": "api", "urls": [httpserver.url_for("/d.html")],
                                    "comments_api": {"url": httpserver.url_for("/api/none")}})
    db = tmp_path / "d.duckdb"
    batch = crawl_source(source, CRAWL, db)
    assert len(batch.articles) == 1
    assert any("comments endpoint: HTTP 404" in r.reason for r in batch.rejects)


def test_a_comment_page_that_failed_is_read_on_the_next_night(tmp_path: Path,
                                                              httpserver: HTTPServer) -> None:
    # night 1: the article answers, its second comment page is down. Night 2: the article
    # would answer 304 to a conditional GET, so only a page stored as failed is fetched in
    # full again and has its comment pages followed
    first = _wp([(1, "Ann", "First page comment.", None)],
                nav='<nav class="comment-navigation"><a class="next" '
                    'href="/a.html?cpage=2#comments">Newer comments</a></nav>')
    second = _wp([(3, "Cy", "Second page comment.", None)])
    up = {"page2": False}

    def article(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(_page("Chips", first), content_type="text/html",
                        headers={"ETag": '"v1"'})

    def page2(request: Request) -> Response:
        if not up["page2"]:
            return Response("busy", status=503)
        return Response(_page("Chips", second), content_type="text/html")

    httpserver.expect_request("/a.html", query_string="cpage=2").respond_with_handler(page2)
    httpserver.expect_request("/a.html", query_string="").respond_with_handler(article)
    source = Source(name="wp", urls=[httpserver.url_for("/a.html")])
    db = tmp_path / "c.duckdb"
    crawl = Crawl(allow_private_addresses=LOCAL_SITE,
                  obey_robots=False, window_days=3650, retries=0)
    for night, run in enumerate(("r1", "r2")):
        up["page2"] = night == 1
        batch = crawl_source(source, crawl, db, now=datetime(2026, 11, 29, tzinfo=UTC))
        load_batch(db, LoadBatch.of_pages(run, [batch]))
        if night == 0:
            _, pages = query(db, "SELECT status, last_error FROM pages")
            assert pages[0][0] == "failed" and "comments incomplete" in pages[0][1]
    _, rows = query(db, "SELECT body FROM comments ORDER BY body")
    assert rows == [("First page comment.",), ("Second page comment.",)]
    _, pages = query(db, "SELECT status FROM pages")
    assert pages == [("ok",)]


def test_reply_links_do_not_fetch_a_comment_page_twice(tmp_path: Path,
                                                       httpserver: HTTPServer) -> None:
    """WordPress reply links (`?replytocom=N`) on comment page 2 name page 2 again: it is
    fetched once, and its comments stored once."""
    replies = "".join(f'<a class="comment-reply-link" href="/a.html?cpage=2&replytocom={n}'
                      f'#respond">Reply</a>' for n in (1, 2, 3))
    first = _wp([(1, "Ann", "First page comment.", None)],
                nav=f'<nav class="comment-navigation">{replies}</nav>')
    httpserver.expect_request("/a.html", query_string="cpage=2").respond_with_data(
        _page("Chips", _wp([(3, "Cy", "Second page comment.", None)])),
        content_type="text/html")
    httpserver.expect_request("/a.html", query_string="").respond_with_data(
        _page("Chips", first), content_type="text/html")
    rows = _stored(tmp_path, httpserver, Source(name="wp", urls=[httpserver.url_for("/a.html")]))
    assert rows == [("Ann", "First page comment.", None), ("Cy", "Second page comment.", None)]
    asked = [r.query_string.decode() for r, _ in httpserver.log if r.path == "/a.html"]
    assert sorted(asked) == ["", "cpage=2"]


def test_a_load_more_endpoint_is_followed_page_by_page(tmp_path: Path,
                                                       httpserver: HTTPServer) -> None:
    """A JSON endpoint answering a page of comments and a cursor for the next one."""
    page_url = httpserver.url_for("/e.html")
    httpserver.expect_request("/e.html").respond_with_data(_page("Chips"),
                                                           content_type="text/html")
    pages = {"": ([{"id": 1, "who": "Hal", "text": "Page one.", "parent": None}], "abc"),
             "abc": ([{"id": 2, "who": "Ida", "text": "Page two.", "parent": 1}], "def"),
             "def": ([{"id": 3, "who": "Jon", "text": "Page three.", "parent": None}], None)}

    def answer(request: Request) -> Response:
        items, cursor = pages[request.args.get("after", "")]
        return Response(json.dumps({"items": items, "paging": {"next": cursor}}),
                        content_type="application/json")

    httpserver.expect_request("/api/more").respond_with_handler(answer)
    source = Source.model_validate({
        "name": "more", "urls": [page_url],
        "comments_api": {"url": httpserver.url_for("/api/more") + "?post={article_id}",
                         "items": "items", "author": "who", "body": "text",
                         "parent": "parent", "next": "paging.next", "page_param": "after"}})
    rows = _stored(tmp_path, httpserver, source)
    assert rows == [("Hal", "Page one.", None), ("Jon", "Page three.", None),
                    ("Ida", "Page two.", "Hal")]


def test_a_load_more_endpoint_answering_html(tmp_path: Path, httpserver: HTTPServer) -> None:
    """An endpoint answering JSON that wraps an HTML fragment of comments, with a "load more"
    link in it; the comments are read like the page's own."""
    page_url = httpserver.url_for("/f.html")
    httpserver.expect_request("/f.html").respond_with_data(_page("Chips"),
                                                           content_type="text/html")
    more = '<a class="load-more" data-href="/api/html?page=2">Load more comments</a>'
    httpserver.expect_request("/api/html", query_string="page=2").respond_with_json(
        {"html": _wp([(5, "Lu", "From the second batch.", None)])})
    httpserver.expect_request("/api/html", query_string="page=1").respond_with_json(
        {"html": _wp([(4, "Kai", "From the first batch.", None)]) + more})
    source = Source.model_validate({
        "name": "html", "urls": [page_url],
        "comments_api": {"url": httpserver.url_for("/api/html") + "?page=1", "items": "html"}})
    rows = _stored(tmp_path, httpserver, source)
    assert rows == [("Kai", "From the first batch.", None), ("Lu", "From the second batch.", None)]
