"""The scoring history in MLflow: one run per scoring flow run in the experiment `reviewflow-scoring`.

Its params say what scored (alias, versions, shadow, threshold); its metrics how much and how fast,
how far each model's files drifted at most and how often the shadow agreed; its tables each file
and each model's figures; its tag `drifted` whether any file was flagged. Every MLflow call goes
through tasks/tracking/.
"""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.config import ScoringConfig, TrackingConfig, tracking_settings
from tasks.core.errors import redacted
from tasks.core.records import FileOutcome
from tasks.scoring.drift import drift_reasons
from tasks.scoring.rows import ShadowScorers
from tasks.tracking import Tracking, connect, run_url
from tasks.tracking.runs import end_unfinished, finish_run, log_metrics, log_table, set_tags, start_parent_run

log = logging.getLogger("reviewflow")
EXPERIMENT = "reviewflow-scoring"
FIGURES = ("length_psi", "probability_psi", "oov_rate_difference", "positive_rate_difference")


def open_scoring_run(
    scoring: ScoringConfig, paths: list[str] | None, versions: dict[str, str], shadow: ShadowScorers | None, tracking_config: TrackingConfig
) -> Tracking:
    """Start the run of this scoring in `reviewflow-scoring`, its params what scores; the returned Tracking names it (`parent_run_id`)."""
    tracking = connect(tracking_settings(tracking_config.model_copy(update={"experiment": EXPERIMENT})))
    params: dict[str, Any] = {
        "alias": scoring.alias, "models": ",".join(scoring.architectures), "chunk_size": scoring.chunk_size,
        "drift_threshold": scoring.drift_threshold, "drift_min_rows": scoring.drift_min_rows, "shadow_alias": scoring.shadow_alias or "",
        "inputs": ", ".join(os.path.abspath(p) for p in paths) if paths else f"inbox {os.path.abspath(scoring.inbox)}",
        "output_dir": os.path.abspath(scoring.output_dir),
        **{f"version.{model}": label for model, label in versions.items()},
        **({f"shadow_version.{model}": label for model, label in shadow.versions.items()} if shadow is not None else {}),
    }
    tags = {"alias": scoring.alias, **_flow_run_tags(), **({"shadow_alias": shadow.alias} if shadow is not None else {})}
    run_id = start_parent_run(tracking, f"score-{datetime.now(UTC):%Y%m%d-%H%M%S}", params, tags)
    return tracking.model_copy(update={"parent_run_id": run_id})


def record_scoring(tracking: Tracking, outcomes: list[FileOutcome]) -> None:
    """Log the run's figures and tables, tag it `drifted`, and finish it."""
    run_id = tracking.parent_run_id
    scored = [o for o in outcomes if o.status == "scored"]
    drifted = [o for o in scored if o.drifted]
    rows, failed, seconds = sum(o.rows for o in scored), sum(o.failed_rows for o in scored), sum(o.seconds for o in scored)
    metrics: dict[str, float] = {
        "files": len(outcomes), "files_scored": len(scored), "files_drifted": len(drifted),
        "files_skipped": sum(o.status == "skipped" for o in outcomes), "files_quarantined": sum(o.status == "quarantined" for o in outcomes),
        "rows": rows, "scored_rows": rows - failed, "failed_rows": failed, "seconds": seconds,
        **({"rows_per_second": rows / seconds} if rows and seconds > 0 else {}),
    }
    drift_rows, shadow_rows = drift_table(scored), shadow_table(scored)
    for model in dict.fromkeys(r["model"] for r in drift_rows):
        for figure in ("length_psi", "probability_psi"):
            values = [r[figure] for r in drift_rows if r["model"] == model and r[figure] is not None]
            if values:
                metrics[f"max_{figure}.{model}"] = max(values)
    for model in dict.fromkeys(r["model"] for r in shadow_rows):
        compared = [r for r in shadow_rows if r["model"] == model and r["agreement"] is not None]
        if sum(r["rows"] for r in compared):  # over every scored row of the run, each file weighed by its rows
            metrics[f"agreement.{model}"] = sum(r["agreement"] * r["rows"] for r in compared) / sum(r["rows"] for r in compared)
    log_metrics(tracking, run_id, metrics)
    log_table(tracking, run_id, pd.DataFrame(files_table(outcomes)), "files.json")
    if drift_rows:
        log_table(tracking, run_id, pd.DataFrame(drift_rows), "drift.json")
    if shadow_rows:
        log_table(tracking, run_id, pd.DataFrame(shadow_rows), "shadow.json")
    tags = {"drifted": str(bool(drifted)).lower()}
    if drifted:
        tags["drifted_files"] = ", ".join(o.input.name for o in drifted)[:5000]
    set_tags(tracking, run_id, tags)
    finish_run(tracking, run_id, succeeded=True)
    url = run_url(tracking, run_id)
    log.info("scoring recorded in MLflow: %s, experiment %s, run %s", url or redacted(tracking.tracking_uri), EXPERIMENT, run_id)


def close_scoring_run(tracking: Tracking, status: Literal["FAILED", "KILLED"]) -> None:
    """A scoring that failed or was interrupted: its run ends with `status`."""
    end_unfinished(tracking, tracking.parent_run_id, status)


def files_table(outcomes: list[FileOutcome]) -> list[dict[str, Any]]:
    """One row per input: what became of it."""
    return [
        {"file": o.input.name, "input": str(o.input), "status": o.status, "rows": o.rows, "failed_rows": o.failed_rows,
         "seconds": o.seconds, "drifted": o.drifted, "drift_reasons": "; ".join(drift_reasons(o.drift or {})), "reason": o.reason or ""}
        for o in outcomes
    ]


def drift_table(scored: list[FileOutcome]) -> list[dict[str, Any]]:
    """One row per scored file and model: its drift figures against the model's reference (empty without one)."""
    rows = []
    for outcome in scored:
        for model, figures in (outcome.drift or {}).items():
            profile = figures.get("profile") or {}
            rows.append({
                "file": outcome.input.name, "model": model, "reference": figures.get("reference"), "rows": profile.get("rows"),
                **{name: figures.get(name) for name in FIGURES},
                "oov_rate": profile.get("oov_rate"), "positive_rate": profile.get("positive_rate"),
                "drifted": figures.get("drifted"), "reasons": "; ".join(figures.get("reasons", [])),
            })
    return rows


def shadow_table(scored: list[FileOutcome]) -> list[dict[str, Any]]:
    """One row per scored file and shadowed model: the shadow version and how often it agreed."""
    return [
        {"file": o.input.name, "model": model, "shadow_version": o.shadow["versions"][model], "rows": o.shadow["rows"], "agreement": agreement}
        for o in scored if o.shadow
        for model, agreement in o.shadow["agreement"].items()
    ]


def _flow_run_tags() -> dict[str, str]:
    """The Prefect flow run this scoring is, to go from one UI to the other."""
    from prefect.runtime import flow_run

    return {"prefect.flow_run_id": str(flow_run.id), "prefect.flow_run_name": str(flow_run.name)} if flow_run.id else {}


open_scoring_run_task = task(open_scoring_run, name="open-scoring-run", cache_policy=NO_CACHE)
record_scoring_task = task(record_scoring, name="record-scoring", cache_policy=NO_CACHE)
