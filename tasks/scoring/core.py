"""Batch scoring of review files: read, check, score and write each one exactly once.

The models come in as plain callables (`Scorer`), so this module knows nothing of MLflow.
Files are read in chunks and each scored chunk is appended to a hidden temporary output, so
memory stays flat however large the file; outputs are renamed into place when complete,
manifest last, so a manifest means its output is whole. A file that cannot be read goes to
`quarantine/` with a one-line `.reason.txt`; a row that cannot be scored keeps its place with
a reason in `error`. Beside the scores, each file is profiled against each model's reference
(drift.py) and, with a shadow alias, scored by its versions too (rows.ShadowScorers): the manifest
records both; a drifted file is still scored, and flagged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from models.architectures import ENSEMBLE
from tasks.core.errors import ReviewflowError, one_line
from tasks.core.files import atomic_write, remove_stale_temporaries, write_json
from tasks.core.formats import FORMATS, Format, FormatError, Layout, format_of, split_name
from tasks.core.formats.base import too_large
from tasks.core.records import FileOutcome
from tasks.scoring.checks import input_problems
from tasks.scoring.discovery import inputs_in, leaves
from tasks.scoring.distributed import ScoringCluster, cluster_chunks, local_chunks
from tasks.scoring.drift import FileProfiles, Reference, drift_reasons
from tasks.scoring.rows import Agreement, EnsembleScorer, Scorer, ShadowScorers, ensemble_source, output_columns
from tasks.scoring.safety import free_name, lock, quarantine
from tasks.scoring.textfolder import TextFolder

log = logging.getLogger("reviewflow")

ROW = "row"  # the id column added when the input has none
MANIFEST = ".manifest.json"  # after the input's full name: r.csv -> r.csv.manifest.json
_CSV = next(f for f in FORMATS if f.suffix == ".csv")


class _Unreadable(Exception):
    """The input cannot be scored at all; the message is the one-line quarantine reason."""


@dataclass(frozen=True)
class Limits:
    """What a scoring input may hold (None: no limit); see ScoringConfig."""

    max_file_bytes: int | None = None  # a larger input (decompressed) is quarantined
    max_review_chars: int | None = None  # a longer review keeps its row with an error


@dataclass(frozen=True)
class Monitoring:
    """What each scored file is compared with besides being scored; see ScoringConfig."""

    references: dict[str, Reference] = field(default_factory=dict)  # per model of `versions`; a model without one: no drift figures
    drift_threshold: float = 0.2  # a PSI over it flags the file (still scored)
    drift_min_rows: int = 200  # a file with fewer scored rows is profiled but never flagged
    shadow: ShadowScorers | None = None  # the shadow alias's versions, scoring the same rows into shadow_prob_<model>


@dataclass
class _Written:
    """What writing one output found: its row counts, and the manifest's `drift` and `shadow` blocks."""

    rows: int
    failed: int
    drift: dict[str, dict]
    shadow: dict | None


@dataclass
class _Input:
    """How to read one input, and where its output and manifest go."""

    path: Path
    reader: Format | TextFolder
    output: Path
    output_format: Format
    manifest: Path


def score_file(
    path: Path, output_dir: Path, scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int,
    quarantine_move: bool = False, limits: Limits = Limits(), ensemble: EnsembleScorer | None = None,
    monitoring: Monitoring = Monitoring(), cluster: ScoringCluster | None = None,
) -> FileOutcome:
    """Score one input into output_dir, or skip it (already scored by the same versions: same input content hash), or quarantine it.

    `prob_ensemble` is `ensemble`'s (the registered ensemble) when given, else the mean of the columns.
    With a `cluster`, the chunks are scored on its Dask workers by the same versions, into the same bytes.
    """
    path, output_dir = Path(path), Path(output_dir)
    _check_models(scorers, versions, chunk_size, ensemble)
    try:
        return _score_file(path, output_dir, scorers, versions, chunk_size, quarantine_move, limits, ensemble, monitoring, cluster)
    except OSError as exc:  # reading errors quarantine the input; these are the run's (disk full, permissions)
        raise ReviewflowError(f"cannot write {exc.filename or output_dir}: {exc.strerror or one_line(exc)}") from None


