"""The training flow: ingest -> validate -> prepare -> pretrain (word vectors) beside the TF-IDF baseline ->
train the four recurrent models in parallel -> evaluate -> register -> ensemble (fitted on validation,
evaluated, registered) -> report.

Ingest, validate, prepare, pretrain, train and evaluate reuse the results of earlier runs with the same
data, settings and code (tasks/caching.py); `config.reuse=false` (`reviewflow train --fresh`)
computes everything again. Opening and closing the MLflow run, registering and publishing
always run.
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.futures import PrefectWrappedFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from models.architectures import BASELINE, RECURRENT, pretrain_run_name
from tasks.core.caching import for_run
from tasks.core.config import Config, Profile
from tasks.core.errors import ReviewflowError, interrupted, one_line
from tasks.core.files import new_folder
from tasks.core.processes import available_cores, process_slots, start_process_server, stop_running, threads_per_training
from tasks.core.records import Evaluation, Failure, PreparedData, TrainingJob, UnlabeledReviews
from tasks.stages.baseline import train_baseline_task
from tasks.stages.compare import publish_comparison_task
from tasks.stages.ensemble import fit_ensemble_task, register_ensemble_task
from tasks.stages.evaluate import evaluate_task
from tasks.stages.ingest import ingest_task
from tasks.stages.prepare import prepare_task
from tasks.stages.pretrain import pretrain_task
from tasks.stages.record import (
    close_training_run,
    close_training_run_task,
    open_training_run_task,
    record_data_task,
    record_reuse_task,
    record_vectors_reuse_task,
    record_vocabulary_task,
)
from tasks.stages.register import register_task
from tasks.stages.seeds import best_seeds
from tasks.stages.train import starts_from_vectors, train_task, training_jobs
from tasks.stages.validate import validate_task
from tasks.tracking import Tracking


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    config = params.get("config")
    profile = params.get("profile") or getattr(config, "profile", None) or "default"
    return f"train-{profile}"


@flow(name="train", flow_run_name=_flow_run_name, log_prints=True)
def train(config: Config | None = None, profile: Profile | None = None) -> list[dict]:
    """Train, evaluate and register the configured architectures; returns the comparison table."""
    config = resolve_config(config, profile)
    # Absolute: kept results name these folders, and a later run may start somewhere else. Its own: trainings started
    # at once in one folder (two on one worker) must never write each other's models.
    run_dir = new_folder(config.output_dir.resolve(), f"{config.profile}-{datetime.now(UTC):%Y%m%d-%H%M%S}")
    try:
        tracking = open_training_run_task(config, run_dir.name)
    except BaseException:
        run_dir.rmdir()  # still empty: an unreachable tracking server leaves no folder behind
        raise
    try:
        table = for_run(ingest_task, config)(config.data)
        report_dir = run_dir / "validation"
        try:
            report = for_run(validate_task, config)(table.path, config.validation, report_dir, table.unlabeled)
            report_dir = report.result_path.parent  # a reused validation's report is in an earlier run's folder
        finally:
            record_data_task(tracking, table, report_dir)
        if config.train.task_runner == "process":
            # Its imports (TensorFlow's) then run beside the preparation, not in front of the first training;
            # not before the data passed, so that bad data fails alone, with nothing left starting behind it.
            start_process_server()
        seq_lens = [config.train.seq_len[a] for a in config.train.architectures if a in RECURRENT]
        prepared = for_run(prepare_task, config)(table.path, config.prepare, seq_lens, config.train.seed, run_dir / "prepared")
        record_vocabulary_task(tracking, prepared)
        jobs = training_jobs(config, prepared)
        workers = config.train.max_workers or min(len(config.train.architectures), available_cores())
        runner = task_runner(config, workers, len(jobs) + 1)  # the pretraining too
        outcomes = train_models.with_options(task_runner=runner)(jobs, config, prepared, table.unlabeled, tracking, workers, run_dir)
        # A model that failed does not stop the others: they are registered and compared.
        evaluations = [record_reuse_task(e, tracking) for e in outcomes if isinstance(e, Evaluation)]
        chosen = best_seeds(evaluations)  # one per architecture, picked on validation
        registrations = [register_task(e, prepared, table, config.registry, tracking) for e in chosen]
        ensemble = fit_ensemble_task(chosen, config.ensemble, prepared, tracking, run_dir / "models")
        if ensemble is not None:
            registrations.append(register_ensemble_task(ensemble, registrations, prepared, table, config.registry, tracking))
            chosen.append(ensemble)
        # Nothing to compare when every model failed: the failures are the whole story.
        rows = publish_comparison_task(chosen, registrations, tracking, evaluations) if evaluations else []
        failures = [f for f in outcomes if isinstance(f, Failure)]
        if failures:
            done = ", ".join(e.trained.name for e in evaluations) or "none"
            raise ReviewflowError("; ".join(f"{f.name} failed: {f.reason}" for f in failures) + f" (trained and registered: {done})")
    except BaseException as exc:
        # Directly, not as a task: when the run is being interrupted, no new task run may start.
        close_training_run(tracking, "KILLED" if interrupted(exc) else "FAILED")
        raise
    close_training_run_task(tracking, "FINISHED")
    return rows


@flow(name="train-models")
def train_models(
    jobs: list[TrainingJob], config: Config, prepared: PreparedData, unlabeled: UnlabeledReviews | None, tracking: Tracking,
    workers: int, run_dir: Path,
) -> list[Evaluation | Failure]:
    """The word vectors are learned (once, if any training starts from them) beside the baseline; each training job (each
    architecture and seed; the baseline once) trains and is evaluated as its own task, concurrently on the task runner;
    work done by an earlier run with the same key is reused (state Cached).

    With the process runner, every task has a thread, and `workers` slots decide which run: a task waiting
    for its input (a training waiting for the vectors) holds none, and the costliest waiting work starts first
    (tasks.core.processes.Slots).
    """
    waiting = sum(starts_from_vectors(job) for job in jobs)
    first = len(jobs) - waiting + (1 if waiting else 0)  # what asks for a slot at once: no need to wait for more
    with process_slots(workers, expected=first):
        return _train_and_evaluate(jobs, config, prepared, unlabeled, tracking, threads_per_training(workers), run_dir)


def _train_and_evaluate(
    jobs: list[TrainingJob], config: Config, prepared: PreparedData, unlabeled: UnlabeledReviews | None, tracking: Tracking,
    threads: int, run_dir: Path,
) -> list[Evaluation | Failure]:
    train, train_baseline, evaluate, pretrain = (for_run(t, config) for t in (train_task, train_baseline_task, evaluate_task, pretrain_task))
    models_dir = run_dir / "models"
    vectors, pretraining, submitted = None, [], {}
    if any(starts_from_vectors(job) for job in jobs):
        learned = pretrain.submit(prepared, unlabeled, config.pretrain, config.train.embedding_dim, tracking, threads, run_dir / "pretrain")
        vectors = record_vectors_reuse_task.submit(learned, tracking)
        pretraining = [learned, vectors]
    # Costliest first: the first trainings take the free slots before any queue forms.
    for job in sorted(jobs, key=lambda j: j.cost, reverse=True):
        if job.architecture == BASELINE:
            trained = train_baseline.submit(prepared, config.baseline, tracking, models_dir)
        else:
            trained = train.submit(job, prepared, vectors if starts_from_vectors(job) else None, tracking, threads, models_dir)
        submitted[job.name] = (trained, evaluate.submit(trained, prepared, tracking, threads, config.evaluation))
    try:
        # In the jobs' order (the configured order of architectures: the comparison's rows), whatever order they started in.
        outcomes = [outcome(job.name, *submitted[job.name]) for job in jobs]
        learned = outcome(pretrain_run_name(config.pretrain.method), *pretraining) if pretraining else None
        return [learned, *outcomes] if isinstance(learned, Failure) else outcomes
    except BaseException:
        # Interrupted (Ctrl-C, SIGTERM, a cancelled run): nothing more starts and the trainings
        # stop now, rather than the task runner waiting for each to finish its model.
        for future in [*pretraining, *(f for pair in submitted.values() for f in pair)]:
            future.wrapped_future.cancel()
        stop_running()
        raise


def outcome(name: str, *futures: PrefectWrappedFuture) -> Any:
    """The last future's result (a model's evaluation after its training), or why it failed (the first failure: what
    came after it never ran)."""
    for future in futures:
        while not future.wrapped_future.done():
            future.wait(timeout=0.5)  # short waits: a signal is handled only between them
        future.wait()  # at once now; it keeps the final state, which `state` would re-read from the API
        state = future.state
        if state.is_completed():
            continue
        wrapped = future.wrapped_future
        if not state.is_final() and not wrapped.cancelled() and wrapped.exception() is not None:
            error = lost(future)
        elif state.is_pending():  # Prefect's NotReady: a task it waited for (the word vectors) failed
            return Failure(name=name, reason="not trained: the word vectors it starts from were not learned")
        else:
            error = state.result(raise_on_failure=False)
        reason = str(error) if isinstance(error, ReviewflowError) else one_line(error, 300)
        return Failure(name=name, reason=reason.removeprefix(f"{name}: "))
    return futures[-1].result()


def lost(future: PrefectWrappedFuture) -> BaseException:
    """Why a task whose run never ended is done: the process it ran in died with its machine (a lost Dask
    worker), so nothing told Prefect. Its task run is marked Crashed, rather than Running for ever."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError
    from prefect.states import Crashed

    error = future.wrapped_future.exception()
    worker = re.search(r"tcp://[\w.:-]*\d", str(error))  # Dask's KilledWorker names the last worker that ran it
    reason = ReviewflowError(f"its worker died while it ran ({type(error).__name__}{f', last on {worker[0]}' if worker else ''})")
    # A task lost before it started has no task run on the server yet (Prefect records them from events).
    with get_client(sync_client=True) as client, contextlib.suppress(ObjectNotFound, PrefectHTTPStatusError):
        client.set_task_run_state(future.task_run_id, Crashed(message=str(reason)), force=True)
    return reason


def task_runner(config: Config, workers: int, trainings: int) -> TaskRunner:
    """Processes on this machine (threads that each start a process per task: see tasks.core.processes),
    or a Dask cluster (local, or an existing one by address)."""
    if config.train.task_runner == "process":
        # A thread per task (a training and an evaluation per model and seed): the slots, not the threads, limit the work.
        return ThreadPoolTaskRunner(max_workers=2 * trainings)
    from prefect_dask import DaskTaskRunner

    if config.train.dask_address:
        return DaskTaskRunner(address=config.train.dask_address)
    # Loopback only: Dask's scheduler and dashboard have no authentication.
    cluster = {"n_workers": workers, "threads_per_worker": 1, "processes": True, "host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"}
    return DaskTaskRunner(cluster_kwargs=cluster)


def resolve_config(config: Config | None, profile: Profile | None) -> Config:
    """The run's config: given whole, or named by profile alone (as the Prefect UI/API may send)."""
    if config is None:
        return Config(profile=profile or "default")
    if profile is not None and profile != config.profile:
        raise ReviewflowError(f"profile {profile!r} conflicts with config.profile {config.profile!r}: give one")
    return config
