"""Fetching against a real HTTP server on 127.0.0.1 that produces each fault."""

from __future__ import annotations

import email.utils
import gzip
import itertools
import re
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from schemas.config import Crawl
from schemas.models import FetchRequest, FetchResult
from tasks.crawl.fetch import backoff_delay, fetch_many, fetch_url, make_client, user_agent
from tests.local import LOCAL_SITE

HTML = "<html><head><title>t</title></head><body><p>hello</p></body></html>"


def _get(url: str, **kwargs: Any) -> FetchResult:
    with make_client(allow_private=LOCAL_SITE) as client:
        return fetch_url(client, FetchRequest(url=url, source="s"), backoff_s=0.01, **kwargs)


def test_ok_page_with_charset_and_validators(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data(
        HTML, content_type="text/html; charset=GBK",
        headers={"ETag": '"v1"', "Last-Modified": "Sat, 28 Nov 2026 10:00:00 GMT"})
    result = _get(httpserver.url_for("/a"))
    assert result.ok and result.status == 200
    assert result.content == HTML.encode() and result.encoding == "gbk"
    assert result.etag == '"v1"' and (result.last_modified or "").startswith("Sat")


def test_conditional_get_gives_not_modified(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304)
        return Response(HTML, content_type="text/html", headers={"ETag": '"v1"'})

    httpserver.expect_request("/a").respond_with_handler(handler)
    with make_client(allow_private=LOCAL_SITE) as client:
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
    with make_client(allow_private=LOCAL_SITE) as client:
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
    assert result.gone and len(httpserver.log) == 1


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
    crawl = Crawl(allow_private_addresses=LOCAL_SITE, timeout_s=0.5, retries=1, obey_robots=False)
    started = time.monotonic()
    [result] = fetch_many([FetchRequest(url=httpserver.url_for("/slow"), source="s")], crawl)
    assert not result.ok and "timed out" in (result.error or "")
    assert time.monotonic() - started < 3


def test_robots_txt_is_obeyed_and_user_agent_is_honest(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    httpserver.expect_request("/public").respond_with_data(HTML, content_type="text/html")
    crawl = Crawl(allow_private_addresses=LOCAL_SITE, user_agent_contact="ops@example.org")
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


# -- deadlines, backoff and politeness ---------------------------------------------------------


@pytest.fixture
def threaded_server() -> Iterator[HTTPServer]:
    """A server that answers requests in parallel, to observe concurrency and slow bodies."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


def test_a_body_trickling_forever_is_cut_by_the_page_deadline(
        threaded_server: HTTPServer) -> None:
    def trickle(request: Request) -> Response:
        def body() -> Iterator[bytes]:
            yield b"<html><body><p>"
            while True:  # a byte every 50 ms: no single read ever times out
                time.sleep(0.05)
                yield b"x"
        return Response(body(), content_type="text/html")

    threaded_server.expect_request("/drip").respond_with_handler(trickle)
    started = time.monotonic()
    result = _get(threaded_server.url_for("/drip"), deadline_s=1.0)
    elapsed = time.monotonic() - started
    assert not result.ok and "deadline" in (result.error or "")
    assert 0.9 < elapsed < 2.0
    assert len(threaded_server.log) == 1  # a deadline is not retried within the run


@pytest.fixture
def header_trickler() -> Iterator[str]:
    """A raw socket server that sends response headers one line every 100 ms, forever."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                conn.recv(65536)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\n")
                    while not stop.is_set():
                        conn.sendall(b"X-Slow: 1\r\n")
                        time.sleep(0.1)
                except OSError:
                    continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join(2)
    listener.close()


def test_headers_trickling_forever_are_cut_by_the_page_deadline(header_trickler: str) -> None:
    started = time.monotonic()
    result = _get(header_trickler, deadline_s=1.0)
    assert not result.ok and "deadline" in (result.error or "")
    assert time.monotonic() - started < 2.0


def test_read_timeout_is_retried_then_recorded(threaded_server: HTTPServer) -> None:
    calls: list[float] = []

    def stall(request: Request) -> Response:
        calls.append(time.monotonic())
        time.sleep(1.0)
        return Response(HTML, content_type="text/html")

    threaded_server.expect_request("/stall").respond_with_handler(stall)
    with make_client(timeout=httpx.Timeout(0.3),
                     allow_private=LOCAL_SITE) as client:
        result = fetch_url(client, FetchRequest(url=threaded_server.url_for("/stall"),
                                                source="s"), retries=1, backoff_s=0.01)
    assert not result.ok and "timed out (ReadTimeout)" in (result.error or "")
    assert len(calls) == 2  # the first try and one retry


def test_503_with_retry_after_date_is_honoured(httpserver: HTTPServer) -> None:
    later = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=3),
                                        usegmt=True)
    httpserver.expect_ordered_request("/a").respond_with_data(
        "busy", status=503, headers={"Retry-After": later})
    httpserver.expect_ordered_request("/a").respond_with_data(HTML, content_type="text/html")
    waits: list[float] = []
    with make_client(allow_private=LOCAL_SITE) as client:
        result = fetch_url(client, FetchRequest(url=httpserver.url_for("/a"), source="s"),
                           sleep=waits.append)
    assert result.ok and len(waits) == 1 and 1.0 < waits[0] <= 3.0


