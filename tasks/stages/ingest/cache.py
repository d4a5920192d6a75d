"""The Parquet cache of ingested tables, keyed by the digest of the source's content.

`reviews-<digest>.parquet` is the full table (`-test<fraction>` when its split was generated
here, since the split then depends on the fraction); `...-n<per_split>.parquet` a subset;
`unlabeled-<digest>.parquet` the unlabeled reviews of an archive, folder or table.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pyarrow

from tasks.core.errors import ReviewflowError, one_line
from tasks.core.files import atomic_write, remove_stale_temporaries
from tasks.stages.ingest import splits

log = logging.getLogger("reviewflow")


def full_table_path(cache_dir: Path, digest: str, generated_split: bool, test_fraction: float) -> Path:
    """Where the full table of this content goes; a generated split depends on the test fraction too."""
    stem = f"reviews-{digest[:16]}"
    return cache_dir / (f"{stem}-test{test_fraction:g}.parquet" if generated_split else f"{stem}.parquet")


def unlabeled_table_path(cache_dir: Path, digest: str) -> Path:
    """Where the unlabeled reviews of this content go (none, for a labeled archive or folder: an empty table)."""
    return cache_dir / f"unlabeled-{digest[:16]}.parquet"


def cached_full_table(cache_dir: Path, digest: str, test_fraction: float) -> Path | None:
    """The full table already built from this content, if any."""
    for generated_split in (False, True):
        path = full_table_path(cache_dir, digest, generated_split, test_fraction)
        if path.is_file():
            log.info("using cached table %s", path)
            return path
    return None


def subset_table(full: Path, per_split: int) -> Path:
    """The cached stratified subset of `per_split` reviews per split of the full table."""
    path = full.with_name(f"{full.stem}-n{per_split}.parquet")
    if path.is_file():
        log.info("using cached table %s", path)
        return path
    write_table(splits.stratified_subset(read_cached(full), per_split), path)
    log.info("kept %s reviews per split in %s", f"{per_split:,}", path)
    return path


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write the table atomically: no half-written table is ever visible, even on a full disk."""
    remove_stale_temporaries(path.parent)
    with atomic_write(path) as file:
        frame.to_parquet(file, index=False)


def read_cached(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A table this package wrote, or one line saying it cannot be used."""
    try:
        return pd.read_parquet(path, columns=columns)
    except (pyarrow.ArrowException, ValueError) as exc:
        raise ReviewflowError(f"cached table {path} cannot be read ({one_line(exc)}); delete it to rebuild") from None


def rows_per_split(path: Path) -> dict[str, int]:
    """Row counts by split value."""
    counts = read_cached(path, ["split"])["split"].value_counts(dropna=False, sort=False)
    return {("<null>" if pd.isna(split) else str(split)): int(n) for split, n in sorted(counts.items(), key=str)}
