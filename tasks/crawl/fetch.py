"""Fetching pages politely: one HTTP client factory, retries, robots.txt, per-host limits.

httpx retries only failed connects on its own; status-based retries with backoff, jitter and
Retry-After are a dozen lines here rather than another dependency (tenacity would not know
about Retry-After either). robots.txt is read with protego, Scrapy's parser.

Every page has a whole-page deadline, retries included. httpx only bounds each single read,
so a server that trickles a byte a second would never time out; the client's network
backend is wrapped so that every socket read and write waits at most until the deadline of
the page the calling thread is fetching (`_DeadlineBackend`).

The same backend decides where the crawler may connect (`_DeadlineBackend.connect_tcp`): it
resolves the host itself, checks every address against `schemas.addresses.AddressPolicy`
(no loopback, private, link-local, CGNAT, multicast, ... unless
`crawl.allow_private_addresses` opts in) and connects to the very address it checked. Every
connection httpx opens goes through it, so every redirect hop, robots.txt, feed, sitemap and
comment page is covered, and DNS rebinding cannot slip another address in between the
check and the connect (docs/security.md).

Bodies are decoded here, not by httpx: httpx inflates a whole network chunk at once, so a
16 KB body sent as `Content-Encoding: gzip, gzip` became gigabytes before the size cap saw
it. `_BoundedDecoder` inflates every layer with zlib's `max_length`, against `max_bytes`.
"""

from __future__ import annotations

import email.utils
import ipaddress
import random
import socket
import ssl
import threading
import time
import zlib
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

from schemas.addresses import AddressPolicy
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


class AddressRefused(Exception):
    """The host resolves only to addresses the crawl may not connect to."""


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses a host name or literal (`2130706433`, `0x7f.1`, `::1`) stands for."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for *_, sockaddr in found:
        ip = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if ip not in addresses:
            addresses.append(ip)
    return addresses


