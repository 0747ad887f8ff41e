"""Fetching against a real HTTP server on 127.0.0.1 that produces each fault."""

from __future__ import annotations

import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from schemas.config import Crawl
from schemas.models import FetchRequest
from tasks.fetch import fetch_many, fetch_url, is_gone, make_client, user_agent

HTML = "<html><head><title>t</title></head><body><p>hello</p></body></html>"


def _get(url: str, **kwargs: object):
    with make_client() as client:
        return fetch_url(client, FetchRequest(url=url, source="s"), backoff_s=0.01, **kwargs)


def test_ok_page_with_charset_and_validators(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data(
        HTML, content_type="text/html; charset=GBK",
        headers={"ETag": '"v1"', "Last-Modified": "Sat, 28 Nov 2026 10:00:00 GMT"})
    result = _get(httpserver.url_for("/a"))
    assert result.ok and result.status == 200
    assert result.content == HTML.encode() and result.encoding == "gbk"
    assert result.etag == '"v1"' and result.last_modified.startswith("Sat")


def test_conditional_get_gives_not_modified(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response(HTML, content_type="text/html", headers={"ETag": '"v1"'})

    httpserver.expect_request("/a").respond_with_handler(handler)
    with make_client() as client:
        result = fetch_url(client, FetchRequest(url=httpserver.url_for("/a"), source="s",
                                                etag='"v1"'))
    assert result.ok and result.not_modified and result.content is None


def test_5xx_is_retried_then_succeeds(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/a").respond_with_data("down", status=503)
    httpserver.expect_ordered_request("/a").respond_with_data("down", status=500)
    httpserver.expect_ordered_request("/a").respond_with_data(HTML, content_type="text/html")
    result = _get(httpserver.url_for("/a"))
    assert result.ok and result.content == HTML.encode()


def test_retry_after_is_honoured(httpserver: HTTPServer) -> None:
    httpserver.expect_ordered_request("/a").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "1"})
    httpserver.expect_ordered_request("/a").respond_with_data(HTML, content_type="text/html")
    waits: list[float] = []
    with make_client() as client:
        result = fetch_url(client, FetchRequest(url=httpserver.url_for("/a"), source="s"),
                           sleep=waits.append)
    assert result.ok and waits == [1.0]


def test_retries_give_up_with_the_reason(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("down", status=502)
    result = _get(httpserver.url_for("/a"), retries=2)
    assert not result.ok and result.status == 502 and result.error == "HTTP 502"
    assert len(httpserver.log) == 3


@pytest.mark.parametrize("status", [404, 410])
def test_404_and_410_are_gone_without_retry(httpserver: HTTPServer, status: int) -> None:
    httpserver.expect_request("/a").respond_with_data("no", status=status)
    result = _get(httpserver.url_for("/a"))
    assert is_gone(result) and len(httpserver.log) == 1


def test_size_cap_streams_and_stops(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/big").respond_with_data("x" * 50_000, content_type="text/html")
    result = _get(httpserver.url_for("/big"), max_bytes=10_000)
    assert not result.ok and "too large" in (result.error or "")


def test_content_type_is_checked(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/pdf").respond_with_data(b"%PDF", content_type="application/pdf")
    result = _get(httpserver.url_for("/pdf"))
    assert not result.ok and "application/pdf" in (result.error or "")


def test_redirect_loop_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("", status=302,
                                                      headers={"Location": "/b"})
    httpserver.expect_request("/b").respond_with_data("", status=302,
                                                      headers={"Location": "/a"})
    result = _get(httpserver.url_for("/a"))
    assert not result.ok and "redirects" in (result.error or "")


def test_redirect_records_final_url(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/old").respond_with_data("", status=301,
                                                        headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data(HTML, content_type="text/html")
    result = _get(httpserver.url_for("/old"))
    assert result.ok and result.final_url == httpserver.url_for("/new")


def test_a_server_that_never_answers_cannot_stall_the_run(httpserver: HTTPServer) -> None:
    def hang(request: Request) -> Response:
        time.sleep(3)
        return Response(HTML, content_type="text/html")

    httpserver.expect_request("/slow").respond_with_handler(hang)
    crawl = Crawl(timeout_s=0.5, retries=1, obey_robots=False)
    started = time.monotonic()
    [result] = fetch_many([FetchRequest(url=httpserver.url_for("/slow"), source="s")], crawl)
    assert not result.ok and "timed out" in (result.error or "")
    assert time.monotonic() - started < 3


def test_robots_txt_is_obeyed_and_user_agent_is_honest(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    httpserver.expect_request("/public").respond_with_data(HTML, content_type="text/html")
    crawl = Crawl(user_agent_contact="ops@example.org")
    results = fetch_many([FetchRequest(url=httpserver.url_for("/private/x"), source="s"),
                          FetchRequest(url=httpserver.url_for("/public"), source="s")], crawl)
    assert not results[0].ok and results[0].error == "disallowed by robots.txt"
    assert results[1].ok
    agents = {r.headers.get("User-Agent") for r, _ in httpserver.log
              if r.path in ("/robots.txt", "/public")}
    assert agents == {user_agent("ops@example.org")}
    assert "ops@example.org" in user_agent("ops@example.org")
    assert all(r.path != "/private/x" for r, _ in httpserver.log)
    assert sum(r.path == "/robots.txt" for r, _ in httpserver.log) == 1


def test_connection_refused_is_a_recorded_failure() -> None:
    result = _get("http://127.0.0.1:9/nothing-listens-here", retries=1)
    assert not result.ok and "connection failed" in (result.error or "")
