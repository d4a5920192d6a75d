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