class _DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's backend with the page deadline on every socket operation, and connections
    only to the addresses `policy` allows: the host is resolved here and the checked
    address itself is connected to."""

    def __init__(self, backend: httpcore.NetworkBackend,
                 policy: AddressPolicy | None = None) -> None:
        self._backend = backend
        self._policy = policy or AddressPolicy()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        refusals: list[str] = []
        allowed = []
        for ip in _resolve(host, port):
            refusal = self._policy.refusal(host, ip, port)
            if refusal is None:
                allowed.append(ip)
            else:
                refusals.append(refusal)
        if not allowed:
            raise AddressRefused(refusals[0] if refusals else f"refused: {host} has no address")
        error: Exception | None = None
        for ip in allowed:  # as socket.create_connection would, but only checked addresses
            try:
                return _DeadlineStream(self._backend.connect_tcp(
                    str(ip), port, _remaining(timeout), local_address, socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Iterable[Any] | None = None
                            ) -> httpcore.NetworkStream:
        raise AddressRefused("refused: the crawler does not connect to unix sockets")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def _deadline_transport(policy: AddressPolicy) -> httpx.HTTPTransport:
    """httpx's own transport with its network backend wrapped by `_DeadlineBackend`.

    httpx offers no public hook for the backend, so the pool's attribute is replaced. The
    address check depends on it, so if a future httpx renames the attribute this fails
    loudly rather than fetch unchecked.
    """
    transport = httpx.HTTPTransport(retries=1)  # one quiet retry of a failed connect
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if not isinstance(backend, httpcore.NetworkBackend):
        raise RuntimeError("httpx's transport has no network backend to wrap; the address "
                           "check cannot be installed")
    pool._network_backend = _DeadlineBackend(backend, policy)  # type: ignore[union-attr]
    return transport


def make_client(*, contact: str | None = None, timeout: httpx.Timeout = DEFAULT_TIMEOUT,
                transport: httpx.BaseTransport | None = None,
                allow_private: bool | Sequence[str] = False) -> httpx.Client:
    """The one place an HTTP client is made: explicit timeout, honest User-Agent, and only
    public addresses unless `allow_private` (crawl.allow_private_addresses) opts in.

    Proxies from the environment are not used (`trust_env=False`): httpx would open their
    connections through transports of its own, without the address check.
    """
    return httpx.Client(
        timeout=timeout,
        headers={"User-Agent": user_agent(contact), "Accept-Encoding": "gzip, deflate"},
        follow_redirects=False,  # followed hop by hop in _fetch_once
        trust_env=False,
        transport=transport if transport is not None else _deadline_transport(
            AddressPolicy.from_setting(allow_private)),
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
    except AddressRefused as exc:
        reason = str(exc)
        raise PermanentFetchError(reason if url == request.url
                                  else f"redirected to {url}: {reason}") from exc
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
    except httpx.DecodingError as exc:
        raise PermanentFetchError(f"cannot decode the body: {exc}") from exc


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
    try:
        decoder = _BoundedDecoder(response.headers.get("Content-Encoding", ""), max_bytes)
    except _TooLarge as exc:
        raise PermanentFetchError(str(exc), status=status) from exc
    chunks: list[bytes] = []
    # decoded bytes are counted, every layer inflated at most to the cap, so a gzip bomb
    # (stacked encodings too) stops at the cap without ever being inflated whole
    try:
        for raw in response.iter_raw():
            if time.monotonic() > deadline:
                raise _DeadlinePassed(passed, status=status)
            chunks.append(decoder.feed(raw))
        chunks.append(decoder.flush())
    except _TooLarge as exc:
        raise PermanentFetchError(str(exc), status=status) from exc
    return FetchResult(
        url=request.url, source=request.source, final_url=str(response.url),
        status=status, ok=True, content=b"".join(chunks), content_type=media_type,
        encoding=_charset(content_type), etag=response.headers.get("ETag"),
        last_modified=response.headers.get("Last-Modified"),
        content_location=response.headers.get("Content-Location"),
        bytes=response.num_bytes_downloaded,
        duration_ms=int((time.monotonic() - started) * 1000), fetched_at=fetched_at,
    )


class _TooLarge(Exception):
    pass


MAX_ENCODINGS = 3  # Content-Encoding layers decoded; more is refused


class _Inflater:
    """One gzip or deflate layer, never producing more than it is asked for."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._obj = zlib.decompressobj(wbits=31 if kind == "gzip" else 15)
        self._started = False

    def feed(self, data: bytes, limit: int) -> bytes:
        if self._kind == "deflate" and not self._started and data:
            self._started = True
            # "deflate" is zlib-wrapped by the standard, raw by some servers: as httpx
            if (data[0] & 0x0F) != 8:
                self._obj = zlib.decompressobj(wbits=-15)
        try:
            out = self._obj.decompress(data, limit + 1)
        except zlib.error as exc:
            raise httpx.DecodingError(f"{self._kind} data cannot be decoded: {exc}") from exc
        if len(out) > limit or self._obj.unconsumed_tail:
            raise _TooLarge("over the limit")
        return out


class _BoundedDecoder:
    """Content-Encoding layers undone incrementally, with at most `max_bytes` out of each."""

    def __init__(self, header: str, max_bytes: int) -> None:
        names = [n.strip().lower() for n in header.split(",")]
        names = ["gzip" if n == "x-gzip" else n for n in names if n and n != "identity"]
        for name in names:
            if name not in ("gzip", "deflate"):
                raise _TooLarge(f"unsupported Content-Encoding {name!r}")
        if len(names) > MAX_ENCODINGS:
            raise _TooLarge(f"too many Content-Encoding layers ({len(names)})")
        self._layers = [_Inflater(n) for n in reversed(names)]  # the last applied first
        self._max = max_bytes
        self._out = 0

    def feed(self, data: bytes) -> bytes:
        for i, layer in enumerate(self._layers):
            last = i == len(self._layers) - 1
            # an inner layer is compressed data, so at most about as large as the page
            limit = self._max - self._out if last else self._max + self._max // 100 + 65_536
            try:
                data = layer.feed(data, limit)
            except _TooLarge:
                raise _TooLarge(f"too large: over {self._max} bytes decoded") from None
        self._out += len(data)
        if self._out > self._max:
            raise _TooLarge(f"too large: over {self._max} bytes")
        return data

    def flush(self) -> bytes:
        return self.feed(b"") if self._layers else b""


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
        if result.error and result.error.startswith("refused:"):
            return _Unavailable(result.error)  # the host's address is refused: say so
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
        timeout=httpx.Timeout(crawl.timeout_s, connect=min(10.0, crawl.timeout_s)),
        allow_private=crawl.allow_private_addresses)
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
