"""The registry: log and register each classifier, with the champion gate."""

from __future__ import annotations

import logging

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core.records import Evaluation, Registration
from tasks.registry.versions import GATE_METRIC, INPUT_EXAMPLE, apply_champion_gate, log_and_register, registered_name
from tasks.tracking import Tracking

log = logging.getLogger("reviewflow")
def register_model(evaluation: Evaluation, tracking: Tracking) -> Registration:
    """A new registry version; `champion` only if it is at least as accurate as the current one."""
    trained = evaluation.trained
    version = log_and_register(tracking, trained.run_id, trained.architecture, trained.classifier_dir, INPUT_EXAMPLE)
    score = evaluation.metrics[GATE_METRIC]
    alias, champion_score = apply_champion_gate(tracking, trained.architecture, version, score)
    name = registered_name(tracking, trained.architecture)
    log.info("%s version %s is %s (%s %.4f, champion had %s)", name, version, alias, GATE_METRIC, score, champion_score)
    return Registration(architecture=trained.architecture, name=name, version=version, alias=alias, champion_score=champion_score)


register_task = task(
    register_model, name="register", task_run_name="register-{evaluation.trained.architecture}", cache_policy=NO_CACHE
)
