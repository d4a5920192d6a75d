"""Shared fixtures: the real dataset, a private working folder per test."""

import os
import tempfile
import time
from datetime import UTC
from pathlib import Path

import pytest

# `make test` runs the suite on two pytest-xdist workers. Each gets a PREFECT_HOME of its own (before anything reads
# it), so the commands it starts never share a temporary Prefect server's database with the other's.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix=f"prefect-home-{os.environ['PYTEST_XDIST_WORKER']}-")

from tests.helpers import run_cli, smoke_runs_since

# The session fixtures that cost a training each: the files that use one run on one worker, which builds it once.
# Every other file is a group of its own, so a module's fixtures still start their servers and trainings once.
ONE_WORKER_FOR = ("served_training", "smoke_training")

REPO_ROOT = Path(__file__).resolve().parents[1]
IMDB_ARCHIVE = Path(
    os.environ.get("REVIEWFLOW_TEST_ARCHIVE", REPO_ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz")
)
# The unlabeled reviews (pretraining's data.unlabeled_source); trainings use them when the file is there.
IMDB_UNLABELED = Path(
    os.environ.get("REVIEWFLOW_TEST_UNLABELED", REPO_ROOT.parent / "shared" / "data" / "aclImdb_v1_unsup.tar.gz")
)


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (`make test` runs it with --dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def module(item: pytest.Item) -> str:
        return item.nodeid.split("::")[0]

    group: dict[str, str] = {}
    for item in items:
        for name in ONE_WORKER_FOR:
            if name in getattr(item, "fixturenames", ()):
                group.setdefault(module(item), name)
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group.get(module(item), module(item))))


def unlabeled_env() -> dict[str, str]:
    """REVIEWFLOW_UNLABELED for a training, when the shared unlabeled reviews are there."""
    return {"REVIEWFLOW_UNLABELED": str(IMDB_UNLABELED)} if IMDB_UNLABELED.is_file() else {}


@pytest.fixture(scope="session")
def imdb_archive() -> Path:
    """The real labeled IMDB archive (../shared/data on every developer machine and in CI)."""
    if not IMDB_ARCHIVE.is_file():
        pytest.fail(f"the IMDB archive is missing: {IMDB_ARCHIVE} (set REVIEWFLOW_TEST_ARCHIVE)")
    return IMDB_ARCHIVE


