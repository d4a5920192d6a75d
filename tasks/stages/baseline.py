"""Train the baseline: TF-IDF and logistic regression on the same training split as the recurrent models.

It reads the raw texts of the rows `prepare` put in each split (validation held out the same
way), and is evaluated afterwards by `tasks/evaluate.py` like any other model.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from prefect import task
from sklearn import metrics as skm

from models.architectures import BASELINE, run_name
from models.baseline import BaselineClassifier
from tasks.core.caching import cache_key, reused, section, store_identity
from tasks.core.config import BaselineConfig
from tasks.core.processes import in_slot
from tasks.core.records import PreparedData, TrainedModel
from tasks.tracking import Tracking
from tasks.tracking.runs import finish_run, log_metrics, start_child_run

log = logging.getLogger("reviewflow")


def train_baseline(prepared: PreparedData, settings: BaselineConfig, tracking: Tracking, models_dir: Path) -> TrainedModel:
    """Fit the baseline on the train split; saved as arrays in `models_dir/baseline-tfidf`.

    Its history is one step: loss and accuracy on train and on validation, under the names the
    recurrent models' per-epoch metrics have.
    """
    name = run_name(BASELINE)
    params = {
        "architecture": BASELINE,
        **{k: v for k, v in settings.model_dump().items()},
        "tokenizer": "models.text.tokenize",
        "train_rows": prepared.rows["train"],
        "validation_rows": prepared.rows["validation"],
    }
    run_id = start_child_run(tracking, BASELINE, None, params)
    try:
        texts, labels = prepared.texts("train")
        # It runs in the flow's own process: a slot keeps it from crowding the trainings' cores.
        with in_slot():
            log.info("%s: training on %d reviews", name, len(texts))
            started = time.perf_counter()
            classifier = BaselineClassifier.fit(texts, labels, settings.settings())
            seconds = time.perf_counter() - started
            validation_texts, validation_labels = prepared.texts("validation")
            history = {
                **_loss_and_accuracy(labels, classifier.predict(texts), ""),
                **_loss_and_accuracy(validation_labels, classifier.predict(validation_texts), "val_"),
            }
        log_metrics(tracking, run_id, {k: v[0] for k, v in history.items()}, step=0)
        log_metrics(tracking, run_id, {"features": len(classifier.terms), "train_seconds": seconds})
    except BaseException:
        finish_run(tracking, run_id, succeeded=False)
        raise
    classifier_dir = Path(models_dir) / name
    classifier.save(classifier_dir)
    log.info("%s: trained in %.0f s (%d features, validation accuracy %.4f)", name, seconds, len(classifier.terms), history["val_accuracy"][0])
    return TrainedModel(
        architecture=BASELINE, seq_len=None, run_id=run_id, classifier_dir=classifier_dir, seconds=seconds, history=history
    )


def _loss_and_accuracy(labels: np.ndarray, probabilities: np.ndarray, prefix: str) -> dict[str, list[float]]:
    loss = skm.log_loss(labels, np.clip(probabilities, 1e-7, 1 - 1e-7), labels=[0, 1])
    accuracy = skm.accuracy_score(labels, (probabilities >= 0.5).astype(int))
    return {f"{prefix}loss": [float(loss)], f"{prefix}accuracy": [float(accuracy)]}


def baseline_key(prepared_fingerprint: str, settings: BaselineConfig, store: str, code: str) -> str:
    return cache_key("train-baseline", prepared=prepared_fingerprint, baseline=section(settings), store=store, code=code)


def baseline_inputs_key(inputs: dict[str, Any], code: str) -> str | None:
    tracking = inputs["tracking"]
    store = store_identity(tracking.tracking_uri, tracking.experiment_id)
    return baseline_key(inputs["prepared"].fingerprint, inputs["settings"], store, code)


train_baseline_task = task(train_baseline, name="train-baseline", task_run_name="train-baseline-tfidf", **reused(baseline_inputs_key))
