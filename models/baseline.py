"""The baseline: TF-IDF over word n-grams and logistic regression, from scikit-learn.

With `nb_weighting`, each n-gram's TF-IDF value is scaled by its naive-Bayes log-count ratio
before the regression (NBSVM, Wang and Manning, ACL 2012): an n-gram that marks one class
starts out weighing more. The scaling is folded into the coefficients (x·r·w = x·(r∘w)), so
the saved model and its predictions are a plain TF-IDF logistic regression either way.

Words come from the project's one tokenizer (`models.text.tokenize`: lower-cased, HTML line
breaks removed, apostrophes kept inside words), so the baseline and the recurrent models read
the same words. It is saved as plain arrays and JSON (the n-gram terms, their idf weights, the
coefficients and the intercept), never pickle, and rebuilt from them: loading runs no code
from the saved folder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import sparse

from models.text import tokenize

SETTINGS_FILE = "baseline.json"  # the settings and the terms, in feature order
ARRAYS_FILE = "weights.npz"  # idf, coef, intercept (numeric arrays, loaded with allow_pickle=False)


@dataclass(frozen=True)
class BaselineSettings:
    """How the features are made and the classifier fitted (config: the `baseline` section)."""

    ngram_range: tuple[int, int] = (1, 3)
    min_df: int = 2
    max_features: int | None = None
    sublinear_tf: bool = True
    nb_weighting: bool = True
    C: float = 30.0
    max_iter: int = 1000


class BaselineClassifier:
    """Scores raw reviews: the probability that each is positive."""

    def __init__(self, terms: list[str], idf: np.ndarray, coef: np.ndarray, intercept: float, settings: BaselineSettings):
        if not (len(terms) == len(idf) == len(coef)):
            raise ValueError(f"{len(terms)} terms, {len(idf)} idf weights and {len(coef)} coefficients do not match")
        self.terms, self.settings = terms, settings
        self.idf = np.asarray(idf, dtype=np.float64)
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = float(intercept)
        self._counts = _count_vectorizer({term: i for i, term in enumerate(terms)}, settings.ngram_range)

    @classmethod
    def fit(cls, texts: Sequence[str], labels: np.ndarray, settings: BaselineSettings = BaselineSettings()) -> BaselineClassifier:
        """Fit the TF-IDF vocabulary and weights on `texts` and the logistic regression on their labels."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vectorizer = TfidfVectorizer(
            tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=tuple(settings.ngram_range),
            min_df=settings.min_df, max_features=settings.max_features, sublinear_tf=settings.sublinear_tf, dtype=np.float64,
        )
        features, labels = vectorizer.fit_transform(texts), np.asarray(labels)
        ratios = log_count_ratios(features, labels) if settings.nb_weighting else np.ones(features.shape[1])
        regression = LogisticRegression(C=settings.C, max_iter=settings.max_iter).fit(features @ sparse.diags(ratios), labels)
        terms = vectorizer.get_feature_names_out().tolist()
        return cls(terms, vectorizer.idf_, ratios * regression.coef_[0], regression.intercept_[0], settings)

    def features(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """TF-IDF rows as scikit-learn's TfidfVectorizer makes them: (1 + log tf) x idf, L2-normalised."""
        counts = self._counts.transform(texts).astype(np.float64).tocsr()
        if self.settings.sublinear_tf:
            np.log(counts.data, out=counts.data)
            counts.data += 1
        counts.data *= self.idf[counts.indices]
        norms = np.sqrt(np.asarray(counts.multiply(counts).sum(axis=1)).reshape(-1))
        norms[norms == 0] = 1
        return sparse.csr_matrix(sparse.diags(1 / norms) @ counts)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """P(positive) per text, in input order."""
        logits = self.features(list(texts)) @ self.coef + self.intercept
        return 1 / (1 + np.exp(-np.asarray(logits, dtype=np.float64).reshape(-1)))

    def save(self, folder: Path) -> None:
        """Write `baseline.json` (settings, terms) and `weights.npz` (idf, coef, intercept) into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SETTINGS_FILE).write_text(json.dumps({"settings": asdict(self.settings), "terms": self.terms}), encoding="utf-8")
        np.savez(folder / ARRAYS_FILE, idf=self.idf, coef=self.coef, intercept=np.array([self.intercept]))

    @classmethod
    def load(cls, folder: Path) -> BaselineClassifier:
        folder = Path(folder)
        stored = json.loads((folder / SETTINGS_FILE).read_text(encoding="utf-8"))
        settings = stored["settings"]
        # Versions saved before `nb_weighting` existed had none.
        settings = BaselineSettings(**{"nb_weighting": False, **settings, "ngram_range": tuple(settings["ngram_range"])})
        with np.load(folder / ARRAYS_FILE, allow_pickle=False) as arrays:
            return cls(stored["terms"], arrays["idf"], arrays["coef"], float(arrays["intercept"][0]), settings)

    def summary(self) -> str:
        """What the model is, for the run's `model_summary.txt`."""
        s = self.settings
        return (
            f"TF-IDF ({s.ngram_range[0]}-{s.ngram_range[1]}-grams of models.text.tokenize, min_df {s.min_df}, "
            f"max_features {s.max_features}, sublinear tf {s.sublinear_tf}, naive-Bayes weighting {s.nb_weighting}) "
            f"-> logistic regression (C {s.C}, max_iter {s.max_iter})\n"
            f"features: {len(self.terms):,}\nintercept: {self.intercept:.6f}\n"
        )


def log_count_ratios(features: sparse.spmatrix, labels: np.ndarray) -> np.ndarray:
    """Per feature, log of (share of positive reviews' presence) over (share of negative reviews'), add-one smoothed."""
    present = (features > 0).astype(np.float64)
    positive = np.asarray(present[labels == 1].sum(axis=0)).reshape(-1) + 1
    negative = np.asarray(present[labels == 0].sum(axis=0)).reshape(-1) + 1
    return np.log((positive / positive.sum()) / (negative / negative.sum()))


def _count_vectorizer(vocabulary: dict[str, int], ngram_range: tuple[int, int]):
    from sklearn.feature_extraction.text import CountVectorizer

    return CountVectorizer(
        tokenizer=tokenize, lowercase=False, token_pattern=None, ngram_range=tuple(ngram_range), vocabulary=vocabulary
    )
