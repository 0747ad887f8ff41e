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
import resource
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lib.newsite import build_site, serve  # noqa: E402
from schemas.config import Crawl, Source  # noqa: E402
from tasks.crawl import crawl_source  # noqa: E402
from tasks.store import LoadBatch, load_batch, query  # noqa: E402

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
    counts = load_batch(db, LoadBatch.of_pages(
        run, [batch], claims=extracted["claims"], stances=extracted["stances"]))
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
