"""Batch scoring of review files: read, validate, score and write each one exactly once.

The models come in as plain callables (`Scorer`), so this module knows nothing of MLflow.
Files are read in chunks and each scored chunk is appended to a hidden temporary output, so
memory stays flat however large the file; outputs are renamed into place when complete,
manifest last, so a manifest means its output is whole. A file that cannot be read goes to
`quarantine/` with a one-line `.reason.txt`; a row that cannot be scored keeps its place with
a reason in `error`.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from tasks.errors import ReviewflowError, one_line
from tasks.records import FileOutcome
from tasks.schema import ID_COLUMNS, TEXT
from tasks.validate import import_gx, raised_error

log = logging.getLogger("reviewflow")

Scorer = Callable[[list[str]], np.ndarray]  # raw review texts -> P(positive) per text, in [0, 1]
TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
TXT_ID = "review_id"  # the id column of a .txt folder's output: the file-name stems
ROW = "row"  # the id column added when the input has none
STALE_TEMPORARY_S = 24 * 3600  # this old, a temporary file is stale even if its pid runs (on another host)
_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")
_LETTER = re.compile(r"[^\W\d_]")
_MISSING = object()  # a JSON line without a `text` key
_GX_LOCK = threading.Lock()  # GX contexts are not documented as thread-safe; a validation takes milliseconds


class _Unreadable(Exception):
    """The input cannot be scored at all; the message is the one-line quarantine reason."""


@dataclass
class _Layout:
    """What the pre-pass learned about an input."""

    kind: str  # a table suffix, or "txt" for a folder of .txt files
    columns: list[str]
    id_column: str | None
    ids: pd.Series  # the id column's values (empty without one)
    rows: int
    id_type: pa.DataType | None = None  # Parquet only: kept in the output


# --- finding inputs ----------------------------------------------------------------------------


def find_review_files(paths: list[Path]) -> list[Path]:
    """Inputs from files and folders: a folder of .txt files (and no tables) is one input; other folders are searched one level."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ReviewflowError(f"review file or folder not found: {path}")
        if path.is_dir():
            has_tables = any(_kind(p) in TABLE_SUFFIXES for p in _visible(path))
            found += [path] if _txt_files(path) and not has_tables else _inputs_in(path)
        elif _kind(path) in TABLE_SUFFIXES:
            found.append(path)
        else:
            raise ReviewflowError(f"unsupported review file {path}: expected .csv, .tsv, .jsonl, .parquet or a folder of .txt files")
    return list(dict.fromkeys(found))


def _inputs_in(folder: Path, root: Path | None = None) -> list[Path]:
    """Table files and .txt folders one level down (sorted names); with `root`, also symlinks leaving it."""
    found = []
    for entry in _visible(folder):
        if root is not None and _leaves(entry, root):
            found.append(entry)  # refused later, whatever it holds: not looked into
        elif _kind(entry) in TABLE_SUFFIXES or (_kind(entry) == "txt" and _txt_files(entry)):
            found.append(entry)
        elif entry.suffix.lower() == ".txt":
            log.warning("ignoring %s: put .txt reviews in a folder, which is scored as one file", entry)
    return found


def _visible(folder: Path) -> list[Path]:
    """Entries by name, without hidden ones (temporary files, locks)."""
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: p.name)


def _txt_files(folder: Path) -> list[Path]:
    return [p for p in _visible(folder) if p.suffix.lower() == ".txt" and p.is_file()]


def _kind(path: Path) -> str | None:
    suffix = "txt" if path.is_dir() else path.suffix.lower()
    return suffix if suffix == "txt" or suffix in TABLE_SUFFIXES else None


def _leaves(path: Path, root: Path) -> bool:
    """Whether `path`, or a .txt file directly in it, is a symlink to outside `root`."""
    def outside(p: Path) -> bool:
        return p.is_symlink() and not Path(os.path.realpath(p)).is_relative_to(root.resolve())

    return outside(path) or (path.is_dir() and any(outside(p) for p in path.iterdir() if p.suffix.lower() == ".txt"))


# --- one input ---------------------------------------------------------------------------------


