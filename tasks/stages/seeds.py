"""Several seeds per architecture: one training per seed, then the figures over seeds and the seed that goes on.

Which model is registered (and so gated and put in the ensemble) is chosen on the validation
split, never on test: per architecture, the seed whose model has the best validation accuracy.
The test figures over all seeds (mean, spread) are what the parent run reports.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from tasks.core.config import TrainConfig
from tasks.core.records import Evaluation

SELECTION_METRIC = "validation_accuracy"  # what picks the seed that is registered


def seed_settings(settings: TrainConfig) -> list[TrainConfig]:
    """One training's settings per seed (`seed`, `seed + 1`, ...): each trains, is cached and is logged on its own."""
    return [settings.model_copy(update={"seed": settings.seed + i, "seeds": 1}) for i in range(settings.seeds)]


def by_architecture(evaluations: list[Evaluation]) -> dict[str, list[Evaluation]]:
    grouped: dict[str, list[Evaluation]] = defaultdict(list)
    for evaluation in evaluations:
        grouped[evaluation.trained.architecture].append(evaluation)
    return dict(grouped)


def best_seeds(evaluations: list[Evaluation]) -> list[Evaluation]:
    """Per architecture, the evaluation with the best validation accuracy (the first seed on a tie), in first-seen order."""
    return [
        max(group, key=lambda e: e.metrics.get(SELECTION_METRIC, float("-inf")))
        for group in by_architecture(evaluations).values()
    ]


def seed_summary(evaluations: list[Evaluation]) -> dict[str, dict[str, float]]:
    """Per architecture: how many seeds, and the mean, standard deviation (n - 1), min and max of
    test accuracy and AUC over them, with the median training seconds."""
    summary = {}
    for architecture, group in by_architecture(evaluations).items():
        figures: dict[str, float] = {"seeds": len(group)}
        for metric in ("test_accuracy", "test_auc"):
            values = np.array([e.metrics[metric] for e in group])
            figures |= {
                f"{metric}_mean": float(values.mean()),
                f"{metric}_std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                f"{metric}_min": float(values.min()),
                f"{metric}_max": float(values.max()),
            }
        figures["train_seconds_median"] = float(np.median([e.trained.seconds for e in group]))
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
