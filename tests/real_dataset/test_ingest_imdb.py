"""Ingest of the real labeled IMDB archive: counts, balance, ratings, ids, and the smoke subset."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest

from tasks.core.config import DataConfig
from tasks.core.records import ReviewTable
from tasks.core.schema import COLUMNS
from tasks.stages.ingest import ingest_reviews, review_folders


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("imdb-cache")


@pytest.fixture(scope="module")
def first_load(imdb_archive: Path, cache_dir: Path) -> ReviewTable:
    """The one parse of the real archive in this session (how long it takes is for the benchmarks)."""
    return ingest_reviews(DataConfig(source=str(imdb_archive), cache_dir=cache_dir))


@pytest.fixture(scope="module")
def reviews(first_load: ReviewTable) -> pd.DataFrame:
    return pd.read_parquet(first_load.path)


def test_digest_is_the_archive_sha256(first_load: ReviewTable, imdb_archive: Path) -> None:
    with imdb_archive.open("rb") as stream:
        assert first_load.digest == hashlib.file_digest(stream, "sha256").hexdigest()


def test_25000_reviews_per_split_balanced_by_label(first_load: ReviewTable, reviews: pd.DataFrame) -> None:
    table = first_load
    assert list(reviews.columns) == list(COLUMNS)
    assert table.rows == 50_000 and table.rows_per_split == {"test": 25_000, "train": 25_000}
    assert reviews.groupby(["split", "label"]).size().to_dict() == {
        ("test", 0): 12_500, ("test", 1): 12_500, ("train", 0): 12_500, ("train", 1): 12_500,
    }


def test_ratings_match_labels(reviews: pd.DataFrame) -> None:
    assert reviews["rating"].notna().all()
    positive = reviews["label"] == 1
    assert reviews.loc[positive, "rating"].between(7, 10).all()
    assert reviews.loc[~positive, "rating"].between(1, 4).all()


def test_review_ids_are_unique_paths(reviews: pd.DataFrame) -> None:
    assert reviews["review_id"].is_unique
    polarity = reviews["label"].map({1: "pos", 0: "neg"})
    pattern = reviews["split"] + "/" + polarity.astype("str") + "/"
    assert all(rid.startswith(prefix) for rid, prefix in zip(reviews["review_id"], pattern))
    assert reviews["review_id"].str.fullmatch(r"(train|test)/(pos|neg)/\d+_\d+").all()
    assert reviews.equals(reviews.sort_values(["split", "review_id"], ignore_index=True))


def test_texts_are_the_original_files(reviews: pd.DataFrame) -> None:
    by_id = reviews.set_index("review_id")["text"]
    # The data README names this review as one a public copy had replaced.
    assert by_id["test/pos/0_10"].startswith("I went and saw this movie last night")
    assert (reviews["text"].str.len() > 0).all()


def test_second_load_uses_the_cache(
    first_load: ReviewTable, imdb_archive: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(review_folders, "read_archive", lambda *a: pytest.fail("the archive was parsed again"))
    stamp = first_load.path.stat().st_mtime_ns
    again = ingest_reviews(DataConfig(source=str(imdb_archive), cache_dir=cache_dir))
    assert again == first_load and again.path.stat().st_mtime_ns == stamp


def test_500_per_split_is_a_balanced_subset(
    first_load: ReviewTable, reviews: pd.DataFrame, imdb_archive: Path, cache_dir: Path
) -> None:
    table = ingest_reviews(DataConfig(source=str(imdb_archive), cache_dir=cache_dir, reviews_per_split=500))
    assert table.path.name.endswith("-n500.parquet") and table.digest == first_load.digest
    assert table.rows == 1000 and table.rows_per_split == {"test": 500, "train": 500}
    subset = pd.read_parquet(table.path)
    assert subset.groupby(["split", "label"]).size().tolist() == [250, 250, 250, 250]
    assert set(subset["review_id"]) <= set(reviews["review_id"])
    full = reviews.set_index("review_id")
    assert (subset.set_index("review_id")["text"] == full.loc[subset["review_id"], "text"]).all()
