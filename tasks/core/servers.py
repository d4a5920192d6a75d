"""Start and stop local servers: the MLflow tracking server, a Prefect server, and Prefect's temporary API server."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.core.errors import ReviewflowError

log = logging.getLogger("reviewflow")


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
            signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # The server's own children (workers, job runners) share its group: end any left.
        signal_group(self.process.pid, signal.SIGKILL)
        self.process.wait()


def signal_group(pid: int, sig: int) -> None:
    """Send `sig` to the process group led by `pid`, if it is still there."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class Credentials:
    """Who may use the servers `reviewflow up` starts: from the environment only, never the config or a parameter."""

    mlflow_username: str  # MLflow's basic-auth admin (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)
    mlflow_password: str = field(repr=False)
    prefect_auth: str = field(repr=False)  # Prefect's `user:password` (PREFECT_API_AUTH_STRING)


def server_credentials(env: Mapping[str, str] = os.environ) -> Credentials | None:
    """The servers' credentials from the environment; None when none are set; both servers' or neither."""
    user, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get("MLFLOW_TRACKING_PASSWORD")
    prefect = env.get("PREFECT_SERVER_API_AUTH_STRING") or env.get("PREFECT_API_AUTH_STRING")
    if not (user or password or prefect):
        return None
    if not (user and password and prefect):
        raise ReviewflowError(
            "authentication needs both servers' credentials: MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD for MLflow, "
            "PREFECT_API_AUTH_STRING (user:password) for Prefect; set all three, or none on 127.0.0.1"
        )
    return Credentials(user, password, prefect)


def start_mlflow_server(
    store_dir: Path, host: str, port: int, credentials: Credentials | None = None, backend_store_uri: str = ""
) -> ManagedServer:
    """`mlflow server` serving the artifacts in `store_dir`, its runs and registry in `backend_store_uri` (PostgreSQL)
    or, by default, in the SQLite store there (the embedded store's folder); with `credentials`, MLflow's basic-auth
    app, its admin the given user (made on the first start of its user store)."""
    check_port_free(host, port, "the MLflow server")
    store_dir = store_dir.resolve()
    (store_dir / "artifacts").mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, "-m", "mlflow", "server",
        # Plain postgresql://: SQLAlchemy's default driver for it, psycopg 3 (reviewflow[team]).
        "--backend-store-uri", with_driver(backend_store_uri) if backend_store_uri else f"sqlite:///{store_dir / 'mlflow.db'}",
        "--artifacts-destination", str(store_dir / "artifacts"),
        "--host", host, "--port", str(port), "--workers", "1",
    ]
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    if credentials is not None:
        command += ["--app-name", "basic-auth"]
        env |= {"MLFLOW_AUTH_CONFIG_PATH": str(_auth_config(store_dir)), "MLFLOW_AUTH_ADMIN_USERNAME": credentials.mlflow_username,
                "MLFLOW_AUTH_ADMIN_PASSWORD": credentials.mlflow_password,
                # The auth app signs its CSRF tokens with it; one server, so a new one each start does (unless given).
                "MLFLOW_FLASK_SERVER_SECRET_KEY": os.environ.get("MLFLOW_FLASK_SERVER_SECRET_KEY") or secrets.token_hex(32)}
    server = ManagedServer("MLflow server", command, f"http://{host}:{port}", "/health", store_dir / "server.log", env=env)
    server.wait_healthy()
    return server


def _auth_config(store_dir: Path) -> Path:
    """MLflow's basic-auth settings beside its store: its user database there; no password (that comes from the environment)."""
    path = store_dir / "basic_auth.ini"
    path.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{store_dir / 'basic_auth.db'}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
        encoding="utf-8",
    )
    return path


def prefect_server(home: Path, host: str, port: int, credentials: Credentials | None = None, database_url: str = "") -> ManagedServer:
    """`prefect server start` on `database_url` (PostgreSQL) or its own SQLite database in `home` (started, not yet answering)."""
    check_port_free(host, port, "the Prefect server")
    home = home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    url = f"http://{host}:{port}"
    env = {
        "PREFECT_HOME": str(home),
        # Prefect's server talks to PostgreSQL through asyncpg, which reads PGPASSWORD and ~/.pgpass as libpq does.
        "PREFECT_API_DATABASE_CONNECTION_URL": with_driver(database_url, "asyncpg") if database_url else f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        # The UI asks the API at PREFECT_UI_API_URL, which otherwise comes from PREFECT_API_URL
        # or PREFECT_SERVER_API_HOST/PORT, not from --host/--port.
        "PREFECT_API_URL": f"{url}/api",
        "PREFECT_UI_API_URL": f"{url}/api",
        "PREFECT_SERVER_API_HOST": host,
        "PREFECT_SERVER_API_PORT": str(port),
        "PREFECT_SERVER_UI_SHOW_PROMOTIONAL_CONTENT": "false",
    }
    if credentials is not None:  # the API then answers 401 without it; the UI asks for it
        env |= {"PREFECT_SERVER_API_AUTH_STRING": credentials.prefect_auth, "PREFECT_API_AUTH_STRING": credentials.prefect_auth}
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", host, "--port", str(port)]
    return ManagedServer("Prefect server", command, url, "/api/health", home / "server.log", env=env)


