"""Hostile inputs, each served on 127.0.0.1 and crawled by a real `policywatch run`
(issue 22): prints the peak RSS and the time of each run.

    python bench/hostile_bench.py [--only NAME ...]

Each input gets its own config and database and one `policywatch run` in a child process;
its peak RSS is the largest resident set of that process and the processes it waited for
(`os.wait4`'s ru_maxrss). The goal is at most 1.5 GB for every input. Nothing leaves
loopback: the server binds 127.0.0.1 and the SSRF input points at other loopback ports and
at 169.254.169.254, which the crawler refuses before connecting.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOAL_BYTES = 1.5e9
STREAM_SECONDS = 90  # an endless body stops by itself after this long, whoever reads it


def _deflate_gzip(data_size: int, chunk: int = 16 << 20) -> bytes:
    """gzip of `data_size` zero bytes, made without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * chunk
    out = [packer.compress(zeros) for _ in range(data_size // chunk)]
    out.append(packer.flush())
    return b"".join(out)


def _article(title: str, text: str, head: str = "") -> bytes:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{head}"
            f"</head><body><article><h1>{title}</h1><p>{text}</p></article></body></html>"
            ).encode()


def _urlset_gz(count: int, base: str) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/'
                             b'schemas/sitemap/0.9">')]
    block = 10_000
    for start in range(0, count, block):
        rows = "".join(f"<url><loc>{base}/p/{i}.html</loc></url>"
                       for i in range(start, min(count, start + block)))
        parts.append(packer.compress(rows.encode()))
    parts.append(packer.compress(b"</urlset>"))
    parts.append(packer.flush())
    return b"".join(parts)


class Site:
    """Routes: path -> (status, headers, body or a generator of chunks)."""

    def __init__(self) -> None:
        self.routes: dict[str, Callable[[], tuple[int, dict[str, str], Any]]] = {}
        self.posts = 0
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        # a client hanging up on an endless or refused body is expected, not an error
        self.server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self.port = int(self.server.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def page(self, path: str, body: bytes, kind: str = "text/html; charset=utf-8",
             **headers: str) -> str:
        self.routes[path] = lambda: (200, {"Content-Type": kind, **headers}, body)
        return self.base + path

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                site.posts += 1
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self) -> None:
                route = site.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, headers, body = route()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if isinstance(body, bytes):
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in body:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _endless() -> Iterator[bytes]:
    chunk = b"<p>" + b"all work and no play " * 3000 + b"</p>"
    stop = time.monotonic() + STREAM_SECONDS
    yield b"<html><body><article>"
    while time.monotonic() < stop:
        yield chunk