def test_a_retry_after_beyond_the_limit_gives_up_for_this_run(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data(
        "later", status=429, headers={"Retry-After": "3600"})
    waits: list[float] = []
    with make_client(allow_private=LOCAL_SITE) as client:
        result = fetch_url(client, FetchRequest(url=httpserver.url_for("/a"), source="s"),
                           sleep=waits.append)
    assert not result.ok and result.status == 429 and waits == []


def test_backoff_grows_exponentially_with_jitter(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/a").respond_with_data("down", status=500)
    waits: list[float] = []
    with make_client(allow_private=LOCAL_SITE) as client:
        result = fetch_url(client, FetchRequest(url=httpserver.url_for("/a"), source="s"),
                           retries=3, backoff_s=1.0, sleep=waits.append)
    assert not result.ok and len(waits) == 3 and len(httpserver.log) == 4
    for attempt, wait in enumerate(waits):
        assert 0.5 * 2 ** attempt <= wait <= 1.5 * 2 ** attempt
    assert len({round(backoff_delay(1, 1.0), 6) for _ in range(20)}) > 1  # jittered


def test_connection_errors_are_retried(httpserver: HTTPServer) -> None:
    port = httpserver.port
    httpserver.stop()  # nothing listens: connection refused, retried, then recorded
    waits: list[float] = []
    with make_client(allow_private=LOCAL_SITE) as client:
        result = fetch_url(client, FetchRequest(url=f"http://127.0.0.1:{port}/a", source="s"),
                           retries=2, sleep=waits.append)
    httpserver.start()
    assert not result.ok and "connection failed" in (result.error or "") and len(waits) == 2


def test_redirect_limit(httpserver: HTTPServer) -> None:
    for i in range(12):
        httpserver.expect_request(f"/r{i}").respond_with_data(
            "", status=302, headers={"Location": f"/r{i + 1}"})
    result = _get(httpserver.url_for("/r0"))
    assert not result.ok and "too many redirects" in (result.error or "")
    assert len(httpserver.log) == 11  # the first request and ten redirects


def test_wire_bytes_are_counted_for_compressed_pages(httpserver: HTTPServer) -> None:
    body = HTML * 200
    httpserver.expect_request("/gz").respond_with_data(
        gzip.compress(body.encode()), content_type="text/html",
        headers={"Content-Encoding": "gzip"})
    result = _get(httpserver.url_for("/gz"))
    assert result.ok and result.content == body.encode()
    assert 0 < result.bytes < len(body) // 5


def _recorder(server: HTTPServer, delay_s: float = 0.15) -> list[tuple[float, float]]:
    """Every request's (start, end) time; each answer takes `delay_s`."""
    spans: list[tuple[float, float]] = []

    def handler(request: Request) -> Response:
        start = time.monotonic()
        time.sleep(delay_s)
        spans.append((start, time.monotonic()))
        return Response(HTML, content_type="text/html")

    server.expect_request(re.compile(r"/page/\d+")).respond_with_handler(handler)
    return spans


def _max_in_flight(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    return peak


def _requests(server: HTTPServer, n: int) -> list[FetchRequest]:
    return [FetchRequest(url=server.url_for(f"/page/{i}"), source="s") for i in range(n)]


def test_per_host_concurrency_is_limited(threaded_server: HTTPServer) -> None:
    spans = _recorder(threaded_server)
    crawl = Crawl(allow_private_addresses=LOCAL_SITE, per_host_concurrency=2, obey_robots=False)
    results = fetch_many(_requests(threaded_server, 8), crawl, workers=8)
    assert all(r.ok for r in results)
    assert _max_in_flight(spans) == 2  # parallel, but never more than two at once


def test_per_host_delay_spaces_requests(threaded_server: HTTPServer) -> None:
    spans = _recorder(threaded_server, delay_s=0.0)
    crawl = Crawl(allow_private_addresses=LOCAL_SITE,
                  per_host_concurrency=4, per_host_delay_s=0.2, obey_robots=False)
    fetch_many(_requests(threaded_server, 5), crawl)
    starts = sorted(s for s, _ in spans)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) == 5 and min(gaps) >= 0.18


def test_robots_crawl_delay_is_honoured(threaded_server: HTTPServer) -> None:
    threaded_server.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nCrawl-delay: 0.3\n", content_type="text/plain")
    spans = _recorder(threaded_server, delay_s=0.0)
    fetch_many(_requests(threaded_server, 4), Crawl(allow_private_addresses=LOCAL_SITE,
                                                    per_host_concurrency=4))
    starts = sorted(s for s, _ in spans)
    assert len(starts) == 4
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.28


def test_retry_after_slows_the_whole_host(threaded_server: HTTPServer) -> None:
    starts: list[tuple[str, float]] = []
    first = threading.Event()

    def handler(request: Request) -> Response:
        starts.append((request.path, time.monotonic()))
        if request.path == "/page/0" and not first.is_set():
            first.set()
            return Response("slow down", status=429, headers={"Retry-After": "1"})
        return Response(HTML, content_type="text/html")

    threaded_server.expect_request(re.compile(r"/page/\d+")).respond_with_handler(handler)
    crawl = Crawl(allow_private_addresses=LOCAL_SITE, per_host_concurrency=1, obey_robots=False)
    results = fetch_many(_requests(threaded_server, 2), crawl)
    assert all(r.ok for r in results)
    times = [t for _, t in starts]
    assert len(times) == 3 and times[1] - times[0] >= 0.95 and times[2] - times[0] >= 0.95


def test_unreachable_robots_txt_means_nothing_is_fetched(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("oops", status=503)
    httpserver.expect_request("/public").respond_with_data(HTML, content_type="text/html")
    [result] = fetch_many([FetchRequest(url=httpserver.url_for("/public"), source="s")],
                          Crawl(allow_private_addresses=LOCAL_SITE, retries=0))
    assert not result.ok and "robots.txt unavailable" in (result.error or "")
    assert all(r.path != "/public" for r, _ in httpserver.log)


def test_missing_robots_txt_allows_everything(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data("no", status=404)
    httpserver.expect_request("/public").respond_with_data(HTML, content_type="text/html")
    [result] = fetch_many([FetchRequest(url=httpserver.url_for("/public"), source="s")],
                          Crawl(allow_private_addresses=LOCAL_SITE))
    assert result.ok


# -- politeness across redirects and failing hosts (session 5) --------------------------------


def test_a_redirect_into_a_disallowed_path_is_refused(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /private/\n", content_type="text/plain")
    httpserver.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": "/private/p.html"})
    httpserver.expect_request("/private/p.html").respond_with_data(HTML,
                                                                   content_type="text/html")
    [result] = fetch_many([FetchRequest(url=httpserver.url_for("/moved"), source="s")],
                          Crawl(allow_private_addresses=LOCAL_SITE, retries=0))
    assert not result.ok and "disallowed by robots.txt" in (result.error or "")
    assert all(r.path != "/private/p.html" for r, _ in httpserver.log)


def test_a_long_retry_after_closes_the_host_for_the_run(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/busy").respond_with_data(
        "later", status=429, headers={"Retry-After": "3600"})
    httpserver.expect_request(re.compile("/p.*")).respond_with_data(HTML,
                                                                    content_type="text/html")
    crawl = Crawl(allow_private_addresses=LOCAL_SITE,
                  retries=1, obey_robots=False, per_host_concurrency=1)
    urls = ["/busy", "/p1", "/p2"]
    results = fetch_many([FetchRequest(url=httpserver.url_for(u), source="s") for u in urls],
                         crawl, workers=1)
    assert [r.ok for r in results] == [False, False, False]
    assert "Retry-After" in (results[1].error or "")
    assert [r.path for r, _ in httpserver.log] == ["/busy"]  # the others were not asked


def test_a_host_failing_every_page_is_given_up_for_the_run(httpserver: HTTPServer) -> None:
    httpserver.expect_request(re.compile("/p.*")).respond_with_data("down", status=503)
    crawl = Crawl(allow_private_addresses=LOCAL_SITE,
                  retries=0, obey_robots=False, per_host_concurrency=1)
    results = fetch_many([FetchRequest(url=httpserver.url_for(f"/p{i}"), source="s")
                          for i in range(10)], crawl, workers=1)
    assert not any(r.ok for r in results)
    assert len(httpserver.log) == 3  # then the host is closed: retried next run
    assert "host failing" in (results[-1].error or "")


def test_robots_txt_in_an_odd_content_type_allows_everything(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nDisallow: /\n", content_type="text/x-robots")
    httpserver.expect_request("/a").respond_with_data(HTML, content_type="text/html")
    [result] = fetch_many([FetchRequest(url=httpserver.url_for("/a"), source="s")],
                      Crawl(allow_private_addresses=LOCAL_SITE))
    assert result.ok  # unreadable as robots.txt: not a reason to crawl nothing


def test_a_retry_waits_for_the_crawl_delay(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/robots.txt").respond_with_data(
        "User-agent: *\nCrawl-delay: 1\n", content_type="text/plain")
    seen: list[float] = []

    def flaky(request: Request) -> Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return Response("busy", status=503)
        return Response(HTML, content_type="text/html")

    httpserver.expect_request("/flaky").respond_with_handler(flaky)
    [result] = fetch_many([FetchRequest(url=httpserver.url_for("/flaky"), source="s")],
                          Crawl(allow_private_addresses=LOCAL_SITE, retries=1))
    assert result.ok and len(seen) == 2
    assert seen[1] - seen[0] >= 0.99  # the backoff (0.25-0.75 s) stretched to Crawl-delay
