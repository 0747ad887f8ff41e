"""Nightly runs the two ways users set them up, against real local Prefect servers:
`prefect deploy` of prefect.yaml plus a process worker, and `policywatch serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from policywatch.demo import serve_demo_site, write_demo_config
from tasks.store import query

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _prefect_env(home: Path, api: str | None = None) -> dict[str, str]:
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    if api:
        env["PREFECT_API_URL"] = api
    return env


def _wait_healthy(api: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the Prefect server exited"
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("Prefect server not healthy in time")


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = _prefect_env(tmp_path / "prefect-home")
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_healthy(api, server)
        yield api, _prefect_env(tmp_path / "prefect-home", api)
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture
def demo_config(tmp_path: Path) -> Iterator[Path]:
    with serve_demo_site(port=None) as (base, _):
        config = write_demo_config(base, tmp_path)
        config.write_text("database: nightly.duckdb\n" + config.read_text())
        yield config


def _prefect(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    done = subprocess.run([sys.executable, "-m", "prefect", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_prefect_yaml_deploys_and_a_worker_runs_it(
        prefect_server: tuple[str, dict[str, str]], demo_config: Path) -> None:
    api, env = prefect_server
    env = {**env, "POLICYWATCH_HOME": str(ROOT), "POLICYWATCH_CONFIG": str(demo_config)}
    _prefect(env, "work-pool", "create", "policywatch", "--type", "process")
    _prefect(env, "--no-prompt", "deploy", "--all")
    [deployment] = httpx.post(f"{api}/deployments/filter", json={}).json()
    assert deployment["name"] == "nightly"
    assert deployment["parameters"] == {"config_path": str(demo_config)}
    [schedule] = deployment["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *" and schedule["active"]
    _prefect(env, "deployment", "run", "policywatch-nightly/nightly")
    _prefect(env, "worker", "start", "--pool", "policywatch", "--run-once")
    runs = httpx.post(f"{api}/flow_runs/filter", json={}).json()
    states = sorted(r["state"]["type"] for r in runs)
    # the triggered run completed; the schedule queued the coming nights
    assert states.count("COMPLETED") == 1 and set(states) <= {"COMPLETED", "SCHEDULED"}
    db = demo_config.parent / "nightly.duckdb"
    assert query(db, "SELECT count(*) FROM articles")[1][0][0] >= 7
    assert query(db, "SELECT status FROM runs")[1] == [("completed",)]


def test_serve_registers_the_schedule_and_stops_on_ctrl_c(tmp_path: Path,
                                                          demo_config: Path) -> None:
    env = _prefect_env(tmp_path / "serve-home")
    process = subprocess.Popen(
        [sys.executable, "-m", "policywatch.cli", "serve", "--config", str(demo_config)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        api = None
        deadline = time.monotonic() + 150
        lines: list[str] = []
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("Prefect server at "):
                api = line.split()[3] + "/api"
            if "Serving policywatch-nightly" in line:
                break
        assert api is not None, "".join(lines)
        deadline = time.monotonic() + 60
        deployments: list[dict[str, object]] = []
        while time.monotonic() < deadline and not deployments:
            deployments = httpx.post(f"{api}/deployments/filter", json={}).json()
            time.sleep(0.5)
        [deployment] = deployments
        assert deployment["name"] == "policywatch-nightly"
        assert deployment["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0


def _policywatch(env: dict[str, str], cwd: Path, *args: str,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "policywatch.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_policywatch_deploy_from_any_folder_then_a_worker_runs_it(
        prefect_server: tuple[str, dict[str, str]], demo_config: Path, tmp_path: Path) -> None:
    api, env = prefect_server
    env = {**env, "PYTHONPATH": str(ROOT)}  # policywatch importable from any folder
    mine = tmp_path / "mine"
    mine.mkdir()
    config = mine / "watch.yaml"  # the user's own config, schedule and zone, in their folder
    config.write_text("schedule: '30 3 * * 1-5'\ntimezone: Europe/Berlin\n"
                      + demo_config.read_text())

    # a wrong config path is one line, exit 2, and deploys nothing
    done = _policywatch(env, mine, "deploy", "--config", "nosuch.yaml", "--pool", "pw")
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "nosuch.yaml: cannot read config" in done.stderr
    assert httpx.post(f"{api}/deployments/filter", json={}).json() == []

    done = _policywatch(env, mine, "deploy", "--config", "watch.yaml", "--pool", "pw")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "prefect worker start --pool pw" in done.stdout
    [deployment] = httpx.post(f"{api}/deployments/filter", json={}).json()
    assert deployment["name"] == "watch"
    assert deployment["parameters"] == {"config_path": str(config)}  # absolute
    assert deployment["entrypoint"] == "flows.nightly.nightly"
    assert deployment["work_pool_name"] == "pw"
    [schedule] = deployment["schedules"]
    assert schedule["schedule"]["cron"] == "30 3 * * 1-5"
    assert schedule["schedule"]["timezone"] == "Europe/Berlin" and schedule["active"]
    pool = httpx.get(f"{api}/work_pools/pw").json()
    assert pool["type"] == "process"

    # run it once, with a worker started from yet another folder
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-m", "prefect", "deployment", "run",
                           "policywatch-nightly/watch"], env=env, cwd=elsewhere,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([sys.executable, "-m", "prefect", "worker", "start", "--pool", "pw",
                           "--run-once"], env=env, cwd=elsewhere, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    runs = httpx.post(f"{api}/flow_runs/filter", json={}).json()
    assert sorted(r["state"]["type"] for r in runs).count("COMPLETED") == 1, runs
    db = mine / "nightly.duckdb"
    assert query(db, "SELECT count(*) FROM articles")[1][0][0] >= 7
    assert query(db, "SELECT status, config_path FROM runs")[1] == [("completed", str(config))]
