"""The batch-scoring flow: registered models score review files (given paths, or the inbox)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.core.config import ScoringConfig, TrackingConfig
from tasks.core.errors import interrupted
from tasks.core.records import FileOutcome
from tasks.scoring.core import Limits, Monitoring, score_file_task, score_inbox_task
from tasks.scoring.discovery import find_review_files, inbox_inputs
from tasks.scoring.distributed import check_cluster, scoring_cluster
from tasks.scoring.history import close_scoring_run, open_scoring_run_task, record_scoring_task
from tasks.scoring.publish import publish_scoring_task
from tasks.scoring.registered import load_models_task, load_shadow_task


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    paths = flow_run.parameters.get("paths")
    return f"score-{len(paths)}-paths" if paths else "score-inbox"


@flow(name="score", flow_run_name=_flow_run_name, log_prints=True)
def score(scoring: ScoringConfig | None = None, paths: list[str] | None = None) -> list[dict]:
    """Score `paths` (files or folders), or, without paths, every file waiting in the inbox; each file's drift
    and (with `scoring.shadow_alias`) the shadow's agreement go into its manifest, the report and the MLflow run."""
    scoring = scoring or ScoringConfig()
    if not paths and not inbox_inputs(scoring.inbox):
        # A scheduled run over an empty inbox has nothing to do, not even load models
        # (which may not exist yet on a fresh stack), nor record a run.
        return publish_scoring_task([], {})
    if scoring.dask_address:
        check_cluster(scoring.dask_address)
    models = load_models_task(scoring.architectures, scoring.alias, TrackingConfig(), scoring.model_cache)
    shadow = load_shadow_task(scoring.architectures, scoring.shadow_alias, TrackingConfig(), scoring.model_cache) if scoring.shadow_alias else None
    monitoring = Monitoring(models.references, scoring.drift_threshold, scoring.drift_min_rows, shadow)
    cluster = scoring_cluster(scoring, models.versions, shadow, TrackingConfig())
    inputs = find_review_files([Path(p) for p in paths]) if paths else []  # a missing path: one line, and no run recorded
    recorder = open_scoring_run_task(scoring, paths, models.versions, shadow, TrackingConfig())
    limits = Limits(scoring.max_file_bytes, scoring.max_review_chars)
    try:
        if paths:
            outcomes: list[FileOutcome] = [
                score_file_task(
                    path, scoring.output_dir, models.scorers, models.versions, scoring.chunk_size, limits=limits, ensemble=models.ensemble,
                    monitoring=monitoring, cluster=cluster,
                )
                for path in inputs
            ]
        else:
            outcomes = score_inbox_task(
                scoring.inbox, scoring.output_dir, scoring.archive_dir, models.scorers, models.versions, scoring.chunk_size,
                limits=limits, ensemble=models.ensemble, monitoring=monitoring, cluster=cluster,
            )
        rows = publish_scoring_task(outcomes, models.versions)
    except BaseException as exc:
        # Directly, not as a task: when the run is being interrupted, no new task run may start.
        close_scoring_run(recorder, "KILLED" if interrupted(exc) else "FAILED")
        raise
    record_scoring_task(recorder, outcomes)
    return rows
