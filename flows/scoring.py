"""The batch-scoring flow: registered models score review files (given paths, or the inbox)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tasks.core.config import ScoringConfig, TrackingConfig
from tasks.core.records import FileOutcome
from tasks.scoring.core import Limits, score_file_task, score_inbox_task
from tasks.scoring.discovery import find_review_files, inbox_inputs
from tasks.scoring.publish import publish_scoring_task
from tasks.scoring.registered import load_models_task


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    paths = flow_run.parameters.get("paths")
    return f"score-{len(paths)}-paths" if paths else "score-inbox"


@flow(name="score", flow_run_name=_flow_run_name, log_prints=True)
def score(scoring: ScoringConfig | None = None, paths: list[str] | None = None) -> list[dict]:
    """Score `paths` (files or folders), or, without paths, every file waiting in the inbox."""
    scoring = scoring or ScoringConfig()
    if not paths and not inbox_inputs(scoring.inbox):
        # A scheduled run over an empty inbox has nothing to do, not even load models
        # (which may not exist yet on a fresh stack).
        return publish_scoring_task([], {})
    models = load_models_task(scoring.architectures, scoring.alias, TrackingConfig(), scoring.model_cache)
    limits = Limits(scoring.max_file_bytes, scoring.max_review_chars)
    if paths:
        outcomes: list[FileOutcome] = [
            score_file_task(
                path, scoring.output_dir, models.scorers, models.versions, scoring.chunk_size, limits=limits, ensemble=models.ensemble
            )
            for path in find_review_files([Path(p) for p in paths])
        ]
    else:
        outcomes = score_inbox_task(
            scoring.inbox, scoring.output_dir, scoring.archive_dir, models.scorers, models.versions, scoring.chunk_size,
            limits=limits, ensemble=models.ensemble,
        )
    return publish_scoring_task(outcomes, models.versions)
