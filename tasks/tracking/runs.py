"""Logging runs: the training's parent run, one child run per model, their params, metrics and artifacts."""

from __future__ import annotations

import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Literal

import mlflow
import pandas as pd
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException

from models.architectures import run_name
from tasks.core.errors import ReviewflowError, one_line, redacted
from tasks.core.provenance import git_commit
from tasks.tracking import Tracking

REUSED_FROM_TAG = "reviewflow.reused_from_run"
LOGGED_MODEL_FOLDER = "model"  # what registering adds to a child run
PARENT_TAG = "mlflow.parentRunId"


def start_parent_run(tracking: Tracking, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    client = tracking.client()
    run = client.create_run(tracking.experiment_id, run_name=run_name, tags={**_source_tags(), **tags})
    client.log_batch(run.info.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
    return run.info.run_id


def start_child_run(
    tracking: Tracking,
    architecture: str,
    seq_len: int | None,
    params: dict[str, Any],
    tags: dict[str, str] | None = None,
    name: str | None = None,
) -> str:
    """The nested run of one model: named `<arch>-<seq_len>` (`baseline-tfidf`, `ensemble-stacked`) unless
    `name` says otherwise, tagged `architecture` and `tags`."""
    client = tracking.client()
    tags = {**_source_tags(), **(tags or {}), PARENT_TAG: tracking.parent_run_id, "architecture": architecture}
    run = client.create_run(tracking.experiment_id, run_name=name or run_name(architecture, seq_len), tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
    return run.info.run_id


def parent_of(tracking: Tracking, run_id: str) -> str | None:
    """The parent run of `run_id`, or None for a top-level run."""
    try:
        return tracking.client().get_run(run_id).data.tags.get("mlflow.parentRunId")
    except MlflowException as exc:
        raise ReviewflowError(
            f"MLflow run {run_id} at {tracking.tracking_uri} cannot be read ({one_line(exc)}); run with --fresh"
        ) from None


def copy_child_run(tracking: Tracking, source_run_id: str) -> str:
    """A child run of the current parent that repeats a finished child run of an earlier flow run:
    its name, tags, params, every metric's history and its artifacts (not a logged model),
    tagged `reviewflow.reused_from_run=<source>`. Returns the new run's id."""
    client = tracking.client()
    source = client.get_run(source_run_id)
    tags = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.")}
    tags.update({PARENT_TAG: tracking.parent_run_id, REUSED_FROM_TAG: source_run_id})
    run = client.create_run(tracking.experiment_id, run_name=source.info.run_name, tags=tags)
    run_id = run.info.run_id
    try:
        client.log_batch(run_id, params=[Param(k, v) for k, v in source.data.params.items()])
        history = [m for key in source.data.metrics for m in client.get_metric_history(source_run_id, key)]
        for start in range(0, len(history), 1000):  # MLflow's limit per batch
            batch = history[start : start + 1000]
            client.log_batch(run_id, metrics=[Metric(m.key, m.value, m.timestamp, m.step) for m in batch])
        with tempfile.TemporaryDirectory() as folder:
            for artifact in client.list_artifacts(source_run_id):
                if artifact.path == LOGGED_MODEL_FOLDER:
                    continue
                local = client.download_artifacts(source_run_id, artifact.path, folder)
                if artifact.is_dir:
                    client.log_artifacts(run_id, local, artifact.path)
                else:
                    client.log_artifact(run_id, local)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _param_value(value: Any) -> str:
    return redacted(str(value))[:6000]


def log_dataset(tracking: Tracking, run_id: str, table_path: Path, source: str, digest: str, name: str) -> None:
    """Record the training table as the run's MLflow dataset input, with the source's digest."""
    reviews = pd.read_parquet(table_path, columns=["review_id", "split", "label", "rating"])
    with warnings.catch_warnings():
        # Schema hints about integer columns and ambiguous local sources: noise for a record of what was read.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(reviews, source=redacted(source), targets="label", name=name, digest=digest[:36])
    # By id, not `with mlflow.start_run(...)`: leaving that block would mark the parent FINISHED
    # while its models still train, and it would stay so if the flow were killed.
    context = InputTag(key="mlflow.data.context", value="training")
    tracking.client().log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[context])])


def log_metrics(tracking: Tracking, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    tracking.client().log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def log_artifact(tracking: Tracking, run_id: str, path: Path, artifact_path: str | None = None) -> None:
    tracking.client().log_artifact(run_id, str(path), artifact_path)


def log_artifacts(tracking: Tracking, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
    tracking.client().log_artifacts(run_id, str(folder), artifact_path)


def log_text(tracking: Tracking, run_id: str, text: str, artifact_file: str) -> None:
    tracking.client().log_text(run_id, text, artifact_file)


def log_table(tracking: Tracking, run_id: str, table: pd.DataFrame, artifact_file: str) -> None:
    tracking.client().log_table(run_id, table, artifact_file)


def log_figure(tracking: Tracking, run_id: str, figure: Any, artifact_file: str) -> None:
    tracking.client().log_figure(run_id, figure, artifact_file)


def set_tags(tracking: Tracking, run_id: str, tags: dict[str, str]) -> None:
    tracking.client().log_batch(run_id, tags=[RunTag(k, redacted(v)) for k, v in tags.items()])


def finish_run(tracking: Tracking, run_id: str, succeeded: bool) -> None:
    tracking.client().set_terminated(run_id, "FINISHED" if succeeded else "FAILED")


def end_unfinished(tracking: Tracking, parent_run_id: str, status: Literal["FAILED", "KILLED"]) -> None:
    """A failed or interrupted training: its child runs still RUNNING, then the parent, end with `status`."""
    client = tracking.client()
    running = client.search_runs(
        [tracking.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'",
    )
    for run in running:
        client.set_terminated(run.info.run_id, status)
    client.set_terminated(parent_run_id, status)


def _source_tags() -> dict[str, str]:
    """Where a run came from, as MLflow's UI shows it on the run's page: the program and its commit."""
    commit = git_commit()
    source = {"mlflow.source.type": "LOCAL", "mlflow.source.name": "reviewflow"}
    return {**source, "mlflow.source.git.commit": commit} if commit else source
