"""The command line of docs/contract.md: exit codes, messages, formats, and the demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from policywatch.cli import EXIT_CODES, exit_code_for, format_rows, iso_duration, main
from policywatch.demo import write_demo_config
from schemas.errors import (
    ConfigError,
    DatabaseBusy,
    FetchError,
    LoadError,
    NotifyError,
    ParseError,
    PolicywatchError,
)
from tasks.store import load_batch, query
from tests.tasks.test_load import _batch


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_every_error_class_has_its_exit_code() -> None:
    expected = {ConfigError: 2, LoadError: 2, DatabaseBusy: 3, FetchError: 4, ParseError: 5,
                NotifyError: 6, PolicywatchError: 1}
    assert {k: exit_code_for(k("x")) for k in expected} == expected
    assert set(EXIT_CODES) == set(expected)
    assert exit_code_for(RuntimeError("x")) == 1


def test_bad_config_is_one_line_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "pw.yaml"
    config.write_text("sources:\n  - name: a\n    feed: https://a.example/rss\n    colour: red\n")
    code, out, err = _run("run", "--config", str(config), "--db", str(tmp_path / "x.duckdb"))
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "sources[0].colour (line 4): unknown key" in err
    assert "Traceback" not in err + out


def test_missing_config_exit_2(tmp_path: Path) -> None:
    code, _, err = _run("run", "--config", str(tmp_path / "none.yaml"))
    assert code == 2 and "cannot read config" in err


def test_unusable_database_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "pw.yaml"
    config.write_text("sources:\n  - name: a\n    urls: [https://a.example/x]\n")
    garbage = tmp_path / "garbage.duckdb"
    garbage.write_bytes(b"this is not a database" * 100)
    code, _, err = _run("run", "--config", str(config), "--db", str(garbage))
    assert code == 2 and "garbage.duckdb" in err and "Traceback" not in err


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_formats(db_path: Path, fmt: str) -> None:
    load_batch(db_path, _batch("r1"))
    code, out, _ = _run("sql", "SELECT speaker, quote_kind, first_seen_at FROM claims",
                        "--db", str(db_path), "--format", fmt)
    assert code == 0
    if fmt == "json":
        [row] = json.loads(out)
        assert row["speaker"] == "David Sacks" and row["first_seen_at"].startswith("20")
    elif fmt == "csv":
        assert out.splitlines()[0] == "speaker,quote_kind,first_seen_at"
        assert out.splitlines()[1].startswith("David Sacks,indirect,")
    else:
        assert "David Sacks" in out and "(1 row)" in out


def test_sql_is_read_only_and_errors_are_one_line(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    code, _, err = _run("sql", "DROP TABLE claims", "--db", str(db_path))
    assert code == 2 and "read-only" in err
    code, _, err = _run("sql", "SELECT nope FROM claims", "--db", str(db_path))
    assert code == 2 and "nope" in err and err.count("\n") == 1
    code, _, err = _run("sql", "SELECT 1", "--db", str(db_path.parent / "none.duckdb"))
    assert code == 2 and "no such database" in err


@pytest.mark.parametrize("statement", [
    "COPY claims TO '{out}'", "COPY (SELECT 1 AS n) TO '{out}' (FORMAT parquet)",
    "SELECT 1; COPY claims TO '{out}'", "EXPORT DATABASE '{out}'",
    "copy claims from '{out}'"])
@pytest.mark.parametrize("fmt", ["table", "parquet"])
def test_sql_refuses_statements_that_write_files(db_path: Path, tmp_path: Path,
                                                 statement: str, fmt: str) -> None:
    load_batch(db_path, _batch("r1"))
    target = tmp_path / "written"
    (tmp_path / "in.csv").write_text("x\n")
    sql = statement.format(out=tmp_path / "in.csv" if "from" in statement else target)
    code, out, err = _run("sql", sql, "--db", str(db_path), "--format", fmt,
                          "--out", str(tmp_path / "result"))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1 and "read-only" in err and "--out" in err
    assert not target.exists() and not (tmp_path / "result").exists()


def test_reprocess_missing_database_or_unknown_source_is_one_line_exit_2(
        db_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "pw.yaml"
    config.write_text("sources:\n  - name: wire\n    urls: [https://wire.example/x]\n"
                      "  - name: blog\n    urls: [https://blog.example/x]\n")
    typo = tmp_path / "typo.duckdb"
    code, out, err = _run("reprocess", "--config", str(config), "--db", str(typo))
    assert (code, out) == (2, "") and err == f"policywatch: error: {typo}: no such database\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pw.yaml"]  # no database, no lock

    load_batch(db_path, _batch("r1", source="gone"))  # archived, no longer configured
    code, out, err = _run("reprocess", "--config", str(config), "--db", str(db_path),
                          "--source", "nosuch", "--no-extract")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "'nosuch'" in err and "known: wire, blog, gone" in err
    code, out, err = _run("reprocess", "--config", str(config), "--db", str(db_path),
                          "--source", "gone", "--no-extract")
    assert code == 0, err
    assert "pages              1" in out


def test_format_rows_table_clips_wide_cells() -> None:
    out = format_rows(["a"], [("x" * 100,)], "table")
    assert max(len(line) for line in out.splitlines()) <= 60


@pytest.mark.usefixtures("prefect_harness")
def test_demo_twice_second_run_finds_nothing_new(tmp_path: Path) -> None:
    db = tmp_path / "demo.duckdb"
    code, out, err = _run("demo", "--db", str(db))
    assert code == 0, err
    assert "New claims about tracked entities:" in out
    new_claims = int(out.split("New claims about tracked entities:")[1].split()[0])
    received = int(out.split("Alerts received by the demo webhook")[1].split("): ")[1].split()[0])
    assert new_claims > 10 and received > 10
    assert "David Sacks" in out and "Huawei" in out
    code, out, err = _run("demo", "--db", str(db))
    assert code == 0, err
    assert "new articles  0" in out and "new claims    0" in out
    assert "New claims about tracked entities: 0" in out
    assert "Alerts received by the demo webhook" in out
    assert int(out.split("Alerts received by the demo webhook")[1].split("): ")[1].split()[0]) == 0
    # the run left a briefing page beside the database
    latest = tmp_path / "demo-reports" / "latest.html"
    assert f"briefing      {latest}" in out and "Huawei" in latest.read_text()

    # every example query in the README runs on the demo database and finds something
    import re
    import shlex

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    examples = re.findall(r"^\s+(policywatch sql .+)$", readme, flags=re.MULTILINE)
    assert len(examples) >= 4
    for example in examples:
        args = shlex.split(example)[1:]
        code, out, err = _run(*args, "--db", str(db))
        assert code == 0, f"{example}: {err}"
        assert "(0 rows)" not in out and out.strip() not in ("", "[]"), example

    # `report` writes one on demand; `reprocess` re-reads the archive without new rows
    code, out, err = _run("report", "--db", str(db), "--out", str(tmp_path / "r.html"),
                          "--since", "3650d")
    assert code == 0, err
    assert "David Sacks" in (tmp_path / "r.html").read_text()
    tables = ("articles", "comments", "claims", "stances", "alerts")
    before = {t: query(db, f"SELECT count(*) FROM {t}")[1] for t in tables}
    config = write_demo_config("http://127.0.0.1:9", tmp_path)  # no fetching happens
    code, out, err = _run("reprocess", "--config", str(config), "--db", str(db))
    assert code == 0, err
    assert "pages              7" in out and "claims new         0" in out
    assert {t: query(db, f"SELECT count(*) FROM {t}")[1] for t in tables} == before


def test_claims_command_lists_an_entitys_claims(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    code, out, _ = _run("claims", "--entity", "Huawei", "--since", "36500d", "--db",
                        str(db_path), "--format", "json")
    assert code == 0
    [row] = json.loads(out)
    assert row["speaker"] == "David Sacks" and row["content"] == "Huawei is closing the gap"
    # a stored entity with no claims in the window: no rows, no error
    code, out, _ = _run("claims", "--entity", "David Sacks", "--since", "1m", "--db",
                        str(db_path))
    assert code == 0 and "(0 rows)" in out
    code, _, err = _run("claims", "--entity", "Huawei", "--since", "soon", "--db", str(db_path))
    assert code == 2 and "use a number and m, h, d or w" in err


def test_claims_unknown_entity_suggests_stored_names(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    code, out, err = _run("claims", "--entity", "huawei", "--since", "36500d", "--db",
                          str(db_path))
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "unknown entity" in err and "'huawei'" in err and "did you mean 'Huawei'" in err
    code, out, err = _run("claims", "--entity", "Nvidia", "--db", str(db_path))
    assert code == 2 and out == "" and "unknown entity" in err and "Huawei" not in err


@pytest.mark.parametrize("command", ["claims", "report"])
@pytest.mark.parametrize("since", ["99999999d", pytest.param("1" + "0" * 400 + "d", id="1e400d"),
                                   "5x", "-3d", "1e5d"])
def test_since_too_large_or_malformed_is_one_line_exit_2(db_path: Path, tmp_path: Path,
                                                         command: str, since: str) -> None:
    load_batch(db_path, _batch("r1"))
    args = ["--entity", "Huawei"] if command == "claims" else ["--out", str(tmp_path / "r.html")]
    code, out, err = _run(command, *args, "--since", since, "--db", str(db_path))
    assert (code, out) == (2, "")
    assert err.startswith("policywatch: error: --since ") and err.count("\n") == 1
    assert "Traceback" not in err and not (tmp_path / "r.html").exists()


def _unwritable(tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    if case == "missing folder":
        return tmp_path / "nodir" / "x.out"
    if case == "folder":
        return tmp_path
    if case == "under a file":
        (tmp_path / "file").write_text("x")
        return tmp_path / "file" / "x.out"
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes anywhere: deny as a read-only mount would
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
            Path(path) != locked and real_access(path, mode, **kw)))
    return locked / "x.out"


@pytest.mark.parametrize("case", ["missing folder", "folder", "under a file",
                                  "permission denied"])
@pytest.mark.parametrize("command", [["sql", "SELECT 1"],
                                     ["sql", "SELECT 1", "--format", "parquet"],
                                     ["sql", "SELECT 1", "--format", "csv"], ["report"]])
def test_unwritable_out_is_one_line_exit_2(db_path: Path, tmp_path: Path, case: str,
                                           command: list[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    load_batch(db_path, _batch("r1"))
    (tmp_path / "out").mkdir()
    out = _unwritable(tmp_path / "out", case, monkeypatch)
    if command == ["report"] and case == "missing folder":
        # `report` makes missing folders
        code, stdout, err = _run(*command, "--db", str(db_path), "--out", str(out))
        assert code == 0, err
        assert out.is_file()
        return
    code, stdout, err = _run(*command, "--db", str(db_path), "--out", str(out))
    assert (code, stdout) == (2, ""), err
    assert err.startswith(f"policywatch: error: --out {out}: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_out_write_failure_is_one_line_exit_2(db_path: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure only the write itself finds (a full disk, a read-only mount)."""
    load_batch(db_path, _batch("r1"))

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "write_text", refuse)
    monkeypatch.setattr("tasks.report.write_report", refuse)  # as the CLI imports it
    for command in (["sql", "SELECT 1"], ["report"]):
        out = tmp_path / "x.out"
        code, stdout, err = _run(*command, "--db", str(db_path), "--out", str(out))
        assert (code, stdout) == (2, "")
        assert err == f"policywatch: error: --out {out}: cannot write: Permission denied\n"


