"""Start and stop the local MLflow tracking server (used by `reviewflow up` and the tests)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tasks.errors import ReviewflowError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def check_port_free(host: str, port: int, what: str) -> None:
    with socket.socket() as sock:
        # As the servers bind: connections of a stopped server waiting in TIME_WAIT do not count.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise ReviewflowError(f"port {port} on {host} is already taken: cannot start {what} there") from None


class ManagedServer:
    """A server process in its own process group, stopped with everything it started."""

    def __init__(self, name: str, command: list[str], url: str, health_path: str, log_path: Path, env: dict[str, str] | None = None):
        self.name, self.url, self.health_url = name, url, url + health_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})}
            )

    def wait_healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
                raise ReviewflowError(f"{self.name} exited with code {self.process.returncode}: {tail[0][:200]} (log: {self.log_path})")
            try:
                with urllib.request.urlopen(self.health_url, timeout=2) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        self.stop()
        raise ReviewflowError(f"{self.name} did not answer {self.health_url} within {timeout:.0f} s (log: {self.log_path})")

    def stop(self, grace: float = 10) -> None:
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # The server's own children (workers, job runners) share its group: end any left.
        _signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start_mlflow_server(store_dir: Path, host: str, port: int) -> ManagedServer:
    """`mlflow server` on a SQLite store and served artifacts in `store_dir` (the embedded store's folder)."""
    check_port_free(host, port, "the MLflow server")
    store_dir = store_dir.resolve()
    (store_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{store_dir / 'mlflow.db'}",
        "--artifacts-destination", str(store_dir / "artifacts"),
        "--host", host, "--port", str(port), "--workers", "1",
    ]
    server = ManagedServer("MLflow server", command, f"http://{host}:{port}", "/health", store_dir / "server.log",
                           env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    server.wait_healthy()
    return server
