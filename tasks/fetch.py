"""Fetching pages politely: one HTTP client factory, retries, robots.txt, per-host limits.

httpx retries only failed connects on its own; status-based retries with backoff, jitter and
Retry-After are a dozen lines here rather than another dependency (tenacity would not know
about Retry-After either). robots.txt is read with protego, Scrapy's parser.

Every page has a whole-page deadline, retries included. httpx only bounds each single read,
so a server that trickles a byte a second would never time out; the client's network
backend is wrapped so that every socket read and write waits at most until the deadline of
the page the calling thread is fetching (`_DeadlineBackend`).
"""

from __future__ import annotations

import email.utils
import random
import ssl
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
from protego import Protego

from schemas.config import Crawl
from schemas.errors import FetchError, PermanentFetchError, TransientFetchError
from schemas.models import FetchRequest, FetchResult

USER_AGENT = "policywatch/0.1 (+https://github.com/policywatch/policywatch)"
DEFAULT_TIMEOUT = httpx.Timeout(20.0, connect=10.0)
HTML_TYPES = ("text/html", "application/xhtml+xml")
FEED_TYPES = (
    "application/rss+xml", "application/atom+xml", "application/xml", "text/xml",
    "application/rdf+xml", "application/feed+json", "text/plain", *HTML_TYPES,
    # what feedparser also reads as feeds: the text/ spellings, DTD and external entities
    "text/rss+xml", "text/atom+xml", "application/xml-dtd",
    "text/xml-external-parsed-entity", "application/xml-external-parsed-entity",
    # gzipped sitemaps (sitemap.xml.gz) come under these
    "application/gzip", "application/x-gzip", "application/octet-stream",
)
ROBOTS_TYPES = ("text/plain", "text/html", "application/octet-stream")
ROBOTS_MAX_BYTES = 500_000  # RFC 9309: parse at least 500 KiB
MAX_REDIRECTS = 10
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
HOST_FAILURE_LIMIT = 3  # transient page failures in a row that close a host for the run
_GONE_STATUSES = {404, 410}


def user_agent(contact: str | None = None) -> str:
    return f"{USER_AGENT[:-1]}; {contact})" if contact else USER_AGENT


# -- the whole-page deadline ----------------------------------------------------------------

_deadline = threading.local()


