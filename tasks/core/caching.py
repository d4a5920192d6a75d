"""Reusing completed work: how a stage's cache key is made, and how its results are kept.

Each stage defines its own key beside its task (`ingest_key`, `train_key`, ...), made with
`cache_key` from file digests and settings (`section`), never from arrays or models:
- ingest: the source's digest and the `data` section;
- validate, prepare: the digest of the ingested table file and their own section (prepare
  also the lengths and the split seed);
- train: what the encoded splits were made from (`PreparedData.fingerprint`), the architecture,
  its length, the train settings that change the model, and the tracking store (a reused
  model's child run names the run that trained it, so that run must be in the same store);
- train the baseline: the same splits, the `baseline` section and the tracking store;
- pretrain: the same splits, the kept unlabeled reviews' file, the `pretrain` section, the embedding
  width and the tracking store (`WordVectors.fingerprint` without the store: a training started from
  the vectors holds it in its key);
- evaluate: the run that trained the model, the test data and the `evaluation` section.
Every key also holds the code version: a digest of the `.py` files of `models/` and `tasks/`.

Results are kept as JSON (never pickle) under `<data.cache_dir>/results`, one file per key, and
only records of `tasks.core.records` are read back. Before Prefect looks a key up, an entry that
cannot be used is dropped, so the task runs again: one whose files (a table, a model folder)
are gone, or one not written by this module (Prefect would otherwise load whatever
serializer the file names, pickle included).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import Task
from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from prefect.filesystems import LocalFileSystem
from prefect.serializers import JSONSerializer
from pydantic import BaseModel

from tasks.core.config import (
    WHERE_OR_HOW,
    Config,
    DataConfig,
    marked,
)
from tasks.core.provenance import PROJECT_ROOT
from tasks.core.records import Evaluation, PreparedData, ReviewTable, TrainedModel, ValidationReport, WordVectors

log = logging.getLogger("reviewflow")

PACKAGE_ROOT = PROJECT_ROOT
CODE_PACKAGES = ("models", "tasks")
RECORD_TYPES: dict[str, type[BaseModel]] = {
    cls.__name__: cls for cls in (ReviewTable, ValidationReport, PreparedData, WordVectors, TrainedModel, Evaluation)
}
RECORD_SERIALIZER = JSONSerializer(
    object_encoder="tasks.core.caching.encode_record", object_decoder="tasks.core.caching.decode_record"
)


# --- keys: pure functions of digests and settings ----------------------------------------------


def cache_key(stage: str, **parts: Any) -> str:
    """`<stage>-<sha256 of the parts as canonical JSON>`: readable file names in the result folder."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return f"{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:40]}"


def section(settings: BaseModel) -> dict[str, Any]:
    """A config section as JSON values, without its settings marked WHERE_OR_HOW (tasks.core.config). A field
    not marked is part of the key, so a newly added setting is safe until declared to change nothing."""
    return settings.model_dump(mode="json", exclude=marked(type(settings), WHERE_OR_HOW))


def store_identity(tracking_uri: str, experiment_id: str) -> str:
    """The tracking store and experiment; a relative SQLite path is made absolute (it names a
    different store in each folder)."""
    prefix = "sqlite:///"
    if tracking_uri.startswith(prefix) and not tracking_uri.startswith(prefix + "/"):
        tracking_uri = prefix + str(Path(tracking_uri.removeprefix(prefix)).resolve())
    return f"{tracking_uri}#{experiment_id}"


# --- digests -----------------------------------------------------------------------------------


