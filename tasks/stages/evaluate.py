"""Evaluate a trained classifier on the test split: metrics and plots on its child run.

Every family goes through here (recurrent models on their token ids, the baseline on raw
text), and the ensemble's evaluation uses the same metrics and plots (`record_evaluation`).
Each trained model is also put through the behavioural suite (`models.behaviour`) and scored
on altered copies of the test reviews (`models.robustness`), both through its `predict(texts)`.
The ensemble is not: it has no text-in model here, only its members' kept probabilities.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from prefect import task
from sklearn import metrics as skm

from models.architectures import recurrent_macs_per_token
from models.baseline import BaselineClassifier
from models.behaviour import run_suite
from models.classifiers import load_classifier
from models.metrics import classification_metrics
from models.robustness import altered_accuracies, stratified_sample
from models.sentiment import SentimentClassifier
from models.slices import flat_slice_metrics, slice_metrics
from tasks.core.caching import cache_key, reused, section
from tasks.core.config import EvaluationConfig
from tasks.core.markdown import markdown_table
from tasks.core.processes import in_own_process, limit_threads
from tasks.core.records import Evaluation, Predictions, PreparedData, TrainedModel
from tasks.registry.cards import slices_markdown
from tasks.tracking import Tracking
from tasks.tracking.runs import finish_run, log_figure, log_metrics, log_table, log_text

log = logging.getLogger("reviewflow")


def evaluate_model(
    trained: TrainedModel, prepared: PreparedData, tracking: Tracking, threads: int, settings: EvaluationConfig
) -> Evaluation:
    """Score the validation and test splits; log test metrics, curves, confusion matrix and ROC to the child run,
    with the behavioural suite's pass rates and the accuracies on altered test reviews when `settings` ask.

    The validation probabilities are kept (not logged as metrics): the ensemble is fitted on them.
    """
    limit_threads(threads)
    classifier = load_classifier(trained.classifier_dir)
    probabilities, labels = {}, {}
    for split in ("validation", "test"):
        if isinstance(classifier, BaselineClassifier):
            texts, labels[split] = prepared.texts(split)
            probabilities[split] = classifier.predict(texts)
        else:
            sequences, labels[split] = prepared.load(split, trained.seq_len)
            probabilities[split] = classifier.predict_sequences(sequences)
    predictions = Predictions(
        validation=probabilities["validation"], validation_labels=labels["validation"],
        test=probabilities["test"], test_labels=labels["test"],
    )
    checks = {}
    if settings.behaviour:
        checks |= behaviour_checks(classifier.predict, tracking, trained.run_id)
    if settings.robustness:
        texts, _ = prepared.texts("test")
        checks |= robustness_checks(classifier.predict, texts, predictions, settings.robustness_reviews, tracking, trained.run_id)
    return record_evaluation(trained, predictions, prepared, tracking, model_summary(classifier), checks)


def behaviour_checks(predict: Callable[[list[str]], np.ndarray], tracking: Tracking, run_id: str) -> dict[str, float]:
    """The behavioural suite's pass rates (`behaviour_<test>_pass_rate`, `behaviour_pass_rate` for all cases);
    the table and every failing case go to the run as `behaviour/summary.md` and `behaviour/report.json`."""
    report = run_suite(predict)
    log_text(tracking, run_id, json.dumps(report.to_dict(), indent=2), "behaviour/report.json")
    log_text(tracking, run_id, report.markdown(), "behaviour/summary.md")
    rates = report.pass_rates()
    overall = rates.pop("overall")
    return {"behaviour_pass_rate": overall, **{f"behaviour_{name}_pass_rate": rate for name, rate in rates.items()}}


def robustness_checks(
    predict: Callable[[list[str]], np.ndarray],
    texts: list[str],
    predictions: Predictions,
    reviews: int | None,
    tracking: Tracking,
    run_id: str,
) -> dict[str, float]:
    """Accuracy on each altered copy of the test reviews (`robust_<alteration>_accuracy`), beside the clean
    accuracy on the same reviews (`robust_clean_accuracy`) and how many they were (`robust_reviews`: all of
    them, or a stratified sample of `reviews`); the table goes to the run as `robustness/summary.md`."""
    labels = predictions.test_labels
    rows = stratified_sample(labels, reviews) if reviews is not None else np.arange(len(labels))
    clean = float(((predictions.test[rows] >= 0.5) == labels[rows]).mean())
    accuracies = {"clean": clean, **altered_accuracies(predict, [texts[i] for i in rows], labels[rows])}
    table = markdown_table(["alteration", "accuracy", "change"], [[name, f"{value:.4f}", f"{value - clean:+.4f}"] for name, value in accuracies.items()])
    log_text(tracking, run_id, f"Accuracy on {len(rows):,} of the {len(labels):,} test reviews, as they are and altered.\n\n{table}\n", "robustness/summary.md")
    return {"robust_reviews": len(rows), **{f"robust_{name}_accuracy": value for name, value in accuracies.items()}}


def record_evaluation(
    trained: TrainedModel, predictions: Predictions, prepared: PreparedData, tracking: Tracking, summary: str,
    checks: dict[str, float] | None = None,
) -> Evaluation:
    """Test metrics overall and per slice (and the `checks` already made) and plots on the model's child run,
    which this finishes; the predictions kept beside its folder."""
    path = trained.classifier_dir.parent / f"{trained.classifier_dir.name}.predictions.npz"
    predictions.save(path)
    slices = slice_metrics(predictions.test_labels, predictions.test, prepared.token_lengths("test"), prepared.ratings("test"))
    log_text(tracking, trained.run_id, slices_markdown(slices) + "\n", "slices/summary.md")
    log_table(tracking, trained.run_id, pd.DataFrame([{"slice": name, **figures} for name, figures in slices.items()]), "slices/table.json")
    results = {**classification_metrics(predictions.test_labels, predictions.test), **flat_slice_metrics(slices), **(checks or {})}
    # Of the model as kept (its best epoch, when restored): what picks the seed to register, never test.
    results["validation_accuracy"] = float(((predictions.validation >= 0.5) == predictions.validation_labels).mean())
    log_metrics(tracking, trained.run_id, results)
    if trained.history:
        log_figure(tracking, trained.run_id, training_curves(trained.history), "plots/training_curves.png")
    log_figure(tracking, trained.run_id, confusion_matrix_plot(predictions.test_labels, predictions.test), "plots/confusion_matrix.png")
    log_figure(tracking, trained.run_id, roc_plot(predictions.test_labels, predictions.test), "plots/roc_curve.png")
    log_text(tracking, trained.run_id, summary, "model_summary.txt")
    plt.close("all")
    finish_run(tracking, trained.run_id, succeeded=True)
    log.info("%s: test accuracy %.4f, AUC %.4f", trained.name, results["test_accuracy"], results["test_auc"])
    return Evaluation(trained=trained, metrics=results, predictions_path=path)


def model_summary(classifier: SentimentClassifier | BaselineClassifier) -> str:
    if isinstance(classifier, BaselineClassifier):
        return classifier.summary()
    lines: list[str] = []
    classifier.model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)


def training_curves(history: dict[str, list[float]]) -> plt.Figure:
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--o")):
            if key in history:
                epochs = range(1, len(history[key]) + 1)
                axis.plot(epochs, history[key], style, label=key)
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.legend()
    figure.tight_layout()
    return figure


def confusion_matrix_plot(labels: np.ndarray, probabilities: np.ndarray) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(4.5, 4))
    skm.ConfusionMatrixDisplay.from_predictions(
        labels, (probabilities >= 0.5).astype(int), display_labels=["negative", "positive"], ax=axis, colorbar=False
    )
    figure.tight_layout()
    return figure


def roc_plot(labels: np.ndarray, probabilities: np.ndarray) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(4.5, 4))
    skm.RocCurveDisplay.from_predictions(labels, probabilities, ax=axis)
    axis.plot([0, 1], [0, 1], ":", color="grey")
    figure.tight_layout()
    return figure


def evaluate_in_own_process(
    trained: TrainedModel, prepared: PreparedData, tracking: Tracking, threads: int, settings: EvaluationConfig
) -> Evaluation:
    """`evaluate_model` in a process of its own, like the training (see tasks.core.processes)."""
    return in_own_process(evaluate_model, trained.name, trained, prepared, tracking, threads, settings, cost=evaluation_cost(trained, prepared))


def evaluation_cost(trained: TrainedModel, prepared: PreparedData) -> float:
    """Multiply-adds of one forward pass over the test split (the baseline's are not counted: it is quick)."""
    if trained.seq_len is None:
        return 0.0
    tokens = prepared.load("test", trained.seq_len)[0].tokens.size
    return tokens * recurrent_macs_per_token(trained.architecture)


def evaluate_key(
    trained_run_id: str, prepared_fingerprint: str, seq_len: int | None, settings: EvaluationConfig, code: str
) -> str:
    return cache_key(
        "evaluate", trained=trained_run_id, prepared=prepared_fingerprint, seq_len=seq_len,
        evaluation=section(settings), code=code,
    )


def evaluate_inputs_key(inputs: dict[str, Any], code: str) -> str | None:
    trained: TrainedModel = inputs["trained"]
    return evaluate_key(trained.run_id, inputs["prepared"].fingerprint, trained.seq_len, inputs["settings"], code)


evaluate_task = task(
    evaluate_in_own_process,
    name="evaluate",
    task_run_name="evaluate-{trained.name}",
    **reused(evaluate_inputs_key),
)
