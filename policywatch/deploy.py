"""`policywatch deploy`: register the nightly flow as a Prefect deployment for one config.

The deployment names the flow by module path (`flows.nightly.nightly`), so a worker runs it
from any folder where policywatch is installed, and carries the config's absolute path, its
cron `schedule` and `timezone`. Its work pool (a `process` pool) is created when missing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from string import Template

from schemas.config import Config, load_config
from schemas.errors import PolicywatchError

FLOW_NAME = "policywatch-nightly"


def deployment_name(config_path: Path) -> str:
    """The default deployment name: the config file's name without its extension."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", config_path.stem).strip("-") or "nightly"


def unset_channel_variables(config: Config) -> list[str]:
    """`${NAME}`s of channel URLs that this shell does not set (the worker's may)."""
    import os

    urls = [*config.alerts.channels, *(u for r in config.alerts.rules for u in r.channels)]
    return sorted({n for u in urls for n in Template(u).get_identifiers() if n not in os.environ})


def ensure_process_pool(pool: str) -> bool:
    """Create the work pool `pool` (type process) unless it exists; True if created."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=pool, type="process",
                base_job_template=ProcessWorker.get_default_base_job_template()))
            return True
        if found.type != "process":
            raise PolicywatchError(f"--pool {pool}: a work pool of type {found.type!r} "
                                   "exists; use a process pool (another --pool name)")
        return False


def deploy_nightly(config_path: Path, pool: str, name: str | None,
                   echo: Callable[[str], None]) -> str:
    """Validate the config, then register (or update) its deployment; returns its id."""
    config = load_config(config_path, check_environment=False)
    absolute = config_path.resolve()
    name = name or deployment_name(absolute)

    from prefect.settings import PREFECT_API_URL

    from policywatch.server import ServerUnavailable, healthy

    api = PREFECT_API_URL.value()
    if not api or not healthy(str(api), timeout=5):
        raise ServerUnavailable(
            f"no Prefect server at {api}; start it, or point PREFECT_API_URL at one" if api
            else "no Prefect server to deploy to: start one (`prefect server start`, or "
                 "`policywatch serve --config FILE`), or set PREFECT_API_URL")
    from prefect.deployments.runner import RunnerDeployment
    from prefect.schedules import Cron
    from prefect.types.entrypoint import EntrypointType

    from flows.nightly import nightly

    created = ensure_process_pool(pool)
    deployment = RunnerDeployment.from_flow(
        nightly, name=name, schedule=Cron(config.schedule, timezone=config.timezone),
        parameters={"config_path": str(absolute)}, work_pool_name=pool,
        entrypoint_type=EntrypointType.MODULE_PATH, concurrency_limit=1,
        description=f"policywatch nightly run of {absolute}", tags=["policywatch"])
    deployment_id = deployment.apply()
    echo(f"Deployed {FLOW_NAME}/{name} to {api}")
    echo(f"  config    {absolute}")
    echo(f"  schedule  '{config.schedule}' ({config.timezone})")
    echo(f"  pool      {pool}" + (" (created, type process)" if created else ""))
    missing = unset_channel_variables(config)
    if missing:
        echo("  note      the worker's environment must set "
             + ", ".join(f"${{{n}}}" for n in missing) + " (not set here)")
    echo(f"Start a worker to run it (keep it running): prefect worker start --pool {pool}")
    return str(deployment_id)