def score_inbox(
    inbox: Path, output_dir: Path, archive_dir: Path, scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int,
    limits: Limits = Limits(), ensemble: EnsembleScorer | None = None, monitoring: Monitoring = Monitoring(),
    cluster: ScoringCluster | None = None,
) -> list[FileOutcome]:
    """Score every file in the inbox exactly once; move each to archive_dir only after its output is complete; unreadable ones are moved to quarantine."""
    inbox, output_dir, archive_dir = Path(inbox), Path(output_dir), Path(archive_dir)
    _check_models(scorers, versions, chunk_size, ensemble)
    (inbox / ".locks").mkdir(parents=True, exist_ok=True)
    outcomes = []
    for entry in inputs_in(inbox, root=inbox):
        start = time.monotonic()
        with lock(inbox / ".locks" / f"{entry.name}.lock") as held:
            if not held:
                log.info("%s: skipped, another run is scoring it", entry)
                outcomes.append(_outcome(entry, "skipped", start, reason="another run is scoring it"))
            elif not os.path.lexists(entry):
                pass  # another run finished it between our listing and our lock
            elif leaves(entry, inbox):
                reason = "symlink to outside the inbox refused"
                quarantine(entry, output_dir, reason, move=True)
                outcomes.append(_outcome(entry, "quarantined", start, reason=reason))
            else:
                outcomes.append(score_file(entry, output_dir, scorers, versions, chunk_size, True, limits, ensemble, monitoring, cluster))
                if outcomes[-1].status != "quarantined":
                    archive_dir.mkdir(parents=True, exist_ok=True)
                    shutil.move(entry, free_name(archive_dir / entry.name))
    return outcomes


def _score_file(
    path: Path, output_dir: Path, scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int, move: bool,
    limits: Limits, ensemble: EnsembleScorer | None, monitoring: Monitoring, cluster: ScoringCluster | None,
) -> FileOutcome:
    start, started_at = time.monotonic(), _utc_now()
    output_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(output_dir)
    try:
        source = _input(path, output_dir)
        with _reading():
            if path.is_file() and limits.max_file_bytes is not None and path.stat().st_size > limits.max_file_bytes:
                raise FormatError(too_large(limits.max_file_bytes))
            fingerprint = source.reader.fingerprint(path, limits.max_file_bytes)
        if fingerprint.content_bytes == 0 and isinstance(source.reader, Format):
            raise _Unreadable("empty file")
        sha256 = fingerprint.sha256
        shadow_versions = monitoring.shadow.versions if monitoring.shadow is not None else None
        done = _previous_manifest(source, sha256, versions, shadow_versions)
        if done is not None:
            log.info("%s: skipped, already scored by the same model versions", path)
            reason = "already scored by the same model versions"
            return _outcome(path, "skipped", start, source.output, done["rows"], done["failed"], reason)
        with _reading():
            layout = source.reader.layout(path, chunk_size)
        if problems := input_problems(layout):
            raise _Unreadable(problems)
        written = _write_output(source, layout, scorers, versions, chunk_size, limits.max_review_chars, ensemble, monitoring, cluster)
    except _Unreadable as exc:
        reason = one_line(str(exc))
        quarantine(path, output_dir, reason, move)
        return _outcome(path, "quarantined", start, reason=reason)
    rows, failed, reasons = written.rows, written.failed, drift_reasons(written.drift)
    write_json(source.manifest, {
        "input": os.path.abspath(path), "input_sha256": sha256, "versions": versions,
        "prob_ensemble": ensemble_source(scorers, ensemble), "rows": rows, "scored": rows - failed, "failed": failed,
        "started": started_at, "finished": _utc_now(), "output": source.output.name, "id_column": layout.id_column or ROW,
        "drift": written.drift, "drifted": bool(reasons), "drift_reasons": reasons, "shadow": written.shadow,
    })
    outcome = _outcome(path, "scored", start, source.output, rows, failed).model_copy(
        update={"drift": written.drift, "drifted": bool(reasons), "shadow": written.shadow}
    )
    log.info("%s: scored %d rows (%d failed) into %s in %.1fs", path, rows, failed, source.output.name, outcome.seconds)
    if reasons:
        # Scored all the same: drift says the scores deserve a look, not that they are wrong.
        log.warning("%s: drifted from the models' reference profiles: %s", path, "; ".join(reasons))
    return outcome