def score_file(
    path: Path, output_dir: Path, scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int,
    quarantine_move: bool = False,
) -> FileOutcome:  # fmt: skip
    """Score one input into output_dir, or skip it (already scored by the same versions: same input content hash), or quarantine it."""
    path, output_dir = Path(path), Path(output_dir)
    _check_models(scorers, versions, chunk_size)
    try:
        return _score_file(path, output_dir, scorers, versions, chunk_size, quarantine_move)
    except OSError as exc:  # reading errors quarantine the input; these are the run's (disk full, permissions)
        raise ReviewflowError(f"cannot write {exc.filename or output_dir}: {exc.strerror or one_line(exc)}") from None


def _score_file(
    path: Path, output_dir: Path, scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int, move: bool
) -> FileOutcome:
    start, started_at = time.monotonic(), _utc_now()
    output_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(output_dir)
    kind = _kind(path)
    stem = path.name if kind == "txt" else path.stem
    output = output_dir / (f"{stem}.scored.csv" if kind == "txt" else f"{stem}.scored{path.suffix}")
    manifest = output_dir / f"{stem}.manifest.json"
    try:
        if kind is None:
            raise _Unreadable(f"unsupported file type {path.suffix or '(none)'}")
        sha256 = _fingerprint(path, kind)
        done = _previous_manifest(manifest, sha256, versions, output)
        if done is not None:
            log.info("%s: skipped, already scored by the same model versions", path)
            reason = "already scored by the same model versions"
            return _outcome(path, "skipped", start, output, done["rows"], done["failed"], reason)
        layout = _read_layout(path, kind, chunk_size)
        _validate(layout)
        rows, failed = _write_output(path, layout, output, manifest, scorers, chunk_size)
    except _Unreadable as exc:
        return _quarantine(path, output_dir, one_line(str(exc)), move, start)
    _write_json(manifest, {
        "input": os.path.abspath(path), "input_sha256": sha256, "versions": versions,
        "rows": rows, "scored": rows - failed, "failed": failed,
        "started": started_at, "finished": _utc_now(), "output": output.name, "id_column": layout.id_column or ROW,
    })  # fmt: skip
    outcome = _outcome(path, "scored", start, output, rows, failed)
    log.info("%s: scored %d rows (%d failed) into %s in %.1fs", path, rows, failed, output.name, outcome.seconds)
    return outcome


def _outcome(
    path: Path, status: str, start: float, output: Path | None = None, rows: int = 0, failed: int = 0, reason: str | None = None
) -> FileOutcome:
    seconds = round(time.monotonic() - start, 3)
    return FileOutcome(input=path, status=status, output=output, rows=rows, failed_rows=failed, reason=reason, seconds=seconds)


def _check_models(scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int) -> None:
    if not scorers or set(scorers) != set(versions):
        raise ReviewflowError(f"need one version per model: got models {sorted(scorers)}, versions {sorted(versions)}")
    if chunk_size < 1:
        raise ReviewflowError(f"chunk size must be at least 1 (got {chunk_size})")


def _previous_manifest(manifest: Path, sha256: str, versions: dict[str, str], output: Path) -> dict | None:
    """The manifest of a complete earlier scoring of the same content by the same versions."""
    try:
        previous = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (previous.get("input_sha256"), previous.get("versions"), previous.get("output")) == (sha256, versions, output.name)
    return previous if same and output.is_file() else None


def _fingerprint(path: Path, kind: str) -> str:
    """The input's sha256; text inputs must be UTF-8 (the reason names the first bad byte)."""
    with _reading(kind):
        if kind != "txt":
            if path.stat().st_size == 0:
                raise _Unreadable("empty file")
            return _hash_bytes(path, kind, "").hex()
        if not (files := _txt_files(path)):
            raise _Unreadable("no .txt files in the folder")
        digest = hashlib.sha256()
        for file in files:
            digest.update(file.name.encode() + b"\0" + _hash_bytes(file, kind, f"{file.name}: ") + b"\0")
        return digest.hexdigest()


def _hash_bytes(path: Path, kind: str, where: str) -> bytes:
    digest, decoder, offset = hashlib.sha256(), codecs.getincrementaldecoder("utf-8")(), 0
    with path.open("rb") as file:
        while True:
            block = file.read(1 << 20)
            digest.update(block)
            if kind != ".parquet":
                try:
                    decoder.decode(block, final=not block)
                except UnicodeDecodeError as exc:
                    # exc.object is the bytes the decoder carried over, then this block.
                    at = offset + len(block) - len(exc.object) + exc.start
                    raise _Unreadable(f"{where}not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {at})") from None
            if not block:
                return digest.digest()
            offset += len(block)


# --- reading -------------------------------------------------------------------------------------


