"""The registered model versions a scoring run uses, loaded once by alias and pinned by version."""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.config import TrackingConfig, tracking_settings
from tasks.records import ModelsInUse
from tasks.tracking import connect, load_registered_models

log = logging.getLogger("reviewflow")


def load_models(architectures: list[str], alias: str, tracking_config: TrackingConfig) -> ModelsInUse:
    """The versions of `reviewflow-<arch>` that hold `alias`, loaded from the registry."""
    tracking = connect(tracking_settings(tracking_config))
    scorers, versions = load_registered_models(tracking, architectures, alias)
    log.info("scoring with %s", ", ".join(versions.values()))
    return ModelsInUse(versions=versions, scorers=scorers)


load_models_task = task(load_models, name="load-models", cache_policy=NO_CACHE)
