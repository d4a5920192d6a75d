"""`reviewflow train` on the embedded defaults (SQLite MLflow, in-process Prefect), and its errors."""

import os
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest
from mlflow import MlflowClient

from tests.helpers import FEW_REVIEWS, run_cli

pytestmark = pytest.mark.e2e


def test_embedded_default_store_records_and_registers_two_trainings_at_once(workdir, imdb_archive, shared_cache):
    """The README's main job, twice at once in one folder (a new PREFECT_HOME): the embedded SQLite stores take both."""
    command = ["train", "--profile", "smoke", "--set", "train.architectures=rnn", "--set", f"data.cache_dir={shared_cache}", *FEW_REVIEWS]
    with ThreadPoolExecutor(2) as pool:
        env = {"REVIEWFLOW_DATA": str(imdb_archive), "PREFECT_HOME": str(workdir / "prefect-home")}
        runs = [pool.submit(run_cli, [*command, "--set", f"train.seed={seed}"], env, workdir) for seed in (42, 43)]
        results = [run.result() for run in runs]
    for result in results:
        assert result.returncode == 0, result.stderr[-4000:]
    store = workdir / "data" / "mlflow"
    assert (store / "mlflow.db").is_file()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    runs = client.search_runs([client.get_experiment_by_name("reviewflow").experiment_id])
    children = sorted(r.info.run_name for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert children == ["pretrain-word2vec", "pretrain-word2vec", "rnn-100", "rnn-100"]
    assert all(r.info.status == "FINISHED" for r in runs)
    models = {r.info.run_id for r in runs if r.info.run_name == "rnn-100"}
    versions = client.search_model_versions("name='reviewflow-rnn'")
    assert sorted(str(v.version) for v in versions) == ["1", "2"] and {v.run_id for v in versions} == models
    champions = [str(v.version) for v in versions if "champion" in client.get_model_version("reviewflow-rnn", v.version).aliases]
    assert champions == [str(client.get_model_version_by_alias("reviewflow-rnn", "champion").version)]
    # Artifacts live beside the database: the store `reviewflow up` serves.
    assert len(list((store / "artifacts").rglob("roc_curve.png"))) == 2


def _one_line_error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("reviewflow: error:")]
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]  # the Prefect UI keeps the details
    return lines[0]


def test_invalid_data_stops_the_flow_with_one_line_and_a_failed_run(workdir, shared_cache):
    reviews = pd.DataFrame(
        {"text": ["a fine film indeed, truly", "an awful film, truly bad"] * 150, "label": [1, 2] * 150}
    )
    reviews.to_csv(workdir / "reviews.csv", index=False)
    result = run_cli(["train", "--profile", "smoke", "--set", f"data.source={workdir / 'reviews.csv'}"], cwd=workdir)
    line = _one_line_error(result)
    assert "data validation failed" in line and "expect_column_values_to_be_in_set(label)" in line
    uri = f"sqlite:///{workdir / 'data' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    (parent,) = client.search_runs([client.get_experiment_by_name("reviewflow").experiment_id])
    assert parent.info.status == "FAILED"
    assert "validation/validation.json" in {a.path for a in client.list_artifacts(parent.info.run_id, "validation")}


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "train.epoch=1"], "unknown setting 'train.epoch'"),
        (["--set", "train.batch_size=big"], "bad value for train.batch_size"),
        (["--set", "data.source=/no/such/reviews.csv"], "dataset not found: /no/such/reviews.csv"),
    ],
)
def test_bad_input_gives_one_line(workdir, args, message):
    line = _one_line_error(run_cli(["train", "--profile", "smoke", *args], cwd=workdir))
    assert message in line


def test_an_unreadable_unlabeled_source_is_one_line_naming_it_before_any_training(workdir, imdb_archive, shared_cache):
    (workdir / "unsup.tar.gz").write_bytes(b"not an archive")
    args = ["--set", f"data.cache_dir={shared_cache}", "--set", f"data.unlabeled_source={workdir / 'unsup.tar.gz'}"]
    result = run_cli(["train", "--profile", "smoke", *args], env={"REVIEWFLOW_DATA": str(imdb_archive)}, cwd=workdir)
    line = _one_line_error(result)
    assert line.startswith(f"reviewflow: error: data.unlabeled_source: archive {workdir / 'unsup.tar.gz'} is truncated or corrupt"), line
    assert "Task run 'prepare" not in result.stderr and "training on" not in result.stderr


def test_unreachable_tracking_server_stops_the_run_before_any_data_is_read(workdir):
    from tasks.core.servers import free_port

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = run_cli(["train", "--profile", "smoke"], env={"MLFLOW_TRACKING_URI": f"http://reader:s3cret@{address}"}, cwd=workdir)
    line = _one_line_error(result)
    assert f"the MLflow tracking server at http://***@{address} does not answer" in line
    assert "s3cret" not in result.stderr + result.stdout
    assert "Task run 'ingest" not in result.stderr and not (workdir / "data" / "cache").exists()


def test_bad_flag_is_refused_by_the_parser(workdir):
    result = run_cli(["train", "--profile", "huge"], cwd=workdir)
    assert result.returncode == 2 and "invalid choice: 'huge'" in result.stderr


