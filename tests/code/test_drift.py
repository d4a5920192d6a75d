"""Profiles and drift: PSI near 0 for the same distribution, large for a shift, chunked profiles equal whole ones."""

import json

import numpy as np
import pytest

from models.text import Vocabulary
from tasks.core.errors import ReviewflowError
from tasks.scoring.drift import LENGTH_BINS, PROBABILITY_BINS, ProfileCounter, drift, profile, profile_texts, psi


def _sample(rng: np.random.Generator, rows: int, mean_length: float) -> tuple[np.ndarray, ...]:
    lengths = rng.poisson(mean_length, rows)
    unknown = rng.binomial(lengths, 0.05)
    probabilities = rng.beta(2, 2, rows)
    return lengths, unknown, lengths, probabilities


def test_profile_shares_and_rates():
    lengths = np.array([0, 9, 10, 150, 2000])
    result = profile(lengths, np.array([0, 1, 2, 3, 4]), lengths, np.array([0.0, 0.49, 0.5, 0.95, 1.0]))
    assert result["rows"] == 5
    assert result["length_histogram"] == pytest.approx([0.4, 0.2, 0, 0, 0.2, 0, 0, 0, 0.2])
    assert result["oov_rate"] == pytest.approx(10 / 2169)
    assert result["positive_rate"] == pytest.approx(0.6)
    assert result["probability_histogram"] == pytest.approx([0.2, 0, 0, 0, 0.2, 0.2, 0, 0, 0, 0.4])
    assert len(result["length_histogram"]) == len(LENGTH_BINS) - 1
    assert len(result["probability_histogram"]) == len(PROBABILITY_BINS) - 1
    json.dumps(result)


def test_a_profile_built_over_chunks_equals_one_over_all_rows():
    rows = _sample(np.random.default_rng(1), 5_001, 120)
    counter = ProfileCounter()
    for start in range(0, 5_001, 2_000):
        counter.add(*(column[start : start + 2_000] for column in rows))
    assert counter.profile() == profile(*rows)


def test_profile_texts_counts_tokens_and_unknown_words_with_the_vocabulary():
    vocabulary = Vocabulary(["good", "film"])
    result = profile_texts(["A good<br />film", "?!", "good good"], vocabulary, np.array([0.9, 0.2, 0.8]))
    # 3 + 0 + 2 tokens, of which "a" is unknown; a review without words counts no token.
    assert result["oov_rate"] == pytest.approx(1 / 5)
    assert result["length_histogram"][0] == pytest.approx(1.0)
    assert result["positive_rate"] == pytest.approx(2 / 3)


def test_psi_of_identical_histograms_is_zero_and_of_different_ones_positive():
    shares = [0.1, 0.0, 0.4, 0.5]
    assert psi(shares, shares) == 0.0
    assert psi(shares, [0.5, 0.4, 0.1, 0.0]) > 1


def test_samples_of_one_distribution_do_not_drift():
    rng = np.random.default_rng(2)
    reference, current = profile(*_sample(rng, 20_000, 230)), profile(*_sample(rng, 5_000, 230))
    result = drift(reference, current, threshold=0.2)
    assert result["length_psi"] < 0.02 and result["probability_psi"] < 0.02
    assert abs(result["oov_rate_difference"]) < 0.005
    assert not result["drifted"] and result["reasons"] == []


def test_one_line_reviews_drift_on_length():
    rng = np.random.default_rng(3)
    reference, current = profile(*_sample(rng, 20_000, 200)), profile(*_sample(rng, 5_000, 5))
    result = drift(reference, current, threshold=0.2)
    assert result["drifted"]
    assert result["length_psi"] > 0.2 > result["probability_psi"]
    assert len(result["reasons"]) == 1 and result["reasons"][0].startswith("length_psi ")


def test_a_shift_in_probabilities_drifts_and_shows_in_the_positive_rate():
    rng = np.random.default_rng(4)
    lengths, unknown, total, probabilities = _sample(rng, 10_000, 200)
    result = drift(profile(lengths, unknown, total, probabilities), profile(lengths, unknown, total, probabilities**3), 0.2)
    assert result["drifted"] and result["reasons"][0].startswith("probability_psi ")
    assert result["positive_rate_difference"] < -0.2


def test_a_million_rows_profile_in_one_call():
    lengths = np.full(1_000_000, 42)
    result = profile(lengths, np.zeros_like(lengths), lengths, np.full(1_000_000, 0.75))
    assert result["rows"] == 1_000_000 and result["length_histogram"][2] == 1.0 and result["probability_histogram"][7] == 1.0


def test_drift_refuses_an_empty_profile():
    empty = ProfileCounter().profile()
    with pytest.raises(ReviewflowError, match="current profile has none"):
        drift(profile(*_sample(np.random.default_rng(5), 10, 50)), empty, 0.2)