@contextlib.contextmanager
def _reading(kind: str) -> Iterator[None]:
    """Turn a reader's failure into the one-line reason for quarantine."""
    label = {"txt": "text folder", ".parquet": "Parquet file"}.get(kind, f"{kind[1:].upper()} file")
    try:
        yield
    except OSError as exc:
        raise _Unreadable(f"cannot read {exc.filename or 'the file'}: {exc.strerror or one_line(exc)}") from None
    except (ValueError, pa.ArrowException) as exc:
        raise _Unreadable(f"not a readable {label} ({one_line(exc)})") from None


def _csv_options(kind: str) -> dict[str, Any]:
    # Every cell as text, so ids like '007' and reviews like 'NA' survive; utf-8-sig drops a BOM.
    return {"sep": "\t" if kind == ".tsv" else ",", "dtype": str, "keep_default_na": False, "encoding": "utf-8-sig"}


def _read_layout(path: Path, kind: str, chunk_size: int) -> _Layout:
    """The cheap pre-pass: columns, the id column's values and the row count; parse errors surface here."""
    with _reading(kind):
        if kind == "txt":
            stems = pd.Series([f.stem for f in _txt_files(path)], dtype=object)
            return _Layout(kind, [TXT_ID, TEXT], TXT_ID, stems, len(stems))
        if kind == ".parquet":
            parquet = pq.ParquetFile(path)
            columns = parquet.schema_arrow.names
            if not (id_column := _id_column(columns)):
                return _Layout(kind, columns, None, pd.Series(dtype=object), parquet.metadata.num_rows)
            ids = parquet.read(columns=[id_column]).column(0)
            return _Layout(kind, columns, id_column, ids.to_pandas(), len(ids), ids.type)
        if kind == ".jsonl":
            names: dict[str, None] = {}
            candidates: dict[str, list[Any]] = {name: [] for name in ID_COLUMNS}
            for record in _jsonl_records(path):
                names.update(dict.fromkeys(record))
                for name, values in candidates.items():
                    values.append(record.get(name))
            id_column = _id_column(list(names))
            ids = pd.Series(candidates[id_column] if id_column else [], dtype=object)
            return _Layout(kind, list(names), id_column, ids, len(candidates[ID_COLUMNS[0]]))
        options = _csv_options(kind)
        columns = list(pd.read_csv(path, nrows=0, **options).columns)
        id_column = _id_column(columns)
        rows, ids_in_chunks = 0, [pd.Series(dtype=object)]
        # header=None: a row with more fields than the header is then an error, where with the
        # header pandas would quietly turn the first field into an index and shift the rest.
        for number, chunk in enumerate(pd.read_csv(path, header=None, chunksize=chunk_size, **options)):
            chunk = chunk.iloc[1:] if number == 0 else chunk
            rows += len(chunk)
            if id_column:
                ids_in_chunks.append(chunk.iloc[:, columns.index(id_column)])
        return _Layout(kind, columns, id_column, pd.concat(ids_in_chunks), rows)


