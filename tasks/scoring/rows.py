"""Scoring one chunk of rows: only rows with words reach the models; the others keep a reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.architectures import ENSEMBLE
from models.ensemble import Stacker
from tasks.core.errors import ReviewflowError
from tasks.core.formats import MISSING
from tasks.core.formats.jsonlines import type_name

Scorer = Callable[[list[str]], np.ndarray]  # raw review texts -> P(positive) per text, in [0, 1]
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class EnsembleScorer:
    """The registered ensemble as a scoring run applies it: its stacker over its pinned member versions.

    A member whose pinned version is also one of the run's columns is read from that column
    (the same version gives the same probabilities, and it is not run twice); the others are
    scored by their own pinned version in `scorers`.
    """

    version: str  # `reviewflow-ensemble/4`
    stacker: Stacker
    members: dict[str, str]  # member -> its pinned version, `reviewflow-rnn/3`
    scorers: dict[str, Scorer] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"model": self.version, "members": self.members, "weights": dict(zip(self.stacker.members, self.stacker.weights)),
                "intercept": self.stacker.intercept}


@dataclass(frozen=True)
class ShadowScorers:
    """The versions holding the shadow alias for a run's models: they score the same rows beside them, into
    `shadow_prob_<model>` columns, and only the agreement is reported; sentiment stays the run's own."""

    alias: str
    versions: dict[str, str]  # only the models that have a version under the alias (the ensemble: a registered one)
    scorers: dict[str, Scorer]  # one per shadow_prob_<arch> column
    ensemble: EnsembleScorer | None = None  # shadow_prob_ensemble's, when a registered ensemble holds the alias

    @property
    def models(self) -> list[str]:
        """The shadowed models, in column order."""
        return [*self.scorers, *([ENSEMBLE] if self.ensemble is not None else [])]


def output_columns(id_name: str, architectures: list[str], shadowed: list[str] | tuple[str, ...] = ()) -> list[str]:
    """The columns of a scored file, in order; shadow columns only after all the others, so outputs without a shadow never change."""
    columns = [id_name, *(f"prob_{arch}" for arch in architectures), "prob_ensemble", "sentiment", "error"]
    return columns + [f"shadow_prob_{model}" for model in shadowed]


def score_shadow(texts: list[Any], shadow: ShadowScorers, max_chars: int | None = None) -> pd.DataFrame:
    """The `shadow_prob_<model>` columns for one chunk: the rows `score_chunk` scores, scored by the shadow versions."""
    frame = score_chunk(texts, shadow.scorers, max_chars, shadow.ensemble)
    return pd.DataFrame({f"shadow_prob_{model}": frame[f"prob_{model}"] for model in shadow.models})


def ensemble_source(scorers: dict[str, Scorer], ensemble: EnsembleScorer | None) -> dict[str, Any]:
    """What `prob_ensemble` is, for the manifest: the registered ensemble, or the plain mean of the columns."""
    if ensemble is not None:
        return {"source": "registered ensemble", **ensemble.describe()}
    return {"source": "mean", "of": [f"prob_{arch}" for arch in scorers]}


def score_chunk(
    texts: list[Any], scorers: dict[str, Scorer], max_chars: int | None = None, ensemble: EnsembleScorer | None = None
) -> pd.DataFrame:
    """The probability, sentiment and error columns for one chunk, one row per text in order.

    `prob_ensemble` is the registered ensemble's when one is given, else the mean of the columns.
    """
    errors = [row_error(text, max_chars) for text in texts]
    good = [i for i, error in enumerate(errors) if not error]
    good_texts = [texts[i] for i in good]  # one list for every model: those of one vocabulary encode it once
    probabilities = {}
    for arch, scorer in scorers.items():
        probabilities[f"prob_{arch}"] = column = np.full(len(texts), np.nan)
        if good:
            column[good] = _checked(arch, scorer(good_texts), len(good))
    if ensemble is None:
        ensemble_column = np.mean(list(probabilities.values()), axis=0)
    else:
        ensemble_column = np.full(len(texts), np.nan)
        if good:
            members = {
                member: (
                    _checked(member, ensemble.scorers[member](good_texts), len(good))
                    if member in ensemble.scorers
                    else probabilities[f"prob_{member}"][good]
                )
                for member in ensemble.stacker.members
            }
            ensemble_column[good] = ensemble.stacker.predict(members)
    sentiment = np.where(np.isnan(ensemble_column), None, np.where(ensemble_column >= 0.5, "positive", "negative"))
    return pd.DataFrame({**probabilities, "prob_ensemble": ensemble_column, "sentiment": sentiment, "error": errors})


def row_error(text: Any, max_chars: int | None = None) -> str:
    """Why a row cannot be scored, or "" when it can."""
    if text is MISSING:
        return "no text"
    if not isinstance(text, str):
        return f"not text: {type_name(text)}"
    if not text.strip():
        return "empty text"
    if max_chars is not None and len(text) > max_chars:
        return f"too long ({len(text):,} characters, limit {max_chars:,})"
    return "" if _LETTER.search(text) else "no words"


def _checked(arch: str, probabilities: Any, expected: int) -> np.ndarray:
    values = np.asarray(probabilities, dtype=float).reshape(-1)
    if len(values) != expected:
        raise ReviewflowError(f"model {arch} returned {len(values)} probabilities for {expected} reviews")
    if not np.all((values >= 0) & (values <= 1)):
        raise ReviewflowError(f"model {arch} returned probabilities outside [0, 1]")
    return values


class Agreement:
    """How often each shadow version gives the same label as the run's version (P >= 0.5 on both sides) on the
    scored rows, counted chunk by chunk."""

    def __init__(self, shadow: ShadowScorers) -> None:
        self.shadow = shadow
        self.rows = 0
        self.same = dict.fromkeys(shadow.models, 0)

    def add(self, frame: pd.DataFrame, shadow_frame: pd.DataFrame) -> None:
        """Count one chunk: `score_chunk`'s frame and `score_shadow`'s for the same rows."""
        scored = (frame["error"] == "").to_numpy()
        self.rows += int(scored.sum())
        for model in self.shadow.models:
            ours = frame[f"prob_{model}"].to_numpy(dtype=float)[scored] >= 0.5
            theirs = shadow_frame[f"shadow_prob_{model}"].to_numpy(dtype=float)[scored] >= 0.5
            self.same[model] += int(np.count_nonzero(ours == theirs))

    def describe(self) -> dict[str, Any]:
        """The manifest's `shadow` block: the alias, its versions, the rows compared and each model's agreement
        (None without scored rows)."""
        agreement = {m: (same / self.rows if self.rows else None) for m, same in self.same.items()}
        return {"alias": self.shadow.alias, "versions": self.shadow.versions, "rows": self.rows, "agreement": agreement}
