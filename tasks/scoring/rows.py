"""Scoring one chunk of rows: only rows with words reach the models; the others keep a reason."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

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


def output_columns(id_name: str, architectures: list[str]) -> list[str]:
    """The columns of a scored file, in order."""
    return [id_name, *(f"prob_{arch}" for arch in architectures), "prob_ensemble", "sentiment", "error"]


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