def _jsonl_records(path: Path) -> Iterator[dict[str, Any]]:
    """One JSON object per line, blank lines skipped (the bytes are known to be UTF-8)."""
    with path.open("rb") as file:
        # Binary lines end at b"\n" only, so U+2028 inside a string does not split a record.
        for number, raw in enumerate(file, start=1):
            line = raw.decode("utf-8").removeprefix("\ufeff" if number == 1 else "")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise _Unreadable(f"line {number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
            if not isinstance(record, dict):
                raise _Unreadable(f"line {number}: expected a JSON object, got {_type_name(record)}")
            yield record


def _id_column(columns: list[str]) -> str | None:
    return next((name for name in ID_COLUMNS if name in columns), None)


def _chunks(path: Path, layout: _Layout, chunk_size: int) -> Iterator[tuple[list[Any] | None, list[Any]]]:
    """(ids, or None without an id column; texts) per chunk of at most chunk_size rows, in input order."""
    id_column, kind = layout.id_column, layout.kind
    wanted = [TEXT, id_column] if id_column else [TEXT]
    if kind == "txt":
        files = _txt_files(path)
        for i in range(0, len(files), chunk_size):
            batch = files[i : i + chunk_size]
            yield [f.stem for f in batch], [f.read_bytes().decode("utf-8").removeprefix("\ufeff") for f in batch]
    elif kind == ".parquet":
        for part in pq.ParquetFile(path).iter_batches(batch_size=chunk_size, columns=wanted):
            yield part.column(id_column).to_pylist() if id_column else None, part.column(TEXT).to_pylist()
    elif kind == ".jsonl":
        records: list[dict[str, Any]] = []
        for record in _jsonl_records(path):
            records.append(record)
            if len(records) == chunk_size:
                yield [r.get(id_column) for r in records] if id_column else None, [r.get(TEXT, _MISSING) for r in records]
                records = []
        if records:
            yield [r.get(id_column) for r in records] if id_column else None, [r.get(TEXT, _MISSING) for r in records]
    else:
        for chunk in pd.read_csv(path, chunksize=chunk_size, usecols=wanted, index_col=False, **_csv_options(kind)):
            yield chunk[id_column].tolist() if id_column else None, chunk[TEXT].tolist()


# --- validating ----------------------------------------------------------------------------------


def _validate(layout: _Layout) -> None:
    """The scoring suite, run with Great Expectations on the header's columns and the ids."""
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    expectations = [gx.expectations.ExpectColumnToExist(column=TEXT)]
    if layout.id_column:
        expectations += [
            gx.expectations.ExpectColumnValuesToNotBeNull(column=layout.id_column),
            gx.expectations.ExpectColumnValuesToBeUnique(column=layout.id_column),
        ]
    # Only the names of the other columns matter: a byte per row stands in for their values.
    frame = pd.DataFrame({c: np.zeros(layout.rows, dtype=bool) for c in layout.columns})
    if layout.id_column:
        ids = layout.ids.reset_index(drop=True).astype(object)
        frame[layout.id_column] = ids.mask(ids.map(lambda v: isinstance(v, str) and not v.strip()), None)
    with _GX_LOCK:
        # GX's own module sets this logger to INFO, and it logs a line per ephemeral context.
        logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        suite = context.suites.add(gx.ExpectationSuite(name="scoring", expectations=expectations))
        batch = context.data_sources.add_pandas("file").add_dataframe_asset("header and ids")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name="scoring", data=batch.add_batch_definition_whole_dataframe("all"), suite=suite)
        )
        result = definition.run(batch_parameters={"dataframe": frame}, result_format="SUMMARY")
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    failed = sorted((r for r in result.results if not r.success), key=lambda r: order.get(r.expectation_config.id, 0))
    if failed:
        raise _Unreadable("; ".join(_describe_failure(r, layout.columns) for r in failed))


def _describe_failure(result: Any, columns: list[str]) -> str:
    kind, column = result.expectation_config.type, result.expectation_config.kwargs.get("column")
    count = (result.result or {}).get("unexpected_count") or 0
    if kind == "expect_column_to_exist":
        return f"no {TEXT!r} column (columns: {', '.join(columns[:10]) or 'none'}{', ...' if len(columns) > 10 else ''})"
    if raised_error(result):
        return f"{kind}({column}) could not be checked"
    if kind == "expect_column_values_to_not_be_null":
        return f"{count} row{'s' if count != 1 else ''} without an id in {column!r}"
    examples = list(dict.fromkeys((result.result or {}).get("partial_unexpected_list") or []))[:3]
    return f"duplicate ids in {column!r} ({count} rows, e.g. {', '.join(map(repr, examples))})"


# --- writing ---------------------------------------------------------------------------------------


def _write_output(
    path: Path, layout: _Layout, output: Path, manifest: Path, scorers: dict[str, Scorer], chunk_size: int
) -> tuple[int, int]:
    """Score the input chunk by chunk into a temporary file, then rename it into place; (rows, failed)."""
    id_name = layout.id_column or ROW
    columns = [id_name, *(f"prob_{arch}" for arch in scorers), "prob_ensemble", "sentiment", "error"]
    temporary = _temporary(output)
    rows = failed = 0
    try:
        writer = _Writer(temporary, ".csv" if layout.kind == "txt" else layout.kind, columns, layout.id_type)
        with writer, tqdm(total=layout.rows, unit="row", desc=f"scoring {path.name}", file=sys.stderr, leave=False) as bar:
            chunks = _chunks(path, layout, chunk_size)
            while True:
                with _reading(layout.kind):  # only reading errors quarantine; a model's error stops the run
                    ids, texts = next(chunks, (None, None))
                if texts is None:
                    break
                frame = _score_chunk(texts, scorers)
                frame.insert(0, id_name, ids if ids is not None else range(rows, rows + len(texts)))
                writer.write(frame)
                rows, failed = rows + len(texts), failed + int((frame["error"] != "").sum())
                bar.update(len(texts))
        manifest.unlink(missing_ok=True)  # first, so that an old manifest never describes the new output
        os.replace(temporary, output)
    finally:
        temporary.unlink(missing_ok=True)
    return rows, failed


