"""`reviewflow deploy`, `reviewflow worker` and `reviewflow up` on PostgreSQL refuse what cannot work, in one line, before starting anything."""

import pytest

from flows.cli import main
from tasks.core.servers import free_port


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("reviewflow: error: ") and err.count("\n") == 1, err
    return err.removeprefix("reviewflow: error: ").strip()


@pytest.mark.parametrize("command", ["deploy", "worker"])
def test_deploy_and_worker_need_a_work_pool(workdir, capsys, command):
    assert main([command]) == 2
    assert _error(capsys).startswith(f"reviewflow {command} needs a work pool: set servers.work_pool")


def test_deploy_names_an_unreachable_prefect_server(workdir, capsys, monkeypatch):
    api = f"http://127.0.0.1:{free_port()}/api"
    monkeypatch.setenv("PREFECT_API_URL", api)
    assert main(["deploy", "--set", "servers.work_pool=team"]) == 2
    assert _error(capsys).startswith(f"no Prefect server answers at PREFECT_API_URL={api} (")


@pytest.mark.parametrize("tracking", [None, "sqlite:///mlflow.db"])
def test_a_worker_needs_the_teams_tracking_server(workdir, capsys, monkeypatch, tracking):
    monkeypatch.setenv("PREFECT_API_URL", f"http://127.0.0.1:{free_port()}/api")
    if tracking:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    assert main(["worker", "--set", "servers.work_pool=team"]) == 2
    assert _error(capsys) == "reviewflow worker needs MLFLOW_TRACKING_URI, the team's MLflow server (http://host:port)"


@pytest.mark.parametrize("setting", ["servers.mlflow_backend_store_uri", "servers.prefect_database_url"])
def test_up_names_a_database_nobody_answers_at(workdir, capsys, setting):
    url = f"postgresql://team@127.0.0.1:{free_port()}/reviewflow"
    ports = ["--set", f"servers.mlflow_port={free_port()}", "--set", f"servers.prefect_port={free_port()}"]
    assert main(["up", "--set", f"{setting}={url}", *ports]) == 2
    assert _error(capsys).startswith(f"{setting}: cannot connect to {url} (")
    assert not list(workdir.glob("data/**/*.db"))  # nothing started, nothing made
