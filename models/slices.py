"""Evaluation metrics per slice of the test reviews: by length in tokens, and by how strong the review's rating is.

Slices are named so that `flat_slice_metrics` gives MLflow metric names such as `slice_length_over_300_accuracy`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from sklearn.metrics import roc_auc_score

from models.text import tokenize

# name -> (shortest, longest) length in tokens, both included.
LENGTH_SLICES: dict[str, tuple[int, float]] = {
    "length_0_100": (0, 100),
    "length_101_300": (101, 300),
    "length_over_300": (301, np.inf),
}
# name -> the star ratings in the slice; IMDB has no 5 or 6, so every rated review is in one of them.
RATING_SLICES: dict[str, tuple[int, ...]] = {
    "rating_strong": (1, 2, 9, 10),
    "rating_mild": (3, 4, 7, 8),
}


def token_lengths(texts: Iterable[str]) -> np.ndarray:
    """The number of tokens of each review, as `models.text.tokenize` splits it."""
    return np.fromiter((len(tokenize(text)) for text in texts), dtype=np.int64)


def slice_masks(token_lengths: np.ndarray, ratings: np.ndarray | None) -> dict[str, np.ndarray]:
    """A boolean mask per slice; the rating slices only when some row has a rating (0, None or NaN means none)."""
    lengths = np.asarray(token_lengths)
    masks = {name: (lengths >= low) & (lengths <= high) for name, (low, high) in LENGTH_SLICES.items()}
    if ratings is None:
        return masks
    # float turns None and pandas' NA into NaN, which no rating slice holds.
    rated = np.asarray(ratings, dtype=float)
    if len(rated) != len(lengths):
        raise ValueError(f"{len(rated)} ratings for {len(lengths)} token lengths")
    if not np.any(np.isin(rated, [r for values in RATING_SLICES.values() for r in values])):
        return masks
    return masks | {name: np.isin(rated, values) for name, values in RATING_SLICES.items()}


def slice_metrics(
    labels: np.ndarray, probabilities: np.ndarray, token_lengths: np.ndarray, ratings: np.ndarray | None = None
) -> dict[str, dict[str, float | None]]:
    """Rows, accuracy (at 0.5) and AUC per slice; AUC is None where the slice holds one class only, empty slices are left out."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=float)
    if not len(labels) == len(probabilities) == len(token_lengths):
        raise ValueError(f"{len(labels)} labels, {len(probabilities)} probabilities, {len(token_lengths)} token lengths")
    correct = (probabilities >= 0.5).astype(int) == labels
    metrics: dict[str, dict[str, float | None]] = {}
    for name, mask in slice_masks(token_lengths, ratings).items():
        rows = int(mask.sum())
        if rows == 0:
            continue
        two_classes = len(np.unique(labels[mask])) == 2
        auc = float(roc_auc_score(labels[mask], probabilities[mask])) if two_classes else None
        metrics[name] = {"rows": rows, "accuracy": float(correct[mask].mean()), "auc": auc}
    return metrics


def flat_slice_metrics(slices: dict[str, dict[str, float | None]]) -> dict[str, float]:
    """The slices as MLflow metrics `slice_<slice>_<figure>`, leaving out figures that are None."""
    return {
        f"slice_{name}_{figure}": float(value)
        for name, figures in slices.items()
        for figure, value in figures.items()
        if value is not None
    }


def worst_slice(slices: dict[str, dict[str, float | None]]) -> tuple[str, float] | None:
    """The slice with the lowest accuracy and that accuracy (the first such slice on a tie); None without slices."""
    if not slices:
        return None
    name = min(slices, key=lambda s: slices[s]["accuracy"])
    return name, float(slices[name]["accuracy"])


def slices_from_metrics(metrics: dict[str, float]) -> dict[str, dict[str, float | None]]:
    """The slices back from a run's metrics as `flat_slice_metrics` named them (AUC None where it was left out)."""
    slices: dict[str, dict[str, float | None]] = {}
    for name in (*LENGTH_SLICES, *RATING_SLICES):
        if f"slice_{name}_accuracy" in metrics:
            rows = metrics.get(f"slice_{name}_rows")  # MLflow keeps every metric as a float
            slices[name] = {"rows": None if rows is None else int(rows), "accuracy": metrics[f"slice_{name}_accuracy"],
                            "auc": metrics.get(f"slice_{name}_auc")}
    return slices