@pytest.fixture(scope="session")
def imdb_unlabeled() -> Path:
    """The real unlabeled IMDB reviews (../shared/data, beside the labeled archive)."""
    if not IMDB_UNLABELED.is_file():
        pytest.fail(f"the unlabeled IMDB reviews are missing: {IMDB_UNLABELED} (set REVIEWFLOW_TEST_UNLABELED)")
    return IMDB_UNLABELED


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty folder, so `data/` and the MLflow store are the test's own."""
    monkeypatch.chdir(tmp_path)
    for name in ("REVIEWFLOW_DATA", "REVIEWFLOW_UNLABELED", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture
def mlflow_at(monkeypatch: pytest.MonkeyPatch):
    """Point MLflow's fluent calls (`mlflow.pyfunc.load_model("models:/...")`) at one tracking server for this test.

    They read process-wide URIs, which any flow an earlier test ran in this process set to its own store (and which
    outrank MLFLOW_TRACKING_URI): setting the variable alone loads from whichever store came last."""
    import mlflow

    def point(uri: str) -> None:
        for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
            monkeypatch.setenv(name, uri)
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)

    yield point
    mlflow.set_tracking_uri(None)  # then monkeypatch puts the variables back
    mlflow.set_registry_uri(None)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One download/Parquet cache for the whole session, so the archive is parsed once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` (SQLite store, served artifacts) on 127.0.0.1, on a free port."""
    yield from _started_mlflow_server(tmp_path_factory.mktemp("mlflow"))


def _started_mlflow_server(store_dir: Path):
    from tasks.core.servers import free_port, start_mlflow_server

    server = start_mlflow_server(store_dir, "127.0.0.1", free_port())
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def smoke_training(tmp_path_factory, mlflow_server, imdb_archive, shared_cache):
    """`reviewflow train --profile smoke` against the real tracking server, once per session."""
    workdir = tmp_path_factory.mktemp("smoke-run")
    started_ms = int(time.time() * 1000)
    result = run_cli(
        ["train", "--profile", "smoke", "--set", f"data.cache_dir={shared_cache}", "--set", f"output_dir={workdir / 'runs'}"],
        # A new PREFECT_HOME, as on a newcomer's machine: the temporary server's first start migrates its database.
        env={
            "MLFLOW_TRACKING_URI": mlflow_server, "REVIEWFLOW_DATA": str(imdb_archive), "PREFECT_HOME": str(workdir / "prefect-home"),
            **unlabeled_env(),
        },
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server, mlflow_server)
    parent, children = smoke_runs_since(client, started_ms)
    return result, client, parent, children, workdir


# --- A Prefect server with the served deployments (tests/e2e/test_deployments.py, test_browser.py) ---

SMOKE_TRAINING_TIMEOUT_S = 1800  # a smoke training takes 2-4 minutes on 2 idle cores; much longer on busy ones


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `prefect server start` on 127.0.0.1, on a free port, with its own PREFECT_HOME (SQLite)."""
    from tasks.core.servers import free_port, start_prefect_server

    server = start_prefect_server(tmp_path_factory.mktemp("prefect-home"), "127.0.0.1", free_port())
    yield server.url
    server.stop()


class ServedStack:
    """The session's Prefect and MLflow servers, the deployments served from `workdir`, and a Prefect client."""

    def __init__(self, prefect_url: str, mlflow_url: str, workdir: Path, log_path: Path, client):
        self.prefect_url, self.api_url, self.mlflow_url = prefect_url, f"{prefect_url}/api", mlflow_url
        self.workdir, self.log_path, self.client = workdir, log_path, client

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:]) if self.log_path.is_file() else ""

    def run_deployment(self, name: str, parameters: dict | None = None, timeout: float = 600):
        """Start a run of `flow/deployment` as the UI's Run button does, and wait for its final state."""
        deployment = self.client.read_deployment_by_name(name)
        flow_run = self.client.create_flow_run_from_deployment(deployment.id, parameters=parameters or {})
        deadline = time.monotonic() + timeout
        while True:
            flow_run = self.client.read_flow_run(flow_run.id)
            if flow_run.state is not None and flow_run.state.is_final():
                return flow_run
            if time.monotonic() > deadline:
                pytest.fail(f"{name} run {flow_run.name} still {flow_run.state_name} after {timeout:.0f} s\n{self.log_tail()}")
            time.sleep(3)


@pytest.fixture(scope="session")
def stack_mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """The served stack's own tracking server, so its trainings never move the aliases other tests check."""
    yield from _started_mlflow_server(tmp_path_factory.mktemp("stack-mlflow"))


@pytest.fixture(scope="session")
def served_deployments(tmp_path_factory, prefect_server, stack_mlflow_server, imdb_archive, shared_cache):
    """`python -m flows.deployments` (as `reviewflow up` runs it) serving train and score from a folder of its own."""
    import contextlib
    from datetime import datetime

    from prefect.client.orchestration import SyncPrefectClient

    from flows.stack import serve_in_child, wait_until_served
    from tasks.core.config import Config

    workdir = tmp_path_factory.mktemp("served")
    (workdir / "data").mkdir()
    (workdir / "data" / "cache").symlink_to(shared_cache)  # the session's parsed archive
    api_url, log_path = f"{prefect_server}/api", workdir / "serve.log"
    since = datetime.now(UTC)
    config = Config(data={"source": str(imdb_archive)})
    with contextlib.chdir(workdir):  # the serving folder: relative data/ paths are its own
        served = serve_in_child(config, api_url, stack_mlflow_server, log_path, env={"REVIEWFLOW_DATA": str(imdb_archive), **unlabeled_env()})
    try:
        wait_until_served(api_url, served, since)
        with SyncPrefectClient(api_url) as client:
            yield ServedStack(prefect_server, stack_mlflow_server, workdir, log_path, client)
    finally:
        served.stop()


@pytest.fixture(scope="session")
def served_training(served_deployments):
    """One smoke training started through the `train/train` deployment with just {"profile": "smoke"}.

    Returns the final flow run, and the MLflow parent run it logged with its children.
    """
    from mlflow import MlflowClient

    stack = served_deployments
    started_ms = int(time.time() * 1000)
    flow_run = stack.run_deployment("train/train", {"profile": "smoke"}, timeout=SMOKE_TRAINING_TIMEOUT_S)
    assert flow_run.state.is_completed(), f"{flow_run.name}: {flow_run.state_name}: {flow_run.state.message}\n{stack.log_tail()}"
    parent, children = smoke_runs_since(MlflowClient(stack.mlflow_url, stack.mlflow_url), started_ms)
    return flow_run, parent, children
