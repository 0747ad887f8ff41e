"""A local news site for the benches: article pages with reader comments, a sitemap, ETag,
Last-Modified and gzip, served on 127.0.0.1.

The paragraphs come from ../shared/corpus/polnear when it is present (titles and texts of
real articles), else synthetic text; the server counts the bytes it writes.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import random
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.lib.polnear import read_split, split_path

NOW = datetime.now(UTC)
NAMES = ["Ann Lee", "Bob Ortiz", "Chen Wei", "Dana Fox", "Eli Stone", "Farah Khan",
         "Gus Moreau", "Hana Sato"]
WORDS = ["policy", "export", "chips", "rules", "court", "senate", "regulator", "market",
         "company", "minister", "report", "official", "license", "security", "trade", "China",
         "European", "data", "privacy", "network", "industry", "analysts", "investors",
         "tariff", "agreement", "committee", "statement"]


# -- the site -------------------------------------------------------------------------------


def documents() -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of real articles when the corpus is here, else synthetic ones."""
    docs: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for split in ("train", "dev"):
        if not split_path(split).exists():
            continue
        for row in read_split(split):
            paras = [p.strip() for p in row["text"].split("\n") if len(p.strip()) > 40]
            if len(paras) >= 3 and row["text"] not in seen:
                seen.add(row["text"])
                docs.append((row["title"], paras[1:] if paras[0] == row["title"] else paras))
    return docs


def synthetic(rng: random.Random, i: int) -> tuple[str, list[str]]:
    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 24))).capitalize() + "."

    paras = [" ".join(sentence() for _ in range(rng.randint(2, 4)))
             for _ in range(rng.randint(6, 12))]
    return f"Story {i}: " + " ".join(rng.choice(WORDS) for _ in range(6)), paras


def build_site(pages: int, seed: int = 7) -> tuple[dict[str, bytes], str]:
    """path -> page HTML, and where the text came from."""
    rng = random.Random(seed)
    docs = documents()
    origin = "polnear" if docs else "synthetic"
    site: dict[str, bytes] = {}
    for i in range(pages):
        if docs and i < len(docs):
            title, paras = docs[i]
        elif docs:  # more pages than articles: halves of two different articles
            a, b = docs[i % len(docs)], docs[(i * 7 + 3) % len(docs)]
            title = f"{a[0]} ({i})"
            paras = a[1][: len(a[1]) // 2 + 1] + b[1][len(b[1]) // 2:]
        else:
            title, paras = synthetic(rng, i)
        day = NOW - timedelta(days=i % 5)
        comments = [(rng.choice(NAMES), rng.choice(rng.choice(docs)[1])[:300] if docs
                     else synthetic(rng, i)[1][0][:300]) for _ in range(rng.randint(2, 8))]
        site[f"/{day:%Y/%m/%d}/story-{i}.html"] = article_page(title, paras, comments,
                                                             day).encode("utf-8")
    return site, origin


def article_page(title: str, paras: list[str], comments: list[tuple[str, str]],
             day: datetime) -> str:
    t = html.escape(title)
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paras)
    items = "\n".join(
        f'<li class="comment" id="comment-{n}"><div class="comment-author">{html.escape(a)}'
        f'</div><time datetime="{day:%Y-%m-%dT%H:%M:%SZ}">{day:%d %b %Y}</time>'
        f'<div class="comment-content"><p>{html.escape(c)}</p></div></li>'
        for n, (a, c) in enumerate(comments))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{t} | Bench News</title><meta name="author" content="Staff Writer">
<meta property="article:published_time" content="{day:%Y-%m-%dT%H:%M:%SZ}">
<link rel="stylesheet" href="/assets/site.css"></head><body>
<header class="masthead"><a href="/">Bench News</a><nav class="menu"><a href="/world">World</a>
<a href="/tech">Tech</a><a href="/policy">Policy</a><a href="/opinion">Opinion</a></nav></header>
<main><article class="story"><h1>{t}</h1><p class="byline">By Staff Writer</p>
<div class="story-body">{body}</div></article>
<aside class="related"><h2>Related</h2><ul><li><a href="/x">Another story</a></li>
<li><a href="/y">And another one</a></li></ul></aside>
<section id="comments" class="comments-area"><h2>Comments</h2>
<ol class="comment-list">{items}</ol></section></main>
<footer class="site-footer">Copyright 2026 Bench News. All rights reserved.</footer>
</body></html>"""


class _Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes = 0
        self.requests = 0
        self.statuses: dict[int, int] = {}

    def add(self, size: int, status: int) -> None:
        with self.lock:
            self.bytes += size
            self.requests += 1
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def reset(self) -> tuple[int, int, dict[int, int]]:
        with self.lock:
            out = (self.bytes, self.requests, self.statuses)
            self.bytes, self.requests, self.statuses = 0, 0, {}
        return out


def serve(site: dict[str, bytes]) -> tuple[ThreadingHTTPServer, str, _Counter]:
    counter = _Counter()
    modified = NOW.strftime("%a, %d %b %Y %H:%M:%S GMT")
    files: dict[str, tuple[bytes, bytes, str, str]] = {}  # path -> raw, gz, type, etag
    for path, body in site.items():
        files[path] = (body, gzip.compress(body, 6), "text/html; charset=utf-8",
                       '"' + hashlib.sha1(body).hexdigest()[:16] + '"')

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/robots.txt":
                return self._send(200, b"User-agent: *\nAllow: /\n", "text/plain", {})
            if path == "/sitemap.xml":
                base = f"http://127.0.0.1:{self.server.server_port}"  # type: ignore[attr-defined]
                urls = "".join(f"<url><loc>{base}{p}</loc><lastmod>{NOW:%Y-%m-%d}</lastmod>"
                               f"</url>" for p in site)
                xml = ('<?xml version="1.0" encoding="UTF-8"?><urlset xmlns='
                       f'"http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>')
                tag = '"' + hashlib.sha1(xml.encode()).hexdigest()[:16] + '"'
                if self.headers.get("If-None-Match") == tag:
                    return self._send(304, b"", None, {"ETag": tag})
                return self._send(200, xml.encode(), "application/xml", {"ETag": tag})
            if path not in files:
                return self._send(404, b"not found", "text/plain", {})
            raw, packed, kind, etag = files[path]
            headers = {"ETag": etag, "Last-Modified": modified, "Vary": "Accept-Encoding"}
            if (self.headers.get("If-None-Match") == etag
                    or self.headers.get("If-Modified-Since") == modified):
                return self._send(304, b"", None, headers)
            if "gzip" in (self.headers.get("Accept-Encoding") or ""):
                headers["Content-Encoding"] = "gzip"
                return self._send(200, packed, kind, headers)
            return self._send(200, raw, kind, headers)

        def _send(self, status: int, body: bytes, kind: str | None,
                  headers: dict[str, str]) -> None:
            head = [f"HTTP/1.1 {status} {self.responses[status][0]}"]
            if kind:
                head.append(f"Content-Type: {kind}")
            head.append(f"Content-Length: {len(body)}")
            head += [f"{k}: {v}" for k, v in headers.items()]
            data = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (
                body if status != 304 else b"")
            self.wfile.write(data)
            counter.add(len(data), status)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}", counter
