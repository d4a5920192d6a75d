"""Altered copies of reviews: how much a model's accuracy hangs on the form of the text it reads.

Each alteration is a plain function of one review, and `ALTERATIONS` names them. The tokenizer
already removes HTML line breaks (`models.text.tokenize`), so `without_line_breaks` is expected
to leave a model's accuracy as it is; the figure checks that it does.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence

import numpy as np

SAMPLE_SEED = 0  # fixed, so a sample of the test reviews is the same on every run
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def lowercase_no_punctuation(text: str) -> str:
    """Lower-cased, every ASCII punctuation mark deleted (`Don't!` -> `dont`), as some sources deliver text."""
    return text.lower().translate(_PUNCTUATION)


def first_words(text: str, n: int = 50) -> str:
    """The first `n` whitespace-separated words: a review cut short."""
    return " ".join(text.split()[:n])


def without_line_breaks(text: str) -> str:
    """HTML line breaks (`<br />`) replaced by spaces."""
    return _LINE_BREAK.sub(" ", text)


ALTERATIONS: dict[str, Callable[[str], str]] = {
    "lowercase_no_punctuation": lowercase_no_punctuation,
    "first_50_words": lambda text: first_words(text, 50),
    "without_line_breaks": without_line_breaks,
}


def altered_accuracies(
    predict: Callable[[list[str]], np.ndarray], texts: Sequence[str], labels: np.ndarray
) -> dict[str, float]:
    """Accuracy (at P >= 0.5) on each altered copy of `texts`, by alteration name."""
    labels = np.asarray(labels)
    return {
        name: float(((np.asarray(predict([alter(t) for t in texts])) >= 0.5) == labels).mean())
        for name, alter in ALTERATIONS.items()
    }


def stratified_sample(labels: np.ndarray, size: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Sorted positions of `size` rows (all rows if fewer), each label's share as in `labels`, drawn with `seed`."""
    labels = np.asarray(labels)
    if size >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    strata = [np.flatnonzero(labels == value) for value in np.unique(labels)]
    exact = np.array([size * len(rows) / len(labels) for rows in strata])
    quotas = np.floor(exact).astype(int)
    # The rows rounding left over go to the strata that lost the most to it.
    quotas[np.argsort(quotas - exact)[: size - quotas.sum()]] += 1
    picked = [rng.choice(rows, quota, replace=False) for rows, quota in zip(strata, quotas)]
    return np.sort(np.concatenate(picked))
