"""kill -9 at several points of a real run, then run again: no duplicate rows, no lost
articles, no alert sent twice. Each run is a separate `policywatch run` process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer

from policywatch.demo import serve_demo_site, write_demo_config
from tasks.store import query

pytestmark = pytest.mark.usefixtures("prefect_harness")
TABLES = ("articles", "comments", "claims", "claim_entities", "stances", "alerts")


@pytest.fixture
def site(tmp_path: Path, httpserver: HTTPServer) -> Iterator[Path]:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    with serve_demo_site(port=None) as (base, _):
        config = write_demo_config(base, tmp_path)
        # an alert per claim even on this first run, no overflow message: the crash points
        # fall between them, and each alert is seen delivered exactly once
        config.write_text(config.read_text().replace(
            "channels: []", f"channels: ['json://127.0.0.1:{httpserver.port}/hook']\n"
                            "  first_run: each\n  max_per_article: 1000"))
        yield config


def _policywatch(*args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    env.pop("POLICYWATCH_FAULT", None)
    if fault:
        env["POLICYWATCH_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "policywatch.cli", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def _counts(db: Path) -> dict[str, int]:
    return {t: query(db, f"SELECT count(*) FROM {t}")[1][0][0] for t in TABLES}


def _keys(server: HTTPServer) -> list[str]:
    return [r.headers.get("Idempotency-Key", "") for r, _ in server.log if r.path == "/hook"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, int]:
    """Row counts of one clean run over the demo site."""
    db = tmp_path_factory.mktemp("ref") / "ref.duckdb"
    with serve_demo_site(port=None) as (base, _):
        config = write_demo_config(base, db.parent)
        config.write_text(config.read_text().replace(
            "channels: []", "channels: ['json://127.0.0.1:9/never']"))
        done = _policywatch("run", "--config", str(config), "--db", str(db))
        assert done.returncode == 0, done.stderr
    return _counts(db)


@pytest.mark.parametrize("point", ["fetch", "load", "alert"])
def test_kill_9_then_rerun(point: str, site: Path, db_path: Path, httpserver: HTTPServer,
                           reference: dict[str, int]) -> None:
    crashed = _policywatch("run", "--config", str(site), "--db", str(db_path), fault=point)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    if point == "alert":
        assert len(_keys(httpserver)) == 1  # exactly one alert went out before the kill
    again = _policywatch("run", "--config", str(site), "--db", str(db_path))
    assert again.returncode == 0, again.stderr
    counts = _counts(db_path)
    # alerts differ from the reference only by channel; their number is the same
    assert counts == reference
    keys = _keys(httpserver)
    assert len(keys) == len(set(keys)) == counts["alerts"]  # each alert delivered once
    _, runs = query(db_path, "SELECT status, claims_new FROM runs ORDER BY started_at")
    assert [r[0] for r in runs] == ["failed", "completed"]
    if point == "alert":  # killed after its load: the failed run says what it stored
        assert runs[0][1] == counts["claims"] and runs[1][1] == 0
        # and the next run's briefing shows those claims, which no briefing showed yet
        from tasks.report.data import covered_runs
        [(failed_id,), (done_id,)] = query(db_path, "SELECT run_id FROM runs "
                                                    "ORDER BY started_at")[1]
        assert covered_runs(db_path, done_id) == [failed_id, done_id]


def test_kill_9_while_sending_the_first_run_digest_then_rerun(
        site: Path, db_path: Path, httpserver: HTTPServer) -> None:
    """The digest is one delivery for all the run's alerts: killed after it went out and
    before its outcome was written, the next run records every alert in it as sent
    (unconfirmed) and sends neither the digest again nor any of its alerts one by one."""
    site.write_text(site.read_text().replace("  first_run: each", "  first_run: digest"))
    crashed = _policywatch("run", "--config", str(site), "--db", str(db_path), fault="alert")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert len(_keys(httpserver)) == 1
    again = _policywatch("run", "--config", str(site), "--db", str(db_path))
    assert again.returncode == 0, again.stderr
    assert len(_keys(httpserver)) == 1  # the digest, once; no alert per claim after it
    _, rows = query(db_path, "SELECT status, mode, count(*) FROM alerts GROUP BY ALL")
    [(status, mode, count)] = rows
    assert (status, mode) == ("sent", "summary") and count > 10


def test_a_second_run_at_once_waits_then_gives_up(site: Path, db_path: Path) -> None:
    from tasks.store import run_lock

    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with run_lock(db_path):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        started = time.monotonic()
        busy = _policywatch("run", "--config", str(site), "--db", str(db_path),
                            "--wait", "1")
        assert busy.returncode == 3
        # named by the pid and command the holder wrote into the lock file
        assert f"another policywatch run (pid {os.getpid()}: " in busy.stderr
        assert "is using this database" in busy.stderr
        assert "Traceback" not in busy.stderr
        assert time.monotonic() - started < 60
    finally:
        release.set()
        holder.join()


def test_a_run_through_a_symlink_takes_the_same_lock(site: Path, db_path: Path,
                                                     tmp_path: Path) -> None:
    from tasks.store import run_lock

    link = tmp_path / "elsewhere" / "link.duckdb"
    link.parent.mkdir()
    link.symlink_to(db_path)
    with run_lock(db_path):
        busy = _policywatch("run", "--config", str(site), "--db", str(link), "--wait", "1")
    assert busy.returncode == 3, busy.stderr
    assert f"another policywatch run (pid {os.getpid()}: " in busy.stderr


def test_a_database_path_under_a_file_is_one_line_exit_2(site: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "notes.txt"
    blocker.write_text("not a folder")
    done = _policywatch("run", "--config", str(site), "--db", str(blocker / "x.duckdb"))
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert "x.duckdb" in done.stderr
