"""The fixed cost of the command line: wall-clock seconds of

- `--help`;
- a config error (`run` on a config with an unknown key);
- an empty run, cold: `run` over the demo site when it has nothing new, with no Prefect
  server running (the run starts a local one and stops it);
- the same run, warm: a local Prefect server is already running (as `policywatch serve`
  leaves it, its address in PREFECT_HOME/policywatch/server.json).

Goals (issue #21): --help and config errors < 1 s, empty run <= 12 s cold, <= 5 s warm.
Each command runs as its own process, as a user would run it; the best of `--repeat` runs
is printed, with the machine's load average (a busy machine slows everything).

    python bench/cli_bench.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(args: list[str], env: dict[str, str], expect: int) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "policywatch.cli", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    took = time.perf_counter() - started
    if done.returncode != expect:
        raise SystemExit(f"{' '.join(args)}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat

    from policywatch.demo import serve_demo_site, write_demo_config
    from policywatch.server import _write_state, start_local_server, stop_server

    with tempfile.TemporaryDirectory() as folder, serve_demo_site(port=None) as (base, _):
        work = Path(folder)
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_HOME": str(work / "home"),
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        os.environ.update({k: env[k] for k in ("PREFECT_HOME",)})
        config = write_demo_config(base, work)
        bad = work / "bad.yaml"
        bad.write_text(config.read_text().replace("sources:\n", "colour: red\nsources:\n", 1))
        db = str(work / "bench.duckdb")
        run = ["run", "--config", str(config), "--db", db]
        results: dict[str, float] = {}
        results["--help"] = min(timed(["--help"], env, 0) for _ in range(repeat))
        results["config error"] = min(timed(["run", "--config", str(bad)], env, 2)
                                      for _ in range(repeat))
        timed(run, env, 0)  # the first run fills the database: not timed
        results["empty run, cold"] = min(timed(run, env, 0) for _ in range(repeat))
        process, api = start_local_server(lambda _: None)
        try:
            _write_state(api)  # as `policywatch serve` does
            results["empty run, warm"] = min(timed(run, env, 0) for _ in range(repeat))
        finally:
            stop_server(process)
    load = os.getloadavg()
    print(f"cpu cores {os.cpu_count()}, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    goals = {"--help": 1, "config error": 1, "empty run, cold": 12, "empty run, warm": 5}
    for name, seconds in results.items():
        verdict = "met" if seconds <= goals[name] else "NOT met"
        print(f"{name:18} {seconds:6.2f} s  (goal <= {goals[name]} s: {verdict})")


if __name__ == "__main__":
    main()
