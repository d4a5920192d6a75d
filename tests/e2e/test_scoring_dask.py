"""`reviewflow score --dask`: a file's chunks scored on a Dask cluster of separate processes (a scheduler and
workers, as on other machines) give the same bytes as scoring in one process; a lost worker's chunks are scored
again on the others; a scheduler that cannot be reached, or has no workers, is one line before any work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.servers import free_port
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e
CHUNK = "500"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, mlflow_server):
    """A scheduler and two workers, each a process of its own in a folder of its own: they reach the models only
    through the tracking server. Allowed-failures 0, as the team's cluster runs: a lost worker's chunks fail at once."""
    from distributed import Client

    folder = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    dask = str(Path(sys.executable).parent / "dask")
    processes: dict[str, subprocess.Popen] = {}

    def start(name: str, *command: str) -> None:
        with open(folder / f"{name}.log", "wb") as log:
            processes[name] = subprocess.Popen([dask, *command], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder)

    start("scheduler", "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard")

    def start_worker(name: str) -> None:
        start(name, "worker", address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1")

    for name in ("dask-a", "dask-b"):
        start_worker(name)
    try:
        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=300)
            yield address, client, processes, start_worker, folder
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture(scope="module")
def reviews(smoke_training, shared_cache, tmp_path_factory):
    """4,000 rows of real test reviews, with rows no model can score among them (their errors must match too)."""
    table = next(shared_cache.glob("reviews-*[0-9a-f].parquet"))
    texts = pd.read_parquet(table).query("split == 'test'")["text"].sample(1500, random_state=5).tolist()
    frame = pd.DataFrame({"review_id": [f"r{i}" for i in range(4000)], "text": [texts[i % len(texts)] for i in range(4000)]})
    frame.loc[[7, 2500], "text"] = ["", "12345 !!!"]
    path = tmp_path_factory.mktemp("dask-reviews") / "reviews.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def local(smoke_training, reviews, mlflow_server, tmp_path_factory):
    output = tmp_path_factory.mktemp("local")
    result = run_cli(["score", str(reviews), "--output", str(output), "--chunk-size", CHUNK], env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr[-3000:]
    return output


def _same_as_local(local: Path, output: Path) -> None:
    assert (output / "reviews.scored.csv").read_bytes() == (local / "reviews.scored.csv").read_bytes()
    manifests = [json.loads((folder / "reviews.csv.manifest.json").read_text()) for folder in (local, output)]
    for manifest in manifests:
        del manifest["started"], manifest["finished"]
    assert manifests[0] == manifests[1]
    assert sorted(p.name for p in output.iterdir()) == ["reviews.csv.manifest.json", "reviews.scored.csv"]


def test_the_cluster_writes_the_same_bytes_as_one_process(smoke_training, cluster, reviews, local, mlflow_server, tmp_path):
    address, _, _, _, folder = cluster
    result = run_cli(["score", str(reviews), "--output", str(tmp_path), "--chunk-size", CHUNK, "--dask", address],
                     env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr[-3000:]
    _same_as_local(local, tmp_path)
    assert "2 workers, 2 threads" in result.stderr
    for worker in ("dask-a", "dask-b"):  # both scored, with the versions the run pinned
        assert "Dask worker: scoring with reviewflow-rnn/" in (folder / f"{worker}.log").read_text(), worker
    assert (pd.read_csv(tmp_path / "reviews.scored.csv", keep_default_na=False)["error"] != "").sum() == 2


def test_a_lost_workers_chunks_are_scored_again_on_the_others(smoke_training, cluster, reviews, local, mlflow_server, tmp_path):
    address, client, processes, start_worker, _ = cluster
    start_worker("dask-c")
    client.wait_for_workers(3, timeout=300)
    command = [sys.executable, "-m", "flows.cli", "score", str(reviews), "--output", str(tmp_path), "--chunk-size", CHUNK, "--dask", address]
    scoring = subprocess.Popen(command, env={**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        names = {w: info["name"] for w, info in client.scheduler_info()["workers"].items()}
        deadline = time.monotonic() + 300
        # dask-c is new: its first chunk waits for it to load the models, so it is still scoring when killed.
        while not any(names.get(w) == "dask-c" and keys for w, keys in client.processing().items()):
            assert time.monotonic() < deadline and scoring.poll() is None, "dask-c was never given a chunk"
            time.sleep(0.2)
        processes["dask-c"].kill()
        out, err = scoring.communicate(timeout=600)
    finally:
        if scoring.poll() is None:
            scoring.kill()
    assert scoring.returncode == 0, err[-3000:]
    assert "a Dask worker died while scoring a chunk: scoring it again" in err
    _same_as_local(local, tmp_path)


def _two_reviews(folder: Path) -> Path:
    pd.DataFrame({"review_id": ["a", "b"], "text": ["A fine film.", "A dull one."]}).to_csv(folder / "two.csv", index=False)
    return folder / "two.csv"


def test_an_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    result = run_cli(["score", str(_two_reviews(tmp_path)), "--output", str(tmp_path / "out"), "--dask", address])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"reviewflow: error: cannot reach the Dask scheduler at {address}: ")
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_scheduler_without_workers_is_one_line(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=":0") as empty:
        result = run_cli(["score", str(_two_reviews(tmp_path)), "--output", str(tmp_path / "out"), "--dask", empty.scheduler_address])
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"reviewflow: error: the Dask scheduler at {empty.scheduler_address} has no workers: "
        f"start `dask worker {empty.scheduler_address}` on the scoring machines"
    )
    assert not (tmp_path / "out").exists()
