"""The registered model versions a scoring run uses, loaded once by alias and pinned by version.

Versions come from the local model cache (downloaded there once), and the recurrent models that
share a vocabulary encode each chunk once between them (models.classifiers.share_encoding).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.architectures import ENSEMBLE
from models.classifiers import share_encoding
from models.ensemble import Stacker
from tasks.core.config import ScoringConfig, TrackingConfig, tracking_settings
from tasks.core.errors import ReviewflowError
from tasks.core.records import ModelsInUse
from tasks.registry.versions import registered_name
from tasks.scoring.model_cache import ensemble_spec, load_model_version, load_reference, load_registered_models, registered_ensemble
from tasks.scoring.rows import EnsembleScorer, ShadowScorers
from tasks.tracking import Tracking, connect

log = logging.getLogger("reviewflow")


def load_models(
    architectures: list[str], alias: str, tracking_config: TrackingConfig, model_cache: Path | None = None
) -> ModelsInUse:
    """The versions of `reviewflow-<arch>` that hold `alias`, loaded from the registry through `model_cache`
    (default: ScoringConfig's).

    With `ensemble` among them, `prob_ensemble` comes from the version of `reviewflow-ensemble`
    holding `alias` when there is one (else, with other models named, from their mean). Each version
    comes with its drift reference (drift.Reference; without a profile when it carries none).
    """
    tracking = connect(tracking_settings(tracking_config))
    cache = model_cache if model_cache is not None else ScoringConfig().model_cache
    members = [a for a in architectures if a != ENSEMBLE]
    classifiers, versions = load_registered_models(tracking, members, alias, cache)
    ensemble, pinned_classifiers = load_ensemble(tracking, alias, versions, cache) if ENSEMBLE in architectures else (None, {})
    if ensemble is not None:
        versions[ENSEMBLE] = ensemble.version
    elif ENSEMBLE in architectures and not members:
        raise ReviewflowError(
            f"no version of {registered_name(tracking, ENSEMBLE)} has the alias {alias!r}: train first, or pick another --alias"
        )
    elif ENSEMBLE in architectures:
        log.warning("no version of %s has the alias %r: prob_ensemble is the mean of the other models", registered_name(tracking, ENSEMBLE), alias)
    if shared := share_encoding([*classifiers.values(), *pinned_classifiers.values()]):
        log.info("the recurrent models encode each chunk once per vocabulary (%d shared)", shared)
    log.info("scoring with %s", ", ".join(versions.values()))
    scorers = {architecture: classifier.predict for architecture, classifier in classifiers.items()}
    references = {model: load_reference(tracking, label, cache) for model, label in versions.items()}
    return ModelsInUse(versions=versions, scorers=scorers, ensemble=ensemble, references=references)


def load_shadow(
    architectures: list[str], alias: str, tracking_config: TrackingConfig, model_cache: Path | None = None
) -> ShadowScorers | None:
    """The versions holding the shadow `alias` for the same models, to score beside them; a model without one
    is skipped with a warning (the ensemble: when no registered ensemble holds it). None when no model has one."""
    tracking = connect(tracking_settings(tracking_config))
    cache = model_cache if model_cache is not None else ScoringConfig().model_cache
    members = [a for a in architectures if a != ENSEMBLE]
    classifiers, versions = load_registered_models(tracking, members, alias, cache, required=False)
    ensemble, pinned_classifiers = load_ensemble(tracking, alias, versions, cache) if ENSEMBLE in architectures else (None, {})
    if ensemble is not None:
        versions[ENSEMBLE] = ensemble.version
    for model in (m for m in architectures if m not in versions):
        log.warning("shadow %r: no version of %s has the alias: %s is not shadowed", alias, registered_name(tracking, model), model)
    if not versions:
        log.warning("shadow %r: no model has a version with this alias: no shadow scoring", alias)
        return None
    share_encoding([*classifiers.values(), *pinned_classifiers.values()])
    log.info("shadow %r: also scoring with %s", alias, ", ".join(versions.values()))
    scorers = {architecture: classifier.predict for architecture, classifier in classifiers.items()}
    return ShadowScorers(alias=alias, versions=versions, scorers=scorers, ensemble=ensemble)


def load_ensemble(tracking: Tracking, alias: str, versions: dict[str, str], cache: Path) -> tuple[EnsembleScorer | None, dict[str, Any]]:
    """The ensemble holding `alias` (None: no version holds it), and the classifiers of its pinned member
    versions that are not among `versions` (the ensemble scores with those)."""
    found = registered_ensemble(tracking, alias, cache)
    if found is None:
        return None, {}
    return _ensemble(tracking, *found, versions, cache)


def load_pinned(tracking: Tracking, versions: dict[str, str], cache: Path) -> tuple[dict[str, Any], EnsembleScorer | None]:
    """The scorers and ensemble of these exact versions (`rnn` -> `reviewflow-rnn/3`, `ensemble` -> `reviewflow-ensemble/4`),
    as `load_models` gave them for the aliases they held: what a Dask worker scores with."""
    classifiers = {
        model: load_model_version(tracking, *label.rsplit("/", 1), cache) for model, label in versions.items() if model != ENSEMBLE
    }
    ensemble, pinned_classifiers = (None, {})
    if ENSEMBLE in versions:
        label = versions[ENSEMBLE]
        ensemble, pinned_classifiers = _ensemble(tracking, label, ensemble_spec(tracking, *label.rsplit("/", 1), cache), versions, cache)
    share_encoding([*classifiers.values(), *pinned_classifiers.values()])
    return {model: classifier.predict for model, classifier in classifiers.items()}, ensemble


def _ensemble(tracking: Tracking, version: str, spec: dict[str, Any], versions: dict[str, str], cache: Path) -> tuple[EnsembleScorer, dict[str, Any]]:
    pinned = {member: f"{p['name']}/{p['version']}" for member, p in spec["members"].items()}
    own = {
        member: load_model_version(tracking, *label.split("/"), cache)
        for member, label in pinned.items()
        if versions.get(member) != label
    }
    if own:
        log.info("%s also loads %s (pinned versions that are not the ones scored)", version, ", ".join(pinned[m] for m in own))
    scorers = {member: classifier.predict for member, classifier in own.items()}
    return EnsembleScorer(version=version, stacker=Stacker.from_dict(spec["stacker"]), members=pinned, scorers=scorers), own


load_models_task = task(load_models, name="load-models", cache_policy=NO_CACHE)
load_shadow_task = task(load_shadow, name="load-shadow", cache_policy=NO_CACHE)
