"""`policywatch serve`: a local Prefect server (unless one is configured) serving the flow.

Users without Prefect infrastructure get scheduling in one command; users with a server or
Prefect Cloud set PREFECT_API_URL and the flow is served against theirs.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from schemas.errors import PolicywatchError

SERVER_START_TIMEOUT_S = 90.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_local_server(echo: Callable[[str], None]) -> tuple[subprocess.Popen[bytes], str]:
    """Start `prefect server start` on a free loopback port and wait until it is healthy."""
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        # its own process group: Ctrl-C in a terminal reaches `serve` alone, which lets the
        # night in flight finish against a live API and then stops the server (finally)
        start_new_session=True)
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PolicywatchError("the local Prefect server exited while starting")
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                echo(f"Prefect server at http://127.0.0.1:{port} (UI and API)")
                return process, api
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise PolicywatchError(f"the local Prefect server was not healthy after "
                           f"{SERVER_START_TIMEOUT_S:g} s")


def serve_nightly(config_path: Path, cron: str, timezone: str,
                  echo: Callable[[str], None]) -> None:
    """Serve the nightly flow on its schedule until interrupted."""
    process = None
    if not os.environ.get("PREFECT_API_URL"):
        process, api = start_local_server(echo)
        os.environ["PREFECT_API_URL"] = api
    from prefect.schedules import Cron

    from flows.nightly import nightly  # after PREFECT_API_URL is set

    echo(f"Serving policywatch-nightly on '{cron}' ({timezone}); Ctrl-C stops.")
    try:
        nightly.serve(name="policywatch-nightly", schedule=Cron(cron, timezone=timezone),
                      parameters={"config_path": str(config_path)})
    except KeyboardInterrupt:
        echo("Stopped.")
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
