"""The training run's record: the MLflow parent run opened and closed, its data, vocabulary, and reused models and word vectors."""


from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.config import Config, flatten, tracking_settings
from tasks.core.records import Evaluation, PreparedData, ReviewTable, WordVectors
from tasks.tracking import Tracking, connect
from tasks.tracking.runs import (
    copy_child_run,
    end_unfinished,
    finish_run,
    log_artifact,
    log_artifacts,
    log_dataset,
    parent_of,
    start_parent_run,
)

log = logging.getLogger("reviewflow")


FLOW_RUN_TAG = "reviewflow.prefect_flow_run_id"


def open_training_run(config: Config, run_name: str) -> Tracking:
    """Reach MLflow and start the flow run's parent run, with the whole config as params."""
    tracking = connect(tracking_settings(config.tracking))
    params = flatten(config.model_dump(mode="json"))
    from prefect.runtime import flow_run

    # Which Prefect flow run this is (from a deployment, on which worker): the two UIs' records joined.
    tags = {"profile": config.profile, **({FLOW_RUN_TAG: flow_run.id} if flow_run.id else {})}
    parent = start_parent_run(tracking, run_name, params, tags)
    return tracking.model_copy(update={"parent_run_id": parent})


def record_data(tracking: Tracking, table: ReviewTable, report_dir: Path) -> None:
    """The dataset (with its digest) as the parent run's input, and the GX validation report."""
    name = f"reviews-{table.digest[:12]}"
    log_dataset(tracking, tracking.parent_run_id, table.path, table.source, table.digest, name)
    if report_dir.is_dir():
        log_artifacts(tracking, tracking.parent_run_id, report_dir, "validation")


def record_vocabulary(tracking: Tracking, prepared: PreparedData) -> None:
    """The one vocabulary every model of the run was trained with (each model also carries a copy)."""
    log_artifact(tracking, tracking.parent_run_id, prepared.vocabulary_path)


def record_reuse(evaluation: Evaluation, tracking: Tracking) -> Evaluation:
    """The evaluation as this flow run's child run holds it. A model reused from an earlier run
    gets a child run here that repeats the one it was trained and evaluated in (params, per-epoch
    and test metrics, plots), tagged with that run's id; registration then logs to it."""
    trained = evaluation.trained
    if parent_of(tracking, trained.run_id) == tracking.parent_run_id:
        return evaluation
    run_id = copy_child_run(tracking, trained.run_id)
    log.info("%s: reused the model trained in MLflow run %s (%s)", trained.name, trained.run_id, trained.classifier_dir)
    return evaluation.model_copy(update={"trained": trained.model_copy(update={"run_id": run_id})})


def record_vectors_reuse(vectors: WordVectors, tracking: Tracking) -> WordVectors:
    """The word vectors as this flow run's child run holds them: reused from an earlier run, they get a
    `pretrain-<method>` child run here that repeats the one they were learned in, tagged with its id."""
    if parent_of(tracking, vectors.run_id) == tracking.parent_run_id:
        return vectors
    run_id = copy_child_run(tracking, vectors.run_id)
    log.info("pretrain-%s: reused the word vectors learned in MLflow run %s (%s)", vectors.method, vectors.run_id, vectors.embedding_path)
    return vectors.model_copy(update={"run_id": run_id})


def close_training_run(tracking: Tracking, status: Literal["FINISHED", "FAILED", "KILLED"]) -> None:
    """End the parent run; after a failure (FAILED) or an interruption (KILLED) also its unfinished children."""
    if status == "FINISHED":
        finish_run(tracking, tracking.parent_run_id, succeeded=True)
    else:
        end_unfinished(tracking, tracking.parent_run_id, status)


open_training_run_task = task(open_training_run, name="open-run", cache_policy=NO_CACHE)
record_data_task = task(record_data, name="record-data", cache_policy=NO_CACHE)
record_vocabulary_task = task(record_vocabulary, name="record-vocabulary", cache_policy=NO_CACHE)
close_training_run_task = task(close_training_run, name="close-run", cache_policy=NO_CACHE)
record_vectors_reuse_task = task(record_vectors_reuse, name="record-vectors-reuse", cache_policy=NO_CACHE)
record_reuse_task = task(
    record_reuse, name="record-reuse", task_run_name="record-reuse-{evaluation.trained.architecture}", cache_policy=NO_CACHE
)
