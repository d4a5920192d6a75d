"""Per-slice metrics on constructed predictions whose accuracy per slice is known."""

import numpy as np
import pandas as pd
import pytest

from models.slices import flat_slice_metrics, slice_masks, slice_metrics, token_lengths, worst_slice
from tasks.registry.cards import slices_markdown


def _rows(length: int, count: int, right: int, rating: float) -> tuple[np.ndarray, ...]:
    """`count` rows of one length and rating, half of each label, the first `right` of them predicted correctly."""
    labels = [i % 2 for i in range(count)]
    probabilities = [(0.9 if label else 0.1) if i < right else (0.2 if label else 0.7) for i, label in enumerate(labels)]
    return np.array(labels), np.array(probabilities), np.full(count, length), np.full(count, rating, dtype=float)


def _data(*groups: tuple[int, int, int, float]) -> tuple[np.ndarray, ...]:
    parts = [_rows(*group) for group in groups]
    return tuple(np.concatenate([part[i] for part in parts]) for i in range(4))


def test_token_lengths_count_the_tokenizer_s_words():
    assert token_lengths(["Great<br />movie, isn't it?", "", "one"]).tolist() == [4, 0, 1]


def test_length_slices_include_their_bounds():
    masks = slice_masks(np.array([0, 100, 101, 300, 301]), None)
    assert masks["length_0_100"].tolist() == [True, True, False, False, False]
    assert masks["length_101_300"].tolist() == [False, False, True, True, False]
    assert masks["length_over_300"].tolist() == [False, False, False, False, True]
    assert set(masks) == {"length_0_100", "length_101_300", "length_over_300"}


def test_rating_slices_only_where_some_row_has_a_rating():
    lengths = np.array([5, 5, 5, 5])
    assert "rating_strong" not in slice_masks(lengths, np.array([0, 0, np.nan, np.nan]))
    masks = slice_masks(lengths, pd.Series([1, 8, None, 10], dtype="Int64"))
    assert masks["rating_strong"].tolist() == [True, False, False, True]
    assert masks["rating_mild"].tolist() == [False, True, False, False]


def test_each_slice_s_accuracy_rows_and_auc():
    # length_0_100: 10 rows, 8 right; length_101_300: 4 rows, all right; length_over_300: 10 rows, 5 right.
    labels, probabilities, lengths, ratings = _data((50, 10, 8, 1), (200, 4, 4, 8), (400, 6, 3, 10), (400, 4, 2, 3))
    slices = slice_metrics(labels, probabilities, lengths, ratings)
    assert slices["length_0_100"]["rows"] == 10 and slices["length_0_100"]["accuracy"] == pytest.approx(0.8)
    assert slices["length_101_300"]["accuracy"] == pytest.approx(1.0)
    assert slices["length_101_300"]["auc"] == pytest.approx(1.0)
    assert slices["length_over_300"]["rows"] == 10 and slices["length_over_300"]["accuracy"] == pytest.approx(0.5)
    # rating_strong: ratings 1 and 10 (16 rows, 11 right); rating_mild: ratings 8 and 3 (8 rows, 6 right).
    assert slices["rating_strong"]["rows"] == 16 and slices["rating_strong"]["accuracy"] == pytest.approx(11 / 16)
    assert slices["rating_mild"]["rows"] == 8 and slices["rating_mild"]["accuracy"] == pytest.approx(6 / 8)
    assert worst_slice(slices) == ("length_over_300", pytest.approx(0.5))


def test_auc_is_none_for_one_class_and_empty_slices_are_left_out():
    slices = slice_metrics(np.array([1, 1, 0]), np.array([0.8, 0.3, 0.4]), np.array([5, 5, 150]), None)
    assert set(slices) == {"length_0_100", "length_101_300"}
    assert slices["length_0_100"]["auc"] is None
    assert slices["length_0_100"]["accuracy"] == pytest.approx(0.5)


def test_flat_metrics_are_named_for_mlflow_and_skip_none():
    slices = {"length_0_100": {"rows": 3, "accuracy": 0.5, "auc": None}, "rating_mild": {"rows": 2, "accuracy": 1.0, "auc": 0.75}}
    assert flat_slice_metrics(slices) == {
        "slice_length_0_100_rows": 3.0,
        "slice_length_0_100_accuracy": 0.5,
        "slice_rating_mild_rows": 2.0,
        "slice_rating_mild_accuracy": 1.0,
        "slice_rating_mild_auc": 0.75,
    }


def test_worst_slice_of_no_slices_is_none():
    assert worst_slice({}) is None


def test_markdown_table_has_a_row_per_slice():
    slices = {"length_0_100": {"rows": 3, "accuracy": 0.5, "auc": None}, "rating_mild": {"rows": 2, "accuracy": 1.0, "auc": 0.75}}
    lines = slices_markdown(slices).splitlines()
    assert lines[0] == "| slice | rows | accuracy | AUC |"
    assert lines[2:] == ["| length_0_100 | 3 | 0.5000 | n/a |", "| rating_mild | 2 | 1.0000 | 0.7500 |"]
