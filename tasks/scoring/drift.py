"""Reference profiles of a model's test data, and the drift of batch-scored files against them.

A profile is JSON-able: row count, shares of token lengths and probabilities in fixed bins, the share of
tokens outside the vocabulary and the share scored positive. Fixed bins make profiles of different files
comparable bin by bin; `ProfileCounter` builds one over chunks with the same result as one `profile` call.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from models.text import Vocabulary, tokenize
from tasks.core.errors import ReviewflowError

# Bin i holds [edge i, edge i+1); the last bin is open-ended.
LENGTH_BINS = np.array([0, 10, 25, 50, 100, 200, 300, 500, 1000, np.inf])
PROBABILITY_BINS = np.linspace(0.0, 1.0, 11)


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    bins = len(edges) - 1
    # Clipping puts a probability of exactly 1.0 in the last bin rather than past it.
    index = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1)
    return np.bincount(index, minlength=bins)


class ProfileCounter:
    """Counts for a profile, added chunk by chunk."""

    def __init__(self) -> None:
        self.rows = 0
        self.unknown_tokens = 0
        self.total_tokens = 0
        self.positives = 0
        self.length_counts = np.zeros(len(LENGTH_BINS) - 1, dtype=np.int64)
        self.probability_counts = np.zeros(len(PROBABILITY_BINS) - 1, dtype=np.int64)

    def add(self, token_lengths: np.ndarray, unknown: np.ndarray, total: np.ndarray, probabilities: np.ndarray) -> None:
        """Count one chunk of rows: tokens per review, unknown tokens per review, all tokens per review, probabilities."""
        lengths, probabilities = np.asarray(token_lengths), np.asarray(probabilities, dtype=float)
        unknown, total = np.asarray(unknown), np.asarray(total)
        if not len(lengths) == len(unknown) == len(total) == len(probabilities):
            sizes = f"{len(lengths)} lengths, {len(unknown)} unknown, {len(total)} totals, {len(probabilities)} probabilities"
            raise ValueError(f"a chunk's arrays differ in length: {sizes}")
        self.rows += len(lengths)
        self.unknown_tokens += int(unknown.sum())
        self.total_tokens += int(total.sum())
        self.positives += int(np.count_nonzero(probabilities >= 0.5))
        self.length_counts += _bin_counts(lengths, LENGTH_BINS)
        self.probability_counts += _bin_counts(probabilities, PROBABILITY_BINS)

    def profile(self) -> dict:
        """The profile of every row added so far; with no rows its shares and rates are all 0."""
        rows = max(self.rows, 1)
        return {
            "rows": self.rows,
            "length_histogram": (self.length_counts / rows).tolist(),
            "oov_rate": self.unknown_tokens / max(self.total_tokens, 1),
            "positive_rate": self.positives / rows,
            "probability_histogram": (self.probability_counts / rows).tolist(),
        }


def profile(token_lengths: np.ndarray, unknown_tokens: np.ndarray, total_tokens: np.ndarray, probabilities: np.ndarray) -> dict:
    """The profile of these rows: `rows`, `length_histogram`, `oov_rate`, `positive_rate`, `probability_histogram`."""
    counter = ProfileCounter()
    counter.add(token_lengths, unknown_tokens, total_tokens, probabilities)
    return counter.profile()


def token_counts(texts: Iterable[str], vocabulary: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Tokens per review and how many of them the vocabulary encodes as the unknown id."""
    # Not `encode`: it turns a review without words into one unknown id, which would count as a token.
    words = [tokenize(text) for text in texts]
    return np.asarray([len(w) for w in words], dtype=np.int64), _unknown_counts(words, vocabulary)


def _unknown_counts(words: list[list[str]], vocabulary: Vocabulary) -> np.ndarray:
    return np.asarray([sum(word not in vocabulary._ids for word in review) for review in words], dtype=np.int64)


def profile_texts(texts: Iterable[str], vocabulary: Vocabulary, probabilities: np.ndarray) -> dict:
    """The profile of these reviews and their probabilities, tokens counted with `vocabulary`."""
    lengths, unknown = token_counts(texts, vocabulary)
    return profile(lengths, unknown, lengths, probabilities)


