"""Ingest: read IMDB reviews from a URL, archive, folder or labeled table into one Parquet table.

The table has exactly COLUMNS, sorted by (split, review_id), and is cached under
`data.cache_dir` by the digest of the source, so a second run with the same data reads it back
instead of parsing again. Only this table's path travels on to the other tasks.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import json
import logging
import os
import re
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow
from prefect import task
from tqdm import tqdm

from tasks.caching import ingest_inputs_key, reused
from tasks.config import DataConfig
from tasks.errors import ReviewflowError, one_line
from tasks.records import ReviewTable
from tasks.schema import COLUMNS, SPLITS

log = logging.getLogger("reviewflow")

# Fixed, so a generated split or subset is the same on every run and every machine.
SEED = 42
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
TABLE_SUFFIXES = (".csv", ".parquet", ".jsonl")
LAYOUT = "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"
# Any prefix before train/ or test/, so `./aclImdb/...` and a tarball of the folder's contents both work.
REVIEW_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/([^/]+)\.txt$")
LABEL_WORDS = {"pos": "1", "positive": "1", "true": "1", "neg": "0", "negative": "0", "false": "0"}
DOWNLOAD_TIMEOUT_S = 60

Row = tuple[str, str, str, int, int | None]


def ingest_reviews(data: DataConfig) -> ReviewTable:
    """Read `data.source` into the cached Parquet table, or its per-split subset when asked."""
    cache_dir = data.cache_dir.resolve()
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        local = _locate(data.source, cache_dir / "downloads")
        kind = _kind(local)
        digest = _digest(local, kind)
        full = _cached_full_table(cache_dir, digest, data.test_fraction) or _build_full_table(
            local, kind, digest, data.test_fraction, cache_dir
        )
        path = full if data.reviews_per_split is None else _subset_table(full, data.reviews_per_split)
        rows_per_split = _rows_per_split(path)
    except OSError as exc:
        raise ReviewflowError(_os_error(exc)) from None
    return ReviewTable(
        path=path, source=data.source, digest=digest, rows=sum(rows_per_split.values()), rows_per_split=rows_per_split
    )


# --- where the data is -------------------------------------------------------------------------


def _locate(source: str, downloads: Path) -> Path:
    """The local file or folder for `source`, downloading an http(s) URL first."""
    if re.match(r"https?://", source, re.IGNORECASE):
        return _download(source, downloads)
    if re.match(r"[a-z][a-z0-9+.-]*://", source, re.IGNORECASE):
        raise ReviewflowError(f"unsupported dataset URL {source}: only http(s) URLs can be downloaded")
    path = Path(source).expanduser()
    if not path.exists():
        raise ReviewflowError(f"dataset not found: {path}")
    return path


def _kind(path: Path) -> str:
    """'folder', 'archive' or the table suffix ('.csv', '.parquet', '.jsonl')."""
    if path.is_dir():
        return "folder"
    kind = _kind_of_name(path.name)
    if kind is None:
        raise ReviewflowError(
            f"unsupported dataset file {path}: expected a .tar.gz/.tgz archive, an aclImdb/ folder, "
            "or a .csv, .parquet or .jsonl table"
        )
    return kind


def _kind_of_name(name: str) -> str | None:
    """The kind a file name announces, or None."""
    lower = name.lower()
    if lower.endswith(ARCHIVE_SUFFIXES):
        return "archive"
    suffix = PurePosixPath(lower).suffix
    return suffix if suffix in TABLE_SUFFIXES else None


def _download(url: str, folder: Path) -> Path:
    """Fetch `url` once into `folder`; the file appears under its own name only when complete."""
    target = folder / _download_name(url)
    if _kind_of_name(target.name) is None:
        raise ReviewflowError(
            f"unsupported dataset URL {url}: its name should end in .tar.gz, .tgz, .csv, .parquet or .jsonl"
        )
    if target.is_file():
        log.info("using downloaded %s", target)
        return target
    folder.mkdir(parents=True, exist_ok=True)
    part = _sibling_temporary(target, ".part")
    try:
        with part.open("xb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            expected = _content_length(response)
            received = _copy_with_progress(response, out, expected, target.name)
            out.flush()
            # A file renamed into place must survive a crash as written, or it would look complete.
            os.fsync(out.fileno())
        if expected is not None and received != expected:
            raise ReviewflowError(
                f"download of {url} stopped early ({received:,} of {expected:,} bytes); run again to retry"
            )
        os.replace(part, target)
    except urllib.error.HTTPError as exc:
        raise ReviewflowError(f"cannot download {url}: HTTP {exc.code} {one_line(exc.reason)}") from None
    except urllib.error.URLError as exc:
        raise ReviewflowError(f"cannot download {url}: {one_line(exc.reason)}") from None
    except (OSError, http.client.HTTPException) as exc:
        raise ReviewflowError(f"cannot download {url}: {one_line(exc)}") from None
    finally:
        part.unlink(missing_ok=True)
    log.info("downloaded %s to %s", url, target)
    return target


def _download_name(url: str) -> str:
    """The last path segment of the URL, safe as a file name."""
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return name if name not in ("", ".", "..") else "download"


def _content_length(response: http.client.HTTPResponse) -> int | None:
    """The announced size, when the server gives a usable one."""
    value = response.headers.get("Content-Length", "")
    return int(value) if value.strip().isdigit() else None


def _copy_with_progress(response: BinaryIO, out: BinaryIO, total: int | None, name: str) -> int:
    """Copy the response body to `out` with a progress bar on stderr; the byte count."""
    received = 0
    with tqdm(
        total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=f"downloading {name}", file=sys.stderr
    ) as bar:
        while chunk := response.read(1 << 20):
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return received


# --- digests and the cache ---------------------------------------------------------------------


def _digest(path: Path, kind: str) -> str:
    """sha256 of the file bytes, or for a folder of its review files (see `_folder_digest`)."""
    if kind == "folder":
        return _folder_digest(_review_root(path))
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def _folder_digest(root: Path) -> str:
    """sha256 of the sorted (relative path, content) pairs of the review files below `root`."""
    digest = hashlib.sha256()
    for relative, file in _folder_files(root):
        content = file.read_bytes()
        # Lengths delimit the fields, so no two different folders hash the same byte stream.
        for field in (relative.encode("utf-8"), content):
            digest.update(len(field).to_bytes(8, "big"))
            digest.update(field)
    return digest.hexdigest()


def _cache_stem(digest: str, generated_split: bool, test_fraction: float) -> str:
    """The file stem of the full table; a generated split depends on the test fraction too."""
    stem = f"reviews-{digest[:16]}"
    return f"{stem}-test{test_fraction:g}" if generated_split else stem


def _cached_full_table(cache_dir: Path, digest: str, test_fraction: float) -> Path | None:
    """The full table already built from this content, if any."""
    for generated_split in (False, True):
        path = cache_dir / f"{_cache_stem(digest, generated_split, test_fraction)}.parquet"
        if path.is_file():
            log.info("using cached table %s", path)
            return path
    return None


def _build_full_table(local: Path, kind: str, digest: str, test_fraction: float, cache_dir: Path) -> Path:
    """Parse the source and write the full table into the cache."""
    started = time.perf_counter()
    frame, generated_split = _parse(local, kind, test_fraction)
    path = cache_dir / f"{_cache_stem(digest, generated_split, test_fraction)}.parquet"
    _write_atomically(frame, path)
    log.info("read %s reviews from %s in %.1f s into %s", f"{len(frame):,}", local, time.perf_counter() - started, path)
    return path


def _subset_table(full: Path, per_split: int) -> Path:
    """The cached stratified subset of `per_split` reviews per split of the full table."""
    path = full.with_name(f"{full.stem}-n{per_split}.parquet")
    if path.is_file():
        log.info("using cached table %s", path)
        return path
    subset = stratified_subset(_read_cached(full), per_split)
    _write_atomically(subset, path)
    log.info("kept %s reviews per split in %s", f"{per_split:,}", path)
    return path


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write Parquet to a temporary name and rename it, so no half-written table is ever visible."""
    temporary = _sibling_temporary(path, ".tmp")
    try:
        frame.to_parquet(temporary, index=False)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _sibling_temporary(path: Path, suffix: str) -> Path:
    """A unique hidden name beside `path` (not mkstemp: its files are private to the owner)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def _read_cached(path: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """A table this module wrote, or one line saying it cannot be used."""
    try:
        return pd.read_parquet(path, columns=columns)
    except (pyarrow.ArrowException, ValueError) as exc:
        raise ReviewflowError(f"cached table {path} cannot be read ({one_line(exc)}); delete it to rebuild") from None


def _rows_per_split(path: Path) -> dict[str, int]:
    """Row counts by split value."""
    counts = _read_cached(path, ["split"])["split"].value_counts(dropna=False, sort=False)
    return {("<null>" if pd.isna(split) else str(split)): int(n) for split, n in sorted(counts.items(), key=str)}


# --- parsing -----------------------------------------------------------------------------------


def _parse(local: Path, kind: str, test_fraction: float) -> tuple[pd.DataFrame, bool]:
    """The review table of the source, and whether its split was generated here."""
    if kind == "archive":
        return _finish(_read_archive(local)), False
    if kind == "folder":
        return _finish(_read_folder(_review_root(local))), False
    table = TABLE_READERS[kind](local)
    generated_split = "split" not in _normalized_names(table).columns
    return _finish(_table_reviews(table, test_fraction)), generated_split


def _read_archive(path: Path) -> pd.DataFrame:
    """Stream the labeled reviews out of an aclImdb tarball without writing anything to disk."""
    rows: list[Row] = []
    try:
        # gzip.open rather than tarfile's "r|gz": tarfile ends quietly on a truncated stream.
        with gzip.open(path, "rb") as stream:
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    _check_member(member, path)
                    match = REVIEW_MEMBER.search(member.name)
                    if match and member.isfile():
                        raw = archive.extractfile(member).read()
                        rows.append(_review_row(*match.groups(), raw, f"member {member.name!r} in archive {path}"))
            # tarfile stops at its end marker; reading on to the gzip trailer checks length and CRC.
            while stream.read(1 << 20):
                pass
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ReviewflowError(f"archive {path} is truncated or corrupt ({one_line(exc)})") from None
    if not rows:
        raise ReviewflowError(f"archive {path} contains no labeled reviews (expected {LAYOUT})")
    return pd.DataFrame(rows, columns=COLUMNS)


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse members that would land outside a target folder if the archive were extracted."""
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    absolute = name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) is not None
    if absolute or ".." in parts or member.issym() or member.islnk() or member.isdev():
        raise ReviewflowError(f"unsafe member {name!r} in archive {archive}: refusing to read it")