def test_sql_parquet_export(db_path: Path, tmp_path: Path) -> None:
    import duckdb

    load_batch(db_path, _batch("r1"))
    out = tmp_path / "claims.parquet"
    code, stdout, _ = _run("sql", "SELECT claim_id, speaker, first_seen_at FROM claims",
                           "--db", str(db_path), "--format", "parquet", "--out", str(out))
    assert code == 0 and "wrote 1 rows" in stdout
    rows = duckdb.connect().execute("SELECT speaker FROM read_parquet(?)", [str(out)]).fetchall()
    assert rows == [("David Sacks",)]
    code, _, err = _run("sql", "SELECT 1", "--db", str(db_path), "--format", "parquet")
    assert code == 2 and "--out" in err


ODD_VALUES = (
    "SELECT INTERVAL 1 DAY + INTERVAL 2 HOUR + INTERVAL 3 MINUTE + INTERVAL 4500 MILLISECOND"
    " AS span, -INTERVAL 90 MINUTE AS back, '5c5d8e1e-2b7a-4c52-9f1e-0d6c1a3b7e42'::UUID AS id,"
    " TIME '12:34:56.5' AS t, '12:34:56+02'::TIMETZ AS ttz, DATE '2026-11-05' AS d,"
    " TIMESTAMPTZ '2026-11-05 10:00:00+00' AS ts, [TIMESTAMP '2026-11-05 10:00:00'] AS tss,"
    " {'at': TIMESTAMP '2026-11-05 10:00:00', 'n': 1.25::DECIMAL(5, 2), 'f': 'nan'::DOUBLE}"
    " AS st, MAP {1: INTERVAL 1 HOUR} AS m, [1, 2]::INTEGER[2] AS arr,"
    " 'nan'::DOUBLE AS nan, '-inf'::FLOAT AS ninf, 1.5::DECIMAL(10, 2) AS dec,"
    " '\\xAA\\x00'::BLOB AS blob, NULL AS nothing"
)