def _remaining(timeout: float | None) -> float | None:
    """The socket timeout for this thread: the usual one, cut to the page's deadline."""
    at: float | None = getattr(_deadline, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("page deadline passed")
    return left if timeout is None else min(timeout, left)


@contextmanager
def page_deadline(at: float) -> Iterator[None]:
    """Bound every socket operation of this thread until monotonic time `at`."""
    previous = getattr(_deadline, "at", None)
    _deadline.at = at if previous is None else min(at, previous)
    try:
        yield
    finally:
        _deadline.at = previous


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _remaining(timeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _remaining(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_tcp(
            host, port, _remaining(timeout), local_address, socket_options))

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._backend.connect_unix_socket(
            path, _remaining(timeout), socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _deadline_transport() -> httpx.HTTPTransport:
    """httpx's own transport with its network backend wrapped by `_DeadlineBackend`.

    httpx offers no public hook for the backend, so the pool's attribute is replaced; if a
    future httpx renames it, fetching still works and the deadline falls back to the checks
    between chunks in `_fetch_once`.
    """
    transport = httpx.HTTPTransport(retries=1)  # one quiet retry of a failed connect
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.NetworkBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return transport


def make_client(*, contact: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The one place an HTTP client is made: explicit timeout, honest User-Agent."""
    return httpx.Client(
        timeout=timeout,
        headers={"User-Agent": user_agent(contact), "Accept-Encoding": "gzip, deflate"},
        follow_redirects=False,  # followed hop by hop in _fetch_once
        transport=transport if transport is not None else _deadline_transport(),
    )


# -- one page -------------------------------------------------------------------------------


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"' ").lower()
    return None


class _DeadlinePassed(TransientFetchError):
    """The page's deadline passed: recorded and retried next run, not again in this one."""


def _fetch_once(client: httpx.Client, request: FetchRequest, *, accept: Sequence[str],
                max_bytes: int, deadline: float, deadline_s: float,
                started: float, refuse: Callable[[str], str | None] | None = None
                ) -> FetchResult:
    headers: dict[str, str] = {}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    fetched_at = datetime.now(UTC)
    passed = f"page deadline of {deadline_s:g} s passed"
    url = request.url
    try:
        for _ in range(MAX_REDIRECTS + 1):
            # redirects are followed here, not by httpx, so that every hop is checked
            # against its own origin's robots.txt
            with page_deadline(deadline), client.stream(
                    "GET", url, headers=headers, follow_redirects=False) as response:
                target = response.next_request
                if response.is_redirect and target is not None:
                    url = str(target.url)
                    refusal = refuse(url) if refuse is not None else None
                    if refusal is not None:
                        raise PermanentFetchError(f"redirected to {url}: {refusal}",
                                                  status=response.status_code)
                    continue
                return _read_response(response, request, accept=accept,
                                      max_bytes=max_bytes, deadline=deadline, passed=passed,
                                      started=started, fetched_at=fetched_at)
        raise PermanentFetchError(f"too many redirects (over {MAX_REDIRECTS})")
    except httpx.TooManyRedirects as exc:
        raise PermanentFetchError(f"too many redirects (over {MAX_REDIRECTS})") from exc
    except httpx.TimeoutException as exc:
        if time.monotonic() >= deadline - 0.01:
            raise _DeadlinePassed(passed) from exc
        raise TransientFetchError(f"timed out ({type(exc).__name__})") from exc
    except httpx.UnsupportedProtocol as exc:
        raise PermanentFetchError(f"unsupported URL scheme: {exc}") from exc
    except httpx.TransportError as exc:
        raise TransientFetchError(f"connection failed: {exc or type(exc).__name__}") from exc
    except httpx.InvalidURL as exc:
        raise PermanentFetchError(f"invalid URL: {exc}") from exc


def _read_response(response: httpx.Response, request: FetchRequest, *, accept: Sequence[str],
                   max_bytes: int, deadline: float, passed: str, started: float,
                   fetched_at: datetime) -> FetchResult:
    """The result of a final (non-redirect) response, its body read within the limits."""
    status = response.status_code
    if status == 304:
        return FetchResult(
            url=request.url, source=request.source, final_url=str(response.url),
            status=304, ok=True, not_modified=True, etag=request.etag,
            last_modified=request.last_modified, fetched_at=fetched_at,
            content_location=response.headers.get("Content-Location"),
            duration_ms=int((time.monotonic() - started) * 1000),
        )
    if status in _RETRY_STATUSES:
        raise TransientFetchError(
            f"HTTP {status}", status=status,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 400:
        raise PermanentFetchError(f"HTTP {status}", status=status)
    content_type = response.headers.get("Content-Type", "")
    media_type = content_type.split(";")[0].strip().lower()
    if media_type and not any(media_type == t for t in accept):
        raise PermanentFetchError(f"unexpected content type {media_type!r}",
                                  status=status)
    declared = response.headers.get("Content-Length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise PermanentFetchError(f"too large: {declared} bytes > {max_bytes}",
                                  status=status)
    chunks: list[bytes] = []
    size = 0
    # decoded bytes are counted, so a gzip bomb stops at the cap too
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise PermanentFetchError(f"too large: over {max_bytes} bytes",
                                      status=status)
        if time.monotonic() > deadline:
            raise _DeadlinePassed(passed, status=status)
        chunks.append(chunk)
    return FetchResult(
        url=request.url, source=request.source, final_url=str(response.url),
        status=status, ok=True, content=b"".join(chunks), content_type=media_type,
        encoding=_charset(content_type), etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        content_location=response.headers.get("Content-Location"),
        bytes=response.num_bytes_downloaded,
        duration_ms=int((time.monotonic() - started) * 1000), fetched_at=fetched_at,
    )


def backoff_delay(attempt: int, base_s: float) -> float:
    """Exponential backoff with jitter: base * 2^(attempt-1), scaled by 0.5-1.5 at random."""
    return float(base_s * 2 ** (attempt - 1) * (0.5 + random.random()))


def fetch_url(client: httpx.Client, request: FetchRequest, *, accept: Sequence[str] = HTML_TYPES,
              max_bytes: int = 10_000_000, deadline_s: float = 60.0, retries: int = 3,
              backoff_s: float = 0.5, max_wait_s: float = 30.0,
              sleep: Callable[[float], None] = time.sleep,
              refuse: Callable[[str], str | None] | None = None,
              too_long: Callable[[float], None] | None = None) -> FetchResult:
    """Fetch one URL; never raises: a failure comes back as a result with `ok=False`.

    Transient faults (timeouts, connection errors, 408/425/429/5xx) are retried up to
    `retries` times with exponential backoff and jitter, or after the server's Retry-After.
    `deadline_s` bounds the whole page, retries and waits included; a Retry-After longer
    than `max_wait_s` or past the deadline ends the attempt for this run (and is passed to
    `too_long`). `refuse(url)` vets every redirect target (robots.txt).
    """
    started = time.monotonic()
    deadline = started + deadline_s
    attempt = 0
    while True:
        try:
            return _fetch_once(client, request, accept=accept, max_bytes=max_bytes,
                               deadline=deadline, deadline_s=deadline_s, started=started,
                               refuse=refuse)
        except _DeadlinePassed as exc:
            return _failure(request, exc, started)
        except TransientFetchError as exc:
            attempt += 1
            wait = exc.retry_after if exc.retry_after is not None else backoff_delay(
                attempt, backoff_s)
            if attempt > retries or wait > max_wait_s or time.monotonic() + wait >= deadline:
                if exc.retry_after is not None and wait > max_wait_s and too_long is not None:
                    too_long(wait)
                return _failure(request, exc, started)
            sleep(wait)
        except FetchError as exc:
            return _failure(request, exc, started)


def _failure(request: FetchRequest, exc: FetchError, started: float) -> FetchResult:
    return FetchResult(
        url=request.url, source=request.source, status=exc.status, ok=False,
        error=str(exc), duration_ms=int((time.monotonic() - started) * 1000),
        fetched_at=datetime.now(UTC),
    )


def _transient(result: FetchResult) -> bool:
    """A failure worth trying again later: busy or failing server, timeout, connection."""
    return not result.ok and (result.status in _RETRY_STATUSES or (
        result.status is None and (result.error or "").startswith(
            ("timed out", "connection failed", "page deadline"))))


def is_gone(result: FetchResult) -> bool:
    """404 and 410 mean the page is gone: recorded, and not fetched again every night."""
    return not result.ok and result.status in _GONE_STATUSES


# -- politeness -----------------------------------------------------------------------------


class _Unavailable:
    """robots.txt that could not be read because of a server or network error.

    RFC 9309 (2.3.1.4): the crawler must then assume complete disallow. The pages are
    recorded as failed and offered again on the next run.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason


class HostGate:
    """Per-host politeness: a concurrency limit, a delay between requests, robots.txt."""

    def __init__(self, client: httpx.Client, crawl: Crawl) -> None:
        self._client = client
        self._crawl = crawl
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = defaultdict(
            lambda: threading.Semaphore(crawl.per_host_concurrency))
        self._next_time: dict[str, float] = defaultdict(float)
        self._robots: dict[str, Protego | _Unavailable | None] = {}
        self._robots_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)
        self._closed: dict[str, str] = {}  # host -> why its other pages wait for next run
        self._failures: dict[str, int] = defaultdict(int)  # transient failures in a row

    def robots(self, url: str) -> Protego | None:
        """The origin's parsed robots.txt; None when it has none (everything allowed)."""
        found = self._robots_entry(url)
        return found if isinstance(found, Protego) else None

    def _robots_entry(self, url: str) -> Protego | _Unavailable | None:
        """Fetched once per run and origin, even when threads race for it."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            origin_lock = self._robots_locks[origin]
        with origin_lock:
            if origin not in self._robots:
                self._robots[origin] = self._read_robots(origin)
            return self._robots[origin]

    def _read_robots(self, origin: str) -> Protego | _Unavailable | None:
        result = fetch_url(self._client, FetchRequest(url=f"{origin}/robots.txt", source=""),
                           accept=ROBOTS_TYPES, max_bytes=ROBOTS_MAX_BYTES,
                           deadline_s=min(30.0, self._crawl.page_deadline_s), retries=1,
                           backoff_s=0.2, max_wait_s=5.0)
        if result.ok and result.content is not None:
            return Protego.parse(result.content.decode("utf-8", errors="replace"))
        if result.status is not None and 400 <= result.status < 500 and result.status != 429:
            return None  # RFC 9309: 4xx means no robots.txt, everything allowed
        if result.error and result.error.startswith(("unexpected content type", "too large")):
            return None  # answered, but not a robots.txt we can read: everything allowed
        return _Unavailable(f"robots.txt unavailable ({result.error}): not fetched")

    def refusal(self, url: str) -> str | None:
        """Why this URL is not fetched now (robots.txt, or its host closed for this run), or
        None when it may be fetched."""
        closed = self._closed.get(urlsplit(url).netloc)
        if closed is not None:
            return closed
        if not self._crawl.obey_robots:
            return None
        found = self._robots_entry(url)
        if isinstance(found, _Unavailable):
            return found.reason
        agent = self._client.headers.get("User-Agent", USER_AGENT)
        if found is not None and not found.can_fetch(url, agent):
            return "disallowed by robots.txt"
        return None

    def allowed(self, url: str) -> bool:
        return self.refusal(url) is None

    def delay_for(self, url: str) -> float:
        """Seconds between two requests to the URL's host: config, or a longer Crawl-delay."""
        delay = self._crawl.per_host_delay_s
        if self._crawl.obey_robots:
            parser = self.robots(url)
            agent = self._client.headers.get("User-Agent", USER_AGENT)
            crawl_delay = parser.crawl_delay(agent) if parser is not None else None
            if crawl_delay:
                delay = max(delay, float(crawl_delay))
        return delay

    def close(self, url: str, reason: str) -> None:
        """Fetch nothing more from this host in this run: its pages fail with `reason` and
        are offered again on the next run."""
        with self._lock:
            self._closed.setdefault(urlsplit(url).netloc, reason)

    def outcome(self, url: str, result: FetchResult) -> None:
        """Count transient failures in a row; a host failing HOST_FAILURE_LIMIT pages in a
        row is closed, so a site answering 429 or 503 to everything costs minutes, not
        hours (every page would otherwise spend its retries and deadline)."""
        host = urlsplit(url).netloc
        with self._lock:
            self._failures[host] = self._failures[host] + 1 if _transient(result) else 0
            failing = self._failures[host] >= HOST_FAILURE_LIMIT
        if failing:
            self.close(url, f"host failing: {HOST_FAILURE_LIMIT} pages in a row failed "
                            f"(last: {result.error}); retried next run")

    def back_off(self, url: str, seconds: float) -> None:
        """A host asked us to wait (Retry-After, or failing): every thread waits for it."""
        host = urlsplit(url).netloc
        with self._lock:
            self._next_time[host] = max(self._next_time[host], time.monotonic() + seconds)

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
        """Hold one of the host's concurrent slots, starting no sooner than its delay."""
        host = urlsplit(url).netloc
        delay = self.delay_for(url)
        with self._slots[host]:
            with self._lock:
                now = time.monotonic()
                start = max(now, self._next_time[host])
                self._next_time[host] = start + delay
            if start > now:
                time.sleep(start - now)
            yield


def fetch_many(requests: Sequence[FetchRequest], crawl: Crawl, *,
               accept: Sequence[str] = HTML_TYPES,
               client: httpx.Client | None = None, workers: int = 8) -> list[FetchResult]:
    """Fetch a batch of URLs concurrently, politely; results in the order of `requests`.

    Workers beyond `per_host_concurrency` times the number of hosts would only wait on the
    hosts' slots, so the pool is no larger than that.
    """
    own_client = client is None
    http = client or make_client(
        contact=crawl.user_agent_contact,
        timeout=httpx.Timeout(crawl.timeout_s, connect=min(10.0, crawl.timeout_s)))
    gate = HostGate(http, crawl)

    def one(request: FetchRequest) -> FetchResult:
        refusal = gate.refusal(request.url)
        if refusal is not None:
            return FetchResult(url=request.url, source=request.source, ok=False, status=None,
                               error=refusal, fetched_at=datetime.now(UTC))

        def wait(seconds: float) -> None:
            # a retry is a request to the host like any other: never sooner than its delay
            seconds = max(seconds, gate.delay_for(request.url))
            gate.back_off(request.url, seconds)
            time.sleep(seconds)

        def too_long(seconds: float) -> None:
            gate.close(request.url, f"host asked to retry after {seconds:g} s "
                                    "(Retry-After); retried next run")

        with gate.slot(request.url):
            result = fetch_url(http, request, accept=accept, max_bytes=crawl.max_bytes,
                               deadline_s=crawl.page_deadline_s, retries=crawl.retries,
                               sleep=wait, refuse=gate.refusal, too_long=too_long)
        gate.outcome(request.url, result)
        return result

    try:
        if len(requests) <= 1:
            return [one(r) for r in requests]
        hosts = len({urlsplit(r.url).netloc for r in requests})
        size = max(1, min(workers, len(requests), hosts * crawl.per_host_concurrency))
        with ThreadPoolExecutor(max_workers=size) as pool:
            return list(pool.map(one, requests))
    finally:
        if own_client:
            http.close()
