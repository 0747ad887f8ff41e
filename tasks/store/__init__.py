"""The DuckDB file: every read and write of the database goes through this package.

- `connection`: opening the file (schema and migrations), the run lock, read-only `query`;
- `state`: what earlier nights stored, read back for a crawl (`CrawlState`, one read);
- `load`: the night's one idempotent load transaction (`load_batch`);
- `runs`, `outbox` (alerts to send, source health), `reload` (reprocess), `export`.
"""

from __future__ import annotations

from tasks.store.connection import (
    connect,
    ensure_schema,
    fault_point,
    open_for_write,
    query,
    run_lock,
)
from tasks.store.export import export_parquet
from tasks.store.load import LoadBatch, LoadCounts, load_batch, load_batch_task
from tasks.store.outbox import (
    alerts_to_send,
    growing_backlogs,
    mark_delivering,
    record_alert_results,
    record_backlog_alert,
    record_health_alert,
    settle_interrupted_deliveries,
    stale_sources,
)
from tasks.store.reload import ReloadCounts, reload_articles
from tasks.store.runs import (
    begin_run,
    begin_run_task,
    fail_run,
    finish_run,
    finish_run_task,
    has_completed_run,
)
from tasks.store.state import (
    CrawlState,
    StoreReader,
    read_archived_sources,
    read_article_addresses,
    read_crawl_state,
    read_page_states,
    read_pages,
    read_raw_pages,
    reading,
)

__all__ = [
    "CrawlState",
    "LoadBatch",
    "LoadCounts",
    "ReloadCounts",
    "StoreReader",
    "alerts_to_send",
    "begin_run",
    "begin_run_task",
    "connect",
    "ensure_schema",
    "export_parquet",
    "fail_run",
    "fault_point",
    "finish_run",
    "finish_run_task",
    "growing_backlogs",
    "has_completed_run",
    "load_batch",
    "load_batch_task",
    "mark_delivering",
    "open_for_write",
    "query",
    "read_archived_sources",
    "read_article_addresses",
    "read_crawl_state",
    "read_page_states",
    "read_pages",
    "read_raw_pages",
    "reading",
    "record_alert_results",
    "record_backlog_alert",
    "record_health_alert",
    "reload_articles",
    "run_lock",
    "settle_interrupted_deliveries",
    "stale_sources",
]
