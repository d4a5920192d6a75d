"""The tracking server stopped mid-training and back within a minute: the flow completes, nothing is lost."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.core.servers import free_port, start_mlflow_server

pytestmark = pytest.mark.e2e


def test_a_tracking_server_restarted_mid_training_loses_no_metric_point(tmp_path, imdb_archive, shared_cache):
    store, port = tmp_path / "mlflow", free_port()
    server = start_mlflow_server(store, "127.0.0.1", port)
    command = [str(Path(sys.executable).parent / "reviewflow"), "train", "--profile", "smoke",
               "--set", "train.architectures=rnn,birnn", "--set", f"data.cache_dir={shared_cache}"]
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(MLFLOW_TRACKING_URI=server.url, REVIEWFLOW_DATA=str(imdb_archive))
    log = tmp_path / "train.log"
    try:
        with log.open("w") as out:
            training = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
        deadline = time.monotonic() + 900
        while "birnn-100: training on" not in log.read_text(errors="replace"):
            assert training.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        server.stop()
        time.sleep(20)  # the epoch ends and its metrics are logged while nothing answers
        server = start_mlflow_server(store, "127.0.0.1", port)
        assert training.wait(timeout=900) == 0, log.read_text(errors="replace")[-3000:]
        client = MlflowClient(server.url, server.url)
        runs = client.search_runs([client.get_experiment_by_name("reviewflow").experiment_id])
        children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
        assert sorted(children) == ["birnn-100", "ensemble-stacked", "pretrain-word2vec", "rnn-100"]
        assert children.pop("ensemble-stacked").info.status == children.pop("pretrain-word2vec").info.status == "FINISHED"
        for run in children.values():
            assert run.info.status == "FINISHED"
            for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
                assert len(client.get_metric_history(run.info.run_id, metric)) == 1, (run.info.run_name, metric)
            assert {"test_accuracy", "test_auc", "test_loss", "test_f1"} <= set(run.data.metrics)
        assert client.get_model_version_by_alias("reviewflow-birnn", "champion").version == "1"
    finally:
        server.stop()