def _score_chunk(texts: list[Any], scorers: dict[str, Scorer]) -> pd.DataFrame:
    """The probability, sentiment and error columns for one chunk; only good rows reach the models."""
    errors = [_row_error(text) for text in texts]
    good = [i for i, error in enumerate(errors) if not error]
    probabilities = {}
    for arch, scorer in scorers.items():
        probabilities[f"prob_{arch}"] = column = np.full(len(texts), np.nan)
        if good:
            column[good] = _checked(arch, scorer([texts[i] for i in good]), len(good))
    ensemble = np.mean(list(probabilities.values()), axis=0)
    sentiment = np.where(np.isnan(ensemble), None, np.where(ensemble >= 0.5, "positive", "negative"))
    return pd.DataFrame({**probabilities, "prob_ensemble": ensemble, "sentiment": sentiment, "error": errors})


def _row_error(text: Any) -> str:
    """Why a row cannot be scored, or "" when it can."""
    if text is _MISSING:
        return "no text"
    if not isinstance(text, str):
        return f"not text: {_type_name(text)}"
    if not text.strip():
        return "empty text"
    return "" if _LETTER.search(text) else "no words"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _checked(arch: str, probabilities: Any, expected: int) -> np.ndarray:
    values = np.asarray(probabilities, dtype=float).reshape(-1)
    if len(values) != expected:
        raise ReviewflowError(f"model {arch} returned {len(values)} probabilities for {expected} reviews")
    if not np.all((values >= 0) & (values <= 1)):
        raise ReviewflowError(f"model {arch} returned probabilities outside [0, 1]")
    return values


class _Writer:
    """Appends scored chunks to one output file in the input's format."""

    def __init__(self, path: Path, kind: str, columns: list[str], id_type: pa.DataType | None) -> None:
        self.kind, self.columns, self.file = kind, columns, path.open("wb")
        if kind == ".parquet":
            fields = [(columns[0], id_type or pa.int64())] + [(c, pa.float64()) for c in columns[1:-2]]
            self.schema = pa.schema(fields + [("sentiment", pa.string()), ("error", pa.string())])
            self.parquet = pq.ParquetWriter(self.file, self.schema)
        elif kind != ".jsonl":
            self.write(pd.DataFrame(columns=columns))  # the header, even for an input without rows

    def write(self, frame: pd.DataFrame) -> None:
        if self.kind == ".parquet":
            self.parquet.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))
        elif self.kind == ".jsonl":
            for row in zip(*(frame[c].tolist() for c in self.columns)):
                record = {c: None if isinstance(v, float) and v != v else v for c, v in zip(self.columns, row)}
                self.file.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        else:
            sep = "\t" if self.kind == ".tsv" else ","
            self.file.write(frame.to_csv(sep=sep, index=False, header=self.file.tell() == 0).encode("utf-8"))

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, error_type: type | None, *_: object) -> None:
        if self.kind == ".parquet":
            self.parquet.close()
        if error_type is None:
            # A file renamed into place must survive a crash as written, or it would look complete.
            self.file.flush()
            os.fsync(self.file.fileno())
        self.file.close()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    temporary = _temporary(path)
    try:
        with temporary.open("w", encoding="utf-8") as file:
            file.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _temporary(path: Path) -> Path:
    """A hidden name beside `path` that says which process writes it."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files of killed runs: their process is gone, or they are very old."""
    for entry in folder.glob(".*.tmp"):
        if match := _TEMPORARY.match(entry.name):
            with contextlib.suppress(OSError):
                if not _running(int(match.group(1))) or time.time() - entry.lstat().st_mtime > STALE_TEMPORARY_S:
                    _remove(entry)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --- quarantine and the inbox ----------------------------------------------------------------------


