"""`reviewflow up`: an MLflow server, a Prefect server and the served deployments (or, with `servers.work_pool`,
the deployments put on the pool for workers), stopped together.

Each process starts in its own process group (see `tasks.core.servers.ManagedServer`), so
stopping one stops everything it started: the MLflow server's workers, the Prefect
server, and the flow runs of the served deployments with their training processes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from flows.deployments import SCORE, TRAIN, deploy_deployments
from tasks.core.config import Config, tracking_settings
from tasks.core.errors import ReviewflowError
from tasks.core.servers import (
    LOOPBACK,
    ManagedServer,
    check_database_answers,
    check_port_free,
    prefect_server,
    server_credentials,
    signal_group,
    start_mlflow_server,
)
from tasks.tracking import TRAINING_VIEW

PREFECT_HOME = Path("data/prefect")  # the Prefect server's own SQLite database and settings
ARTIFACT_STORE = Path("data/mlflow-server")  # what the MLflow server keeps here when its runs are in PostgreSQL


def up(config: Config, host: str = "127.0.0.1", mlflow_port: int = 5000, prefect_port: int = 4200) -> int:
    """Start MLflow and Prefect servers and serve the deployments until Ctrl-C or SIGTERM; returns the exit code."""
    credentials = server_credentials()
    if host not in LOOPBACK and credentials is None:
        raise ReviewflowError(
            f"servers.host {host} lets other machines reach both servers, and neither asks for a password by default: set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (MLflow's admin) and PREFECT_API_AUTH_STRING (user:password) first"
        )
    if mlflow_port == prefect_port:
        raise ReviewflowError(f"the MLflow and Prefect servers need two ports (both are {mlflow_port})")
    check_port_free(host, mlflow_port, "the MLflow server")
    check_port_free(host, prefect_port, "the Prefect server")
    servers = config.servers
    for setting in ("mlflow_backend_store_uri", "prefect_database_url"):
        if getattr(servers, setting):
            check_database_answers(getattr(servers, setting), f"servers.{setting}")
    # On PostgreSQL the server keeps the runs and only its artifacts live here: nothing to prepare in the SQLite store.
    store_dir = ARTIFACT_STORE if servers.mlflow_backend_store_uri else embedded_store_dir(config)
    logs = PREFECT_HOME.resolve()
    started: list[ManagedServer] = []
    with _signals_stop() as signals:
        try:
            # Prefect first, as it takes longest: it starts while MLflow does.
            with signals.deferred():
                prefect = prefect_server(PREFECT_HOME, host, prefect_port, credentials, servers.prefect_database_url)
                started.append(prefect)
            with signals.deferred():  # start_mlflow_server returns its process only once it answers
                mlflow = start_mlflow_server(store_dir, host, mlflow_port, credentials, servers.mlflow_backend_store_uri)
                started.append(mlflow)
            prefect.wait_healthy(timeout=300)
            api_url = f"{prefect.url}/api"
            auth = credentials.prefect_auth if credentials else None
            if servers.work_pool:  # the team's workers run the flows, wherever they are
                deploy_deployments(config, api_url, auth)
                where = f"on work pool {servers.work_pool}: start workers with `reviewflow worker`"
            else:
                since = datetime.now(UTC)
                with signals.deferred():
                    served = serve_in_child(config, api_url, mlflow.url, logs / "serve.log", {"PREFECT_API_AUTH_STRING": auth} if auth else {})
                    started.append(served)
                wait_until_served(api_url, served, since, auth)
                where = "served here"
            print(f"MLflow UI   {mlflow.url}/#/experiments?{TRAINING_VIEW}\nPrefect UI  {prefect.url}   "
                  f"(deployments {TRAIN}/{TRAIN} and {SCORE}/{SCORE}, {where})")
            print(f"logs in {store_dir.resolve() / 'server.log'} and {logs}; Ctrl-C stops everything", flush=True)
            crashed = _wait_for_exit(started)
            raise ReviewflowError(f"{crashed.name} exited with code {crashed.process.returncode} (log: {crashed.log_path})")
        except _Stop:
            print("reviewflow: stopping the servers", file=sys.stderr, flush=True)
            return 0
        finally:
            with signals.deferred(reraise=False):
                for server in reversed(started):  # the deployments first, while Prefect can record it
                    server.stop()


def embedded_store_dir(config: Config) -> Path:
    """The folder of the embedded SQLite store (mlflow.yaml), which `mlflow server` then serves.

    The experiment is created here, as `reviewflow train` creates it on the embedded store
    (artifacts in a plain folder), when it does not exist yet: an experiment the server created
    would keep its artifacts behind the server, out of reach of runs on the embedded store.
    """
    saved = os.environ.pop("MLFLOW_TRACKING_URI", None)  # the store that `reviewflow train` writes without it
    try:
        settings = tracking_settings(config.tracking)
    finally:
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved
    uri = settings.tracking_uri or ""
    if not uri.startswith("sqlite:///"):
        raise ReviewflowError(f"reviewflow up serves the embedded SQLite store, but tracking_uri is {uri!r}")
    database = Path(uri.removeprefix("sqlite:///"))
    if database.name != "mlflow.db":
        raise ReviewflowError(f"reviewflow up serves a store whose database is named mlflow.db (got {database})")
    database.parent.mkdir(parents=True, exist_ok=True)
    from mlflow import MlflowClient

    client = MlflowClient(uri, uri)
    if client.get_experiment_by_name(settings.experiment) is None:
        location = Path(settings.artifact_location or database.parent / "artifacts").resolve()
        client.create_experiment(settings.experiment, artifact_location=location.as_uri())
    return database.parent






class ServedDeployments(ManagedServer):
    """The process serving the deployments; its flow runs (and their workers) are in its process group."""

    def stop(self, grace: float = 30) -> None:
        # SIGTERM to the runner alone first: it cancels its flow runs and pauses the schedules;
        # then whatever is left of its group goes the way of any server.
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        signal_group(self.process.pid, signal.SIGTERM)
        time.sleep(0.5)
        super().stop()


def serve_in_child(
    config: Config, api_url: str, tracking_uri: str, log_path: Path, env: dict[str, str] | None = None
) -> ServedDeployments:
    """`python -m flows.deployments CONFIG_JSON` against the given servers, in this folder."""
    env = {**(env or {}), "PREFECT_API_URL": api_url, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, "-m", "flows.deployments", json.dumps(config.model_dump(mode="json"))]
    return ServedDeployments("the deployment server", command, api_url, "/health", log_path, env=env)


def wait_until_served(api_url: str, served: ManagedServer, since: datetime, auth: str | None = None, timeout: float = 300) -> None:
    """Until both deployments are registered and their runner has polled the API since `since`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise ReviewflowError(
                f"{served.name} exited with code {served.process.returncode}: {_last_line(served.log_path)} (log: {served.log_path})"
            )
        polled = [_get_json(f"{api_url}/deployments/name/{name}/{name}", auth) for name in (TRAIN, SCORE)]
        if all(d and _parse_time(d.get("last_polled")) >= since for d in polled):
            return
        time.sleep(1)
    raise ReviewflowError(f"the deployments were not served within {timeout:.0f} s (log: {served.log_path})")


