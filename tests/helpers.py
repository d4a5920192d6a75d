"""Helpers for tests that run reviewflow as its users do."""

import os
import subprocess
import sys
from pathlib import Path


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 900):
    """Run the installed `reviewflow` command as a user would; returns the CompletedProcess."""
    command = [str(Path(sys.executable).parent / "reviewflow"), *args]
    full_env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "REVIEWFLOW_DATA")}
    full_env.update(PREFECT_SERVER_EPHEMERAL_ENABLED="true", **(env or {}))
    return subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def smoke_runs_since(client, started_ms: int):
    """The smoke training parent run started after `started_ms` on this tracking server, and its children."""
    experiment = client.get_experiment_by_name("reviewflow")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [
        r for r in runs
        if "mlflow.parentRunId" not in r.data.tags and r.info.run_name.startswith("smoke-") and r.info.start_time >= started_ms
    ]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, children
