"""Fetch + parse + load throughput, and what an unchanged second night costs.

    python bench/fetch_bench.py [--pages 1000] [--concurrency 2] [--workers 8] [--claims]

Generates a local news site of `--pages` article pages (paragraphs from
../shared/corpus/polnear when present, else synthetic text; 2-8 reader comments each),
serves it on 127.0.0.1 with ETag / Last-Modified / gzip support and a sitemap listing every
page, then runs `tasks.crawl.night.crawl_source` + `tasks.store.load_batch` twice against a fresh
DuckDB. Claims and stances are skipped unless `--claims`, so the figure is about
fetch + parse + load. Prints: pages/s of the cold night; the second night's time and bytes
transferred as a share of the first (goal: under 5%); peak memory (ru_maxrss).

The server counts bytes it writes (status line, headers and body), so "bytes" is what
crossed the wire, robots.txt and sitemap included.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import html
import json
import random
import resource
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from schemas.config import Crawl, Source  # noqa: E402
from tasks.crawl import crawl_source  # noqa: E402
from tasks.store import (  # noqa: E402
    LoadBatch,
    load_batch,
    query,
)

CORPUS = ROOT.parent / "shared" / "corpus" / "polnear"
NOW = datetime.now(UTC)
NAMES = ["Ann Lee", "Bob Ortiz", "Chen Wei", "Dana Fox", "Eli Stone", "Farah Khan",
         "Gus Moreau", "Hana Sato"]
WORDS = ["policy", "export", "chips", "rules", "court", "senate", "regulator", "market",
         "company", "minister", "report", "official", "license", "security", "trade", "China",
         "European", "data", "privacy", "network", "industry", "analysts", "investors",
         "tariff", "agreement", "committee", "statement"]


# -- the site -------------------------------------------------------------------------------


def _documents() -> list[tuple[str, list[str]]]:
    """(title, paragraphs) of real articles when the corpus is here, else synthetic ones."""
    docs: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    for split in ("train", "dev"):
        path = CORPUS / f"polnear_{split}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            paras = [p.strip() for p in row["text"].split("\n") if len(p.strip()) > 40]
            if len(paras) >= 3 and row["text"] not in seen:
                seen.add(row["text"])
                docs.append((row["title"], paras[1:] if paras[0] == row["title"] else paras))
    return docs


def _synthetic(rng: random.Random, i: int) -> tuple[str, list[str]]:
    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(12, 24))).capitalize() + "."

    paras = [" ".join(sentence() for _ in range(rng.randint(2, 4)))
             for _ in range(rng.randint(6, 12))]
    return f"Story {i}: " + " ".join(rng.choice(WORDS) for _ in range(6)), paras


def build_site(pages: int, seed: int = 7) -> tuple[dict[str, bytes], str]:
    """path -> page HTML, and where the text came from."""
    rng = random.Random(seed)
    docs = _documents()
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
            title, paras = _synthetic(rng, i)
        day = NOW - timedelta(days=i % 5)
        comments = [(rng.choice(NAMES), rng.choice(rng.choice(docs)[1])[:300] if docs
                     else _synthetic(rng, i)[1][0][:300]) for _ in range(rng.randint(2, 8))]
        site[f"/{day:%Y/%m/%d}/story-{i}.html"] = _article(title, paras, comments,
                                                             day).encode("utf-8")
    return site, origin


def _article(title: str, paras: list[str], comments: list[tuple[str, str]],
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


# -- the nights -----------------------------------------------------------------------------


def night(source: Source, crawl: Crawl, db: Path, run: str, *, workers: int,
          claims: bool) -> dict[str, float]:
    started = time.perf_counter()
    batch = crawl_source(source, crawl, db, workers=workers)
    crawled = time.perf_counter()
    extracted: dict[str, list[object]] = {"claims": [], "stances": []}
    if claims:
        from tasks.analyse import classify_comment_stances, extract_article_claims

        extracted["claims"] = list(extract_article_claims(batch.articles, [])[0])
        extracted["stances"] = list(classify_comment_stances(batch.comments, [])[0])
    counts = load_batch(db, LoadBatch(
        run_id=run, pages=batch.outcomes, articles=batch.articles, comments=batch.comments,
        claims=extracted["claims"], stances=extracted["stances"],  # type: ignore[arg-type]
        rejects=batch.rejects, fetch_log=batch.fetch_log))
    done = time.perf_counter()
    return {"seconds": done - started, "crawl_s": crawled - started, "load_s": done - crawled,
            "articles_new": counts.articles_new, "comments_new": counts.comments_new,
            "parsed": len(batch.articles), "unchanged": batch.unchanged,
            "rejects": len(batch.rejects)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=Crawl().per_host_concurrency,
                        help="per-host concurrency (the config's crawl.per_host_concurrency)")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--claims", action="store_true", help="also extract claims/stances")
    args = parser.parse_args()

    site, origin = build_site(args.pages)
    server, base, counter = serve(site)
    # the bench site is on loopback, which the crawler refuses unless allowed (docs/security.md)
    crawl = Crawl(per_host_concurrency=args.concurrency, user_agent_contact="bench@localhost",
                  allow_private_addresses=[urlsplit(base).netloc])
    source = Source.model_validate({"name": "bench", "sitemap": f"{base}/sitemap.xml",
                                    "max_items": args.pages})
    size = sum(len(b) for b in site.values())
    print(f"site: {len(site)} pages from {origin} text, {size / 1e6:.1f} MB of HTML "
          f"(avg {size / len(site) / 1024:.1f} KiB); per-host concurrency {args.concurrency}, "
          f"workers {args.workers}")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.duckdb"
        nights = []
        for run in ("cold", "warm"):
            stats = night(source, crawl, db, run, workers=args.workers, claims=args.claims)
            sent, requests, statuses = counter.reset()
            stats.update(bytes=sent, requests=requests)
            nights.append(stats)
            codes = dict(sorted(statuses.items()))
            print(f"{run}: {stats['seconds']:.2f} s (crawl {stats['crawl_s']:.2f} s, load "
                  f"{stats['load_s']:.2f} s), {requests} requests {codes}, "
                  f"{sent / 1e6:.2f} MB sent, {stats['articles_new']:.0f} new articles, "
                  f"{stats['comments_new']:.0f} new comments, {stats['parsed']:.0f} parsed, "
                  f"{stats['unchanged']:.0f} unchanged, {stats['rejects']:.0f} rejects")
        stored = query(db, "SELECT count(*) FROM articles")[1][0][0]
        db_mb = db.stat().st_size / 1e6
    server.shutdown()
    cold, warm = nights
    print(f"cold night: {args.pages / cold['seconds']:.1f} pages/s fetched, parsed and loaded "
          f"({args.pages / cold['crawl_s']:.1f} pages/s fetch+parse)")
    print(f"warm night: {warm['seconds']:.2f} s = {100 * warm['seconds'] / cold['seconds']:.1f}% "
          f"of the cold night's time; {warm['bytes'] / 1e3:.1f} kB = "
          f"{100 * warm['bytes'] / cold['bytes']:.2f}% of its bytes")
    print(f"stored: {stored} articles, database {db_mb:.1f} MB")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (ru_maxrss): {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
