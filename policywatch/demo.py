"""The bundled demo: a small news site and a webhook receiver, served on loopback.

The site's files live in `demo_site/site/`; every `{{BASE}}` in them becomes the server's own
origin at serve time. Pages carry ETag and Last-Modified and answer conditional requests
with 304, as real news sites do, so a second demo run shows what an incremental night costs.

The files are dated in late November 2026 (`SITE_TODAY` is the day after the newest
article). At serve time every date in them, and in their addresses, moves by whole days so
that `SITE_TODAY` becomes today (UTC): the demo's news is always from the last few days, and
`policywatch claims --since 7d` and the briefing's charts find it whenever the demo runs.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PREFERRED_PORT = 8765  # stable across demo runs when free, so page state carries over
SITE_MTIME = 1_795_000_000  # Last-Modified of the bundled pages (2026-11-18), shifted too
SITE_TODAY = date(2026, 11, 29)  # the day the bundled files were written for
_TEXT_TYPES = {".html", ".xml", ".txt", ".json", ".yaml", ".rss", ".atom"}


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")
_MON = "|".join(m[:3] for m in _MONTHS)
_DAYS = "Mon|Tue|Wed|Thu|Fri|Sat|Sun"
# every way the site writes a date: addresses, ISO 8601, RFC 822 (feeds), "November 27",
# "Nov. 25, 2026" and "Nov 28," (pages)
_PATH_DATE = re.compile(r"(?<!\d)(\d{4})/(\d{2})/(\d{2})(?=/)")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?!\d)")
_RFC_DATE = re.compile(rf"\b(?:{_DAYS}), (\d{{2}}) ({_MON}) (\d{{4}})\b")
_LONG_DATE = re.compile(rf"\b({'|'.join(_MONTHS)}) (\d{{1,2}})\b(?!:)")
_SHORT_DATE = re.compile(rf"\b({_MON})(\.?) (\d{{1,2}})(, \d{{4}})?(?=[,\s<])")


def site_shift(today: date | None = None) -> int:
    """Days to move the bundled dates by so that `SITE_TODAY` is `today` (default: UTC)."""
    return ((today or datetime.now(UTC).date()) - SITE_TODAY).days


def shift_dates(text: str, days: int) -> str:
    """`text` with every date the demo site writes moved by `days` days. A date without a
    year is taken to be in SITE_TODAY's year."""
    if not days:
        return text
    move = timedelta(days=days)
    year = SITE_TODAY.year

    def month(name: str) -> int:
        return [m[:3] for m in _MONTHS].index(name[:3]) + 1

    def path(m: re.Match[str]) -> str:
        d = date(int(m[1]), int(m[2]), int(m[3])) + move
        return f"{d:%Y/%m/%d}"

    def iso(m: re.Match[str]) -> str:
        return f"{date(int(m[1]), int(m[2]), int(m[3])) + move:%Y-%m-%d}"

    def rfc(m: re.Match[str]) -> str:
        return f"{date(int(m[3]), month(m[2]), int(m[1])) + move:%a, %d %b %Y}"

    def long(m: re.Match[str]) -> str:
        d = date(year, month(m[1]), int(m[2])) + move
        return f"{_MONTHS[d.month - 1]} {d.day}"

    def short(m: re.Match[str]) -> str:
        d = date(int(m[4][2:]) if m[4] else year, month(m[1]), int(m[3])) + move
        return f"{_MONTHS[d.month - 1][:3]}{m[2]} {d.day}" + (f", {d.year}" if m[4] else "")

    def safely(replace: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
        def apply(m: re.Match[str]) -> str:
            try:
                return replace(m)
            except ValueError:  # digits that only look like a date
                return m[0]
        return apply

    for pattern, replace in ((_PATH_DATE, path), (_ISO_DATE, iso), (_RFC_DATE, rfc),
                             (_LONG_DATE, long), (_SHORT_DATE, short)):
        text = pattern.sub(safely(replace), text)
    return text


def unshift_path(path: str, days: int) -> str:
    """The bundled file's address for a served (shifted) address."""
    def back(m: re.Match[str]) -> str:
        try:
            d = date(int(m[1]), int(m[2]), int(m[3])) - timedelta(days=days)
        except ValueError:
            return m[0]
        return f"{d:%Y/%m/%d}"

    return _PATH_DATE.sub(back, path) if days else path


def demo_root() -> Path:
    return Path(str(resources.files("policywatch") / "demo_site"))


@dataclass
class Receiver:
    """What the demo's webhook endpoint was sent."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(site: Path, base: list[str], receiver: Receiver,
             shift: Callable[[], int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "policywatch-demo/1"

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet: the demo prints its own summary

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            payload = self.rfile.read(length)
            try:
                message = json.loads(payload or b"{}")
            except json.JSONDecodeError:
                message = {"raw": payload.decode("utf-8", "replace")}
            message["_idempotency_key"] = self.headers.get("Idempotency-Key")
            with receiver.lock:
                receiver.messages.append(message)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self) -> None:
            days = shift()  # at serve time: a demo left running past midnight follows
            path = unshift_path(self.path.split("?", 1)[0].split("#", 1)[0], days)
            if path.endswith("/"):
                path += "index.html"
            target = (site / path.lstrip("/")).resolve()
            if not target.is_file() or site.resolve() not in target.parents:
                self.send_error(404)
                return
            body = target.read_bytes()
            if target.suffix in _TEXT_TYPES:
                text = body.decode("utf-8").replace("{{BASE}}", base[0])
                body = shift_dates(text, days).encode("utf-8")
            etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            kind = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
            if target.suffix == ".xml":
                kind = "application/rss+xml" if "rss" in target.name else "application/xml"
            if kind.startswith("text/") or kind.endswith("xml"):
                kind += "; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("ETag", etag)
            self.send_header("Last-Modified",
                             formatdate(SITE_MTIME + days * 86_400, usegmt=True))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _free_port(preferred: int | None) -> int:
    if preferred:
        with socket.socket() as probe:
            # as the server will: a port left in TIME_WAIT by the last demo is still free
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", preferred))
                return preferred
            except OSError:
                pass
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve_demo_site(port: int | None = PREFERRED_PORT, today: date | None = None
                    ) -> Iterator[tuple[str, Receiver]]:
    """Serve the demo site on loopback; yields (base URL, webhook receiver). Its dates are
    moved so that the newest article is from the day before `today` (default: each
    request's UTC day)."""
    site = demo_root() / "site"
    receiver = Receiver()
    base: list[str] = [""]
    server = ThreadingHTTPServer(("127.0.0.1", _free_port(port)),
                                 _handler(site, base, receiver, lambda: site_shift(today)))
    base[0] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base[0], receiver
    finally:
        server.shutdown()
        server.server_close()


def write_demo_config(base: str, folder: Path, today: date | None = None) -> Path:
    """The bundled demo config with the server's origin filled in and its addresses dated
    as the server serves them."""
    text = (demo_root() / "config.yaml").read_text(encoding="utf-8")
    path = folder / "policywatch-demo.yaml"
    origin = urlsplit(base).netloc  # host:port, the one loopback address allowed
    path.write_text(shift_dates(text.replace("{{BASE}}", base).replace("{{ORIGIN}}", origin),
                                site_shift(today)),
                    encoding="utf-8")
    return path
