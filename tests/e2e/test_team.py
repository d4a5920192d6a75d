"""Run for a team: `reviewflow up` on PostgreSQL with the deployments on a work pool, two `reviewflow worker`s,
and a Dask cluster (a scheduler and two workers) for the trainings.

One real PostgreSQL (a temporary data folder, password authentication) holds both servers' databases. Workers
are separate process groups, as on separate machines; killing one's whole process tree is a machine lost mid-run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psutil
import pytest
from mlflow import MlflowClient
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

from tasks.core.servers import free_port
from tests.postgres import started_postgres

pytestmark = pytest.mark.e2e
POOL = "team"
HEARTBEAT_S = 30
# Trainings of this module's own (their seeds); birnn's longer training is still running when rnn's run is recorded.
SETTINGS = {"profile": "smoke", "train": {"architectures": ["rnn", "birnn"], "seed": 7, "by_architecture": {"birnn": {"epochs": 8}}}}
CHILD_RUNS = {"rnn-100", "birnn-100", "ensemble-stacked"}  # the baseline is not among these architectures
REVIEWS = pd.DataFrame({"review_id": ["a", "b"], "text": ["A wonderful, moving film.", "Dull, slow and far too long."]})


class Team:
    def __init__(self, workdir: Path, postgres, api_url: str, mlflow_url: str, env: dict[str, str]):
        self.workdir, self.postgres, self.api_url, self.mlflow_url, self.env = workdir, postgres, api_url, mlflow_url, env
        self.workers: dict[str, subprocess.Popen] = {}
        self.events: dict[str, object] = {}

    def start_worker(self, name: str) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # the worker writes it until it stops
        env = {**self.env, "PREFECT_API_URL": self.api_url, "MLFLOW_TRACKING_URI": self.mlflow_url}
        self.workers[name] = subprocess.Popen(
            [_reviewflow(), "worker", "--set", f"servers.work_pool={POOL}", "--name", name],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=env, start_new_session=True,
        )

    def worker_log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    def worker_of(self, flow_run_id) -> str | None:
        return next((name for name in self.workers if str(flow_run_id) in self.worker_log(name)), None)


def _reviewflow() -> str:
    return str(Path(sys.executable).parent / "reviewflow")


def _wait(condition, timeout: float, what: str, interval: float = 2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:.0f} s")


def _kill_tree(process: subprocess.Popen) -> None:
    """The whole machine gone: the worker, its flow run processes and their trainings, at once."""
    tree = [process.pid, *(p.pid for p in psutil.Process(process.pid).children(recursive=True))]
    for pid in tree:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait()


@pytest.fixture(scope="module")
def team(tmp_path_factory, imdb_archive, shared_cache):
    from prefect.client.orchestration import SyncPrefectClient

    workdir = tmp_path_factory.mktemp("team")
    (workdir / "data").mkdir()
    (workdir / "data" / "cache").symlink_to(shared_cache)
    mlflow_port, prefect_port = free_port(), free_port()
    with started_postgres() as postgres:
        mlflow_db, prefect_db = postgres.create_database("mlflow"), postgres.create_database("prefect")
        env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
        env.update(postgres.env(), REVIEWFLOW_DATA=str(imdb_archive), PREFECT_HOME=str(workdir / "client-home"), PYTHONUNBUFFERED="1")
        settings = {
            "servers.mlflow_backend_store_uri": mlflow_db, "servers.prefect_database_url": prefect_db, "servers.work_pool": POOL,
            "servers.mlflow_port": mlflow_port, "servers.prefect_port": prefect_port, "servers.heartbeat_s": HEARTBEAT_S,
            "scoring.interval_minutes": 0.5, "scoring.architectures": "rnn,birnn,ensemble",
        }
        output = workdir / "up.out"
        with open(output, "wb") as out:
            up = subprocess.Popen(
                [_reviewflow(), "up", "--profile", "smoke", *(a for k, v in settings.items() for a in ("--set", f"{k}={v}"))],
                stdout=out, stderr=subprocess.STDOUT, cwd=workdir, env=env, start_new_session=True,
            )
        team = Team(workdir, postgres, f"http://127.0.0.1:{prefect_port}/api", f"http://127.0.0.1:{mlflow_port}", env)
        try:
            _wait(lambda: "Prefect UI" in output.read_text() or up.poll() is not None, 600, "reviewflow up")
            assert up.poll() is None, output.read_text()[-3000:]
            team.up_output = output.read_text()
            for name in ("worker-a", "worker-b"):
                team.start_worker(name)
            with SyncPrefectClient(team.api_url) as client:
                team.client = client
                _wait(lambda: len(client.read_workers_for_work_pool(POOL)) == 2, 300, "two workers polling the pool")
                yield team
        finally:
            for process in [*team.workers.values(), up]:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            for process in [*team.workers.values(), up]:
                try:
                    process.wait(60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)


def _start_training(team: Team, settings: dict = SETTINGS):
    deployment = team.client.read_deployment_by_name("train/train")
    return team.client.create_flow_run_from_deployment(deployment.id, parameters={"config": settings})


def _final(team: Team, flow_run_id, timeout: float, what: str):
    return _wait(lambda: (run := team.client.read_flow_run(flow_run_id)).state.is_final() and run, timeout, what, interval=3)


def _children(mlflow: MlflowClient, flow_run_id) -> list:
    """The MLflow child runs of the models the flow run `flow_run_id` trained (found by its parent's tag)."""
    experiment = mlflow.get_experiment_by_name("reviewflow")
    if experiment is None:
        return []
    parents = mlflow.search_runs([experiment.experiment_id], f"tags.`reviewflow.prefect_flow_run_id` = '{flow_run_id}'")
    if not parents:
        return []
    children = mlflow.search_runs([experiment.experiment_id], f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    return [r for r in children if r.data.tags.get("architecture") != "pretrain"]  # the models' runs


@pytest.fixture(scope="module")
def lost_worker(team):
    """A training started through the API; its worker's whole process tree killed once the first model is recorded.
    The tests go on at once (the rerun need not wait): the crash is read from the run's state later."""
    mlflow = MlflowClient(team.mlflow_url, team.mlflow_url)
    flow_run = _start_training(team)
    _wait(lambda: any(r.info.status == "FINISHED" for r in _children(mlflow, flow_run.id)), 1200, "a first finished model")
    worker = team.worker_of(flow_run.id)
    assert worker, "no worker log names the flow run"
    finished_before = {r.info.run_name for r in _children(mlflow, flow_run.id) if r.info.status == "FINISHED"}
    killed_at = datetime.now(UTC)
    _kill_tree(team.workers[worker])
    print(f"killed {worker} with {sorted(finished_before)} recorded")
    return worker, flow_run.id, finished_before, killed_at


@pytest.fixture(scope="module")
def rerun(team, lost_worker):
    flow_run = _start_training(team)
    final = _final(team, flow_run.id, 1800, "the rerun")
    return final, _children(MlflowClient(team.mlflow_url, team.mlflow_url), flow_run.id)


def test_up_runs_both_servers_on_postgresql_and_leaves_the_flows_to_the_pool(team):
    assert f"on work pool {POOL}" in team.up_output
    assert not (team.workdir / "data" / "prefect" / "prefect.db").exists()
    assert not list(team.workdir.glob("data/**/mlflow.db"))
    # Both servers made their schemas in PostgreSQL.
    assert team.postgres.query("mlflow", "SELECT count(*) FROM experiments") != [("0",)]
    deployments = {row[0] for row in team.postgres.query("prefect", "SELECT name FROM deployment")}
    assert deployments == {"train", "score"}
    pool = team.client.read_work_pool(POOL)
    assert pool.type == "process"
    for name in ("train/train", "score/score"):
        deployment = team.client.read_deployment_by_name(name)
        assert deployment.work_pool_name == POOL
        assert deployment.job_variables["working_dir"] == str(team.workdir)


def test_the_rerun_completes_on_the_other_worker_and_reuses_the_finished_models(team, lost_worker, rerun):
    worker, _, finished_before, _ = lost_worker
    final, children = rerun
    assert final.state.is_completed(), f"{final.state_name}: {final.state.message}"
    (other,) = set(team.workers) - {worker}
    assert team.worker_of(final.id) == other
    assert {r.info.run_name for r in children} == CHILD_RUNS
    reused = {r.info.run_name for r in children if r.data.tags.get("reviewflow.reused_from_run")}
    assert finished_before - {"ensemble-stacked"} <= reused  # what was recorded before the loss is not trained again
    assert reused != CHILD_RUNS - {"ensemble-stacked"}, "the rerun reused everything: the worker was lost too late"
    versions = MlflowClient(team.mlflow_url, team.mlflow_url).search_model_versions("name='reviewflow-rnn'")
    assert versions
    # The registry is PostgreSQL's too.
    assert team.postgres.query("mlflow", "SELECT count(*) FROM model_versions WHERE name = 'reviewflow-rnn'") == [(str(len(versions)),)]


def test_the_scheduled_scoring_runs_on_a_worker(team, rerun):
    inbox, outbox = team.workdir / "data" / "inbox", team.workdir / "data" / "outbox"
    inbox.mkdir(parents=True, exist_ok=True)
    REVIEWS.to_csv(inbox / ".reviews.csv.part", index=False)
    os.replace(inbox / ".reviews.csv.part", inbox / "reviews.csv")
    manifest = outbox / "reviews.csv.manifest.json"
    _wait(manifest.is_file, 600, "the scheduled scoring of the inbox", interval=3)
    scored = pd.read_csv(outbox / "reviews.scored.csv", keep_default_na=False)
    assert scored["review_id"].tolist() == ["a", "b"] and scored["prob_rnn"].notna().all()
    assert json.loads(manifest.read_text())["rows"] == 2
    score = team.client.read_deployment_by_name("score/score")
    runs = team.client.read_flow_runs(deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[score.id])))
    done = [r for r in runs if r.auto_scheduled and r.state is not None and r.state.is_completed()]
    assert done and any(team.worker_of(r.id) for r in done)


