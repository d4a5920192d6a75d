"""Unlabeled reviews (for pretraining): read from a table, and kept apart from the labeled ones.

The unlabeled table has review_folders.UNLABELED_COLUMNS. What pretraining reads is the kept
table: the source's reviews without any whose text equals a labeled review's (a test review's
text would otherwise reach the word vectors; a training review's may end up in validation,
and is in the corpus already), and at most `data.unlabeled_limit` of them (a seeded sample).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from tasks.core.errors import ReviewflowError
from tasks.core.formats import Format, FormatError
from tasks.core.records import UnlabeledReviews
from tasks.stages.ingest import cache, splits
from tasks.stages.ingest.review_folders import UNLABELED_COLUMNS
from tasks.stages.ingest.tables import normalized_names

log = logging.getLogger("reviewflow")


def read_unlabeled_table(path: Path, fmt: Format) -> pd.DataFrame:
    """A table's `text` column (and its `review_id`, if it has one) as unlabeled reviews."""
    try:
        table = normalized_names(fmt.read_table(path))
    except FormatError as exc:
        raise ReviewflowError(f"table {path}: {exc}") from None
    if "text" not in table:
        raise ReviewflowError(f"table {path} has no text column")
    text = table["text"]
    ids = table["review_id"] if "review_id" in table else pd.Series(range(len(table)))
    # Text as text, nulls kept as nulls for validation to count.
    frame = pd.DataFrame({"review_id": ids.astype(str), "text": text.where(text.isna(), text.astype(str))})
    return frame[list(UNLABELED_COLUMNS)]


def kept_reviews(unlabeled_path: Path, labeled_path: Path, limit: int | None, source: str) -> UnlabeledReviews:
    """The unlabeled reviews pretraining may read: none equal to a labeled review, at most `limit` (seeded)."""
    frame = cache.read_cached(unlabeled_path)
    equal = frame["text"].isin(set(cache.read_cached(labeled_path, ["text"])["text"]))
    kept = frame[~equal]
    if limit is not None and len(kept) > limit:
        picked = np.random.default_rng(splits.SEED).choice(len(kept), size=limit, replace=False)
        kept = kept.iloc[np.sort(picked)]
    path = unlabeled_path.with_name(f"{unlabeled_path.stem}-without-{labeled_path.stem}{f'-n{limit}' if limit else ''}.parquet")
    if not path.is_file():  # its name says what it holds: written once, so its digest (pretraining's key) stays
        cache.write_table(kept.reset_index(drop=True), path)
    dropped = int(equal.sum())
    log.info("kept %s unlabeled reviews from %s (%d left out: equal to a labeled review's text)", f"{len(kept):,}", source, dropped)
    return UnlabeledReviews(path=path, source=source, rows=len(kept), dropped=dropped)
