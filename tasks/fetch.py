"""Fetching pages politely: one HTTP client factory, retries, robots.txt, per-host limits.

httpx retries only failed connects on its own; status-based retries with backoff, jitter and
Retry-After are a dozen lines here rather than another dependency (tenacity would not know
about Retry-After either). robots.txt is read with protego, Scrapy's parser.
"""

from __future__ import annotations

import email.utils
import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import urlsplit

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
)
MAX_REDIRECTS = 10
_RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
_GONE_STATUSES = {404, 410}


def user_agent(contact: str | None = None) -> str:
    return f"{USER_AGENT[:-1]}; {contact})" if contact else USER_AGENT


def make_client(*, contact: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                transport: httpx.BaseTransport | None = None) -> httpx.Client:
    """The one place an HTTP client is made: explicit timeout, honest User-Agent."""
    return httpx.Client(
        timeout=timeout,
        headers={"User-Agent": user_agent(contact), "Accept-Encoding": "gzip, deflate"},
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        transport=transport,
    )


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _charset(content_type: str | None) -> str | None:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"' ").lower()
    return None


def _fetch_once(client: httpx.Client, request: FetchRequest, *, accept: Sequence[str],
                max_bytes: int, deadline_s: float) -> FetchResult:
    headers: dict[str, str] = {}
    if request.etag:
        headers["If-None-Match"] = request.etag
    if request.last_modified:
        headers["If-Modified-Since"] = request.last_modified
    started = time.monotonic()
    fetched_at = datetime.now(UTC)
    try:
        with client.stream("GET", request.url, headers=headers) as response:
            status = response.status_code
            if status == 304:
                return FetchResult(
                    url=request.url, source=request.source, final_url=str(response.url),
                    status=304, ok=True, not_modified=True, etag=request.etag,
                    last_modified=request.last_modified, fetched_at=fetched_at,
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
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise PermanentFetchError(f"too large: over {max_bytes} bytes",
                                              status=status)
                if time.monotonic() - started > deadline_s:
                    raise TransientFetchError(f"page deadline of {deadline_s:g} s passed",
                                              status=status)
                chunks.append(chunk)
            return FetchResult(
                url=request.url, source=request.source, final_url=str(response.url),
                status=status, ok=True, content=b"".join(chunks), content_type=media_type,
                encoding=_charset(content_type), etag=response.headers.get("ETag"),
                last_modified=response.headers.get("Last-Modified"), bytes=size,
                duration_ms=int((time.monotonic() - started) * 1000), fetched_at=fetched_at,
            )
    except httpx.TooManyRedirects as exc:
        raise PermanentFetchError(f"too many redirects ({MAX_REDIRECTS})") from exc
    except httpx.TimeoutException as exc:
        raise TransientFetchError(f"timed out ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise TransientFetchError(f"connection failed: {exc or type(exc).__name__}") from exc
    except httpx.InvalidURL as exc:
        raise PermanentFetchError(f"invalid URL: {exc}") from exc


def fetch_url(client: httpx.Client, request: FetchRequest, *, accept: Sequence[str] = HTML_TYPES,
              max_bytes: int = 10_000_000, deadline_s: float = 60.0, retries: int = 3,
              backoff_s: float = 0.5, max_wait_s: float = 30.0,
              sleep: Callable[[float], None] = time.sleep) -> FetchResult:
    """Fetch one URL; never raises: a failure comes back as a result with `ok=False`."""
    started = time.monotonic()
    attempt = 0
    while True:
        try:
            return _fetch_once(client, request, accept=accept, max_bytes=max_bytes,
                               deadline_s=deadline_s)
        except TransientFetchError as exc:
            attempt += 1
            elapsed = time.monotonic() - started
            wait = exc.retry_after if exc.retry_after is not None else (
                backoff_s * 2 ** (attempt - 1) * (0.5 + random.random()))
            if attempt > retries or wait > max_wait_s or elapsed + wait > deadline_s * 2:
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


def is_gone(result: FetchResult) -> bool:
    """404 and 410 mean the page is gone: recorded, and not fetched again every night."""
    return not result.ok and result.status in _GONE_STATUSES


class HostGate:
    """Per-host politeness: a concurrency limit, a delay between requests, robots.txt."""

    def __init__(self, client: httpx.Client, crawl: Crawl) -> None:
        self._client = client
        self._crawl = crawl
        self._lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = defaultdict(
            lambda: threading.Semaphore(crawl.per_host_concurrency))
        self._next_time: dict[str, float] = defaultdict(float)
        self._robots: dict[str, Protego | None] = {}
        self._robots_locks: dict[str, threading.Lock] = defaultdict(threading.Lock)

    def robots(self, url: str) -> Protego | None:
        """The origin's robots.txt, fetched once per run even when threads race for it."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            origin_lock = self._robots_locks[origin]
        with origin_lock:
            return self._robots_for(origin)

    def _robots_for(self, origin: str) -> Protego | None:
        if origin in self._robots:
            return self._robots[origin]
        parser: Protego | None = None
        try:
            response = self._client.get(f"{origin}/robots.txt", timeout=10.0)
            if response.status_code == 200:
                parser = Protego.parse(response.text)
        except httpx.HTTPError:
            parser = None  # no robots.txt we can read: everything is allowed
        self._robots[origin] = parser
        return parser

    def allowed(self, url: str) -> bool:
        if not self._crawl.obey_robots:
            return True
        parser = self.robots(url)
        agent = self._client.headers.get("User-Agent", USER_AGENT)
        return parser is None or bool(parser.can_fetch(url, agent))

    def delay_for(self, url: str) -> float:
        delay = self._crawl.per_host_delay_s
        if self._crawl.obey_robots:
            parser = self.robots(url)
            agent = self._client.headers.get("User-Agent", USER_AGENT)
            crawl_delay = parser.crawl_delay(agent) if parser is not None else None
            if crawl_delay:
                delay = max(delay, float(crawl_delay))
        return delay

    @contextmanager
    def slot(self, url: str) -> Iterator[None]:
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
    """Fetch a batch of URLs concurrently, politely; results in the order of `requests`."""
    own_client = client is None
    http = client or make_client(
        contact=crawl.user_agent_contact,
        timeout=httpx.Timeout(crawl.timeout_s, connect=min(10.0, crawl.timeout_s)))
    gate = HostGate(http, crawl)

    def one(request: FetchRequest) -> FetchResult:
        if not gate.allowed(request.url):
            return FetchResult(url=request.url, source=request.source, ok=False, status=None,
                               error="disallowed by robots.txt", fetched_at=datetime.now(UTC))
        with gate.slot(request.url):
            return fetch_url(http, request, accept=accept, max_bytes=crawl.max_bytes,
                             deadline_s=crawl.page_deadline_s, retries=crawl.retries)

    try:
        if len(requests) <= 1:
            return [one(r) for r in requests]
        with ThreadPoolExecutor(max_workers=min(workers, len(requests))) as pool:
            return list(pool.map(one, requests))
    finally:
        if own_client:
            http.close()
