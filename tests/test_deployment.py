"""Nightly runs the two ways users set them up, against real local Prefect servers:
`prefect deploy` of prefect.yaml plus a process worker, and `policywatch serve`."""

from __future__ import annotations

import json
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


def _start_serve(env: dict[str, str], config: Path, port: int, **popen: object
                 ) -> tuple[subprocess.Popen[str], list[str]]:
    """`policywatch serve --port PORT` until it serves the flow; (process, its output)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "policywatch.cli", "serve", "--config", str(config),
         "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        **popen)  # type: ignore[call-overload]
    lines: list[str] = []
    deadline = time.monotonic() + 150
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        if "Serving policywatch-nightly" in line or not line:
            break
    assert any("Serving policywatch-nightly" in line for line in lines), "".join(lines)
    return process, lines


def _ignore_sigint() -> None:
    """As under nohup or in a shell's background job: SIGINT is ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_serve_on_its_port_registers_the_schedule_and_stops_on_sigterm(
        tmp_path: Path, demo_config: Path) -> None:
    env = _prefect_env(tmp_path / "serve-home")
    port = _free_port()
    process, lines = _start_serve(env, demo_config, port, preexec_fn=_ignore_sigint)
    api = f"http://127.0.0.1:{port}/api"
    try:
        assert f"Prefect server at http://127.0.0.1:{port} (UI and API)\n" in lines
        # where `run` and `demo` find it
        state = tmp_path / "serve-home" / "policywatch" / "server.json"
        assert json.loads(state.read_text())["api"] == api
        deadline = time.monotonic() + 60
        deployments: list[dict[str, object]] = []
        while time.monotonic() < deadline and not deployments:
            deployments = httpx.post(f"{api}/deployments/filter", json={}).json()
            time.sleep(0.5)
        [deployment] = deployments
        assert deployment["name"] == "policywatch-nightly"
        assert deployment["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
    finally:
        process.send_signal(signal.SIGTERM)  # SIGINT is ignored: SIGTERM still stops it
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            raise
    assert process.returncode == 0
    assert process.stdout is not None and "Stopped." in process.stdout.read()
    assert not _healthy(api) and not state.exists()


def _healthy(api: str) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_kill_9_of_serve_takes_its_prefect_server_down(tmp_path: Path,
                                                      demo_config: Path) -> None:
    env = _prefect_env(tmp_path / "serve-home")
    port = _free_port()
    process, _ = _start_serve(env, demo_config, port)
    api = f"http://127.0.0.1:{port}/api"
    assert _healthy(api)
    process.kill()
    process.wait(10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _healthy(api):
        time.sleep(0.5)
    assert not _healthy(api), "the Prefect server outlived `policywatch serve`"
    with socket.socket() as probe:  # and nothing listens on its port any more
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


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


def test_a_local_prefect_server_too_slow_to_start_is_one_line_with_the_way_out(
        tmp_path: Path) -> None:
    if _healthy("http://127.0.0.1:4200/api"):
        pytest.skip("a Prefect server runs on 127.0.0.1:4200: `run` would use it")
    config = tmp_path / "pw.yaml"
    config.write_text("sources:\n  - name: a\n    urls: ['http://127.0.0.1:9/x']\n")
    env = {**_prefect_env(tmp_path / "home"), "PYTHONPATH": str(ROOT),
           "POLICYWATCH_SERVER_START_TIMEOUT_S": "0.5"}  # as a very slow machine would
    done = subprocess.run([sys.executable, "-m", "policywatch.cli", "run", "--config",
                           str(config)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stdout.startswith("Run") is False
    assert done.stderr == (
        "policywatch: error: the local Prefect server did not start within 0.5 s; start one "
        "and leave it running (`policywatch serve --config FILE` or `prefect server start`), "
        "or set PREFECT_API_URL to a Prefect server, then try again\n")


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_kill_9_of_run_takes_the_prefect_server_it_started_down(
        tmp_path: Path, demo_config: Path) -> None:
    if _healthy("http://127.0.0.1:4200/api"):
        pytest.skip("a Prefect server runs on 127.0.0.1:4200: `run` would use it")
    env = {**_prefect_env(tmp_path / "home"), "PYTHONPATH": str(ROOT)}
    run = subprocess.Popen([sys.executable, "-m", "policywatch.cli", "run", "--config",
                            str(demo_config)], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    server = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and server is None and run.poll() is None:
        for child in _children(run.pid):
            if "server" in Path(f"/proc/{child}/cmdline").read_bytes().decode(errors="replace"):
                server = child
        time.sleep(0.2)
    assert server is not None, "the run started no local Prefect server"
    run.kill()
    run.wait(10)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _alive(server):
        time.sleep(0.5)
    assert not _alive(server), "the Prefect server outlived the `policywatch run` that started it"