def test_two_trainings_and_a_scoring_at_once_lose_no_record(team, rerun):
    """Concurrent writers on the PostgreSQL tracking server: every run, metric point and version, one champion."""
    mlflow = MlflowClient(team.mlflow_url, team.mlflow_url)
    before = {v.version for v in mlflow.search_model_versions("name='reviewflow-rnn'")}
    inbox = team.workdir / "data" / "inbox"
    inbox.mkdir(parents=True, exist_ok=True)
    REVIEWS.to_csv(inbox / ".both.csv.part", index=False)
    os.replace(inbox / ".both.csv.part", inbox / "both.csv")
    trainings = [_start_training(team, {**SETTINGS, "train": {"architectures": ["rnn"], "seed": seed}}) for seed in (8, 9)]
    score = team.client.read_deployment_by_name("score/score")
    scoring = team.client.create_flow_run_from_deployment(score.id)
    finals = [_final(team, run.id, 1800, "the concurrent runs") for run in (*trainings, scoring)]
    assert all(run.state.is_completed() for run in finals), [(run.name, run.state_name, run.state.message) for run in finals]

    children = [_children(mlflow, run.id) for run in trainings]
    for (child,) in children:  # rnn alone: no ensemble
        assert child.info.status == "FINISHED" and child.data.metrics["test_accuracy"] > 0
        epochs = int(child.data.metrics["epochs_trained"])
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
            assert [m.step for m in mlflow.get_metric_history(child.info.run_id, metric)] == list(range(epochs)), metric
    versions = {v.version: v for v in mlflow.search_model_versions("name='reviewflow-rnn'")}
    new = {number: v for number, v in versions.items() if number not in before}
    assert sorted(v.run_id for v in new.values()) == sorted(child.info.run_id for (child,) in children)
    assert all(mlflow.get_model_version("reviewflow-rnn", n).tags.get("gate.verdict") for n in new)
    holders = [n for n in versions if "champion" in mlflow.get_model_version("reviewflow-rnn", n).aliases]
    assert holders == [mlflow.get_model_version_by_alias("reviewflow-rnn", "champion").version]  # one champion
    assert (team.workdir / "data" / "outbox" / "both.csv.manifest.json").is_file()


