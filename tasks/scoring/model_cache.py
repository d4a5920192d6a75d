"""The local cache of registered versions that scoring loads its models from.

A version's files never change, so each is downloaded once (see `cached_version`); which
version holds an alias is asked every run, since aliases move.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import urllib.parse
from pathlib import Path
from typing import Any

from mlflow.entities.model_registry import ModelVersion

from models.architectures import ENSEMBLE
from models.classifiers import load_classifier
from models.text import Vocabulary
from tasks.core.errors import ReviewflowError, redacted
from tasks.core.files import remove, remove_stale_temporaries, temporary_sibling
from tasks.registry.versions import REFERENCE_PROFILE, artifact_path, download_version, model_version, registered_name, version_with_alias
from tasks.scoring.drift import Reference
from tasks.tracking import Tracking

log = logging.getLogger("reviewflow")
CACHE_STAMP = "reviewflow-cache.json"  # written last into a model cache entry: the version it holds


def load_registered_models(
    tracking: Tracking, architectures: list[str], alias: str, cache: Path, required: bool = True
) -> tuple[dict[str, Any], dict[str, str]]:
    """The classifiers (`predict(texts)` -> P(positive)) of the versions that hold `alias`, and those versions.

    Which version holds an alias is asked every time (aliases move); each version is then loaded
    by its exact number from the local cache, downloaded there the first time (see `cached_version`).
    A model without a version holding `alias` is an error, or, not `required`, left out.
    """
    classifiers, versions = {}, {}
    for architecture in architectures:
        name = registered_name(tracking, architecture)
        found = version_with_alias(tracking, name, alias)
        if found is None and not required:
            continue
        if found is None:
            raise ReviewflowError(
                redacted(f"no version of {name} has the alias {alias!r} at {tracking.tracking_uri}: train first, or pick another --alias")
            ) from None
        classifiers[architecture] = _load_classifier(tracking, found, cache)
        versions[architecture] = f"{name}/{found.version}"
    return classifiers, versions


def load_model_version(tracking: Tracking, name: str, version: str, cache: Path) -> Any:
    """The classifier of one exact registered version, from the local cache."""
    return _load_classifier(tracking, model_version(tracking, name, version), cache)


def load_reference(tracking: Tracking, label: str, cache: Path) -> Reference:
    """The drift reference of one exact version (`reviewflow-bilstm/3`), from the local cache: its
    `reference_profile` artifact's profile and vocabulary; none for a version registered before versions carried one."""
    name, _, version = label.rpartition("/")
    folder = cached_version(tracking, model_version(tracking, name, version), cache)
    try:
        where = folder / artifact_path(folder, REFERENCE_PROFILE)
    except KeyError:
        log.info("%s has no %s (registered before versions carried one): its drift is not measured", label, REFERENCE_PROFILE)
        return Reference(label)
    profile = json.loads((where / "profile.json").read_text(encoding="utf-8"))
    return Reference(label, profile, Vocabulary.load(where / "vocabulary.json"))


def _load_classifier(tracking: Tracking, found: ModelVersion, cache: Path) -> Any:
    # The pyfunc wrapper (pyfunc_model.py) only calls load_classifier on its `classifier`
    # artifact; loading that folder directly skips MLflow's model loading and its checks.
    folder = cached_version(tracking, found, cache)
    return load_classifier(folder / artifact_path(folder, "classifier"))


def registered_ensemble(tracking: Tracking, alias: str, cache: Path) -> tuple[str, dict[str, Any]] | None:
    """The version of `reviewflow-ensemble` holding `alias` (`reviewflow-ensemble/4`) and its
    `ensemble.json` (stacker, pinned member versions), read from the local cache without loading
    its members; None when no version holds the alias."""
    name = registered_name(tracking, ENSEMBLE)
    found = version_with_alias(tracking, name, alias)
    if found is None:
        return None
    return f"{name}/{found.version}", _ensemble_json(tracking, found, cache)


def ensemble_spec(tracking: Tracking, name: str, version: str, cache: Path) -> dict[str, Any]:
    """The `ensemble.json` of one exact version of the registered ensemble, from the local cache."""
    return _ensemble_json(tracking, model_version(tracking, name, version), cache)


def _ensemble_json(tracking: Tracking, found: ModelVersion, cache: Path) -> dict[str, Any]:
    folder = cached_version(tracking, found, cache)
    return json.loads((folder / artifact_path(folder, "ensemble")).read_text(encoding="utf-8"))


def cached_version(tracking: Tracking, found: ModelVersion, cache: Path) -> Path:
    """The local copy of a registered version's files (the logged model: `MLmodel`, `artifacts/`, `code/`).

    A version's files never change, so they are downloaded once, under
    `<cache>/<store>/<name>/<version>` (`<store>`: a digest of the tracking URI). The download
    goes into a hidden folder beside the entry, which is renamed into place only when complete
    and stamped with the version's run and creation time: a half-written entry is never used,
    and a store created again (its version 1 another model) replaces the entry instead of reusing it.
    """
    folder = Path(cache).resolve() / _store_id(tracking.tracking_uri) / found.name / str(found.version)
    stamp = {"name": found.name, "version": str(found.version), "run_id": found.run_id or "", "created": found.creation_timestamp}
    if _stamp_of(folder) == stamp:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder.parent)  # the downloads of killed runs
    download = temporary_sibling(folder)
    try:
        download.mkdir()
        download_version(tracking, found.name, str(found.version), download)
        (download / CACHE_STAMP).write_text(json.dumps(stamp), encoding="utf-8")
        _sync_files(download)
        _install(download, folder, stamp)
    finally:
        if download.exists():
            remove(download)
    log.info("%s/%s: downloaded into the model cache %s", found.name, found.version, folder)
    return folder


def _install(download: Path, folder: Path, stamp: dict[str, Any]) -> None:
    """Rename a complete download into place; an entry that is not this version's (partial, stale) goes first."""
    if folder.exists() and _stamp_of(folder) != stamp:
        aside = temporary_sibling(folder)
        with contextlib.suppress(FileNotFoundError):  # another run may be replacing it too
            os.rename(folder, aside)
            remove(aside)
    try:
        os.rename(download, folder)
    except OSError:
        if _stamp_of(folder) != stamp:  # not another run's complete copy of the same version
            raise


def _stamp_of(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / CACHE_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _sync_files(folder: Path) -> None:
    # A folder renamed into place must survive a crash as written, or it would look complete.
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as file:
                os.fsync(file.fileno())


def _store_id(uri: str) -> str:
    """A short digest naming a tracking store: local paths made absolute, credentials left out."""
    for scheme in ("sqlite:///", "file://"):
        if uri.startswith(scheme):
            uri = scheme + str(Path(uri.removeprefix(scheme)).resolve())
            break
    else:
        parts = urllib.parse.urlsplit(uri)
        uri = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if parts.scheme else str(Path(uri).resolve())
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
