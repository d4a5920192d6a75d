"""Reading recorded runs: a training's parent run and its models' runs, as `reviewflow report` tables them."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.architectures import PRETRAIN
from tasks.core.config import PROFILES, TrackingConfig
from tasks.core.errors import ReviewflowError, one_line, redacted
from tasks.core.records import ModelRun, TrainingRun
from tasks.tracking import Tracking, check_server_answers
from tasks.tracking.runs import PARENT_TAG


def read_training_run(settings: TrackingConfig, reference: str) -> TrainingRun:
    """The recorded training `reference` names, with its models' finished child runs.

    `reference` is a training's parent run id, `latest` (the experiment's newest finished
    training) or `latest:<profile>`. It only reads: no store or experiment is created.
    """
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        check_server_answers(uri)
    elif uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ReviewflowError(f"no MLflow store at {uri.removeprefix('sqlite:///')}: nothing was recorded there (or set MLFLOW_TRACKING_URI)")
    client = MlflowClient(uri, uri)
    try:
        if reference.partition(":")[0] == "latest":
            run = _latest_training(client, settings.experiment, reference.partition(":")[2], uri)
        else:
            run = _training(client, reference, uri)
        children = client.search_runs(
            [run.info.experiment_id], f"tags.{PARENT_TAG} = '{run.info.run_id}' and attributes.status = 'FINISHED'", max_results=10000
        )
    except (MlflowException, OSError) as exc:
        raise ReviewflowError(redacted(f"reading MLflow runs at {uri} failed: {one_line(exc, 300)}")) from None
    tags = run.data.tags
    return TrainingRun(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status,
        start_time_ms=run.info.start_time or 0,
        profile=tags["profile"],
        commit=tags.get("mlflow.source.git.commit", ""),
        params=run.data.params,
        # The pretrain run is no model: it has no test figures.
        models=[_model_run(child) for child in children if child.data.tags.get("architecture", PRETRAIN) != PRETRAIN],
    )


def _training(client: MlflowClient, run_id: str, uri: str) -> Any:
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ReviewflowError(redacted(f"no MLflow run {run_id!r} at {uri}")) from None
        raise
    tags = run.data.tags
    if PARENT_TAG in tags:
        raise ReviewflowError(
            f"MLflow run {run_id} ({run.info.run_name}) is one model's run inside the training run {tags[PARENT_TAG]}: give a training run's id"
        )
    if "profile" not in tags:
        raise ReviewflowError(f"MLflow run {run_id} ({run.info.run_name}) is not a reviewflow training run (it has no `profile` tag)")
    return run


def _latest_training(client: MlflowClient, experiment_name: str, profile: str, uri: str) -> Any:
    if profile and profile not in PROFILES:
        raise ReviewflowError(f"latest:{profile}: unknown profile (choose from {', '.join(PROFILES)})")
    experiment = client.get_experiment_by_name(experiment_name)
    wanted = "attributes.status = 'FINISHED'" + (f" and tags.profile = '{profile}'" if profile else "")
    token = None
    while experiment is not None:
        page = client.search_runs([experiment.experiment_id], wanted, order_by=["attributes.start_time DESC"], max_results=500, page_token=token)
        # Model runs are finished runs too: the newest top-level one with a profile is the training.
        trainings = [r for r in page if PARENT_TAG not in r.data.tags and "profile" in r.data.tags]
        if trainings:
            return trainings[0]
        token = page.token
        if not token:
            break
    of_profile = f" of profile {profile}" if profile else ""
    raise ReviewflowError(redacted(f"no finished training run{of_profile} in the MLflow experiment {experiment_name!r} at {uri}"))


def _model_run(run: Any) -> ModelRun:
    seed, seq_len = run.data.tags.get("seed", ""), run.data.params.get("seq_len", "")
    return ModelRun(
        run_id=run.info.run_id,
        architecture=run.data.tags["architecture"],
        seed=int(seed) if seed.lstrip("-").isdigit() else None,
        seq_len=int(seq_len) if seq_len.isdigit() else None,
        metrics=run.data.metrics,
    )


def read_json_artifact(tracking: Tracking, run_id: str, artifact: str, what: str) -> dict[str, Any]:
    """A JSON artifact of run `run_id`, which must be `what` (a run of the tracking's experiment)."""
    client = tracking.client()
    try:
        run = client.get_run(run_id)
        if run.info.experiment_id != tracking.experiment_id:
            raise ReviewflowError(f"MLflow run {run_id} is not {what} (it is not in this experiment)")
        with tempfile.TemporaryDirectory() as folder:
            return json.loads(Path(client.download_artifacts(run_id, artifact, folder)).read_text(encoding="utf-8"))
    except MlflowException as exc:
        raise ReviewflowError(redacted(f"no {what.removeprefix('a ')} {run_id} in {tracking.tracking_uri}: {one_line(exc, 200)}")) from None


def run_params(tracking: Tracking, run_id: str) -> dict[str, str]:
    """The params a run recorded."""
    return dict(tracking.client().get_run(run_id).data.params)
