"""One source's night: discover its URLs, fetch what changed, parse it. A task per source.

Never raises for a page: every failure comes back as a reject with its reason, and pages that
failed before are offered again (with the feed's fresh items) so a passing fault heals.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from prefect import task

from schemas.config import Crawl, Source
from schemas.models import FetchRequest
from tasks.discover import discover_source
from tasks.fetch import fetch_many
from tasks.ids import normalize_url
from tasks.load import read_article_ids, read_failed_pages, read_page_states
from tasks.pages import PageBatch, process_pages


def crawl_source(source: Source, crawl: Crawl, db_path: Path | str, *,
                 now: datetime | None = None) -> PageBatch:
    discovery = discover_source(source, crawl, now=now or datetime.now(UTC))
    urls = [item.url for item in discovery.items]
    retry = [u for u in read_failed_pages(db_path, source.name)
             if u not in {normalize_url(x) for x in urls}]
    urls.extend(retry)
    states = read_page_states(db_path, urls)
    requests = []
    for url in urls:
        state = states.get(normalize_url(url))
        if state is not None and state.status == "gone":
            continue  # 404/410 before: not fetched again every night
        requests.append(FetchRequest(
            url=url, source=source.name,
            etag=state.etag if state and state.status == "ok" else None,
            last_modified=state.last_modified if state and state.status == "ok" else None))
    fetches = fetch_many(requests, crawl)
    batch = process_pages(fetches, source, states, read_article_ids(db_path, urls))
    batch.rejects[:0] = discovery.rejects
    batch.fetch_log = [*discovery.fetches, *fetches]
    return batch


crawl_source_task = task(name="crawl-source", retries=0)(crawl_source)
