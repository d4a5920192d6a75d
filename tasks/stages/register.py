"""The registry: log and register each classifier, with the champion gate."""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.text import Vocabulary
from tasks.core.files import write_json
from tasks.core.records import Evaluation, Predictions, PreparedData, Registration
from tasks.registry.versions import GATE_METRIC, INPUT_EXAMPLE, apply_champion_gate, log_and_register, registered_name
from tasks.scoring.drift import profile_texts
from tasks.tracking import Tracking

log = logging.getLogger("reviewflow")


def register_model(evaluation: Evaluation, prepared: PreparedData, tracking: Tracking) -> Registration:
    """A new registry version; `champion` only if it is at least as accurate as the current one."""
    trained = evaluation.trained
    profile = reference_profile(evaluation, prepared)
    version = log_and_register(tracking, trained.run_id, trained.architecture, trained.classifier_dir, INPUT_EXAMPLE, profile)
    score = evaluation.metrics[GATE_METRIC]
    alias, champion_score = apply_champion_gate(tracking, trained.architecture, version, score)
    name = registered_name(tracking, trained.architecture)
    log.info("%s version %s is %s (%s %.4f, champion had %s)", name, version, alias, GATE_METRIC, score, champion_score)
    return Registration(architecture=trained.architecture, name=name, version=version, alias=alias, champion_score=champion_score)


def reference_profile(evaluation: Evaluation, prepared: PreparedData) -> Path:
    """The folder a version's drift reference travels in: the test split as this model scored it
    (tasks.scoring.drift.profile: lengths, out-of-vocabulary rate, predictions) and the vocabulary counted against."""
    folder = evaluation.trained.classifier_dir.parent / f"{evaluation.trained.classifier_dir.name}.reference_profile"
    folder.mkdir(parents=True, exist_ok=True)
    texts, _ = prepared.texts("test")
    vocabulary = Vocabulary.load(prepared.vocabulary_path)
    write_json(folder / "profile.json", profile_texts(texts, vocabulary, Predictions.load(evaluation.predictions_path).test))
    vocabulary.save(folder / "vocabulary.json")
    return folder


register_task = task(
    register_model, name="register", task_run_name="register-{evaluation.trained.architecture}", cache_policy=NO_CACHE
)
