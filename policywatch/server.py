"""The Prefect server a command talks to: one the user configured (`PREFECT_API_URL`), one
`policywatch serve` or `prefect server start` left running on this machine, or a local one
started for the command, which dies with it (even on `kill -9`).

`policywatch serve` serves the flow on the config's schedule; users with a server or Prefect
Cloud set PREFECT_API_URL and the flow is served against theirs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from schemas.errors import PolicywatchError

# a cold `prefect server start` takes ~8 s on an idle machine, far more on a busy 2-core one
SERVER_START_TIMEOUT_S = 180.0
DEFAULT_API = "http://127.0.0.1:4200/api"  # where `prefect server start` listens by default
PR_SET_PDEATHSIG = 1


class ServerUnavailable(PolicywatchError):
    """No Prefect API to talk to, and none could be started in time."""


def way_out(waited: float | None = None) -> str:
    """The one line for a local Prefect server that did not come up."""
    waited_text = f" within {waited:g} s" if waited is not None else ""
    return (f"the local Prefect server did not start{waited_text}; start one and leave it "
            "running (`policywatch serve --config FILE` or `prefect server start`), or set "
            "PREFECT_API_URL to a Prefect server, then try again")


def _prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def state_file() -> Path:
    """Where `policywatch serve` writes the address of the server it started."""
    return _prefect_home() / "policywatch" / "server.json"


def healthy(api: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{api}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def running_server() -> str | None:
    """The API of a Prefect server already running on this machine: the one `serve` wrote
    to `state_file()`, else one on Prefect's default port; None if neither answers."""
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        api = str(json.loads(state_file().read_text())["api"])
        if healthy(api):
            return api
    return DEFAULT_API if healthy(DEFAULT_API, timeout=0.3) else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when the parent dies, however it
    dies (kill -9 included). Linux only; elsewhere the parent's `finally` must do."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def launch_local_server(port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start `prefect server start` on a loopback port (a free one unless `port`), without
    waiting for it; (process, API). The server dies with this process."""
    port = port or _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # its own process group: Ctrl-C in a terminal reaches `serve` alone, which lets the
        # night in flight finish against a live API and then stops the server (finally)
        start_new_session=True, preexec_fn=_die_with_parent)
    return process, api


def wait_healthy(process: subprocess.Popen[bytes], api: str,
                 timeout_s: float | None = None) -> None:
    """Wait until the server launched answers; ServerUnavailable (and the server stopped)
    if it exits or is not healthy within `timeout_s`."""
    timeout_s = timeout_s if timeout_s is not None else float(
        os.environ.get("POLICYWATCH_SERVER_START_TIMEOUT_S", SERVER_START_TIMEOUT_S))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailable(f"the local Prefect server exited while starting ({api}); "
                                    + way_out().split("; ", 1)[1])
        if healthy(api, timeout=2):
            return
        time.sleep(0.3)
    stop_server(process)
    raise ServerUnavailable(way_out(timeout_s))


def start_local_server(echo: Callable[[str], None], port: int | None = None,
                       timeout_s: float | None = None
                       ) -> tuple[subprocess.Popen[bytes], str]:
    """Start `prefect server start` on a loopback port (a free one unless `port`) and wait
    until it is healthy. The server dies with this process."""
    process, api = launch_local_server(port)
    wait_healthy(process, api, timeout_s)
    echo(f"Prefect server at {api.removesuffix('/api')} (UI and API)")
    return process, api


def early_local_server() -> tuple[subprocess.Popen[bytes], str] | None:
    """For `run` and `demo`, before the slow imports: launch a local server now, so it boots
    while they happen, unless the environment names one, one is running, or Prefect is
    already set up in this process (`prefect_api` decides what is used)."""
    if os.environ.get("PREFECT_API_URL") or "prefect" in sys.modules or running_server():
        return None
    return launch_local_server()


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@contextlib.contextmanager
def prefect_api(launched: tuple[subprocess.Popen[bytes], str] | None = None
                ) -> Iterator[str]:
    """For one command (`run`, `demo`): the configured server, else one already running on
    this machine (`serve`'s, or `prefect server start`'s), else a local one (`launched` by
    `early_local_server`, or started now), which is stopped after and dies with this
    process; yields its API.

    Prefect reads its settings when first imported, so the address also goes into a
    temporary settings context for this process, and into the environment for its children.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    process = launched[0] if launched else None
    try:
        configured = PREFECT_API_URL.value()
        if configured:  # e.g. from the Prefect profile: the early server is not needed
            yield str(configured)
            return
        api = launched[1] if launched else running_server()
        if api is None:
            process, api = launch_local_server()
        if process is not None:
            wait_healthy(process, api)
        os.environ["PREFECT_API_URL"] = api
        try:
            with temporary_settings(updates={PREFECT_API_URL: api}):
                yield api
        finally:
            os.environ.pop("PREFECT_API_URL", None)
    finally:
        if process is not None:
            stop_server(process)


def _write_state(api: str) -> None:
    path = state_file()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"api": api, "pid": os.getpid()}))


def _clear_state(api: str) -> None:
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        if json.loads(state_file().read_text())["api"] == api:
            state_file().unlink()


def _sigterm_is_ctrl_c() -> None:
    """SIGTERM stops `serve` as Ctrl-C does (and works where SIGINT is ignored, as under
    nohup or in a background job)."""
    if threading.current_thread() is threading.main_thread():
        def stop(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, stop)
        if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def serve_nightly(config_path: Path, cron: str, timezone: str,
                  echo: Callable[[str], None], port: int | None = None) -> None:
    """Serve the nightly flow on its schedule until interrupted (Ctrl-C or SIGTERM)."""
    _sigterm_is_ctrl_c()
    process = None
    api = None
    try:
        if not os.environ.get("PREFECT_API_URL"):
            process, api = start_local_server(echo, port=port)
            os.environ["PREFECT_API_URL"] = api
            _write_state(api)
        from prefect.schedules import Cron

        from flows.nightly import nightly  # after PREFECT_API_URL is set

        echo(f"Serving policywatch-nightly on '{cron}' ({timezone}); Ctrl-C stops.")
        nightly.serve(name="policywatch-nightly", schedule=Cron(cron, timezone=timezone),
                      parameters={"config_path": str(config_path)})
    except KeyboardInterrupt:
        pass  # Ctrl-C, or SIGTERM (Prefect's runner may also stop on it by itself)
    finally:
        if api:
            _clear_state(api)
        if process is not None:
            stop_server(process)
        echo("Stopped.")
