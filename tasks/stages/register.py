"""Register: each model as a text-in registry version, past the champion gate, with its model card and drift reference.

The gate compares like with like: the current champion is scored again, through its own registered
pyfunc, on the same test reviews the candidate was evaluated on, in this run (tasks.registry.gate
decides). Everything a version's card needs is gathered and checked before anything is registered,
so a version never lands without its card.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from models.metrics import classification_metrics
from models.slices import flat_slice_metrics, slice_metrics, slices_from_metrics
from models.text import Vocabulary
from tasks.core.config import RegistryConfig
from tasks.core.errors import redacted
from tasks.core.files import write_json
from tasks.core.provenance import git_commit
from tasks.core.records import Evaluation, Predictions, PreparedData, Registration, ReviewTable
from tasks.registry.cards import model_card
from tasks.registry.gate import Verdict, decide, scores_of
from tasks.registry.versions import (
    CHAMPION,
    GATE_METRIC,
    INPUT_EXAMPLE,
    log_and_register,
    registered_name,
    score_version,
    set_alias,
    set_description,
    set_model_version_tags,
    version_with_alias,
)
from tasks.scoring.drift import profile_texts
from tasks.tracking import Tracking
from tasks.tracking.recorded import run_params

log = logging.getLogger("reviewflow")


def register_model(
    evaluation: Evaluation, prepared: PreparedData, table: ReviewTable, settings: RegistryConfig, tracking: Tracking, tags: dict[str, str] | None = None
) -> Registration:
    """A new registry version of the evaluated model: `champion` if the gate promotes it, else `challenger`;
    its `gate.*` tags, `tags`, its model card as description and its drift reference travel with it."""
    trained = evaluation.trained
    name = registered_name(tracking, trained.architecture)
    verdict, champion = gate(evaluation, prepared, settings, tracking, name)
    evidence = card_evidence(evaluation, prepared, table, verdict, tracking)
    model_card(name, "new", evidence)  # every piece of evidence is there before anything is registered
    version = log_and_register(tracking, trained.run_id, trained.architecture, trained.classifier_dir, INPUT_EXAMPLE, reference_profile(evaluation, prepared))
    figures = verdict.figures()
    set_model_version_tags(tracking, name, version, {**figures, GATE_METRIC: f"{evaluation.metrics[GATE_METRIC]:.4f}", **(tags or {})})
    set_description(tracking, name, version, model_card(name, version, evidence))
    set_alias(tracking, name, verdict.alias, version)
    log.info("%s version %s: %s, %s (%s)", name, version, verdict.verdict, verdict.alias, verdict.reason)
    return Registration(architecture=trained.architecture, name=name, version=version, alias=verdict.alias, verdict=verdict.verdict,
                        champion=champion or "", gate=figures)


def gate(evaluation: Evaluation, prepared: PreparedData, settings: RegistryConfig, tracking: Tracking, name: str) -> tuple[Verdict, str | None]:
    """The gate's verdict on the candidate against the version holding `champion` (scored again here), and that version."""
    candidate = scores_of(evaluation.metrics)
    champion = version_with_alias(tracking, name, CHAMPION)
    if champion is None:
        return decide(candidate, None, settings.gate_margin, settings.slice_margin), None
    texts, labels = prepared.texts("test")
    log.info("%s: scoring the champion, version %s, on the same %d test reviews", name, champion.version, len(texts))
    probabilities = score_version(tracking, name, champion.version, texts)
    slices = slice_metrics(labels, probabilities, prepared.token_lengths("test"), prepared.ratings("test"))
    scores = scores_of({**classification_metrics(labels, probabilities), **flat_slice_metrics(slices)})
    return decide(candidate, scores, settings.gate_margin, settings.slice_margin), f"{name}/{champion.version}"


def card_evidence(evaluation: Evaluation, prepared: PreparedData, table: ReviewTable, verdict: Verdict, tracking: Tracking) -> dict:
    """What the model card is made of, all from this run's record: data, code, settings, metrics, slices, behaviour, gate."""
    trained, metrics = evaluation.trained, evaluation.metrics
    return {
        "data_source": redacted(table.source),
        "data_digest": table.digest,
        "commit": git_commit(mark_dirty=True),
        "settings": run_params(tracking, trained.run_id),
        "metrics": {k: v for k, v in metrics.items() if k.startswith("test_") or k == "validation_accuracy"},
        "slices": slices_from_metrics(metrics),
        "behaviour": {k: v for k, v in metrics.items() if k.startswith("behaviour_") and k.endswith("pass_rate")},
        "gate": {"verdict": verdict.verdict, "reason": verdict.reason, "figures": verdict.figures()},
        "run_id": trained.run_id,
        "architecture": trained.architecture,
        "seq_len": trained.seq_len,
        "keep": prepared.keep,
    }


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