def inputs(site: Site) -> dict[str, dict[str, Any]]:
    """name -> the source for that input (its pages are put on `site`)."""
    base = site.base
    twice = gzip.compress(_deflate_gzip(2_000_000_000), 9)  # 2 GB behind two gzip layers
    once = _deflate_gzip(1_000_000_000)  # 1 GB behind one
    big_gz = _urlset_gz(400_000, base)  # ~2 MB packed, ~25 MB unpacked
    flood = " ".join(f"Huawei will open {i} new chip plants in region {i} next year, analyst "
                     f"Jordan Smith{i} said." for i in range(500))
    words = "Huawei said the chips were ready and analysts agreed with the plan "
    paragraph = (words * (9_000_000 // len(words)))[:9_000_000]
    deep_json = '<script type="application/ld+json">' + "[" * 100_000 + "]" * 100_000 \
        + "</script>"
    deep_html = "<div>" * 200_000 + "deep" + "</div>" * 200_000
    site.page("/gzgz.html", twice, **{"Content-Encoding": "gzip, gzip"})
    site.page("/gz.html", once, **{"Content-Encoding": "gzip"})
    site.routes["/endless.html"] = lambda: (200, {"Content-Type": "text/html"}, _endless())
    site.page("/big.xml.gz", big_gz, "application/gzip")
    children = "".join(f"<sitemap><loc>{base}/big.xml.gz?n={i}</loc></sitemap>"
                       for i in range(49))
    index = ('<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/'
             f'sitemap/0.9">{children}</sitemapindex>' + " " * 540_000).encode()
    site.page("/index.xml", index, "application/xml")
    site.page("/paragraph.html", _article("One paragraph", paragraph))
    site.page("/deepjson.html", _article("Deep JSON-LD", words * 20, head=deep_json))
    site.page("/deephtml.html", _article("Deep HTML", deep_html))
    site.page("/flood.html", _article("Five hundred claims", flood))
    private = [f"http://127.0.0.1:{site.port + 1}/admin", f"http://localhost:{site.port + 1}/x",
               f"http://2130706433:{site.port + 1}/x", f"http://0x7f.1:{site.port + 1}/x",
               f"http://[::ffff:127.0.0.1]:{site.port + 1}/x", "http://169.254.169.254/latest/"]
    items = "".join(f"<item><title>i</title><link>{u}</link></item>" for u in private)
    site.page("/ssrf.xml", f'<?xml version="1.0"?><rss version="2.0"><channel><title>t'
                           f"</title>{items}</channel></rss>".encode(), "application/rss+xml")
    return {
        "gzip, gzip (2 GB inside)": {"urls": [f"{base}/gzgz.html"]},
        "gzip bomb (1 GB inside)": {"urls": [f"{base}/gz.html"]},
        "endless body": {"urls": [f"{base}/endless.html"]},
        "sitemap index x49 .gz": {"sitemap": f"{base}/index.xml"},
        "9 MB paragraph": {"urls": [f"{base}/paragraph.html"]},
        "JSON-LD 100,000 deep": {"urls": [f"{base}/deepjson.html", f"{base}/flood.html"]},
        "HTML 200,000 deep": {"urls": [f"{base}/deephtml.html"]},
        "500 claims, one page": {"urls": [f"{base}/flood.html"]},
        "SSRF feed": {"feed": f"{base}/ssrf.xml"},
    }


def run_one(name: str, source: dict[str, Any], site: Site, folder: Path) -> dict[str, Any]:
    slug = "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")
    config = folder / f"{slug}.yaml"
    db = folder / f"{slug}.duckdb"
    config.write_text(json.dumps({
        "database": str(db),
        "sources": [{"name": "hostile", **source}],
        "entities": [{"name": "Huawei", "kind": "org", "tracked": True}],
        "alerts": {"channels": [f"json://127.0.0.1:{site.port}/hook"]},
        "crawl": {"window_days": 3650, "retries": 0,
                  "allow_private_addresses": [f"127.0.0.1:{site.port}"]},
        "performance": {"processes": 1},
    }))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    posts_before = site.posts
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "policywatch.cli", "run", "--config",
                              str(config)], env=env, cwd=folder, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
    out = child.stdout.read().decode(errors="replace") if child.stdout else ""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    failures = [line.strip() for line in out.splitlines() if line.startswith("    [")]
    return {"input": name, "exit": child.returncode, "peak_rss_mb": usage.ru_maxrss / 1024,
            "seconds": round(seconds, 1), "posts": site.posts - posts_before,
            "failures": failures[:3], "tail": out.strip().splitlines()[-3:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="run only inputs whose name has this text")
    args = parser.parse_args()
    site = Site()
    try:
        chosen = {n: s for n, s in inputs(site).items()
                  if not args.only or any(o.lower() in n.lower() for o in args.only)}
        with tempfile.TemporaryDirectory(prefix="hostile-bench-") as tmp:
            results = [run_one(name, source, site, Path(tmp)) for name, source in chosen.items()]
    finally:
        site.close()
    print(f"{'input':28} {'exit':>4} {'peak RSS':>10} {'time':>8} {'posts':>6}  first failure")
    for r in results:
        print(f"{r['input']:28} {r['exit']:>4} {r['peak_rss_mb']:>7.0f} MB {r['seconds']:>6.1f} s "
              f"{r['posts']:>6}  {(r['failures'] or [''])[0][:110]}")
    worst = max(r["peak_rss_mb"] for r in results)
    print(f"\nworst peak RSS {worst:.0f} MB; goal {GOAL_BYTES / 1e6:.0f} MB: "
          f"{'met' if worst * 1024 * 1024 <= GOAL_BYTES else 'NOT met'}")
    for r in results:
        if r["exit"] != 0:
            print(f"{r['input']}: exit {r['exit']}: {' | '.join(r['tail'])}")


if __name__ == "__main__":
    main()
