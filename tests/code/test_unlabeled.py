"""Unlabeled reviews: read from the source's train/unsup/ or from data.unlabeled_source, kept apart from the
labeled ones (none equal to a labeled review), validated in the same report, and one line when unreadable."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.core.config import DataConfig, ValidationConfig
from tasks.core.errors import ReviewflowError
from tasks.stages.ingest import ingest_reviews
from tasks.stages.validate import validate_reviews
from tests.code.test_ingest import REVIEWS, build_archive, build_folder, review_members

UNLABELED = {f"aclImdb/train/unsup/{i}_0.txt": f"An unlabeled review number {i}, long enough.".encode() for i in range(6)}
# An unlabeled review whose text is a test review's: it must never reach pretraining.
UNLABELED["aclImdb/train/unsup/99_0.txt"] = REVIEWS[("test", "pos", 0, 10)].encode()


def labeled_only() -> dict[str, bytes]:
    return {name: content for name, content in review_members().items() if "/unsup/" not in name}


def kept_texts(data: DataConfig) -> list[str]:
    table = ingest_reviews(data)
    return pd.read_parquet(table.unlabeled.path)["text"].tolist()


@pytest.mark.parametrize("layout", ["archive", "folder"])
def test_the_sources_own_unsup_reviews_are_read_and_those_equal_to_a_labeled_review_left_out(workdir: Path, layout: str) -> None:
    members = {**labeled_only(), **UNLABELED}
    source = build_archive(workdir / "a.tar.gz", members) if layout == "archive" else build_folder(workdir / "f", members)
    table = ingest_reviews(DataConfig(source=str(source)))
    assert table.unlabeled.rows == 6 and table.unlabeled.dropped == 1
    assert table.rows == len(REVIEWS)  # the labeled table is unchanged: no unlabeled row in any split
    assert not pd.read_parquet(table.path)["review_id"].str.contains("unsup").any()
    texts = pd.read_parquet(table.unlabeled.path)["text"].tolist()
    assert REVIEWS[("test", "pos", 0, 10)] not in texts and len(set(texts)) == 6


@pytest.mark.parametrize("kind", ["archive", "folder", "table"])
def test_unlabeled_source_of_each_kind_and_a_seeded_limit(workdir: Path, kind: str) -> None:
    labeled = build_archive(workdir / "labeled.tar.gz", labeled_only())
    if kind == "archive":
        unlabeled = build_archive(workdir / "unsup.tar.gz", UNLABELED)
    elif kind == "folder":
        unlabeled = build_folder(workdir / "unsup", UNLABELED)
    else:
        unlabeled = workdir / "unsup.csv"
        pd.DataFrame({"Text": [c.decode() for c in UNLABELED.values()]}).to_csv(unlabeled, index=False)
    data = DataConfig(source=str(labeled), unlabeled_source=str(unlabeled))
    assert len(kept_texts(data)) == 6
    limited = kept_texts(data.model_copy(update={"unlabeled_limit": 3}))
    assert len(limited) == 3 and limited == kept_texts(data.model_copy(update={"unlabeled_limit": 3}))


def test_no_unlabeled_reviews_anywhere_is_none(workdir: Path) -> None:
    assert ingest_reviews(DataConfig(source=str(build_archive(workdir / "a.tar.gz", labeled_only())), unlabeled_source=None)).unlabeled is None


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.tar.gz", "dataset not found"),
        (lambda d: (d / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08not gzip") and d / "broken.tar.gz", "truncated or corrupt"),
        (lambda d: build_archive(d / "labeled-only.tar.gz", labeled_only()), "holds no unlabeled reviews"),
        (lambda d: pd.DataFrame({"review": ["x"]}).to_csv(d / "t.csv", index=False) or d / "t.csv", "has no text column"),
    ],
)
def test_an_unreadable_unlabeled_source_is_one_line_naming_it(workdir: Path, make, message: str) -> None:
    bad = make(workdir)
    data = DataConfig(source=str(build_archive(workdir / "labeled.tar.gz", labeled_only())), unlabeled_source=str(bad))
    with pytest.raises(ReviewflowError) as caught:
        ingest_reviews(data)
    line = str(caught.value)
    assert line.startswith("data.unlabeled_source: ") and str(bad) in line and message in line and "\n" not in line


def test_unlabeled_reviews_are_validated_in_the_same_report(workdir: Path) -> None:
    members = {**labeled_only(), **UNLABELED, "aclImdb/train/unsup/7_0.txt": b"short"}
    table = ingest_reviews(DataConfig(source=str(build_archive(workdir / "a.tar.gz", members))))
    rules = ValidationConfig(min_rows_per_split=1, min_text_chars=10)
    with pytest.raises(ReviewflowError) as caught:
        validate_reviews(table.path, rules, workdir / "report", table.unlabeled)
    assert "unlabeled: expect_column_value_lengths_to_be_between(text)" in str(caught.value)
    report = validate_reviews(table.path, rules.model_copy(update={"min_text_chars": 1}), workdir / "report", table.unlabeled)
    assert report.success and (report.unlabeled_rows, report.unlabeled_dropped) == (7, 1)
    assert (workdir / "report" / "validation.json").is_file() and (workdir / "report" / "validation-unlabeled.json").is_file()
