"""The behavioural suite and the altered test reviews, run on a TF-IDF baseline trained here on real reviews.

5,000 real training reviews make a baseline of about 0.88 test accuracy in seconds. Its floors
below were set from what it measured, with a margin; a model that scores at random falls below
every one of them, so each could fail. Negation is not floored: a bag of word n-grams gets
most of it wrong (`mft_negation` in the run's `behaviour/report.json` shows which).
"""

import hashlib

import numpy as np
import pandas as pd
import pytest

from models.baseline import BaselineClassifier
from models.behaviour import run_suite
from models.robustness import altered_accuracies, stratified_sample
from tasks.core.config import DataConfig
from tasks.stages.ingest import ingest_reviews

REVIEWS_PER_SPLIT = 5000
TEST_REVIEWS = 2000  # a stratified sample of the test split, for the altered copies
BEHAVIOUR_FLOORS = {"mft_short": 0.9, "direction": 0.8, "invariance": 0.6, "inv_names": 0.7, "inv_casing": 1.0, "overall": 0.65}
ACCURACY_FLOORS = {"clean": 0.83, "lowercase_no_punctuation": 0.83, "first_50_words": 0.68, "without_line_breaks": 0.83}


def random_scorer(texts: list[str]) -> np.ndarray:
    """A model that knows nothing: each distinct text gets its own arbitrary P(positive), the same every time."""
    return np.array([int(hashlib.sha256(t.encode()).hexdigest()[:8], 16) / 16**8 for t in texts])


@pytest.fixture(scope="module")
def reviews(imdb_archive, shared_cache) -> pd.DataFrame:
    table = ingest_reviews(DataConfig(source=str(imdb_archive), cache_dir=shared_cache, reviews_per_split=REVIEWS_PER_SPLIT))
    return pd.read_parquet(table.path, columns=["split", "text", "label"])


@pytest.fixture(scope="module")
def baseline(reviews) -> BaselineClassifier:
    train = reviews[reviews["split"] == "train"]
    return BaselineClassifier.fit(train["text"].tolist(), train["label"].to_numpy())


@pytest.fixture(scope="module")
def test_reviews(reviews) -> tuple[list[str], np.ndarray]:
    test = reviews[reviews["split"] == "test"]
    rows = stratified_sample(test["label"].to_numpy(), TEST_REVIEWS)
    return test["text"].iloc[rows].tolist(), test["label"].to_numpy()[rows]


def below(floors: dict[str, float], figures: dict[str, float]) -> dict[str, float]:
    return {name: round(figures[name], 4) for name, floor in floors.items() if figures[name] < floor}


def accuracies(predict, texts: list[str], labels: np.ndarray) -> dict[str, float]:
    clean = float(((predict(texts) >= 0.5) == labels).mean())
    return {"clean": clean, **altered_accuracies(predict, texts, labels)}


def test_the_trained_baseline_passes_the_behavioural_floors(baseline):
    rates = run_suite(baseline.predict).pass_rates()
    assert below(BEHAVIOUR_FLOORS, rates) == {}, rates


def test_a_random_model_falls_below_every_behavioural_floor():
    rates = run_suite(random_scorer).pass_rates()
    assert set(below(BEHAVIOUR_FLOORS, rates)) == set(BEHAVIOUR_FLOORS), rates


def test_the_trained_baseline_keeps_its_accuracy_on_altered_reviews(baseline, test_reviews):
    figures = accuracies(baseline.predict, *test_reviews)
    assert below(ACCURACY_FLOORS, figures) == {}, figures
    # The tokenizer drops line breaks itself: without them the words, and so the scores, are the same.
    assert figures["without_line_breaks"] == figures["clean"]


def test_a_random_model_falls_below_every_accuracy_floor(test_reviews):
    figures = accuracies(random_scorer, *test_reviews)
    assert set(below(ACCURACY_FLOORS, figures)) == set(ACCURACY_FLOORS), figures
    assert figures["without_line_breaks"] != figures["clean"]
