"""Labeled tables (any format in `tasks.core.formats`) mapped onto the dataset's columns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.core.errors import ReviewflowError
from tasks.core.formats import Format, FormatError
from tasks.stages.ingest.splits import stratified_split

LABEL_WORDS = {"pos": "1", "positive": "1", "true": "1", "neg": "0", "negative": "0", "false": "0"}


def read_labeled_table(path: Path, fmt: Format, test_fraction: float) -> tuple[pd.DataFrame, bool]:
    """The table's reviews in the dataset's columns, and whether their split was generated here."""
    try:
        table = normalized_names(fmt.read_table(path))
    except FormatError as exc:
        raise ReviewflowError(f"table {path}: {exc}") from None
    return table_reviews(table, test_fraction), "split" not in table.columns


def normalized_names(table: pd.DataFrame) -> pd.DataFrame:
    """The table with column names stripped and lower-cased."""
    return table.set_axis([str(name).strip().lower() for name in table.columns], axis=1)


def table_reviews(table: pd.DataFrame, test_fraction: float) -> pd.DataFrame:
    """Map a labeled table onto COLUMNS; a missing text or label column becomes nulls for validation to report."""
    table = normalized_names(table).reset_index(drop=True)
    n = len(table)
    nulls = pd.Series([None] * n, dtype=object)
    frame = pd.DataFrame(
        {
            "review_id": table["review_id"] if "review_id" in table else pd.Series(range(n)).astype(str),
            "text": table["text"] if "text" in table else nulls,
            "label": _to_int(table["label"], LABEL_WORDS) if "label" in table else nulls.astype("Int64"),
            "rating": _to_int(table["rating"]) if "rating" in table else nulls.astype("Int64"),
        }
    )
    if "split" in table:
        frame["split"] = table["split"].astype("str").str.strip().str.lower()
    else:
        frame["split"] = stratified_split(frame["label"], test_fraction)
    return frame


def _to_int(values: pd.Series, words: dict[str, str] | None = None) -> pd.Series:
    """Nullable integers; a value that is not a whole number becomes null for validation to count."""
    text = values.astype("str").str.strip().str.lower()
    if words:
        text = text.replace(words)
    numbers = pd.to_numeric(text, errors="coerce")
    return numbers.where((numbers % 1 == 0) & (numbers.abs() < 2**53)).astype("Int64")
