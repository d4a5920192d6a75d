"""The served `train` and `score` deployments, started as the Prefect UI does, and `reviewflow up`."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest
from mlflow import MlflowClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
    LogFilter,
    LogFilterFlowRunId,
    LogFilterTextSearch,
)

from flows.stack import up
from models.architectures import ARCHITECTURES, SCORING_MODELS
from tasks.core.config import Config
from tasks.core.errors import ReviewflowError
from tasks.core.servers import free_port

pytestmark = pytest.mark.e2e
CHILD_RUNS = ["rnn-100", "birnn-100", "bigru-100", "bilstm-2494", "baseline-tfidf", "ensemble-stacked"]
EPOCH_RUNS = CHILD_RUNS[:4]  # the recurrent models log each epoch
REVIEWS = pd.DataFrame({
    "review_id": ["r1", "r2", "r3", "r4"],
    "text": [
        "A moving, beautifully acted film. I loved every minute of it.",
        "Boring, predictable and far too long. A waste of an evening.",
        "",
        "The best performance of the year, with a wonderful score.",
    ],
})


# --- serve ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("api", [None, "nothing"])
def test_serve_without_a_prefect_server_is_a_one_line_error(tmp_path, api):
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env["PREFECT_HOME"] = str(tmp_path)  # no Prefect profile that names a server either
    if api:
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    result = subprocess.run(
        [sys.executable, "-m", "flows.deployments"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120
    )
    assert result.returncode == 2
    if api:
        assert result.stderr.startswith(f"reviewflow: error: no Prefect server answers at PREFECT_API_URL={env['PREFECT_API_URL']} (")
        assert result.stderr.count("\n") == 1
    else:
        assert result.stderr.strip() == (
            "reviewflow: error: reviewflow serve needs PREFECT_API_URL (a Prefect server), or use `reviewflow up`"
        )


def test_deployments_are_served_with_their_schedule_and_parameters(served_deployments):
    client, workdir = served_deployments.client, served_deployments.workdir
    train = client.read_deployment_by_name("train/train")
    assert train.schedules == []
    assert train.parameters == {"profile": "default"}
    assert train.entrypoint == "flows.training.train"
    assert {"config", "profile"} <= set(train.parameter_openapi_schema["properties"])  # the form in the UI
    score = client.read_deployment_by_name("score/score")
    (schedule,) = score.schedules
    assert schedule.active and schedule.schedule.interval.total_seconds() == 15 * 60
    scoring = score.parameters["scoring"]
    assert scoring["inbox"] == str(workdir / "data" / "inbox")
    assert scoring["output_dir"] == str(workdir / "data" / "outbox")
    assert scoring["archive_dir"] == str(workdir / "data" / "archive")
    assert "paths" not in score.parameters


# --- train through the deployment ------------------------------------------------------------------------


def test_train_run_from_the_deployment_records_a_child_run_per_model(served_training):
    _, parent, children = served_training
    assert parent.info.status == "FINISHED"
    assert parent.data.params["profile"] == "smoke"
    assert sorted(r.info.run_name for r in children) == sorted(CHILD_RUNS)
    assert all(r.info.status == "FINISHED" for r in children)


def test_train_run_from_the_deployment_registers_champions(served_training, served_deployments):
    _, _, children = served_training
    client = MlflowClient(served_deployments.mlflow_url, served_deployments.mlflow_url)
    for run in children:
        name = f"reviewflow-{run.data.tags['architecture']}"
        (found,) = client.search_model_versions(f"name='{name}' and run_id='{run.info.run_id}'")
        version = client.get_model_version(name, found.version)  # search results carry no aliases
        # Another test may have trained first: then the gate gives this version champion or challenger.
        assert set(version.aliases) & {"champion", "challenger"}, (name, version.aliases)
        assert client.get_model_version_by_alias(name, "champion")


def test_train_flow_run_publishes_its_summary_and_comparison_artifacts(served_training, served_deployments):
    flow_run, _, _ = served_training
    artifacts = _artifacts(served_deployments.client, flow_run.id)
    assert artifacts["training-summary"].type == "markdown"
    assert all(name in artifacts["training-summary"].data for name in CHILD_RUNS)
    assert artifacts["model-comparison"].type == "table"
    rows = json.loads(artifacts["model-comparison"].data)
    assert sorted(row["architecture"] for row in rows) == sorted(SCORING_MODELS)


def test_train_flow_run_logs_each_epoch(served_training, served_deployments):
    flow_run, _, _ = served_training
    client = served_deployments.client
    # The trainings run as tasks of the `train-models` subflow, so their lines are in its logs.
    subflows = client.read_flow_runs(
        flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id]))
    )
    assert [r.name for r in subflows] and all(r.state.is_completed() for r in subflows)
    lines = _log_lines(client, [flow_run.id, *(r.id for r in subflows)], "epoch")
    for name in EPOCH_RUNS:
        assert any(line.startswith(f"{name} epoch 1/1") for line in lines), (name, lines)


# --- score through the deployment ------------------------------------------------------------------------


def test_score_deployment_scores_the_inbox(served_training, served_deployments):
    workdir, client = served_deployments.workdir, served_deployments.client
    inbox, outbox, archive = (workdir / "data" / name for name in ("inbox", "outbox", "archive"))
    inbox.mkdir(parents=True, exist_ok=True)
    REVIEWS.to_csv(inbox / ".reviews.csv.part", index=False)
    os.replace(inbox / ".reviews.csv.part", inbox / "reviews.csv")  # dropped whole, as a user should

    flow_run = served_deployments.run_deployment("score/score", timeout=900)
    assert flow_run.state.is_completed(), f"{flow_run.state_name}: {flow_run.state.message}\n{served_deployments.log_tail()}"

    scored = pd.read_csv(outbox / "reviews.scored.csv", keep_default_na=False)
    assert scored["review_id"].tolist() == REVIEWS["review_id"].tolist()
    assert {f"prob_{arch}" for arch in ARCHITECTURES} | {"prob_ensemble", "sentiment", "error"} <= set(scored.columns)
    assert scored["sentiment"].tolist()[:2] != ["", ""] and scored.loc[2, "error"] == "empty text"
    manifest = json.loads((outbox / "reviews.csv.manifest.json").read_text())
    assert manifest["rows"] == 4 and manifest["failed"] == 1
    assert set(manifest["versions"]) == set(SCORING_MODELS)
    assert (archive / "reviews.csv").is_file() and not (inbox / "reviews.csv").exists()

    report = _artifacts(client, flow_run.id)["scoring-report"]
    assert report.type == "table"
    (row,) = json.loads(report.data)
    assert row["status"] == "scored" and row["rows"] == 4


def test_score_deployment_on_an_empty_inbox_needs_no_models(served_deployments, tmp_path):
    # A fresh stack has no champions yet: its scheduled scoring runs must still succeed.
    scoring = {"inbox": str(tmp_path / "empty-inbox"), "alias": "nobody-has-this"}
    flow_run = served_deployments.run_deployment("score/score", {"scoring": scoring}, timeout=300)
    assert flow_run.state.is_completed(), f"{flow_run.state_name}: {flow_run.state.message}"


# --- up ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("taken", ["mlflow", "prefect"])
def test_up_refuses_a_port_already_taken(workdir, taken):
    ports = {"mlflow": free_port(), "prefect": free_port()}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports[taken]))
        holder.listen()
        with pytest.raises(ReviewflowError) as error:
            up(Config(), "127.0.0.1", mlflow_port=ports["mlflow"], prefect_port=ports["prefect"])
    message = str(error.value)
    assert "\n" not in message and f"port {ports[taken]} " in message
    assert ("MLflow" if taken == "mlflow" else "Prefect") in message
    assert not (workdir / "data").exists()  # refused before anything started


def test_up_serves_both_uis_and_sigterm_stops_every_process(tmp_path, imdb_archive, shared_cache):
    """`up` answers on both ports; SIGTERM in the middle of a training leaves no process behind."""
    mlflow_port, prefect_port = free_port(), free_port()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "cache").symlink_to(shared_cache)
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI")}
    env.update(PREFECT_HOME=str(tmp_path / "client-home"), REVIEWFLOW_DATA=str(imdb_archive))
    code = (
        "import flows, sys; from flows.stack import up; from tasks.core.config import Config; "
        f"sys.exit(up(Config(), '127.0.0.1', {mlflow_port}, {prefect_port}))"
    )
    output, api = tmp_path / "up.out", f"http://127.0.0.1:{prefect_port}/api"
    with open(output, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", code], stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, env=env, start_new_session=True
        )
    try:
        _wait(lambda: "Prefect UI" in output.read_text() or process.poll() is not None, 600)
        text = output.read_text()
        assert f"MLflow UI   http://127.0.0.1:{mlflow_port}" in text, text[-3000:]
        assert f"Prefect UI  http://127.0.0.1:{prefect_port}" in text
        assert _get(f"http://127.0.0.1:{mlflow_port}/health") == "OK"
        assert _get(f"{api}/health") == "true"
        assert json.loads(_get(f"{api}/deployments/name/score/score"))["name"] == "score"
        train = json.loads(_get(f"{api}/deployments/name/train/train"))
        assert (tmp_path / "data" / "mlflow" / "mlflow.db").is_file() and (tmp_path / "data" / "prefect" / "prefect.db").is_file()

        # A smoke training, stopped once its trainings run in worker processes of the flow run's process.
        _post(f"{api}/deployments/{train['id']}/create_flow_run", {"parameters": {"profile": "smoke"}})
        def training() -> bool:
            # The workers are forks of the fork server (tasks.core.processes), which shares their command line.
            return sum("forkserver" in row[2] for row in _descendants(process.pid).values()) >= 3

        _wait(lambda: process.poll() is not None or training(), 600)
        assert process.poll() is None, output.read_text()[-3000:]
        family = _descendants(process.pid)
        groups = {pgid for _, pgid, _ in family.values()}
        # up, the MLflow and Prefect servers, the serving process, the flow run, its workers
        assert len(family) >= 6, family

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=180) == 0, output.read_text()[-3000:]
    finally:
        if process.poll() is None:  # the test failed: stop it all the same
            everything = {pgid for _, pgid, _ in _descendants(process.pid).values()}
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=120)
            for group in everything:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(group, signal.SIGKILL)
            process.wait()
    left = {pid: row for pid, row in _processes().items() if pid in family or row[1] in groups}
    assert not left, left
    assert not _listening(mlflow_port) and not _listening(prefect_port)
    assert "stopping the servers" in output.read_text()
    # The interrupted training closed its MLflow parent run (on the embedded store that `up` served).
    store = f"sqlite:///{tmp_path / 'data' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(store, store)
    runs = client.search_runs([client.get_experiment_by_name("reviewflow").experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status in ("FAILED", "KILLED"), [(r.info.run_name, r.info.status) for r in runs]
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"], "child runs left RUNNING"


# --- helpers -----------------------------------------------------------------------------------------------


def _artifacts(client, flow_run_id) -> dict:
    found = client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
    return {a.key: a for a in found if a.key}


def _log_lines(client, flow_run_ids, text: str) -> list[str]:
    lines, offset = [], 0
    log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=list(flow_run_ids)), text=LogFilterTextSearch(query=text))
    while True:
        page = client.read_logs(log_filter=log_filter, offset=offset)
        lines += [log.message for log in page]
        if not page:
            return lines
        offset += len(page)


def _listening(port: int) -> bool:
    # Not a bind: closed connections linger in TIME_WAIT on the servers' ports for a minute.
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return False
    return True


def _wait(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"still waiting after {timeout:.0f} s"
        time.sleep(0.5)


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return json.loads(reply.read())


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode().strip()


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (ppid, pgid, command line), from `ps` (-ww: whole command lines, not cut at 80 columns)."""
    listing = subprocess.run(["ps", "-ww", "-eo", "pid=,ppid=,pgid=,args="], capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in listing.splitlines():
        pid, ppid, pgid, *args = line.split(None, 3)
        rows[int(pid)] = (int(ppid), int(pgid), args[0] if args else "")
    return rows


def _descendants(root: int) -> dict[int, tuple[int, int, str]]:
    table = _processes()
    family, frontier = {root: table[root]}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, row in table.items():
            if row[0] == parent and pid not in family:
                family[pid] = row
                frontier.append(pid)
    return family
