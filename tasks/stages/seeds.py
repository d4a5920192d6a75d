"""Several seeds per architecture: the figures over seeds, and the seed that goes on.

Which model is registered (and so gated and put in the ensemble) is chosen on the validation
split, never on test: per architecture, the seed whose model has the best validation accuracy.
The test figures over all seeds (mean, spread) are what the parent run reports.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from tasks.core.records import Evaluation

SELECTION_METRIC = "validation_accuracy"  # what picks the seed that is registered




def group_by_architecture(evaluations: list[Evaluation]) -> dict[str, list[Evaluation]]:
    grouped: dict[str, list[Evaluation]] = defaultdict(list)
    for evaluation in evaluations:
        grouped[evaluation.trained.architecture].append(evaluation)
    return dict(grouped)


def best_seeds(evaluations: list[Evaluation]) -> list[Evaluation]:
    """Per architecture, the evaluation with the best validation accuracy (the first seed on a tie), in first-seen order."""
    return [
        max(group, key=lambda e: e.metrics.get(SELECTION_METRIC, float("-inf")))
        for group in group_by_architecture(evaluations).values()
    ]


@dataclass(frozen=True)
class Spread:
    """One figure over a model's seeds: what the parent run, the comparison and `reviewflow report` show."""

    n: int
    mean: float
    std: float | None  # sample standard deviation (n - 1); none for one seed
    min: float
    max: float


def spread(values: list[float]) -> Spread:
    return Spread(len(values), statistics.mean(values), statistics.stdev(values) if len(values) > 1 else None, min(values), max(values))


def seed_summary(evaluations: list[Evaluation]) -> dict[str, dict[str, float]]:
    """Per architecture: how many seeds, and the mean, standard deviation (n - 1; 0 for one seed), min and max of
    test accuracy and AUC over them, with the median training seconds (as metrics of the parent run)."""
    summary = {}
    for architecture, group in group_by_architecture(evaluations).items():
        figures: dict[str, float] = {"seeds": len(group)}
        for metric in ("test_accuracy", "test_auc"):
            over = spread([e.metrics[metric] for e in group])
            figures |= {f"{metric}_mean": over.mean, f"{metric}_std": over.std or 0.0, f"{metric}_min": over.min, f"{metric}_max": over.max}
        figures["train_seconds_median"] = statistics.median(e.trained.seconds for e in group)
        summary[architecture] = figures
    return summary


def seed_rows(evaluations: list[Evaluation]) -> list[dict]:
    """One row per trained model and seed: the figures each seed gave."""
    return [
        {
            "architecture": e.trained.architecture,
            "seed": e.trained.seed,
            "test_accuracy": round(e.metrics["test_accuracy"], 4),
            "test_auc": round(e.metrics["test_auc"], 4),
            SELECTION_METRIC: round(e.metrics[SELECTION_METRIC], 4) if SELECTION_METRIC in e.metrics else None,
            "train_seconds": round(e.trained.seconds, 1),
            "run_id": e.trained.run_id,
        }
        for e in evaluations
    ]
