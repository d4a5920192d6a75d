"""Test metrics of a binary classifier's probabilities: what every evaluation and the champion gate compute."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """Test metrics at the 0.5 threshold, plus ranking (AUC) and calibration (log loss)."""
    predicted = (probabilities >= 0.5).astype(int)
    return {
        "test_accuracy": skm.accuracy_score(labels, predicted),
        "test_precision": skm.precision_score(labels, predicted, zero_division=0),
        "test_recall": skm.recall_score(labels, predicted, zero_division=0),
        "test_f1": skm.f1_score(labels, predicted, zero_division=0),
        "test_auc": skm.roc_auc_score(labels, probabilities),
        "test_loss": skm.log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7), labels=[0, 1]),
    }

