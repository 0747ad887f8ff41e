"""The bundled demo: a small news site and a webhook receiver, served on loopback.

The site's files live in `demo_site/site/`; every `{{BASE}}` in them becomes the server's own
origin at serve time. Pages carry ETag and Last-Modified and answer conditional requests
with 304, as real news sites do, so a second demo run shows what an incremental night costs.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PREFERRED_PORT = 8765  # stable across demo runs when free, so page state carries over
SITE_MTIME = 1_795_000_000  # a fixed Last-Modified for the bundled pages
_TEXT_TYPES = {".html", ".xml", ".txt", ".json", ".yaml", ".rss", ".atom"}


def demo_root() -> Path:
    return Path(str(resources.files("policywatch") / "demo_site"))


@dataclass
class Receiver:
    """What the demo's webhook endpoint was sent."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _handler(site: Path, base: list[str], receiver: Receiver) -> type[BaseHTTPRequestHandler]:
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
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            if path.endswith("/"):
                path += "index.html"
            target = (site / path.lstrip("/")).resolve()
            if not target.is_file() or site.resolve() not in target.parents:
                self.send_error(404)
                return
            body = target.read_bytes()
            if target.suffix in _TEXT_TYPES:
                body = body.replace(b"{{BASE}}", base[0].encode())
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
            self.send_header("Last-Modified", formatdate(SITE_MTIME, usegmt=True))
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
def serve_demo_site(port: int | None = PREFERRED_PORT) -> Iterator[tuple[str, Receiver]]:
    """Serve the demo site on loopback; yields (base URL, webhook receiver)."""
    site = demo_root() / "site"
    receiver = Receiver()
    base: list[str] = [""]
    server = ThreadingHTTPServer(("127.0.0.1", _free_port(port)), _handler(site, base, receiver))
    base[0] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield base[0], receiver
    finally:
        server.shutdown()
        server.server_close()


def write_demo_config(base: str, folder: Path) -> Path:
    """The bundled demo config with the server's origin filled in."""
    text = (demo_root() / "config.yaml").read_text(encoding="utf-8")
    path = folder / "policywatch-demo.yaml"
    origin = urlsplit(base).netloc  # host:port, the one loopback address allowed
    path.write_text(text.replace("{{BASE}}", base).replace("{{ORIGIN}}", origin),
                    encoding="utf-8")
    return path
