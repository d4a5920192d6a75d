"""The ensemble of the trained models: fitted on the validation split, evaluated on test, registered
pinned to the exact member versions registered in the same run.

Fitting reads each member's kept predictions (`Evaluation.predictions_path`): its validation
probabilities and labels, and nothing of the test split but what the evaluation scores. It
takes about a second, so it runs in every flow run (its members are new versions each time).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.architectures import ENSEMBLE, run_name
from models.ensemble import Stacker
from tasks.core.config import EnsembleConfig, RegistryConfig
from tasks.core.records import Evaluation, Predictions, PreparedData, Registration, ReviewTable, TrainedModel
from tasks.registry.versions import ENSEMBLE_SPEC as SPEC_FILE
from tasks.stages.evaluate import record_evaluation
from tasks.stages.register import register_model
from tasks.tracking import Tracking
from tasks.tracking.runs import finish_run, log_metrics, start_child_run

log = logging.getLogger("reviewflow")


def fit_stacker(members: dict[str, Predictions], C: float) -> Stacker:
    """Weights fitted on the members' validation probabilities and labels only."""
    labels = _same_labels({name: p.validation_labels for name, p in members.items()}, "validation")
    return Stacker.fit({name: p.validation for name, p in members.items()}, labels, C)


def combined_predictions(stacker: Stacker, members: dict[str, Predictions]) -> Predictions:
    """The ensemble's own predictions on both splits, from its members'."""
    return Predictions(
        validation=stacker.predict({n: p.validation for n, p in members.items()}),
        validation_labels=_same_labels({n: p.validation_labels for n, p in members.items()}, "validation"),
        test=stacker.predict({n: p.test for n, p in members.items()}),
        test_labels=_same_labels({n: p.test_labels for n, p in members.items()}, "test"),
    )


def fit_ensemble(
    evaluations: list[Evaluation], settings: EnsembleConfig, prepared: PreparedData, tracking: Tracking, models_dir: Path
) -> Evaluation | None:
    """Fit, evaluate and record the ensemble of the evaluated models as child run `ensemble-stacked`.

    None when it is disabled or there are fewer than two members. Its training time is its
    members' added up, plus its own fit: what it costs to have it.
    """
    if not settings.enabled or len(evaluations) < 2:
        log.info("no ensemble: %s", "disabled" if not settings.enabled else "fewer than two trained models")
        return None
    members = {e.trained.architecture: Predictions.load(e.predictions_path) for e in evaluations}
    params = {"architecture": ENSEMBLE, "members": ",".join(members), "method": "logistic stacker on logits", "C": settings.C,
              "validation_rows": len(next(iter(members.values())).validation)}
    run_id = start_child_run(tracking, ENSEMBLE, None, params)
    try:
        started = time.perf_counter()
        stacker = fit_stacker(members, settings.C)
        seconds = time.perf_counter() - started
        predictions = combined_predictions(stacker, members)
        weights = {f"weight_{m}": w for m, w in zip(stacker.members, stacker.weights)}
        val_accuracy = float(((predictions.validation >= 0.5) == predictions.validation_labels).mean())
        log_metrics(tracking, run_id, {**weights, "intercept": stacker.intercept, "val_accuracy": val_accuracy})
    except BaseException:
        finish_run(tracking, run_id, succeeded=False)
        raise
    folder = Path(models_dir) / run_name(ENSEMBLE)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SPEC_FILE).write_text(json.dumps({"stacker": stacker.to_dict()}, indent=2), encoding="utf-8")
    log.info("%s: weights %s, intercept %.3f", run_name(ENSEMBLE), {m: round(w, 3) for m, w in zip(stacker.members, stacker.weights)}, stacker.intercept)
    trained = TrainedModel(
        architecture=ENSEMBLE, seq_len=None, run_id=run_id, classifier_dir=folder,
        seconds=seconds + sum(e.trained.seconds for e in evaluations), history={},
    )
    summary = f"Logistic stacker over the logits of {', '.join(stacker.members)}\n{json.dumps(stacker.to_dict(), indent=2)}\n"
    return record_evaluation(trained, predictions, prepared, tracking, summary)


def register_ensemble(
    ensemble: Evaluation, registrations: list[Registration], prepared: PreparedData, table: ReviewTable, settings: RegistryConfig, tracking: Tracking
) -> Registration:
    """Register `reviewflow-ensemble` pinned to the member versions of `registrations`, gated like the others."""
    spec_path = ensemble.trained.classifier_dir / SPEC_FILE
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    versions = {r.architecture: r for r in registrations}
    missing = [m for m in spec["stacker"]["members"] if m not in versions]
    if missing:
        raise ValueError(f"ensemble members {missing} have no registered version")
    spec["members"] = {m: {"name": versions[m].name, "version": versions[m].version} for m in spec["stacker"]["members"]}
    spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    members = {f"member.{m}": f"{v['name']}/{v['version']}" for m, v in spec["members"].items()}
    return register_model(ensemble, prepared, table, settings, tracking, members)


def _same_labels(labels: dict[str, np.ndarray], split: str) -> np.ndarray:
    """The labels every member was scored against; they must be the same rows in the same order."""
    first_name, first = next(iter(labels.items()))
    for name, other in labels.items():
        if not np.array_equal(first, other):
            raise ValueError(f"{name} and {first_name} were scored on different {split} reviews")
    return first


fit_ensemble_task = task(fit_ensemble, name="fit-ensemble", cache_policy=NO_CACHE)
register_ensemble_task = task(register_ensemble, name="register-ensemble", cache_policy=NO_CACHE)