def _input(path: Path, output_dir: Path) -> _Input:
    """What the input is and where its output goes: `<stem>.scored<suffix>` in the input's format
    (a .txt folder: `<name>.scored.csv`), and `<input file name>.manifest.json`."""
    manifest = output_dir / f"{path.name}{MANIFEST}"
    if path.is_dir():
        return _Input(path, TextFolder(), output_dir / f"{path.name}.scored.csv", _CSV, manifest)
    if (fmt := format_of(path.name)) is None:
        suffix = "".join(path.suffixes[-2:]) or "(none)"
        raise _Unreadable(f"unsupported file type {suffix}")
    stem, suffix = split_name(path.name, fmt)
    return _Input(path, fmt, output_dir / f"{stem}.scored{suffix}", fmt, manifest)


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Turn a failure to read the input into the one-line reason for quarantine."""
    try:
        yield
    except FormatError as exc:
        raise _Unreadable(str(exc)) from None
    except OSError as exc:
        raise _Unreadable(f"cannot read {exc.filename or 'the file'}: {exc.strerror or one_line(exc)}") from None


def _write_output(
    source: _Input, layout: Layout, scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int, max_chars: int | None,
    ensemble: EnsembleScorer | None, monitoring: Monitoring, cluster: ScoringCluster | None,
) -> _Written:
    """Score the input chunk by chunk into a temporary file renamed into place when complete, profiling it as it goes."""
    id_name = layout.id_column or ROW
    shadow = monitoring.shadow
    columns = output_columns(id_name, list(scorers), shadow.models if shadow is not None else ())
    profiles = FileProfiles({m: monitoring.references.get(m, Reference(v)) for m, v in versions.items()})
    agreement = Agreement(shadow) if shadow is not None else None
    rows = failed = 0
    bar = tqdm(total=layout.rows, unit="row", desc=f"scoring {source.path.name}", file=sys.stderr, leave=False)
    with bar, atomic_write(source.output) as file, source.output_format.writer(file, columns, layout.id_type) as writer:
        chunks = _read(source, layout, chunk_size)
        if cluster is None:
            results = local_chunks(chunks, scorers, ensemble, shadow, max_chars)
        else:
            results = cluster_chunks(chunks, cluster, max_chars)
        with contextlib.closing(results):  # a failed write lets the cluster go at once
            for ids, texts, frame, shadow_frame in results:
                scored = (frame["error"] == "").to_numpy()
                # Rows with errors have no probabilities, and would profile as reviews of no words.
                profiles.add([t for t, ok in zip(texts, scored) if ok], {m: frame[f"prob_{m}"].to_numpy()[scored] for m in versions})
                if agreement is not None:
                    agreement.add(frame, shadow_frame)
                    frame = pd.concat([frame, shadow_frame], axis=1)
                frame.insert(0, id_name, ids if ids is not None else range(rows, rows + len(texts)))
                writer.write(frame)
                rows, failed = rows + len(texts), failed + int((frame["error"] != "").sum())
                bar.update(len(texts))
        source.manifest.unlink(missing_ok=True)  # before the rename: an old manifest never describes the new output
    drift = profiles.drift(monitoring.drift_threshold, monitoring.drift_min_rows)
    return _Written(rows, failed, drift, agreement.describe() if agreement is not None else None)


def _read(source: _Input, layout: Layout, chunk_size: int) -> Iterator[tuple[Any, list[Any]]]:
    """The input's (ids, texts) chunks; only reading errors quarantine (a model's error stops the run)."""
    chunks = source.reader.chunks(source.path, layout, chunk_size)
    while True:
        with _reading():
            ids, texts = next(chunks, (None, None))
        if texts is None:
            return
        yield ids, texts


def _previous_manifest(source: _Input, sha256: str, versions: dict[str, str], shadow_versions: dict[str, str] | None) -> dict | None:
    """The manifest of a complete earlier scoring of the same content by the same versions (and shadow versions: they add columns)."""
    try:
        previous = json.loads(source.manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same = (previous.get("input_sha256"), previous.get("versions"), previous.get("output"), (previous.get("shadow") or {}).get("versions"))
    return previous if same == (sha256, versions, source.output.name, shadow_versions) and source.output.is_file() else None


def _check_models(scorers: dict[str, Scorer], versions: dict[str, str], chunk_size: int, ensemble: EnsembleScorer | None) -> None:
    models = set(scorers) | ({ENSEMBLE} if ensemble is not None else set())
    if not models or models != set(versions):
        raise ReviewflowError(f"need one version per model: got models {sorted(models)}, versions {sorted(versions)}")
    if ensemble is not None:
        missing = [m for m in ensemble.stacker.members if m not in ensemble.scorers and m not in scorers]
        if missing:
            raise ReviewflowError(f"the ensemble's members {missing} have neither a column nor a scorer")
    if chunk_size < 1:
        raise ReviewflowError(f"chunk size must be at least 1 (got {chunk_size})")


def _outcome(
    path: Path, status: str, start: float, output: Path | None = None, rows: int = 0, failed: int = 0, reason: str | None = None
) -> FileOutcome:
    seconds = round(time.monotonic() - start, 3)
    return FileOutcome(input=path, status=status, output=output, rows=rows, failed_rows=failed, reason=reason, seconds=seconds)


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# The Prefect tasks: the functions above, decorated for the scoring flow.
score_file_task = task(score_file, name="score-file", task_run_name="score-{path.name}", cache_policy=NO_CACHE)
score_inbox_task = task(score_inbox, name="score-inbox", cache_policy=NO_CACHE)
