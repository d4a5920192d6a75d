"""The registered model versions a scoring run uses, loaded once by alias and pinned by version."""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.architectures import ENSEMBLE
from models.ensemble import Stacker
from tasks.config import TrackingConfig, tracking_settings
from tasks.errors import ReviewflowError
from tasks.records import ModelsInUse
from tasks.scoring.rows import EnsembleScorer
from tasks.tracking import Tracking, connect, load_model_version, load_registered_models, registered_ensemble, registered_name

log = logging.getLogger("reviewflow")


def load_models(architectures: list[str], alias: str, tracking_config: TrackingConfig) -> ModelsInUse:
    """The versions of `reviewflow-<arch>` that hold `alias`, loaded from the registry.

    With `ensemble` among them, `prob_ensemble` comes from the version of `reviewflow-ensemble`
    holding `alias` when there is one (else, with other models named, from their mean).
    """
    tracking = connect(tracking_settings(tracking_config))
    members = [a for a in architectures if a != ENSEMBLE]
    scorers, versions = load_registered_models(tracking, members, alias)
    ensemble = load_ensemble(tracking, alias, versions) if ENSEMBLE in architectures else None
    if ensemble is not None:
        versions[ENSEMBLE] = ensemble.version
    elif ENSEMBLE in architectures and not members:
        raise ReviewflowError(
            f"no version of {registered_name(tracking, ENSEMBLE)} has the alias {alias!r}: train first, or pick another --alias"
        )
    elif ENSEMBLE in architectures:
        log.warning("no version of %s has the alias %r: prob_ensemble is the mean of the other models", registered_name(tracking, ENSEMBLE), alias)
    log.info("scoring with %s", ", ".join(versions.values()))
    return ModelsInUse(versions=versions, scorers=scorers, ensemble=ensemble)


def load_ensemble(tracking: Tracking, alias: str, versions: dict[str, str]) -> EnsembleScorer | None:
    """The ensemble holding `alias`, with scorers for the pinned member versions that are not among `versions`."""
    found = registered_ensemble(tracking, alias)
    if found is None:
        return None
    version, spec = found
    pinned = {member: f"{p['name']}/{p['version']}" for member, p in spec["members"].items()}
    own = {
        member: load_model_version(tracking, *label.split("/"))
        for member, label in pinned.items()
        if versions.get(member) != label
    }
    if own:
        log.info("%s also loads %s (pinned versions that are not the ones scored)", version, ", ".join(pinned[m] for m in own))
    return EnsembleScorer(version=version, stacker=Stacker.from_dict(spec["stacker"]), members=pinned, scorers=own)


load_models_task = task(load_models, name="load-models", cache_policy=NO_CACHE)
