"""Helpers for tests that run reviewflow as its users do."""

import os
import subprocess
import sys
from pathlib import Path

# For tests whose subject is the orchestration (reuse, signals, concurrency), not the models: a quarter of smoke's
# reviews (its vocabulary, epochs and unlabeled sample unchanged). It saves little (a smoke training's time is mostly
# processes, servers and imports starting), and what these tests check does not need more data.
FEW_REVIEWS = ["--set", "data.reviews_per_split=500"]


def run_cli(args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 900):
    """Run the installed `reviewflow` command as a user would; returns the CompletedProcess."""
    command = [str(Path(sys.executable).parent / "reviewflow"), *args]
    dropped = ("MLFLOW_TRACKING_URI", "PREFECT_API_URL", "REVIEWFLOW_DATA", "REVIEWFLOW_UNLABELED")
    full_env = {k: v for k, v in os.environ.items() if k not in dropped}
    full_env.update(PREFECT_SERVER_EPHEMERAL_ENABLED="true", **(env or {}))
    return subprocess.run(command, capture_output=True, text=True, env=full_env, cwd=cwd, timeout=timeout)


def smoke_runs_since(client, started_ms: int):
    """The smoke training parent run started after `started_ms` on this tracking server, and its models' child runs
    (not the pretrain run: see `pretrain_run`)."""
    parent, children = _smoke_runs_since(client, started_ms)
    return parent, [r for r in children if r.data.tags.get("architecture") != "pretrain"]


def pretrain_run(client, parent):
    """The `pretrain-<method>` child run of a training's parent run, or None."""
    experiment = client.get_experiment_by_name("reviewflow")
    runs = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' and tags.architecture = 'pretrain'")
    assert len(runs) <= 1, [r.info.run_name for r in runs]
    return runs[0] if runs else None


def _smoke_runs_since(client, started_ms: int):
    experiment = client.get_experiment_by_name("reviewflow")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [
        r for r in runs
        if "mlflow.parentRunId" not in r.data.tags and r.info.run_name.startswith("smoke-") and r.info.start_time >= started_ms
    ]
    return parent, [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