@functools.cache
def code_version() -> str:
    """sha256 of the `.py` files of models/ and tasks/ (paths and contents), once per process."""
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((PACKAGE_ROOT / package).rglob("*.py")):
            for field in (path.relative_to(PACKAGE_ROOT).as_posix().encode(), path.read_bytes()):
                digest.update(len(field).to_bytes(8, "big"))
                digest.update(field)
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (remembered per process while its size and mtime stay the same)."""
    stat = Path(path).stat()
    return _file_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def source_digest(source: str) -> str | None:
    """The digest a dataset source is known by: its bytes for a file; the sha256 of the file list
    with sizes and digests for a folder; the URL itself for a download. None if it is missing
    (ingest then runs and says so)."""
    if source.lower().startswith(("http://", "https://")):
        return f"url:{source}"
    path = Path(source).expanduser()
    if path.is_file():
        return f"sha256:{file_digest(path)}"
    if path.is_dir():
        digest = hashlib.sha256()
        for file in sorted(p for p in path.rglob("*.txt") if p.is_file()):
            digest.update(f"{file.relative_to(path).as_posix()}\0{file_digest(file)}\n".encode())
        return f"folder:{digest.hexdigest()}"
    return None


# --- Prefect: the policy, the stored records, the per-run options -------------------------------


@dataclass
class Reuse(CachePolicy):
    """A task's result is reused by any later run whose inputs give the same key."""

    key: Callable[[dict[str, Any], str], str | None] | None = None

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        key = self.key(inputs, code_version()) if self.key else None
        if key is not None and task_ctx is not None:
            drop_unusable_entry(task_ctx.result_store.result_storage, key)
        return key


def reused(key: Callable[[dict[str, Any], str], str | None]) -> dict[str, Any]:
    """Task options: keep the result as JSON under `key(inputs, code_version)` for later runs."""
    return {"cache_policy": Reuse(key=key), "result_serializer": RECORD_SERIALIZER, "persist_result": True}


def for_run(task: Task, config: Config) -> Task:
    """The task as this run uses it: results under `<data.cache_dir>/results`; `reuse=false` computes
    again (and replaces the kept result)."""
    return task.with_options(result_storage=results_dir(config.data), refresh_cache=not config.reuse)


def results_dir(data: DataConfig) -> Path:
    # Beside the Parquet cache the results point into, and independent of PREFECT_HOME: each CLI
    # run starts a new temporary Prefect server, and CI makes a new PREFECT_HOME every time.
    return data.cache_dir.resolve() / "results"


def encode_record(value: Any) -> Any:
    """JSON for a record of tasks.core.records (the only values the cached tasks return)."""
    if isinstance(value, BaseModel) and RECORD_TYPES.get(type(value).__name__) is type(value):
        return {"__record__": type(value).__name__, "data": value.model_dump(mode="json")}
    raise TypeError(f"{type(value).__name__} is not a record that can be kept for reuse")


def decode_record(value: dict[str, Any]) -> Any:
    """The record back from its JSON; only the classes in RECORD_TYPES are ever built."""
    name = value.get("__record__")
    if name is None:
        return value
    if name not in RECORD_TYPES:
        raise ValueError(f"unknown record type {name!r} in a kept result")
    return RECORD_TYPES[name].model_validate(value["data"])


def drop_unusable_entry(storage: Any, key: str) -> None:
    """Delete the kept result of `key` if it cannot be used, so the task runs again."""
    if not isinstance(storage, LocalFileSystem):
        return
    path = Path(storage.basepath).expanduser() / key
    if not path.is_file():
        return
    reason = unusable_reason(path.read_bytes())
    if reason:
        log.warning("not reusing %s: %s; computing it again", key, reason)
        path.unlink(missing_ok=True)


def unusable_reason(raw: bytes) -> str | None:
    """Why a kept result file cannot be used (None if it can)."""
    try:
        entry = json.loads(raw)
        serializer = entry["metadata"]["serializer"]
        expected = RECORD_SERIALIZER.model_dump(mode="json")
        if any(serializer.get(k) != expected[k] for k in ("type", "jsonlib", "object_decoder", "loads_kwargs")):
            return "it was not written by reviewflow's JSON serializer"
        record = RECORD_SERIALIZER.loads(entry["result"].encode())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return f"it cannot be read ({exc.__class__.__name__})"
    if not isinstance(record, BaseModel):
        return "it holds no record"
    missing = [path for path in paths_in(record) if not path.exists()]
    return f"{missing[0]} is gone" if missing else None


def paths_in(record: BaseModel) -> Iterator[Path]:
    """Every path a record names, nested records included."""
    for name in type(record).model_fields:
        value = getattr(record, name)
        if isinstance(value, Path):
            yield value
        elif isinstance(value, BaseModel):
            yield from paths_in(value)

