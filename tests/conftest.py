"""Shared fixtures: the real dataset, a private working folder per test."""

import os
import time
from pathlib import Path

import pytest

from tests.helpers import run_cli

REPO_ROOT = Path(__file__).resolve().parents[1]
IMDB_ARCHIVE = Path(
    os.environ.get("REVIEWFLOW_TEST_ARCHIVE", REPO_ROOT.parent / "shared" / "data" / "aclImdb_v1_labeled.tar.gz")
)


@pytest.fixture(scope="session")
def imdb_archive() -> Path:
    """The real labeled IMDB archive (../shared/data on every developer machine and in CI)."""
    if not IMDB_ARCHIVE.is_file():
        pytest.fail(f"the IMDB archive is missing: {IMDB_ARCHIVE} (set REVIEWFLOW_TEST_ARCHIVE)")
    return IMDB_ARCHIVE


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test inside an empty folder, so `data/` and the MLflow store are the test's own."""
    monkeypatch.chdir(tmp_path)
    for name in ("REVIEWFLOW_DATA", "MLFLOW_TRACKING_URI", "PREFECT_API_URL"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One download/Parquet cache for the whole session, so the archive is parsed once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    """A real `mlflow server` (SQLite store, served artifacts) on 127.0.0.1, on a free port."""
    from flows.servers import free_port, start_mlflow_server

    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow"), "127.0.0.1", free_port())
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def smoke_training(tmp_path_factory, mlflow_server, imdb_archive, shared_cache):
    """`reviewflow train --profile smoke` against the real tracking server, once per session."""
    workdir = tmp_path_factory.mktemp("smoke-run")
    started_ms = int(time.time() * 1000)
    result = run_cli(
        ["train", "--profile", "smoke", "--set", f"data.cache_dir={shared_cache}", "--set", f"output_dir={workdir / 'runs'}"],
        env={"MLFLOW_TRACKING_URI": mlflow_server, "REVIEWFLOW_DATA": str(imdb_archive)},
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_server, mlflow_server)
    experiment = client.get_experiment_by_name("reviewflow")
    runs = client.search_runs([experiment.experiment_id])
    # Other tests may train on this server too: this run's parent is the one started during it.
    (parent,) = [
        r for r in runs
        if "mlflow.parentRunId" not in r.data.tags and r.info.run_name.startswith("smoke-") and r.info.start_time >= started_ms
    ]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return result, client, parent, children, workdir
