"""The registry: log and register each classifier with the champion gate; load versions by alias."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from tasks.config import TrackingConfig, tracking_settings
from tasks.evaluate import Evaluation
from tasks.tracking import (
    GATE_METRIC,
    Tracking,
    apply_champion_gate,
    connect,
    load_registered_models,
    log_and_register,
    registered_name,
)

log = logging.getLogger("reviewflow")
INPUT_EXAMPLE = pd.DataFrame(
    {"text": ["A moving story, wonderfully acted.", "Dull plot and wooden dialogue; I left early."]}
)


class Registration(BaseModel):
    architecture: str
    name: str
    version: str
    alias: str
    champion_score: float | None


@task(name="register", cache_policy=NO_CACHE, task_run_name="register-{evaluation.trained.architecture}")
def register_model(evaluation: Evaluation, tracking: Tracking) -> Registration:
    """A new registry version; `champion` only if it is at least as accurate as the current one."""
    trained = evaluation.trained
    version = log_and_register(tracking, trained.run_id, trained.architecture, trained.classifier_dir, INPUT_EXAMPLE)
    score = evaluation.metrics[GATE_METRIC]
    alias, champion_score = apply_champion_gate(tracking, trained.architecture, version, score)
    name = registered_name(tracking, trained.architecture)
    log.info("%s version %s is %s (%s %.4f, champion had %s)", name, version, alias, GATE_METRIC, score, champion_score)
    return Registration(architecture=trained.architecture, name=name, version=version, alias=alias, champion_score=champion_score)


class ModelsInUse(BaseModel):
    """The registered versions a scoring run uses, with a scorer (texts -> P(positive)) for each."""

    model_config = {"arbitrary_types_allowed": True}
    versions: dict[str, str]
    scorers: dict[str, Any]


@task(name="load-models", cache_policy=NO_CACHE)
def load_models(architectures: list[str], alias: str, tracking_config: TrackingConfig) -> ModelsInUse:
    """The versions of `reviewflow-<arch>` that hold `alias`, loaded from the registry."""
    tracking = connect(tracking_settings(tracking_config))
    scorers, versions = load_registered_models(tracking, architectures, alias)
    log.info("scoring with %s", ", ".join(versions.values()))
    return ModelsInUse(versions=versions, scorers=scorers)