def test_sql_json_writes_any_duckdb_value_as_valid_json(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    # one statement, and no SET: the user's SQL runs on a locked connection (docs/security.md)
    code, out, err = _run("sql", ODD_VALUES,
                          "--db", str(db_path), "--format", "json")
    assert code == 0, err
    assert "NaN" not in out and "Infinity" not in out
    [row] = json.loads(out, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert row == {
        "span": "P1DT2H3M4.5S", "back": "-PT1H30M",
        "id": "5c5d8e1e-2b7a-4c52-9f1e-0d6c1a3b7e42",
        "t": "12:34:56.500000", "ttz": "12:34:56+02:00", "d": "2026-11-05",
        "ts": "2026-11-05T10:00:00+00:00",  # the session's zone (UTC), offset kept
        "tss": ["2026-11-05T10:00:00"],
        "st": {"at": "2026-11-05T10:00:00", "n": 1.25, "f": None},
        "m": {"1": "PT1H"}, "arr": [1, 2],
        "nan": None, "ninf": None, "dec": 1.5, "blob": "qgA=", "nothing": None,
    }


def test_sql_json_now_in_a_list(db_path: Path) -> None:
    load_batch(db_path, _batch("r1"))
    code, out, err = _run("sql", "SELECT [now()] AS l, {'at': now()} AS s",
                          "--db", str(db_path), "--format", "json")
    assert code == 0, err
    [row] = json.loads(out)
    assert row["l"][0].startswith("20") and row["s"]["at"] == row["l"][0]


@pytest.mark.parametrize("fmt", ["csv", "table"])
def test_sql_text_formats_take_any_duckdb_value(db_path: Path, fmt: str) -> None:
    load_batch(db_path, _batch("r1"))
    code, out, err = _run("sql", ODD_VALUES, "--db", str(db_path), "--format", fmt)
    assert code == 0, err
    assert "P1DT2H3M4.5S" in out and "5c5d8e1e-2b7a-4c52-9f1e-0d6c1a3b7e42" in out
    assert '["2026-11-05T10:00:00"]' in out.replace('""', '"')  # csv doubles the quotes
    assert "<2 bytes>" in out


@pytest.mark.parametrize(("span", "expected"), [
    ({"days": 1, "hours": 2, "minutes": 3, "seconds": 4.5}, "P1DT2H3M4.5S"),
    ({}, "PT0S"), ({"days": 30}, "P30D"), ({"hours": 1, "seconds": 5}, "PT1H5S"),
    ({"microseconds": 1}, "PT0.000001S"), ({"minutes": -90}, "-PT1H30M"), ({"days": -3}, "-P3D"),
])
def test_iso_duration(span: dict[str, float], expected: str) -> None:
    assert iso_duration(timedelta(**span)) == expected


_CLUSTER = """
import logging, sys

def main():
    logging.basicConfig()  # like Prefect: a console handler on the root logger
    if "imported" in sys.argv:
        import distributed  # noqa: F401
    from policywatch.cli import _quiet_prefect

    _quiet_prefect(verbose="-v" in sys.argv)
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert client.submit(sum, [1, 2]).result() == 3

if __name__ == "__main__":
    main()
"""


@pytest.mark.parametrize("args", [[], ["imported"], ["-v"]])
def test_dask_logs_only_warnings_unless_verbose(tmp_path: Path, args: list[str]) -> None:
    """`runner: {kind: dask}` without -v: no INFO lines from the scheduler, nanny, workers."""
    pytest.importorskip("distributed")
    script = tmp_path / "cluster.py"
    script.write_text(_CLUSTER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    done = subprocess.run([sys.executable, str(script), *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    info = [line for line in done.stderr.splitlines() if line.startswith("INFO:distributed")]
    if "-v" in args:
        assert info  # the check sees them when they are there
    else:
        assert not info, "\n".join(info)
