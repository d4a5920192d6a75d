"""The champion gate against a real MLflow server's registry."""

import pytest
from mlflow import MlflowClient

from tasks.core.config import Config, tracking_settings
from tasks.registry.versions import apply_champion_gate
from tasks.tracking import connect

pytestmark = pytest.mark.e2e


def _version_with_accuracy(client: MlflowClient, tracking, name: str, accuracy: float) -> str:
    run = client.create_run(tracking.experiment_id, run_name="gate-test")
    client.log_metric(run.info.run_id, "test_accuracy", accuracy)
    if not client.search_registered_models(f"name='{name}'"):
        client.create_registered_model(name)
    return str(client.create_model_version(name, f"{run.info.artifact_uri}/model", run.info.run_id).version)


def test_champion_moves_only_to_an_equal_or_better_version(mlflow_server, monkeypatch, workdir):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    tracking = connect(tracking_settings(Config().tracking).model_copy(update={"registered_model_prefix": "gate-test-"}))
    client = tracking.client()
    name = "gate-test-rnn"

    first = _version_with_accuracy(client, tracking, name, 0.80)
    assert apply_champion_gate(tracking, "rnn", first, 0.80) == ("champion", None)

    worse = _version_with_accuracy(client, tracking, name, 0.75)
    assert apply_champion_gate(tracking, "rnn", worse, 0.75) == ("challenger", 0.80)
    assert client.get_model_version_by_alias(name, "champion").version == first
    assert client.get_model_version_by_alias(name, "challenger").version == worse

    tie = _version_with_accuracy(client, tracking, name, 0.80)
    assert apply_champion_gate(tracking, "rnn", tie, 0.80) == ("champion", 0.80)
    assert client.get_model_version_by_alias(name, "champion").version == tie