def test_training_on_an_existing_dask_cluster(workdir, imdb_archive, shared_cache):
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = run_cli(
            [
                "train", "--profile", "smoke",
                "--set", "train.architectures=rnn",
                "--set", "train.task_runner=dask",
                "--set", f"train.dask_address={cluster.scheduler_address}",
                "--set", f"data.cache_dir={shared_cache}",
                *FEW_REVIEWS,
            ],
            env={"REVIEWFLOW_DATA": str(imdb_archive)},
            cwd=workdir,
        )
        finished = [key for key, _, finish, *_ in cluster.scheduler.transition_log if finish == "memory"]
    assert result.returncode == 0, result.stderr[-4000:]
    assert "rnn" in result.stdout.splitlines()[-1]
    # The word vectors, the training and the evaluation ran on the cluster, not in the command's own processes.
    ran = ["evaluate_in_own_process", "pretrain_in_own_process", "record_vectors_reuse", "train_in_own_process"]
    assert sorted(key.split("-")[0] for key in finished) == ran


def test_task_runner_follows_the_config():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.training import task_runner
    from tasks.core.config import load_config

    assert isinstance(task_runner(load_config("smoke"), 2, 5), ThreadPoolTaskRunner)  # each task starts its own process
    local = task_runner(load_config("smoke", ["train.task_runner=dask"]), 2, 5)
    assert isinstance(local, DaskTaskRunner) and local.cluster_kwargs["n_workers"] == 2
    assert local.cluster_kwargs["host"] == "127.0.0.1"  # no unauthenticated scheduler on other interfaces
    remote = task_runner(load_config("smoke", ["train.task_runner=dask", "train.dask_address=tcp://127.0.0.1:8786"]), 2, 5)
    assert remote.address == "tcp://127.0.0.1:8786"


@pytest.mark.parametrize(
    "moment",
    [
        "Task run 'open-run",  # the parent run exists, no data read yet
        "rnn-100: training on",  # mid-training
        "Task run 'evaluate-rnn-100",  # one model finished, the other still training
    ],
)
def test_sigterm_at_any_moment_leaves_no_run_running_or_finished(workdir, imdb_archive, shared_cache, moment):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    command = [str(Path(sys.executable).parent / "reviewflow"), "train", "--profile", "smoke",
               "--set", "train.architectures=rnn,birnn", "--set", f"data.cache_dir={shared_cache}", *FEW_REVIEWS]
    log = workdir / "train.log"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                   env={**env, "REVIEWFLOW_DATA": str(imdb_archive)})
    deadline = time.monotonic() + 900
    while moment not in log.read_text(errors="replace"):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=600) == 130, log.read_text(errors="replace")[-3000:]
    assert "reviewflow: interrupted" in log.read_text(errors="replace")

    uri = f"sqlite:///{workdir / 'data' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    runs = client.search_runs([client.get_experiment_by_name("reviewflow").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "KILLED"
    for child in (r for r in runs if "mlflow.parentRunId" in r.data.tags):
        # A child is FINISHED only when its model was evaluated (its test metrics say so), or its word vectors learned.
        done = "test_accuracy" in child.data.metrics or child.data.tags["architecture"] == "pretrain"
        finished = child.info.status == "FINISHED" and done
        assert finished or child.info.status == "KILLED", (child.info.run_name, child.info.status)


def test_a_training_killed_like_the_oom_killer_fails_alone_and_the_others_register(workdir, imdb_archive, shared_cache):
    import re
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    command = [str(Path(sys.executable).parent / "reviewflow"), "train", "--profile", "smoke",
               "--set", "train.architectures=rnn,bilstm", "--set", f"data.cache_dir={shared_cache}", *FEW_REVIEWS]
    log = workdir / "train.log"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "PREFECT_API_URL")}
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                   env={**env, "REVIEWFLOW_DATA": str(imdb_archive)})
    deadline = time.monotonic() + 900
    while not (found := re.search(r"bilstm-2494: training on .* \(process (\d+)\)", log.read_text(errors="replace"))):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
        time.sleep(0.2)
    os.kill(int(found.group(1)), signal.SIGKILL)
    assert process.wait(timeout=900) == 2, log.read_text(errors="replace")[-3000:]
    (line,) = [entry for entry in log.read_text(errors="replace").splitlines() if entry.startswith("reviewflow: error:")]
    assert "bilstm-2494 failed: its process was killed by SIGKILL (the kernel's out-of-memory killer" in line
    assert line.endswith("(trained and registered: rnn-100)")

    uri = f"sqlite:///{workdir / 'data' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(uri, uri)
    runs = {r.info.run_name: r for r in client.search_runs([client.get_experiment_by_name("reviewflow").experiment_id])}
    assert runs["rnn-100"].info.status == "FINISHED" and runs["bilstm-2494"].info.status == "FAILED"
    assert str(client.get_model_version_by_alias("reviewflow-rnn", "champion").version) == "1"
    assert [r.info.status for name, r in runs.items() if "mlflow.parentRunId" not in r.data.tags] == ["FAILED"]
