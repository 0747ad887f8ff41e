"""Hostile sites, end to end (issue 22): each attack of the review served by a real server on
127.0.0.1 and run through the crawl, the nightly flow or the `sql` command.

Nothing here leaves loopback. The cloud metadata address (169.254.169.254) is only ever
refused: the test records every socket connect and checks that none was tried.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_httpserver import HTTPServer

from policywatch.cli import main
from schemas.config import Config, Crawl, Entity, Performance, Source
from schemas.models import Article
from tasks.crawl.discover import discover_source
from tasks.crawl.fetch import fetch_url, make_client
from tasks.store import LoadBatch, load_batch, query
from tests.local import LOCAL_SITE

NOW = datetime(2026, 11, 28, 12, tzinfo=UTC)
Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Server:
    """A threaded HTTP server on 127.0.0.1 answering from `routes`; it records every path."""

    routes: dict[str, Callable[[], Reply]] = field(default_factory=dict)
    hits: list[str] = field(default_factory=list)
    port: int = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def page(self, path: str, body: str | bytes, kind: str = "text/html; charset=utf-8",
             **headers: str) -> str:
        data = body.encode() if isinstance(body, str) else body
        self.routes[path] = lambda: (200, {"Content-Type": kind, **headers}, data)
        return self.base + path


def _serve(server: Server, fallback: Reply | None = None) -> Iterator[Server]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            server.hits.append(self.path)
            route = server.routes.get(self.path.split("?")[0])
            status, headers, body = route() if route else (fallback or (404, {}, b"no"))
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def site() -> Iterator[Server]:
    yield from _serve(Server())


@pytest.fixture
def internal() -> Iterator[Server]:
    """A service on this machine that a crawl must never reach (an admin page, metadata)."""
    yield from _serve(Server(), (200, {"Content-Type": "text/html", "ETag": '"m1"'},
                                 b"<html><body><article><p>SECRET-METADATA token=abc123 "
                                 + b"internal " * 60 + b"</p></article></body></html>"))


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every address a socket tried to connect to."""
    seen: list[Any] = []
    real = socket.socket.connect

    def record(self: socket.socket, address: Any) -> Any:
        seen.append(address)
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", record)
    return seen


def article(title: str, text: str, head: str = "") -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>{head}"
            f"</head><body><article><h1>{title}</h1><p>{text}</p></article></body></html>")


def rss(links: list[str]) -> str:
    items = "".join(f"<item><title>i</title><link>{link}</link>"
                    "<pubDate>Sat, 28 Nov 2026 08:00:00 GMT</pubDate></item>" for link in links)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}' \
           "</channel></rss>"


NEWS = ("The commerce department said on Tuesday that it would tighten export rules for "
        "advanced chips sold to several countries, citing national security concerns. ") * 4


# -- the whole night: SSRF, redirects, sitemap children, a flood of claims, a hostile page --