def test_a_lost_worker_leaves_its_run_crashed_within_a_bounded_time(team, lost_worker):
    # Here, after the tests above: the wait for the missed heartbeats overlapped them.
    worker, flow_run_id, finished_before, killed_at = lost_worker
    crashed = _final(team, flow_run_id, 600, "the lost run marked final")
    assert crashed.state.type.value == "CRASHED", crashed.state
    assert "no heartbeat" in (crashed.state.message or "")
    seconds = (crashed.state.timestamp - killed_at).total_seconds()
    print(f"{worker}'s run {crashed.state_name} {seconds:.0f} s after the kill")
    # Four heartbeats of silence, then the automation's next look: well under the time limit.
    assert seconds < 4 * HEARTBEAT_S + 180, seconds
    assert finished_before


# --- trainings on a Dask cluster of separate processes -----------------------------------------------------


@pytest.fixture(scope="module")
def dask_cluster(team):
    """`dask scheduler` and two `dask worker`s, each a process tree of its own; a lost worker fails its tasks at once
    (allowed-failures 0) rather than Dask running a lost training again elsewhere."""
    from distributed import Client

    address = f"tcp://127.0.0.1:{free_port()}"
    env = {**team.env, "MLFLOW_TRACKING_URI": team.mlflow_url, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    dask = str(Path(sys.executable).parent / "dask")
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"],
                                  stdout=open(team.workdir / "dask-scheduler.log", "wb"), stderr=subprocess.STDOUT, env=env,  # noqa: SIM115
                                  cwd=team.workdir, start_new_session=True)]
    for name in ("dask-a", "dask-b"):
        processes.append(subprocess.Popen(
            [dask, "worker", address, "--name", name, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"],
            stdout=open(team.workdir / f"{name}.log", "wb"), stderr=subprocess.STDOUT, env=env, cwd=team.workdir,  # noqa: SIM115
            start_new_session=True,
        ))
    try:
        with Client(address, timeout=120) as client:
            client.wait_for_workers(2, timeout=300)
            yield address, client, dict(zip(("dask-a", "dask-b"), processes[1:]))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
            process.wait()


def _on_dask(address: str, seed: int) -> dict:
    # Six epochs each: both trainings are seen running at once on the two workers.
    train = {"architectures": ["rnn", "birnn"], "seed": seed, "epochs": 6, "task_runner": "dask", "dask_address": address}
    return {**SETTINGS, "train": train}


@pytest.fixture(scope="module")
def lost_dask_worker(team, dask_cluster):
    """A training on the cluster; one Dask worker's process tree killed while both trainings run; then the rerun."""
    address, client, workers = dask_cluster
    mlflow = MlflowClient(team.mlflow_url, team.mlflow_url)
    flow_run = _start_training(team, _on_dask(address, 11))

    def training_on_each_worker():
        processing = client.processing()
        return len([w for w, keys in processing.items() if any(str(k).startswith("train_in_own_process") for k in keys)]) == 2 and processing

    processing = _wait(training_on_each_worker, 1200, "a training on each Dask worker", interval=0.5)
    info = client.scheduler_info()["workers"]
    victim = next(info[w]["name"] for w in processing)
    _kill_tree(workers[victim])
    failed = _final(team, flow_run.id, 1200, "the training that lost a Dask worker")
    first = {r.info.run_name: r for r in _children(mlflow, flow_run.id)}
    again = _final(team, _start_training(team, _on_dask(address, 11)).id, 1800, "the rerun on the remaining Dask worker")
    return victim, failed, first, again, {r.info.run_name: r for r in _children(mlflow, again.id)}


def test_a_lost_dask_worker_fails_its_training_alone_and_named(lost_dask_worker):
    victim, failed, first, _, _ = lost_dask_worker
    assert failed.state.is_failed(), failed.state
    message = failed.state.message or ""
    (lost,) = [name for name in ("rnn-100", "birnn-100") if re.search(rf"(^|: |; ){name} failed: its worker died", message)]
    (kept,) = {"rnn-100", "birnn-100"} - {lost}
    assert f"(trained and registered: {kept})" in message, message
    # The lost training may not have opened its child run yet; if it did, the run is not FINISHED.
    assert first[kept].info.status == "FINISHED" and (lost not in first or first[lost].info.status != "FINISHED")
    print(f"lost {victim}: {message}")


def test_the_rerun_on_the_dask_cluster_trains_only_the_lost_model(lost_dask_worker, dask_cluster):
    _, failed, first, again, children = lost_dask_worker
    assert again.state.is_completed(), f"{again.state_name}: {again.state.message}"
    kept = next(name for name in ("rnn-100", "birnn-100") if not re.search(rf"(^|: |; ){name} failed", failed.state.message or ""))
    lost = ({"rnn-100", "birnn-100"} - {kept}).pop()
    assert children[kept].data.tags.get("reviewflow.reused_from_run") == first[kept].info.run_id
    assert "reviewflow.reused_from_run" not in children[lost].data.tags and children[lost].info.status == "FINISHED"
    assert children["ensemble-stacked"].info.status == "FINISHED"
    # The trainings ran on the cluster's workers (the command's host ran none of them).
    _, client, _ = dask_cluster
    done = client.run_on_scheduler(lambda dask_scheduler: [str(k) for k, _, finish, *_ in dask_scheduler.transition_log if finish == "memory"])
    assert any(k.startswith("train_in_own_process") for k in done)
