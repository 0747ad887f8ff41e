"""The `runs` table: a run's row is written when it starts and again when it ends."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import task

from schemas.ddl import SCHEMA_VERSION, ddl_hash
from schemas.models import (
    RunSummary,
)
from tasks.store.connection import open_for_write


def begin_run(path: Path | str, run_id: str, started_at: datetime,
              config_path: str | None = None) -> None:
    """Record the run as running; runs left 'running' by a crash are marked failed."""
    with open_for_write(path) as con:
        con.execute("UPDATE runs SET status = 'failed' WHERE status = 'running'")
        con.execute(
            "INSERT OR REPLACE INTO runs (run_id, started_at, status, config_path, "
            "schema_version, ddl_hash) VALUES (?, ?, 'running', ?, ?, ?)",
            [run_id, started_at, config_path, SCHEMA_VERSION, ddl_hash()])


def fail_run(path: Path | str, run_id: str, finished_at: datetime) -> None:
    """A run that raised: failed, with the counts its load (if any) recorded kept."""
    with open_for_write(path) as con:
        con.execute("UPDATE runs SET finished_at = ?, status = 'failed' WHERE run_id = ?",
                    [finished_at, run_id])


def finish_run(path: Path | str, summary: RunSummary) -> None:
    with open_for_write(path) as con:
        con.execute(
            "UPDATE runs SET finished_at = ?, status = ?, articles_new = ?, comments_new = ?, "
            "claims_new = ?, stances_new = ?, alerts_sent = ?, alerts_failed = ?, "
            "pages_failed = ? WHERE run_id = ?",
            [summary.finished_at, summary.status, summary.articles_new, summary.comments_new,
             summary.claims_new, summary.stances_new, summary.alerts_sent,
             summary.alerts_failed, summary.pages_failed, summary.run_id])


def has_completed_run(path: Path | str) -> bool:
    """Whether any run on this database has completed: the first run of a config over a
    fresh database has not, and sends a digest instead of an alert per claim."""
    with open_for_write(path) as con:
        row = con.execute("SELECT count(*) FROM runs WHERE status = 'completed'").fetchone()
    return bool(row and row[0])


begin_run_task = task(name="begin-run")(begin_run)


finish_run_task = task(name="finish-run")(finish_run)
