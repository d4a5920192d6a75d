"""Ingest: read IMDB reviews from a URL, archive, folder or labeled table into one Parquet table.

The table has exactly COLUMNS, sorted by (split, review_id), and is cached under
`data.cache_dir` by the digest of the source, so a second run with the same data reads it back
instead of parsing again. Only this table's path travels on to the other tasks.

Unlabeled reviews (for pretraining) come from the source's own `train/unsup/` when it has any, else
from `data.unlabeled_source`; they go to a table of their own (`unlabeled`), never into the splits.

The package: `download` (URLs), `review_folders` (the archive and the extracted folder), `tables`
(labeled tables in any of `tasks.core.formats`), `unlabeled`, `splits` (seeded splits and subsets), `cache`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task

from tasks.core.caching import cache_key, reused, section, source_digest
from tasks.core.config import DataConfig
from tasks.core.errors import ReviewflowError, one_line, redacted
from tasks.core.formats import SUFFIXES, Format, format_of
from tasks.core.records import ReviewTable, UnlabeledReviews
from tasks.core.schema import COLUMNS
from tasks.stages.ingest import cache, download, review_folders, tables, unlabeled

log = logging.getLogger("reviewflow")

Kind = Format | str  # a table format, "archive" or "folder"
FOLDER_KINDS = ("archive", "folder")  # the aclImdb layout: these may hold unlabeled reviews of their own
EXPECTED = f"a .tar.gz/.tgz archive, an aclImdb/ folder, or a {', '.join(SUFFIXES)} table"


def ingest_reviews(data: DataConfig) -> ReviewTable:
    """Read `data.source` into the cached Parquet table, or its per-split subset when asked."""
    cache_dir = data.cache_dir.resolve()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        local = _local(data.source, cache_dir / "downloads")
        kind = _kind(local)
        digest = _digest(local, kind)
        full = cache.cached_full_table(cache_dir, digest, data.test_fraction)
        own_unlabeled = cache.unlabeled_table_path(cache_dir, digest)
        if full is None or (kind in FOLDER_KINDS and not own_unlabeled.is_file()):
            full = _build_full_table(local, kind, digest, data, cache_dir)
        path = full if data.reviews_per_split is None else cache.subset_table(full, data.reviews_per_split)
        rows_per_split = cache.rows_per_split(path)
    except OSError as exc:
        raise ReviewflowError(_os_error(exc)) from None
    return ReviewTable(
        path=path, source=data.source, digest=digest, rows=sum(rows_per_split.values()), rows_per_split=rows_per_split,
        unlabeled=_unlabeled_reviews(data, own_unlabeled, full, cache_dir),
    )


def _unlabeled_reviews(data: DataConfig, own: Path, full: Path, cache_dir: Path) -> UnlabeledReviews | None:
    """The source's own unlabeled reviews if it has any, else those of `data.unlabeled_source`, kept apart from the labeled ones."""
    if own.is_file() and len(cache.read_cached(own, ["review_id"])):
        if data.unlabeled_source:
            log.info("the dataset has unlabeled reviews of its own (train/unsup/): data.unlabeled_source is not read")
        return unlabeled.kept_reviews(own, full, data.unlabeled_limit, redacted(data.source))
    if not data.unlabeled_source:
        return None
    return unlabeled.kept_reviews(_unlabeled_source_table(data, cache_dir), full, data.unlabeled_limit, redacted(data.unlabeled_source))