@pytest.mark.usefixtures("prefect_harness")
def test_a_night_on_a_hostile_site_reaches_no_private_address_and_stays_bounded(
        site: Server, internal: Server, connects: list[Any], httpserver: HTTPServer,
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.nightly import nightly
    from policywatch.cli import _print_run

    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    port = internal.port
    private = [f"http://127.0.0.1:{port}/a", f"http://localhost:{port}/b",
               f"http://2130706433:{port}/c", f"http://0x7f.1:{port}/d",
               f"http://[::ffff:127.0.0.1]:{port}/e", "http://169.254.169.254/latest/meta-data/"]
    site.routes["/go"] = lambda: (302, {"Location": f"http://127.0.0.1:{port}/secret"}, b"")
    flood = " ".join(f"Huawei will open {i} new chip plants in region {i} next year, analyst "
                     f"Jordan Smith{i} said." for i in range(40))
    deep = '<script type="application/ld+json">' + "[" * 100_000 + "]" * 100_000 + "</script>"
    links = [site.page("/ok.html", article("Export rules", NEWS)),
             site.page("/flood.html", article("Forty claims", flood)),
             site.page("/deep.html", article("Deep", NEWS, head=deep)),
             site.page("/esc.html", article("Escape", "Huawei will grow, analyst Ann Lee said. "
                                                      + NEWS)),
             site.base + "/go", *private]
    site.page("/rss.xml", rss(links), "application/rss+xml")
    # an address with terminal escape codes, as a feed can name one
    site.page("/rss2.xml", rss([site.base + "/\x1b]0;pwned\x07x\x1b[31m.html"]),
              "application/rss+xml")
    site.page("/index.xml", f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/'
                            f'schemas/sitemap/0.9"><sitemap><loc>http://127.0.0.1:{port}/latest/'
                            f"meta-data/iam</loc></sitemap></sitemapindex>", "application/xml")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({
        "sources": [{"name": "hostile", "feed": site.base + "/rss.xml"},
                    {"name": "escapes", "feed": site.base + "/rss2.xml"},
                    {"name": "maps", "sitemap": site.base + "/index.xml"}],
        "entities": [{"name": "Huawei", "kind": "org", "tracked": True}],
        "alerts": {"channels": [f"json://127.0.0.1:{httpserver.port}/hook"],
                   "max_per_article": 5, "max_per_run": 20,
                   "first_run": "each"},  # not one digest: the caps are what is tested
        "crawl": {"window_days": 3650, "retries": 0,
                  "allow_private_addresses": [f"127.0.0.1:{site.port}"]},
    }))
    db = tmp_path / "p.duckdb"
    summary = nightly(str(config), str(db))
    assert summary.status == "completed"

    # nothing on this machine but the allowed site was ever asked for anything
    assert internal.hits == []
    assert not [a for a in connects if isinstance(a, tuple) and a[0] == "169.254.169.254"]
    reasons = dict(query(db, "SELECT url, reason FROM rejects WHERE stage = 'fetch'")[1])
    loopback = "is a loopback address; crawl.allow_private_addresses opts in"
    for url in private[:4]:
        assert loopback in reasons[url], (url, reasons.get(url))
    assert "is an IPv4-mapped IPv6 address" in reasons[private[4]]
    assert "refused: 169.254.169.254 is a link-local address" in reasons[private[5]]
    assert reasons[site.base + "/go"].startswith(
        f"redirected to http://127.0.0.1:{port}/secret: refused: 127.0.0.1 is a loopback")
    discover = query(db, "SELECT url, reason FROM rejects WHERE stage = 'discover'")[1]
    assert any(str(port) in u and loopback in r for u, r in discover)
    listed = query(db, "SELECT url, content_gz FROM listings")[1]
    assert all(str(port) not in u and b"SECRET" not in gzip.decompress(c)
                   for u, c in listed)
    assert query(db, "SELECT count(*) FROM articles WHERE body LIKE '%SECRET%' "
                     f"OR url LIKE '%:{port}/%'")[1] == [(0,)]
    page = Path(summary.report_path or "").read_text()
    assert "SECRET" not in page and f":{port}/a" in page  # named as a failure, not stored

    # a page nested 100,000 deep is one reject; its source's other pages are stored
    parse = dict(query(db, "SELECT url, reason FROM rejects WHERE stage = 'parse'")[1])
    assert "RecursionError" in parse[site.base + "/deep.html"]
    stored = {u for (u,) in query(db, "SELECT url FROM articles")[1]}
    assert {site.base + "/ok.html", site.base + "/flood.html"} <= stored

    # forty claims on one page: five alerts one by one, the rest in one message with counts
    posts = [json.loads(r.data) for r, _ in httpserver.log if r.path == "/hook"]
    flood_posts = [p for p in posts if "Jordan Smith" in p["title"]]
    assert len(flood_posts) == 5
    overflow = [p for p in posts if "not sent one by one" in p["title"]]
    assert len(overflow) == 1 and "Huawei: 3" in overflow[0]["message"]
    assert len(posts) <= 20 + 1
    assert query(db, "SELECT DISTINCT status FROM alerts")[1] == [("sent",)]

    # what the run prints carries no terminal escape codes from the feed
    _print_run(db, summary, {"Huawei"})
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out
    assert "pwned" in out  # the address is shown, made harmless


# -- bounded work ------------------------------------------------------------------------------