def psi(reference_shares: Iterable[float], current_shares: Iterable[float], floor: float = 1e-4) -> float:
    """Population stability index, sum of (current - reference) * ln(current / reference), shares floored at `floor`."""
    reference = np.maximum(np.asarray(reference_shares, dtype=float), floor)
    current = np.maximum(np.asarray(current_shares, dtype=float), floor)
    if reference.shape != current.shape:
        raise ValueError(f"histograms of {reference.shape} and {current.shape} bins")
    return float(np.sum((current - reference) * np.log(current / reference)))


def drift(reference: dict, current: dict, threshold: float) -> dict:
    """PSI of the length and probability histograms, rate differences (current - reference), and whether a PSI is over
    `threshold`, with a short reason for each that is."""
    for name, side in (("reference", reference), ("current", current)):
        if side["rows"] == 0:
            raise ReviewflowError(f"drift needs rows to compare, and the {name} profile has none")
    result = {
        "length_psi": psi(reference["length_histogram"], current["length_histogram"]),
        "probability_psi": psi(reference["probability_histogram"], current["probability_histogram"]),
        "oov_rate_difference": current["oov_rate"] - reference["oov_rate"],
        "positive_rate_difference": current["positive_rate"] - reference["positive_rate"],
    }
    over = [name for name in ("length_psi", "probability_psi") if result[name] > threshold]
    reasons = [f"{name} {result[name]:.4f} > threshold {threshold:.4f}" for name in over]
    return result | {"threshold": threshold, "drifted": bool(reasons), "reasons": reasons}


@dataclass(frozen=True)
class Reference:
    """A model version's drift reference as scoring compares files with it; no profile: the version has none
    (registered before versions carried one), so its drift is not measured."""

    version: str  # `reviewflow-bilstm/3`
    profile: dict | None = None
    vocabulary: Vocabulary | None = None


class FileProfiles:
    """The profile of one file as each model with a reference scored it, counted chunk by chunk: memory stays flat.

    Each review is tokenized once for all models, and its unknown words counted once per distinct
    vocabulary (the models of one training share theirs).
    """

    def __init__(self, references: dict[str, Reference]) -> None:
        self.references = references
        self.counters = {m: ProfileCounter() for m, r in references.items() if r.profile is not None and r.vocabulary is not None}
        vocabularies: list[Vocabulary] = []
        self._vocabulary_of: dict[str, int] = {}  # model -> its vocabulary's index in `vocabularies`
        for model in self.counters:
            vocabulary = references[model].vocabulary
            index = next((i for i, v in enumerate(vocabularies) if v.words == vocabulary.words), None)
            if index is None:
                vocabularies.append(vocabulary)
                index = len(vocabularies) - 1
            self._vocabulary_of[model] = index
        self._vocabularies = vocabularies

    def add(self, texts: list[str], probabilities: dict[str, np.ndarray]) -> None:
        """Count one chunk: the texts of its scorable rows, and each model's probabilities for them."""
        if not self.counters or not texts:
            return
        words = [tokenize(text) for text in texts]
        lengths = np.asarray([len(w) for w in words], dtype=np.int64)
        unknown = [_unknown_counts(words, vocabulary) for vocabulary in self._vocabularies]
        for model, counter in self.counters.items():
            counter.add(lengths, unknown[self._vocabulary_of[model]], lengths, probabilities[model])

    def drift(self, threshold: float, min_rows: int = 1) -> dict[str, dict]:
        """Per model: `{"reference": None}` without one; else its reference version, the drift figures
        (`drift`; none without scored rows) and the file's own profile. Under `min_rows` scored rows the
        figures are kept but never flag the file (`too_few_rows` says so)."""
        result: dict[str, dict] = {}
        for model, reference in self.references.items():
            counter = self.counters.get(model)
            if counter is None:
                result[model] = {"reference": None}
                continue
            current = counter.profile()
            figures = drift(reference.profile, current, threshold) if current["rows"] else {"threshold": threshold, "drifted": False, "reasons": []}
            if current["rows"] < min_rows:
                # Over a few dozen rows a PSI is mostly sampling noise: held-out reviews would be flagged (README).
                too_few = f"{current['rows']} scored rows, fewer than the {min_rows} a flag needs"
                figures |= {"drifted": False, "reasons": [], "too_few_rows": too_few}
            result[model] = {"reference": reference.version, **figures, "profile": current}
        return result


def drift_reasons(drift_block: dict[str, dict]) -> list[str]:
    """Every figure that flags the file in a manifest's `drift` block, named by model: `bilstm: length_psi 1.2 > threshold 0.2`."""
    return [f"{model}: {reason}" for model, figures in drift_block.items() for reason in figures.get("reasons", [])]