def _review_root(folder: Path) -> Path:
    """The aclImdb folder itself, given either it or the folder that contains it."""
    inner = folder / "aclImdb"
    return inner if inner.is_dir() else folder


def _folder_files(root: Path) -> list[tuple[str, Path]]:
    """The review files below `root` as sorted (relative path, file) pairs."""
    found = []
    for split in SPLITS:
        for polarity in ("pos", "neg"):
            folder = root / split / polarity
            if folder.is_dir():
                with os.scandir(folder) as entries:
                    found += [
                        (f"{split}/{polarity}/{entry.name}", Path(entry.path))
                        for entry in entries
                        if entry.name.endswith(".txt") and entry.is_file()
                    ]
    return sorted(found)


def _read_folder(root: Path) -> pd.DataFrame:
    """The labeled reviews of an extracted aclImdb folder."""
    rows = []
    for relative, file in _folder_files(root):
        split, polarity, stem = REVIEW_MEMBER.search(relative).groups()
        rows.append(_review_row(split, polarity, stem, file.read_bytes(), f"review file {file}"))
    if not rows:
        raise ReviewflowError(f"folder {root} contains no labeled reviews (expected {LAYOUT})")
    return pd.DataFrame(rows, columns=COLUMNS)


def _review_row(split: str, polarity: str, stem: str, raw: bytes, where: str) -> Row:
    """One row from a review file `<split>/<pos|neg>/<id>_<rating>.txt`."""
    rating = re.fullmatch(r".*_(\d+)", stem)
    return (
        f"{split}/{polarity}/{stem}",
        split,
        _decode(raw, where),
        int(polarity == "pos"),
        int(rating.group(1)) if rating else None,
    )