def _unlabeled_source_table(data: DataConfig, cache_dir: Path) -> Path:
    """`data.unlabeled_source` read into the cache; any problem with it is one line naming the setting."""
    try:
        local = _local(data.unlabeled_source, cache_dir / "downloads")
        kind = _kind(local)
        path = cache.unlabeled_table_path(cache_dir, _digest(local, kind))
        if path.is_file():
            return path
        started = time.perf_counter()
        if kind == "archive":
            frame = review_folders.read_archive(local, data.max_archive_bytes, require_labeled=False)[1]
        elif kind == "folder":
            frame = review_folders.read_folder(review_folders.review_root(local), require_labeled=False)[1]
        else:
            frame = unlabeled.read_unlabeled_table(local, kind)
        if frame.empty:
            raise ReviewflowError(f"{local} holds no unlabeled reviews (expected {review_folders.UNLABELED_LAYOUT} or a table with a text column)")
        cache.write_table(frame, path)
        log.info("read %s unlabeled reviews from %s in %.1f s into %s", f"{len(frame):,}", local, time.perf_counter() - started, path)
        return path
    except ReviewflowError as exc:
        raise ReviewflowError(f"data.unlabeled_source: {exc}") from None
    except OSError as exc:
        raise ReviewflowError(f"data.unlabeled_source: {_os_error(exc)}") from None


def _local(source: str, downloads: Path) -> Path:
    """The local file or folder for `source`, downloading an http(s) URL of a known kind first."""
    if not download.is_url(source):
        return download.local_path(source)
    name = download.download_name(source)
    if not review_folders.is_archive(name) and format_of(name) is None:
        raise ReviewflowError(f"unsupported dataset URL {source}: its name should end in the suffix of {EXPECTED}")
    return download.download(source, downloads / name)


def _kind(path: Path) -> Kind:
    if path.is_dir():
        return "folder"
    if review_folders.is_archive(path.name):
        return "archive"
    if (fmt := format_of(path.name)) is None:
        raise ReviewflowError(f"unsupported dataset file {path}: expected {EXPECTED}")
    return fmt


def _digest(path: Path, kind: Kind) -> str:
    """sha256 of the file bytes, or for a folder of its review files (see `review_folders.folder_digest`)."""
    if kind == "folder":
        return review_folders.folder_digest(review_folders.review_root(path))
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _build_full_table(local: Path, kind: Kind, digest: str, data: DataConfig, cache_dir: Path) -> Path:
    """Parse the source and write the full table into the cache."""
    started = time.perf_counter()
    unlabeled_frame = None
    if kind == "archive":
        (frame, unlabeled_frame), generated_split = review_folders.read_archive(local, data.max_archive_bytes), False
    elif kind == "folder":
        (frame, unlabeled_frame), generated_split = review_folders.read_folder(review_folders.review_root(local)), False
    else:
        frame, generated_split = tables.read_labeled_table(local, kind, data.test_fraction)
    path = cache.full_table_path(cache_dir, digest, generated_split, data.test_fraction)
    cache.write_table(_finish(frame), path)
    if unlabeled_frame is not None:
        # Written even empty: a full table of an archive or folder without it is read again (ingest_reviews).
        cache.write_table(unlabeled_frame, cache.unlabeled_table_path(cache_dir, digest))
    log.info("read %s reviews from %s in %.1f s into %s", f"{len(frame):,}", local, time.perf_counter() - started, path)
    return path


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Exactly COLUMNS with fixed types, sorted by (split, review_id) so equal inputs give equal tables."""
    frame = frame[list(COLUMNS)].astype(
        {"review_id": "str", "split": "str", "text": "str", "label": "Int64", "rating": "Int64"}
    )
    return frame.sort_values(["split", "review_id"], kind="stable", ignore_index=True)


def _os_error(exc: OSError) -> str:
    """An operating-system error as one line naming the file."""
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot access{where}: {exc.strerror or one_line(exc)}"


def ingest_key(source_digest: str, data: DataConfig, code: str, unlabeled_digest: str | None = None) -> str:
    return cache_key("ingest", source=source_digest, unlabeled=unlabeled_digest, data=section(data), code=code)


def ingest_inputs_key(inputs: dict[str, Any], code: str) -> str | None:
    data: DataConfig = inputs["data"]
    digest = source_digest(data.source)
    unlabeled_digest = source_digest(data.unlabeled_source) if data.unlabeled_source else None
    if not digest or (data.unlabeled_source and not unlabeled_digest):
        return None  # something missing: ingest runs and says what
    return ingest_key(digest, data, code, unlabeled_digest)


ingest_task = task(ingest_reviews, name="ingest", **reused(ingest_inputs_key))