def with_driver(url: str, driver: str = "") -> str:
    """A `postgres[ql][+driver]://` URL as `postgresql+<driver>://` (plain `postgresql://` for libpq)."""
    rest = url.partition("://")[2]
    return f"postgresql{'+' + driver if driver else ''}://{rest}"


def check_database_answers(url: str, setting: str, timeout: float = 10) -> None:
    """One line naming the setting, before any server starts, when the PostgreSQL database cannot be reached or refuses us."""
    try:
        import psycopg
    except ImportError:
        raise ReviewflowError(f"{setting} is a PostgreSQL URL, but its driver is not installed: pip install 'reviewflow[team]'") from None
    try:
        psycopg.connect(with_driver(url), connect_timeout=int(timeout)).close()
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise ReviewflowError(f"{setting}: cannot connect to {url} ({reason})") from None


def start_prefect_server(home: Path, host: str, port: int, timeout: float = 300) -> ManagedServer:
    """A Prefect server on `home`'s SQLite database, answering its health check."""
    server = prefect_server(home, host, port)
    server.wait_healthy(timeout=timeout)
    return server


# The first start in a new PREFECT_HOME creates and migrates its database: on a busy 2-core
# machine that outlasts Prefect's own 20 s wait, so wait on the clock and on the process instead.
TEMPORARY_PREFECT_STARTUP_S = 600


@contextlib.contextmanager
def prefect_api(timeout: float = TEMPORARY_PREFECT_STARTUP_S) -> Iterator[None]:
    """The configured Prefect API, or one temporary local server for the whole command.

    Prefect's own fallback starts a temporary server per process, so task runs in the
    process pool would land in servers of their own; one shared server keeps them together.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = start_temporary_prefect_server(timeout)
    api_url = f"{server.url}/api"
    os.environ["PREFECT_API_URL"] = api_url  # inherited by task worker processes
    try:
        with temporary_settings({PREFECT_API_URL: api_url}):
            # Threads that did not copy this context (the process pool's message forwarder)
            # read the global settings, and without an API there they would start a second
            # temporary server: prefect_test_harness sets the global settings for the same reason.
            with _temporary_global_settings_context(get_settings_context()):
                yield
    finally:
        del os.environ["PREFECT_API_URL"]
        # Deliver pending logs and events while the server still listens; otherwise the
        # workers retry against a stopped server for a minute at exit.
        APILogWorker.drain_all(timeout=10)
        EventsWorker.drain_all(timeout=10)
        server.stop()


def start_temporary_prefect_server(timeout: float) -> ManagedServer:
    """Prefect's temporary API server (no UI) on 127.0.0.1, answering its health check.

    The app Prefect itself starts when no PREFECT_API_URL is set, on the same database in
    PREFECT_HOME, but waited for on the clock, failing early if the process dies.
    """
    import prefect
    from prefect.settings import PREFECT_HOME, get_current_settings

    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent),
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port), "--log-level", "error", "--lifespan", "on",
    ]
    env = {
        **get_current_settings().to_environment_variables(exclude_unset=True),
        "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1",
    }
    log_path = Path(PREFECT_HOME.value()) / "temporary-server.log"

    def started() -> ManagedServer:
        server = ManagedServer("the temporary Prefect server", command, f"http://127.0.0.1:{port}", "/api/health", log_path, env=env)
        server.wait_healthy(timeout=timeout)
        return server

    try:
        return started()
    except ReviewflowError:
        if not _lost_a_migration_race(log_path):
            raise
    # Two runs that start at once on a new PREFECT_HOME both migrate its SQLite database, and one loses:
    # the database is complete now, so once more.
    log.info("the temporary Prefect server lost a race to create its database with another run: starting it again")
    try:
        return started()
    except ReviewflowError as exc:
        raise ReviewflowError(
            f"{exc}; other runs are using the same database in PREFECT_HOME: for runs at once, start one Prefect server "
            "(`reviewflow up`, on PostgreSQL for a team: servers.prefect_database_url) and set PREFECT_API_URL"
        ) from None


def _lost_a_migration_race(log_path: Path) -> bool:
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return False
    return "alembic" in text or "database is locked" in text