def _decode(raw: bytes, where: str) -> str:
    """UTF-8 text, or one line naming the place and byte offset of the first bad byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ReviewflowError(f"{where} is not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start})") from None


def _decode_table(raw: bytes, where: str) -> str:
    """A table file's text, without the byte-order mark spreadsheet programs put first."""
    # Not "utf-8-sig": its error offsets would not count the mark's three bytes.
    text = _decode(raw, where)
    return text[1:] if text.startswith("\ufeff") else text


def _read_csv(path: Path) -> pd.DataFrame:
    """A CSV table, every cell as text (so ids like '007' and reviews like 'NA' survive)."""
    text = _decode_table(path.read_bytes(), f"table {path}")
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise ReviewflowError(f"table {path} is not a readable CSV file ({one_line(exc)})") from None


def _read_parquet(path: Path) -> pd.DataFrame:
    """A Parquet table."""
    try:
        return pd.read_parquet(path)
    except (pyarrow.ArrowException, ValueError) as exc:
        raise ReviewflowError(f"table {path} is not a readable Parquet file ({one_line(exc)})") from None


def _read_jsonl(path: Path) -> pd.DataFrame:
    """A JSON Lines table: one JSON object per line, blank lines skipped."""
    text = _decode_table(path.read_bytes(), f"table {path}")
    records = []
    # Split on "\n" only: str.splitlines would also break at U+2028 inside a JSON string.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReviewflowError(
                f"table {path}, line {number}: not valid JSON ({exc.msg}, column {exc.colno})"
            ) from None
        if not isinstance(record, dict):
            raise ReviewflowError(f"table {path}, line {number}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return pd.DataFrame.from_records(records)


TABLE_READERS = {".csv": _read_csv, ".parquet": _read_parquet, ".jsonl": _read_jsonl}


def _normalized_names(table: pd.DataFrame) -> pd.DataFrame:
    """The table with column names stripped and lower-cased."""
    return table.set_axis([str(name).strip().lower() for name in table.columns], axis=1)


def _table_reviews(table: pd.DataFrame, test_fraction: float) -> pd.DataFrame:
    """Map a labeled table onto COLUMNS; a missing text or label column becomes nulls for validation to report."""
    table = _normalized_names(table).reset_index(drop=True)
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


def _finish(frame: pd.DataFrame) -> pd.DataFrame:
    """Exactly COLUMNS with fixed types, sorted by (split, review_id) so equal inputs give equal tables."""
    frame = frame[list(COLUMNS)].astype(
        {"review_id": "str", "split": "str", "text": "str", "label": "Int64", "rating": "Int64"}
    )
    return frame.sort_values(["split", "review_id"], kind="stable", ignore_index=True)


# --- splits and subsets ------------------------------------------------------------------------


def stratified_split(labels: pd.Series, test_fraction: float) -> pd.Series:
    """'train'/'test' per row: a seeded draw of `test_fraction` of each label's rows goes to test."""
    rng = np.random.default_rng(SEED)
    split = np.full(len(labels), "train", dtype=object)
    for rows in _strata(labels.reset_index(drop=True)):
        split[rng.permutation(rows)[: round(len(rows) * test_fraction)]] = "test"
    return pd.Series(split, dtype="str")


def stratified_subset(frame: pd.DataFrame, per_split: int) -> pd.DataFrame:
    """A seeded pick of `per_split` rows of each split, as even across labels as the data allows."""
    rng = np.random.default_rng(SEED)
    picked: list[int] = []
    for split, rows in sorted(frame.groupby("split").indices.items()):
        if len(rows) < per_split:
            log.warning("split %r has only %d reviews (asked for %d): keeping all", split, len(rows), per_split)
        strata = [rows[positions] for positions in _strata(frame["label"].iloc[rows])]
        for stratum, quota in zip(strata, _quotas([len(s) for s in strata], per_split)):
            picked += rng.choice(stratum, size=quota, replace=False).tolist()
    return frame.iloc[sorted(picked)].reset_index(drop=True)


def _strata(labels: pd.Series) -> list[np.ndarray]:
    """Row positions per label value (nulls form their own stratum), in label order."""
    codes, _ = pd.factorize(labels, sort=True)
    return [np.flatnonzero(codes == code) for code in np.unique(codes)]


def _quotas(sizes: list[int], total: int) -> list[int]:
    """Share `total` as evenly as possible over groups of these sizes; small groups pass on what they lack."""
    quotas = [0] * len(sizes)
    left = min(total, sum(sizes))
    for rank, group in enumerate(sorted(range(len(sizes)), key=lambda g: sizes[g])):
        quotas[group] = min(sizes[group], left // (len(sizes) - rank))
        left -= quotas[group]
    return quotas


# --- messages ----------------------------------------------------------------------------------


def _os_error(exc: OSError) -> str:
    """An operating-system error as one line naming the file."""
    where = f" {exc.filename}" if exc.filename else ""
    return f"cannot access{where}: {exc.strerror or one_line(exc)}"


ingest_task = task(ingest_reviews, name="ingest", **reused(ingest_inputs_key))
