"""One source's night on the web: discovery, polite fetching, follow-up comment pages and
near-duplicates.

Start at `crawl_source`: it reads the source's `CrawlState` from the store once, discovers
its feed, sitemap or pages (`discover`), fetches what changed (`fetch`, with robots.txt,
Crawl-delay and retries), parses the pages (`tasks.extract`), follows comment pages
(`more_comments`) and folds copies into the articles they copy (`dedupe`). It returns a
`PageBatch` for the night's one load; it never writes to the store.
"""

from __future__ import annotations

from tasks.crawl.budget import settled
from tasks.crawl.night import (
    adopt_stored_comments,
    apply_merges,
    crawl_source,
    crawl_source_task,
    merge_night_copies,
)

__all__ = [
    "adopt_stored_comments",
    "apply_merges",
    "crawl_source",
    "crawl_source_task",
    "merge_night_copies",
    "settled",
]
