"""Parquet export of a query, on a read-only connection."""

from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.errors import LoadError
from tasks.store.connection import connect, one_statement


def export_parquet(path: Path | str, sql: str, out: Path | str, wait_s: float = 5.0) -> int:
    """Write a query's result to a Parquet file; returns the number of rows. The query runs
    as `query(..., locked=True)` does: it can write that one file and read nothing else."""
    one_statement(sql)
    target = str(Path(out).resolve())
    with connect(path, read_only=True, wait_s=wait_s, locked=True,
                 allowed_paths=[target]) as con:
        try:
            relation = con.sql(sql)
            relation.write_parquet(target)
            return int(con.execute("SELECT count(*) FROM read_parquet(?)",
                                   [target]).fetchone()[0])  # type: ignore[index]
        except duckdb.Error as exc:
            raise LoadError(str(exc).splitlines()[0]) from exc