def _quarantine(path: Path, output_dir: Path, reason: str, move: bool, start: float) -> FileOutcome:
    """Put a copy of the input (or, with `move`, the input itself) in quarantine/ with its reason beside it."""
    folder = output_dir / "quarantine"
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(folder)
    target = _free_name(folder / path.name, ".reason.txt")
    # The reason first: a reason without its file is clearer than a file without its reason.
    (folder / f"{target.name}.reason.txt").write_text(reason + "\n", encoding="utf-8")
    temporary = _temporary(target)
    try:
        if move:
            shutil.move(path, target)  # a symlink moves as itself, not followed
        else:
            if path.is_dir():
                shutil.copytree(path, temporary, symlinks=True)
            else:
                shutil.copy2(path, temporary)
            os.replace(temporary, target)
    except FileNotFoundError:
        log.warning("%s vanished before it reached quarantine", path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            _remove(temporary)
    log.warning("%s: quarantined: %s", path, reason)
    return _outcome(path, "quarantined", start, reason=reason)


def _free_name(target: Path, *companions: str) -> Path:
    """`target`, or `name-1.ext`, `name-2.ext`, ... when it (or a companion file) exists."""
    candidate, number = target, 0
    while os.path.lexists(candidate) or any(os.path.lexists(f"{candidate}{c}") for c in companions):
        number += 1
        candidate = target.with_name(f"{target.stem}-{number}{target.suffix}")
    return candidate


def score_inbox(
    inbox: Path, output_dir: Path, archive_dir: Path, scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int
) -> list[FileOutcome]:
    """Score every file in the inbox exactly once; move each to archive_dir only after its output is complete; unreadable ones are moved to quarantine."""
    inbox, output_dir, archive_dir = Path(inbox), Path(output_dir), Path(archive_dir)
    _check_models(scorers, versions, chunk_size)
    (inbox / ".locks").mkdir(parents=True, exist_ok=True)
    outcomes = []
    for entry in _inputs_in(inbox, root=inbox):
        start = time.monotonic()
        with _lock(inbox / ".locks" / f"{entry.name}.lock") as held:
            if not held:
                log.info("%s: skipped, another run is scoring it", entry)
                outcomes.append(_outcome(entry, "skipped", start, reason="another run is scoring it"))
            elif not os.path.lexists(entry):
                pass  # another run finished it between our listing and our lock
            elif _leaves(entry, inbox):
                outcomes.append(_quarantine(entry, output_dir, "symlink to outside the inbox refused", True, start))
            else:
                outcomes.append(score_file(entry, output_dir, scorers, versions, chunk_size, quarantine_move=True))
                if outcomes[-1].status != "quarantined":
                    archive_dir.mkdir(parents=True, exist_ok=True)
                    shutil.move(entry, _free_name(archive_dir / entry.name))
    return outcomes


def inbox_inputs(inbox: Path) -> list[Path]:
    """The inputs waiting in the inbox (none when it does not exist)."""
    inbox = Path(inbox)
    return _inputs_in(inbox, root=inbox) if inbox.is_dir() else []


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on `path` without waiting; False when another run holds it.

    The OS releases the lock of a killed run. The file is removed while still held, so a run
    that locked a file already removed checks that it still is the file at `path`.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except (BlockingIOError, FileNotFoundError):
            held = False
        try:
            yield held
        finally:
            if held:
                path.unlink(missing_ok=True)
    finally:
        os.close(descriptor)


# The Prefect tasks: the functions above, decorated for the scoring flow.
score_file_task = task(score_file, name="score-file", task_run_name="score-{path.name}", cache_policy=NO_CACHE)
score_inbox_task = task(score_inbox, name="score-inbox", cache_policy=NO_CACHE)


def publish_scoring(outcomes: list[FileOutcome], versions: dict[str, str]) -> list[dict]:
    """The files of a scoring run (scored, skipped, quarantined) as a Prefect table artifact."""
    rows = [
        {
            "file": outcome.input.name,
            "status": outcome.status,
            "rows": outcome.rows,
            "failed_rows": outcome.failed_rows,
            "output": outcome.output.name if outcome.output else "",
            "reason": outcome.reason or "",
            "seconds": round(outcome.seconds, 1),
        }
        for outcome in outcomes
    ]
    counts = {status: sum(r["status"] == status for r in rows) for status in ("scored", "skipped", "quarantined")}
    create_table_artifact(
        key="scoring-report",
        table=rows,
        description=f"{counts['scored']} scored, {counts['skipped']} skipped, {counts['quarantined']} quarantined "
        f"with {', '.join(versions.values()) or 'no models (nothing to score)'}",
    )
    return rows


publish_scoring_task = task(publish_scoring, name="publish-scoring", cache_policy=NO_CACHE)
