"""The evaluation of one model on a real MLflow store: the behavioural suite and the robustness figures on its child run."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.baseline import BaselineClassifier, BaselineSettings
from models.slices import token_lengths
from tasks.core.config import EvaluationConfig, TrackingConfig
from tasks.core.records import PreparedData, TrainedModel
from tasks.stages.evaluate import evaluate_model
from tasks.tracking import connect
from tasks.tracking.runs import start_child_run, start_parent_run

GOOD, BAD = ["great", "wonderful", "loved", "superb"], ["awful", "boring", "hated", "dull"]


def _reviews(rng: np.random.Generator, count: int) -> tuple[list[str], np.ndarray]:
    labels = rng.integers(0, 2, count)
    texts = [
        f"The film was {rng.choice(GOOD if label else BAD)}.<br /><br />I {rng.choice(['really', 'truly'])} thought it "
        f"{rng.choice(GOOD if label else BAD)} and {rng.choice(GOOD + BAD)}!"
        for label in labels
    ]
    return texts, labels


@pytest.fixture(scope="module")
def evaluate_baseline(tmp_path_factory):
    """Evaluate a tiny baseline with the given settings, in a child run of one store (made once: it takes seconds)."""
    tmp_path = tmp_path_factory.mktemp("evaluate")
    rng = np.random.default_rng(0)
    texts, labels = _reviews(rng, 160)
    table = tmp_path / "reviews.parquet"
    pd.DataFrame({"text": texts}).to_parquet(table)
    prepared = PreparedData(folder=tmp_path, table_path=table, vocab_size=10, keep="end", rows={"validation": 40, "test": 80})
    for split, rows in (("validation", np.arange(40, 80)), ("test", np.arange(80, 160))):
        np.save(tmp_path / f"{split}-rows.npy", rows)
        np.save(tmp_path / f"{split}-labels.npy", labels[rows])
        np.save(tmp_path / f"{split}-token-lengths.npy", token_lengths([texts[i] for i in rows]))
        np.save(tmp_path / f"{split}-ratings.npy", np.where(labels[rows] == 1, 9.0, 2.0))  # all strongly rated
    BaselineClassifier.fit(texts[:40], labels[:40], BaselineSettings(min_df=1)).save(tmp_path / "models" / "baseline-tfidf")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    store = TrackingConfig(experiment="t", tracking_uri=uri, artifact_location=str(tmp_path / "a"), registered_model_prefix="t-")
    tracking = connect(store)
    tracking = tracking.model_copy(update={"parent_run_id": start_parent_run(tracking, "smoke-1", {}, {})})

    def evaluate(settings: EvaluationConfig):
        run_id = start_child_run(tracking, "baseline", None, {})
        trained = TrainedModel(architecture="baseline", seq_len=None, run_id=run_id,
                               classifier_dir=tmp_path / "models" / "baseline-tfidf", seconds=1.0, history={})
        return evaluate_model(trained, prepared, tracking, 1, settings), tracking.client()

    return evaluate


def test_the_suite_s_pass_rates_and_the_altered_accuracies_are_logged_and_kept(evaluate_baseline):
    evaluation, client = evaluate_baseline(EvaluationConfig(robustness_reviews=20))
    metrics = evaluation.metrics
    for name in ("behaviour_pass_rate", "behaviour_mft_pass_rate", "behaviour_invariance_pass_rate",
                 "behaviour_direction_pass_rate", "behaviour_mft_negation_pass_rate", "behaviour_inv_names_pass_rate",
                 "behaviour_dir_add_negative_pass_rate", "robust_clean_accuracy", "robust_lowercase_no_punctuation_accuracy",
                 "robust_first_50_words_accuracy", "robust_without_line_breaks_accuracy"):
        assert 0 <= metrics[name] <= 1, name
    assert metrics["robust_reviews"] == 20
    # The tokenizer removes line breaks itself: the same words, the same accuracy.
    assert metrics["robust_without_line_breaks_accuracy"] == metrics["robust_clean_accuracy"]

    run = client.get_run(evaluation.trained.run_id)
    assert run.info.status == "FINISHED"
    assert {k: run.data.metrics[k] for k in metrics} == pytest.approx(metrics)
    artifacts = {a.path for folder in ("behaviour", "robustness", "slices") for a in client.list_artifacts(run.info.run_id, folder)}
    assert artifacts == {"behaviour/report.json", "behaviour/summary.md", "robustness/summary.md", "slices/summary.md", "slices/table.json"}
    # Every test review is in one length slice, and (all rated 2 or 9 here) in the strong-rating slice.
    assert sum(metrics[f"slice_length_{s}_rows"] for s in ("0_100", "101_300", "over_300") if f"slice_length_{s}_rows" in metrics) == 80
    assert metrics["slice_rating_strong_rows"] == 80 and metrics["slice_rating_strong_accuracy"] == metrics["test_accuracy"]
    assert "slice_rating_mild_rows" not in metrics
    report = json.loads(Path(client.download_artifacts(run.info.run_id, "behaviour/report.json")).read_text())
    assert report["pass_rates"]["overall"] == round(metrics["behaviour_pass_rate"], 4)
    tests = report["tests"].values()
    assert sum(len(t["failures"]) for t in tests) == sum(t["cases"] - t["passed"] for t in tests)


def test_all_test_reviews_by_default_and_no_checks_when_switched_off(evaluate_baseline):
    evaluation, _ = evaluate_baseline(EvaluationConfig())
    assert evaluation.metrics["robust_reviews"] == 80
    assert evaluation.metrics["robust_clean_accuracy"] == evaluation.metrics["test_accuracy"]

    evaluation, client = evaluate_baseline(EvaluationConfig(behaviour=False, robustness=False))
    assert not [k for k in evaluation.metrics if k.startswith(("behaviour_", "robust_"))]
    assert not client.list_artifacts(evaluation.trained.run_id, "behaviour")