def test_stacked_gzip_is_cut_at_the_size_cap_without_inflating_the_bomb(site: Server) -> None:
    inner = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = inner.compress(b"\0" * 200_000_000) + inner.flush()  # 200 MB in ~200 KB
    twice = gzip.compress(bomb, 9)  # a few KB on the wire
    site.page("/bomb.html", twice, **{"Content-Encoding": "gzip, gzip"})
    tracemalloc.start()
    try:
        with make_client(allow_private=LOCAL_SITE) as client:
            from schemas.models import FetchRequest

            result = fetch_url(client, FetchRequest(url=site.base + "/bomb.html", source="s"),
                               max_bytes=1_000_000, retries=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert not result.ok and (result.error or "").startswith("too large")
    assert peak < 20_000_000, f"{peak / 1e6:.0f} MB allocated for a 1 MB cap"


def _urlset(count: int, base: str) -> bytes:
    rows = "".join(f"<url><loc>{base}/p/{i}.html</loc></url>" for i in range(count))
    return (f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"{rows}</urlset>").encode()


def test_a_sitemap_index_naming_a_big_gzipped_urlset_many_times_is_capped(site: Server) -> None:
    site.page("/big.xml.gz", gzip.compress(_urlset(60_000, site.base)), "application/gzip")
    children = "".join(f"<sitemap><loc>{site.base}/big.xml.gz?n={i}</loc></sitemap>"
                       for i in range(49))
    site.page("/index.xml", '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/'
                            f'schemas/sitemap/0.9">{children}</sitemapindex>', "application/xml")
    source = Source(name="s", sitemap=site.base + "/index.xml", max_items=5)
    crawl = Crawl(allow_private_addresses=LOCAL_SITE, obey_robots=False, window_days=3650)
    found = discover_source(source, crawl, now=NOW)
    # 10 x max_items addresses read; the night's budget then takes 5 (tasks.crawl.budget)
    assert len(found.items) == 50
    assert len(found.fetches) == 2  # the index and one child: 50 addresses were enough
    assert any("listings cut: over 50 addresses" in r.reason for r in found.rejects)


def test_a_sitemap_unpacking_past_the_size_cap_is_a_reject(site: Server) -> None:
    site.page("/huge.xml.gz", gzip.compress(_urlset(40_000, site.base)), "application/gzip")
    source = Source(name="s", sitemap=site.base + "/huge.xml.gz")
    crawl = Crawl(allow_private_addresses=LOCAL_SITE, obey_robots=False, max_bytes=500_000)
    found = discover_source(source, crawl, now=NOW)
    assert found.items == []
    assert [r.reason for r in found.rejects] == [
        "too large: over 500000 bytes unpacked (crawl.max_bytes)"]


def test_listing_fetches_per_source_are_capped(site: Server) -> None:
    for i in range(30):
        site.page(f"/m{i}.xml", _urlset(1, site.base + f"/m{i}"), "application/xml")
    children = "".join(f"<sitemap><loc>{site.base}/m{i}.xml</loc></sitemap>" for i in range(30))
    site.page("/index.xml", '<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/'
                            f'schemas/sitemap/0.9">{children}</sitemapindex>', "application/xml")
    crawl = Crawl(allow_private_addresses=LOCAL_SITE, obey_robots=False, window_days=3650,
                  max_listing_fetches=10)
    found = discover_source(Source(name="s", sitemap=site.base + "/index.xml"), crawl, now=NOW)
    assert len(found.fetches) == 10 and len(found.items) == 9
    assert sum("crawl.max_listing_fetches" in r.reason for r in found.rejects) == 21


@pytest.mark.usefixtures("prefect_harness")
def test_claim_extraction_reads_a_bounded_text_and_records_the_cut() -> None:
    from flows.analysis import analyse_night

    body = "Huawei will open new plants, analyst Ann Lee said. " + "word " * 400_000
    config = Config(sources=(Source(name="s", urls=("http://example.org/a",)),),
                    entities=(Entity(name="Huawei", tracked=True),),
                    performance=Performance(processes=1, max_text_chars=5_000))
    long = Article(article_id="a1", source="s", url="http://example.org/a", title="t",
                   body=body, content_hash="h", fetched_at=NOW)
    claims, _, rejects = analyse_night([long], [], config)
    assert [c.speaker for c in claims] == ["Ann Lee"]
    assert [r.reason for r in rejects] == [
        f"claims: text cut at 5000 of {len(body)} characters (performance.max_text_chars)"]


# -- trust: a canonical link to another site -----------------------------------------------------


def test_a_canonical_link_to_another_site_never_merges_two_sources(site: Server,
                                                                    tmp_path: Path) -> None:
    from tasks.crawl import crawl_source

    other = f"http://localhost:{site.port}/real.html"  # another host name for the victim
    site.page("/planted.html", article("Planted", "Huawei planted this claim. " + NEWS,
                                       head=f'<link rel="canonical" href="{other}">'))
    site.page("/real.html", article("Real story", NEWS + " The real article."))
    crawl = Crawl(allow_private_addresses=(*LOCAL_SITE, "localhost"), obey_robots=False,
                  window_days=3650, retries=0)
    db = tmp_path / "t.duckdb"
    for run, source in (("r1", Source(name="attacker", urls=(site.base + "/planted.html",))),
                        ("r2", Source(name="victim", urls=(other,)))):
        batch = crawl_source(source, crawl, db, now=NOW)
        load_batch(db, LoadBatch(run_id=run, pages=batch.outcomes, articles=batch.articles,
                                 comments=batch.comments, rejects=batch.rejects,
                                 fetch_log=batch.fetch_log))
    rows = query(db, "SELECT source, url, canonical_url FROM articles ORDER BY source")[1]
    assert rows == [("attacker", site.base + "/planted.html", None),
                    ("victim", other, None)]


# -- sql: read-only for real -------------------------------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Path:
    from tasks.store import open_for_write

    db = tmp_path / "q.duckdb"
    with open_for_write(db):
        pass
    return db


@pytest.mark.parametrize("sql", [
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_text('/etc/hostname')",
    "SELECT * FROM glob('/*')",
    "SET log_query_path = '{out}'",
    "PRAGMA profiling_output = '{out}'",
    "ATTACH '{out}' AS x (READ_WRITE)",
    "INSTALL sqlite",
    "LOAD sqlite",
    "SET enable_external_access = true",
])
def test_sql_reaches_nothing_but_the_database(database: Path, tmp_path: Path, sql: str) -> None:
    out = tmp_path / "written"
    result = CliRunner().invoke(main, ["sql", sql.format(out=out), "--db", str(database)])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("policywatch: error:") and result.output.count("\n") == 1
    assert any(w in result.output for w in ("by configuration", "through configuration",
                                            "has been locked"))
    assert not out.exists() and "root:" not in result.output


def test_sql_takes_one_statement(database: Path) -> None:
    result = CliRunner().invoke(main, ["sql", "SELECT 1; SET log_query_path = '/tmp/x'",
                                       "--db", str(database)])
    assert result.exit_code == 2
    assert "give one SQL statement at a time (got 2)" in result.output
    ok = CliRunner().invoke(main, ["sql", "SELECT count(*) AS n FROM runs", "--db",
                                   str(database), "--format", "json"])
    assert ok.exit_code == 0 and json.loads(ok.output) == [{"n": 0}]


def test_parquet_export_writes_its_file_and_nothing_else(database: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.parquet"
    ok = CliRunner().invoke(main, ["sql", "SELECT 1 AS a", "--db", str(database),
                                   "--format", "parquet", "--out", str(out)])
    assert ok.exit_code == 0 and out.exists()
    bad = CliRunner().invoke(main, ["sql", "SELECT * FROM read_csv('/etc/passwd')", "--db",
                                    str(database), "--format", "parquet", "--out", str(out)])
    assert bad.exit_code == 2 and "root:" not in bad.output


def test_a_sqlite_file_is_refused_in_one_line(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "old.db"
    sqlite3.connect(db).execute("CREATE TABLE t (a)").connection.close()
    result = CliRunner().invoke(main, ["sql", "SELECT 1", "--db", str(db)])
    assert result.exit_code == 2
    assert result.output == f"policywatch: error: {db}: is a SQLite database, not a DuckDB " \
                            "one; give a DuckDB file, or a new path for policywatch to create\n"


def test_a_truncated_database_is_one_line_naming_the_file(database: Path) -> None:
    data = database.read_bytes()
    database.write_bytes(data[: len(data) // 3])
    result = CliRunner().invoke(main, ["sql", "SELECT 1", "--db", str(database)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert result.output.startswith(f"policywatch: error: {database}: ")
    assert "restore it from a backup" in result.output


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from tasks.store import load_batch, open_for_write
from tests.tasks.test_load import _batch
db = Path(sys.argv[1])
with open_for_write(db):
    pass
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1, 1))  # no file may grow: as a full disk
load_batch(db, _batch("r1"))
"""


def test_a_write_the_disk_refuses_is_one_line_naming_the_cause(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "full.py"
    script.write_text(_FULL_DISK)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "f.duckdb")],
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    last = done.stderr.strip().splitlines()[-1]
    assert "cannot rollback" not in done.stderr
    assert last.startswith("schemas.errors.LoadError: ") and "File too large" in last
    assert "the disk is full (or a file size limit was reached)" in last
