"""Parquet export of a query, on a read-only connection."""

from __future__ import annotations

from pathlib import Path

import duckdb

from schemas.errors import LoadError
from tasks.store.connection import connect


def export_parquet(path: Path | str, sql: str, out: Path | str, wait_s: float = 5.0) -> int:
    """Write a query's result to a Parquet file; returns the number of rows."""
    with connect(path, read_only=True, wait_s=wait_s) as con:
        try:
            relation = con.sql(sql)
            relation.write_parquet(str(out))
            return int(con.execute("SELECT count(*) FROM read_parquet(?)",
                                   [str(out)]).fetchone()[0])  # type: ignore[index]
        except duckdb.Error as exc:
            raise LoadError(str(exc).splitlines()[0]) from exc