def _wait_for_exit(processes: list[ManagedServer]) -> ManagedServer:
    while True:
        for server in processes:
            if server.process.poll() is not None:
                return server
        time.sleep(1)


def _get_json(url: str, auth: str | None = None) -> dict | None:
    headers = {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as reply:
            return json.loads(reply.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _last_line(path: Path) -> str:
    lines = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return lines[-1][:200] if lines else "no output"


def _parse_time(value: str | None) -> datetime:
    try:
        return datetime.fromisoformat(value) if value else datetime.min.replace(tzinfo=UTC)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


class _Stop(BaseException):
    """Ctrl-C or SIGTERM: stop everything that was started."""


class _SignalStop:
    def __init__(self) -> None:
        self.deferring = 0
        self.pending: int | None = None
        self.stopping = False

    def handle(self, signum: int, frame: object) -> None:
        # Raised once: a second Ctrl-C does not interrupt the stopping.
        if self.deferring or self.stopping:
            self.pending = signum
            return
        self.stopping = True
        raise _Stop(signum)

    @contextlib.contextmanager
    def deferred(self, reraise: bool = True) -> Iterator[None]:
        """A signal waits until the block is done: a process started in it always gets its handle kept."""
        self.deferring += 1
        try:
            yield
        finally:
            self.deferring -= 1
        if reraise and not self.deferring and not self.stopping and self.pending is not None:
            self.stopping = True
            raise _Stop(self.pending)


@contextlib.contextmanager
def _signals_stop() -> Iterator[_SignalStop]:
    signals = _SignalStop()
    previous = {sig: signal.signal(sig, signals.handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield signals
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
