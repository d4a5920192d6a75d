"""Data validation: a good table passes, each kind of broken table fails naming its expectation."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.config import ValidationConfig
from tasks.core.errors import ReviewflowError
from tasks.core.records import ValidationReport
from tasks.stages.validate import check_reviews, validate_reviews

RULES = ValidationConfig(min_rows_per_split=100)
ROWS_PER_SPLIT = 200

_OPENINGS = ["I watched this film last night", "My friends told me to see this movie", "This was on TV yesterday"]
_POSITIVE = ["the acting was superb", "a moving and beautiful story", "the best thing I have seen this year"]
_NEGATIVE = ["the plot made no sense at all", "a dull, lifeless script", "I want those two hours back"]


def make_reviews(rows_per_split: int = ROWS_PER_SPLIT, seed: int = 0) -> pd.DataFrame:
    """A valid table: balanced splits, ratings that agree with labels, ids reused across splits
    (as in IMDB, where train and test both have a review 0)."""
    rng = random.Random(seed)
    rows = []
    for split in ("train", "test"):
        for i in range(rows_per_split):
            label = i % 2
            words = _POSITIVE if label else _NEGATIVE
            text = f"{rng.choice(_OPENINGS)}: {rng.choice(words)}, and {rng.choice(words)}.<br /><br />{rng.choice(words)}."
            rating = rng.randint(7, 10) if label else rng.randint(1, 4)
            rows.append((str(i), split, text, label, rating))
    df = pd.DataFrame(rows, columns=["review_id", "split", "text", "label", "rating"])
    df["rating"] = df["rating"].astype("Int64")
    return df


@pytest.fixture(scope="module")
def good() -> pd.DataFrame:
    return make_reviews()


def check(df: pd.DataFrame, report_dir: Path, rules: ValidationConfig = RULES) -> ValidationReport:
    report = check_reviews(df, rules, report_dir)
    assert report.result_path == report_dir / "validation.json"
    assert json.loads(report.result_path.read_text())["success"] is report.success
    return report


def first_row(df: pd.DataFrame, split: str, label: int | None = None) -> int:
    mask = df["split"] == split
    if label is not None:
        mask &= df["label"] == label
    return df.index[mask][0]


def test_good_table_passes_and_writes_the_result_and_data_docs(good: pd.DataFrame, tmp_path: Path, capfd) -> None:
    report = check(good, tmp_path)

    assert report.success and report.failures == []
    result = json.loads(report.result_path.read_text())
    assert result["statistics"]["evaluated_expectations"] == result["statistics"]["successful_expectations"] >= 20
    checked = {(r["expectation_config"]["type"], r["expectation_config"]["kwargs"].get("column")) for r in result["results"]}
    assert ("expect_column_values_to_be_unique", "review_id") in checked
    assert ("expect_column_value_lengths_to_be_between", "text") in checked
    row_counts = [r for r in result["results"] if r["expectation_config"]["type"] == "expect_table_row_count_to_be_between"]
    assert sorted(r["result"]["observed_value"] for r in row_counts) == [ROWS_PER_SPLIT, ROWS_PER_SPLIT]
    assert report.docs_path is not None and report.docs_path.name == "index.html"
    assert report.docs_path.is_file() and report.docs_path.is_relative_to(tmp_path)
    assert "<html" in report.docs_path.read_text(encoding="utf-8").lower()
    assert "Calculating Metrics" not in "".join(capfd.readouterr())


def test_tables_without_ratings_pass(good: pd.DataFrame, tmp_path: Path) -> None:
    no_ratings = good.assign(rating=pd.array([pd.NA] * len(good), dtype="Int64"))
    assert check(no_ratings, tmp_path).failures == []


@pytest.mark.parametrize("column", ["text", "label"])
def test_a_missing_column_is_a_clean_failure_naming_it(good: pd.DataFrame, tmp_path: Path, column: str) -> None:
    report = check(good.drop(columns=column), tmp_path)

    assert not report.success
    assert report.failures[0] == f"table: expect_column_to_exist({column})"
    # What depends on the column could not run; it says so rather than passing or crashing.
    assert all(f"({column})" in f or f"where {column}" in f for f in report.failures)
    assert all(f.endswith("(not evaluated)") for f in report.failures[1:])
    assert len(report.failures) > 1


def test_null_text_fails(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    bad.loc[first_row(bad, "test"), "text"] = None
    assert check(bad, tmp_path).failures == ["table: expect_column_values_to_not_be_null(text)"]


def test_empty_and_too_short_text_fails(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    bad.loc[first_row(bad, "train"), "text"] = ""
    assert check(bad, tmp_path).failures == ["table: expect_column_value_lengths_to_be_between(text)"]


def test_text_length_limits_come_from_the_rules(good: pd.DataFrame, tmp_path: Path) -> None:
    longest = int(good["text"].str.len().max())
    assert check(good, tmp_path / "a", RULES.model_copy(update={"max_text_chars": longest})).success
    tight = RULES.model_copy(update={"max_text_chars": longest - 1})
    assert check(good, tmp_path / "b", tight).failures == ["table: expect_column_value_lengths_to_be_between(text)"]


def test_label_outside_zero_one_fails(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    bad.loc[first_row(bad, "train", label=1), "label"] = 2
    failures = check(bad, tmp_path).failures
    assert failures[0] == "table: expect_column_values_to_be_in_set(label)"
    # The row's rating no longer has a known sentiment: nothing else may fail.
    assert failures == ["table: expect_column_values_to_be_in_set(label)"]


def test_null_label_fails(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.assign(label=good["label"].astype("Int64"))
    bad.loc[first_row(bad, "test"), "label"] = pd.NA
    assert check(bad, tmp_path).failures == ["table: expect_column_values_to_not_be_null(label)"]


def test_an_empty_table_fails_on_row_counts(good: pd.DataFrame, tmp_path: Path) -> None:
    failures = check(good.iloc[:0], tmp_path).failures
    assert "train: expect_table_row_count_to_be_between" in failures
    assert "test: expect_table_row_count_to_be_between" in failures
    assert not any(f.startswith("table:") for f in failures)


def test_a_missing_split_fails_on_its_own_row_count(good: pd.DataFrame, tmp_path: Path) -> None:
    failures = check(good[good["split"] == "train"], tmp_path).failures
    assert "test: expect_table_row_count_to_be_between" in failures
    assert not any(f.startswith(("train:", "table:")) for f in failures)


def test_row_count_limits_come_from_the_rules(good: pd.DataFrame, tmp_path: Path) -> None:
    rules = ValidationConfig(min_rows_per_split=ROWS_PER_SPLIT + 1)
    assert check(good, tmp_path / "min", rules).failures == [
        "train: expect_table_row_count_to_be_between",
        "test: expect_table_row_count_to_be_between",
    ]
    rules = ValidationConfig(min_rows_per_split=10, max_rows_per_split=ROWS_PER_SPLIT - 1)
    assert len(check(good, tmp_path / "max", rules).failures) == 2


@pytest.mark.parametrize(
    ("label", "rating", "failure"),
    [
        (1, 2, "table: expect_column_values_to_be_between(rating) where label == 1"),
        (0, 9, "table: expect_column_values_to_be_between(rating) where label == 0"),
        (1, 11, "table: expect_column_values_to_be_between(rating)"),
    ],
)
def test_rating_inconsistent_with_label_fails(good: pd.DataFrame, tmp_path: Path, label: int, rating: int, failure: str) -> None:
    bad = good.copy()
    bad.loc[first_row(bad, "test", label=label), "rating"] = rating
    assert check(bad, tmp_path).failures == [failure]


def test_duplicate_review_id_within_a_split_fails(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    train = bad.index[bad["split"] == "train"]
    bad.loc[train[2], "review_id"] = bad.loc[train[0], "review_id"]  # same label, so balance holds
    assert check(bad, tmp_path).failures == ["train: expect_column_values_to_be_unique(review_id)"]


def test_the_same_review_id_in_train_and_test_is_fine(good: pd.DataFrame, tmp_path: Path) -> None:
    train_ids = set(good.loc[good["split"] == "train", "review_id"])
    test_ids = set(good.loc[good["split"] == "test", "review_id"])
    assert train_ids == test_ids  # the fixture reuses every id across splits
    assert check(good, tmp_path).success


def test_class_imbalance_fails_for_that_split(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    train_negatives = bad.index[(bad["split"] == "train") & (bad["label"] == 0)]
    flipped = train_negatives[: len(train_negatives) // 2]  # train becomes 75% positive
    bad.loc[flipped, "label"] = 1
    bad.loc[flipped, "rating"] = 8
    assert check(bad, tmp_path).failures == ["train: expect_column_mean_to_be_between(label)"]


def test_unknown_split_value_fails(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    bad.loc[first_row(bad, "test"), "split"] = "dev"
    assert check(bad, tmp_path).failures == ["table: expect_column_values_to_be_in_set(split)"]


def test_rerunning_in_the_same_folder_reports_the_latest_run(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.copy()
    bad.loc[first_row(bad, "test"), "split"] = "dev"
    assert check(good, tmp_path).success
    assert not check(bad, tmp_path).success
    assert not json.loads((tmp_path / "validation.json").read_text())["success"]
    again = check(good, tmp_path)
    assert again.success and again.failures == []
    assert again.docs_path is not None and again.docs_path.is_file()


def test_the_task_raises_one_line_naming_every_failed_expectation(good: pd.DataFrame, tmp_path: Path) -> None:
    bad = good.drop(columns="text")
    bad.loc[first_row(bad, "train"), "label"] = 2
    table = tmp_path / "reviews.parquet"
    bad.to_parquet(table)
    report_dir = tmp_path / "report"

    with pytest.raises(ReviewflowError) as caught:
        validate_reviews(table, RULES, report_dir)

    message = str(caught.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith("data validation failed (4 expectations): ")
    assert "table: expect_column_to_exist(text)" in message
    assert "table: expect_column_values_to_be_in_set(label)" in message
    assert message.endswith(f"report: {report_dir / 'validation.json'}")
    assert (report_dir / "validation.json").is_file()


def test_the_task_returns_the_report_for_a_good_table(good: pd.DataFrame, tmp_path: Path) -> None:
    table = tmp_path / "reviews.parquet"
    good.to_parquet(table)
    report = validate_reviews(table, RULES, tmp_path / "report")
    assert report.success and report.docs_path is not None and report.docs_path.is_file()


@pytest.mark.parametrize("content", [None, b"review_id,text\n1,not parquet\n"])
def test_the_task_reports_an_unreadable_table_in_one_line(tmp_path: Path, content: bytes | None) -> None:
    table = tmp_path / "reviews.parquet"
    if content is not None:
        table.write_bytes(content)
    with pytest.raises(ReviewflowError, match="cannot read the table") as caught:
        validate_reviews(table, RULES, tmp_path / "report")
    assert "\n" not in str(caught.value)
