"""The ensemble: the members' probabilities combined by a logistic-regression stacker.

The stacker reads each member's probability as a logit, so a confident member can outvote
unsure ones, and learns one weight per member and an intercept. It is fitted on the
validation split (the members never trained on it) and stored as plain numbers in JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

EPSILON = 1e-6  # probabilities are clipped to [EPSILON, 1 - EPSILON] before the logit


def logit(probabilities: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(probabilities, dtype=np.float64), EPSILON, 1 - EPSILON)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class Stacker:
    """P(positive) = sigmoid(intercept + sum of weight[m] * logit(P_m)) over the members m."""

    members: tuple[str, ...]
    weights: tuple[float, ...]
    intercept: float

    @classmethod
    def fit(cls, probabilities: Mapping[str, np.ndarray], labels: np.ndarray, C: float = 1.0) -> Stacker:
        """Weights that best predict `labels` from the members' `probabilities` (one array per member)."""
        from sklearn.linear_model import LogisticRegression

        members = tuple(probabilities)
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least two members (got {list(members)})")
        regression = LogisticRegression(C=C, max_iter=1000).fit(cls._features(probabilities, members), np.asarray(labels))
        return cls(members, tuple(float(w) for w in regression.coef_[0]), float(regression.intercept_[0]))

    def predict(self, probabilities: Mapping[str, np.ndarray]) -> np.ndarray:
        """The ensemble's P(positive) from each member's, row by row."""
        logits = self._features(probabilities, self.members) @ np.asarray(self.weights) + self.intercept
        return 1 / (1 + np.exp(-logits))

    @staticmethod
    def _features(probabilities: Mapping[str, np.ndarray], members: tuple[str, ...]) -> np.ndarray:
        missing = [m for m in members if m not in probabilities]
        if missing:
            raise ValueError(f"no probabilities of ensemble members {missing}")
        return np.column_stack([logit(np.asarray(probabilities[m]).reshape(-1)) for m in members])

    def to_dict(self) -> dict:
        return {"members": list(self.members), "weights": list(self.weights), "intercept": self.intercept}

    @classmethod
    def from_dict(cls, values: Mapping) -> Stacker:
        return cls(tuple(values["members"]), tuple(float(w) for w in values["weights"]), float(values["intercept"]))
