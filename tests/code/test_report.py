"""Pure functions of evaluation, preparation, reporting and the CLI's table, on tiny inputs."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flows.cli import format_table
from models.metrics import classification_metrics
from tasks.core.config import flatten
from tasks.core.records import Evaluation, TrainedModel
from tasks.stages.compare import CHECKS, checks_markdown, comparison_markdown, comparison_table, records, verdict
from tasks.stages.prepare import split_for_training
from tasks.tracking import Tracking


def test_classification_metrics_at_the_half_threshold():
    labels = np.array([1, 1, 0, 0])
    probabilities = np.array([0.9, 0.4, 0.6, 0.1])  # one false negative, one false positive
    metrics = classification_metrics(labels, probabilities)
    assert metrics["test_accuracy"] == pytest.approx(0.5)
    assert metrics["test_precision"] == pytest.approx(0.5)
    assert metrics["test_recall"] == pytest.approx(0.5)
    assert metrics["test_f1"] == pytest.approx(0.5)
    assert metrics["test_auc"] == pytest.approx(0.75)  # 3 of the 4 positive/negative pairs ranked right
    expected_loss = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert metrics["test_loss"] == pytest.approx(expected_loss)


def test_classification_metrics_survive_certain_and_one_sided_predictions():
    metrics = classification_metrics(np.array([1, 0]), np.array([1.0, 1.0]))
    assert metrics["test_accuracy"] == 0.5 and np.isfinite(metrics["test_loss"])
    assert classification_metrics(np.array([1, 0]), np.array([0.0, 0.0]))["test_precision"] == 0.0


def test_flatten_dots_nested_settings_but_keeps_seq_len_whole():
    flat = flatten({"profile": "smoke", "train": {"epochs": 1, "seq_len": {"rnn": 100}}, "data": {"cache": {"dir": "x"}}})
    assert flat == {"profile": "smoke", "train.epochs": 1, "train.seq_len": {"rnn": 100}, "data.cache.dir": "x"}


def test_split_for_training_carves_a_stratified_validation_split_from_train_only():
    reviews = pd.DataFrame(
        {
            "text": [f"review {i}" for i in range(60)],
            "label": [i % 2 for i in range(60)],
            "split": ["train"] * 40 + ["test"] * 20,
        }
    )
    splits = split_for_training(reviews, validation_fraction=0.25, seed=7)
    assert {name: len(frame) for name, frame in splits.items()} == {"train": 30, "validation": 10, "test": 20}
    assert splits["validation"]["label"].sum() == 5  # stratified: half positive
    assert set(splits["validation"].index).isdisjoint(splits["train"].index)
    assert (splits["test"]["split"] == "test").all()
    again = split_for_training(reviews, validation_fraction=0.25, seed=7)
    assert list(again["validation"].index) == list(splits["validation"].index)  # the seed fixes it


def _evaluation(architecture: str, seq_len: int | None, accuracy: float, auc: float = 0.9, seconds: float = 12.34) -> Evaluation:
    trained = TrainedModel(
        architecture=architecture, seq_len=seq_len, run_id=f"{architecture}0123456789", classifier_dir=Path("m"),
        seconds=seconds, history={},
    )
    return Evaluation(trained=trained, metrics={"test_accuracy": accuracy, "test_auc": auc, "test_f1": 0.8})


def test_comparison_table_and_markdown_name_each_model_with_its_registration_and_run():
    evaluations = [_evaluation("rnn", 100, 0.81234), _evaluation("bilstm", 2494, 0.9)]
    table = comparison_table(evaluations, {"rnn": ("3", "champion")})
    assert records(table)[0] == {
        "architecture": "rnn", "seq_len": 100, "test_accuracy": 0.8123, "test_auc": 0.9, "test_f1": 0.8,
        "train_seconds": 12.3, "seeds": 1, "test_accuracy_mean": 0.8123, "test_accuracy_std": 0.0,
        "acc_vs_baseline": None, "auc_vs_baseline": None, "time_x_baseline": None, "version": "3", "alias": "champion",
        **dict.fromkeys(CHECKS),  # this evaluation had no behaviour or robustness checks
        "worst_slice": "",  # nor slices
    }
    assert table["version"].tolist() == ["3", ""]  # bilstm was not registered

    server = Tracking(tracking_uri="http://127.0.0.1:5000", experiment_id="7", registered_model_prefix="reviewflow-")
    markdown = comparison_markdown(table, evaluations, server).splitlines()
    assert markdown[2].startswith("| rnn-100 | 0.8123 | 0.7674 |")  # with the notebook's figure
    assert "[rnn01234](http://127.0.0.1:5000/#/experiments/7/runs/rnn0123456789?workflowType=machine_learning)" in markdown[2]
    assert "| bilstm-2494 | 0.9000 | none |" in markdown[3]  # the notebook never finished it
    embedded = Tracking(tracking_uri="sqlite:///x.db", experiment_id="7", registered_model_prefix="reviewflow-")
    assert comparison_markdown(table, evaluations, embedded).splitlines()[2].endswith("| rnn01234 |")  # no UI to link


def test_margins_over_the_baseline_for_every_other_model():
    evaluations = [
        _evaluation("rnn", 100, 0.80, auc=0.87, seconds=40.0),
        _evaluation("bilstm", 2494, 0.85, auc=0.92, seconds=300.0),
        _evaluation("baseline", None, 0.90, auc=0.96, seconds=25.0),
        _evaluation("ensemble", None, 0.92, auc=0.97, seconds=366.0),
    ]
    table = comparison_table(evaluations, {})
    rows = {row["architecture"]: row for row in records(table)}
    assert (rows["rnn"]["acc_vs_baseline"], rows["rnn"]["auc_vs_baseline"], rows["rnn"]["time_x_baseline"]) == (-0.1, -0.09, 1.6)
    assert (rows["bilstm"]["acc_vs_baseline"], rows["bilstm"]["time_x_baseline"]) == (-0.05, 12.0)
    assert (rows["ensemble"]["acc_vs_baseline"], rows["ensemble"]["auc_vs_baseline"]) == (0.02, 0.01)
    # The baseline is the reference: no margins on its own row; no length for the models that read text.
    assert [rows["baseline"][k] for k in ("acc_vs_baseline", "auc_vs_baseline", "time_x_baseline")] == [None, None, None]
    assert rows["baseline"]["seq_len"] == "" and rows["rnn"]["seq_len"] == 100

    server = Tracking(tracking_uri="sqlite:///x.db", experiment_id="7", registered_model_prefix="reviewflow-")
    markdown = comparison_markdown(table, evaluations, server)
    assert "| accuracy vs baseline | AUC vs baseline | time vs baseline |" in markdown.splitlines()[0]
    assert "| bilstm-2494 | 0.8500 | none | 0.9200 | 0.8000 | 300 | 1 | 0.8500 ± 0.0000 | -0.0500 | -0.0400 | 12.0x |" in markdown
    assert "| baseline-tfidf | 0.9000 | none | 0.9600 | 0.8000 | 25 | 1 | 0.9000 ± 0.0000 |  |  |  |" in markdown
    assert "| ensemble-stacked | 0.9200 |" in markdown and "members' added up" in markdown
    assert verdict(table) == (
        " Best recurrent model bilstm-2494: -0.0500 accuracy and -0.0400 AUC against the TF-IDF baseline, for 12.0x its training time."
    )
    assert verdict(comparison_table(evaluations[:2], {})) == ""  # no baseline, no margins


def test_format_table_aligns_text_left_and_numbers_right():
    rows = [{"model": "rnn", "accuracy": 0.81234, "seconds": 38}, {"model": "bilstm", "accuracy": 0.9, "seconds": 301}]
    assert format_table(rows).splitlines() == [
        "model   accuracy  seconds",
        "------  --------  -------",
        "rnn       0.8123       38",
        "bilstm    0.9000      301",
    ]
    blanks = [{"model": "baseline", "margin": None}, {"model": "rnn", "margin": -0.05}]
    assert format_table(blanks).splitlines()[2:] == ["baseline         ", "rnn       -0.0500"]


def _seed(architecture: str, seed: int, test_accuracy: float, validation_accuracy: float, seconds: float = 10.0) -> Evaluation:
    trained = TrainedModel(
        architecture=architecture, seq_len=100, run_id=f"{architecture}{seed}", classifier_dir=Path("m"), seconds=seconds,
        history={}, seed=seed, several_seeds=True,
    )
    metrics = {"test_accuracy": test_accuracy, "test_auc": test_accuracy + 0.05, "test_f1": 0.8, "validation_accuracy": validation_accuracy}
    return Evaluation(trained=trained, metrics=metrics)


def test_the_jobs_of_a_run_are_each_architecture_and_seed_with_its_own_settings_name_and_cost(tmp_path):
    from models.architectures import recurrent_macs_per_token
    from models.batching import Sequences
    from tasks.core.config import load_config
    from tasks.core.records import PreparedData
    from tasks.stages.train import training_jobs

    for seq_len, length in ((100, 100), (2494, 300)):  # four training reviews of 300 words each
        Sequences.from_list([np.full(length, 2, dtype=np.int32)] * 4).save(tmp_path / f"train-{seq_len}.npz")
    np.save(tmp_path / "train-labels.npy", np.array([0, 1, 0, 1]))
    prepared = PreparedData(folder=tmp_path, table_path=tmp_path / "t.parquet", vocab_size=10, keep="end", rows={"train": 4})
    config = load_config("smoke", ["train.seeds=2", "train.seed=7", "train.architectures=rnn,baseline,bilstm"])

    jobs = training_jobs(config, prepared)
    assert [j.name for j in jobs] == ["rnn-100-seed7", "rnn-100-seed8", "baseline-tfidf", "bilstm-2494-seed7", "bilstm-2494-seed8"]
    assert [(j.seed, j.settings.seeds) for j in jobs if j.settings] == [(7, 1), (8, 1), (7, 1), (8, 1)]
    assert jobs[3].settings.learning_rate == config.train.by_architecture["bilstm"]["learning_rate"] != jobs[0].settings.learning_rate
    assert jobs[0].cost == 3 * config.train.epochs * 4 * 100 * recurrent_macs_per_token("rnn")
    assert jobs[3].cost > jobs[0].cost > jobs[2].cost == 0  # the baseline has no recurrent layers
    assert [j.name for j in training_jobs(config.model_copy(update={"train": config.train.model_copy(update={"seeds": 1})}), prepared)] == [
        "rnn-100", "baseline-tfidf", "bilstm-2494"]


def test_the_registered_seed_is_picked_on_validation_and_the_figures_are_over_every_seed():
    from tasks.stages.seeds import best_seeds, seed_summary

    every_seed = [_seed("rnn", 42, 0.80, 0.79, 30), _seed("rnn", 43, 0.84, 0.78, 50), _seed("rnn", 44, 0.82, 0.81, 40),
                  _seed("bigru", 42, 0.85, 0.84)]
    assert [e.trained.name for e in every_seed[:2]] == ["rnn-100-seed42", "rnn-100-seed43"]
    # The best validation accuracy, not the best test accuracy (seed 43) picks rnn's registered model.
    assert [(e.trained.architecture, e.trained.seed) for e in best_seeds(every_seed)] == [("rnn", 44), ("bigru", 42)]
    summary = seed_summary(every_seed)
    assert summary["rnn"]["seeds"] == 3 and summary["rnn"]["test_accuracy_mean"] == pytest.approx(0.82)
    assert summary["rnn"]["test_accuracy_std"] == pytest.approx(0.02)  # sample standard deviation (n - 1)
    assert (summary["rnn"]["test_accuracy_min"], summary["rnn"]["test_accuracy_max"]) == (0.80, 0.84)
    assert summary["rnn"]["train_seconds_median"] == 40
    assert summary["bigru"]["seeds"] == 1 and summary["bigru"]["test_accuracy_std"] == 0.0

    rows = {r["architecture"]: r for r in records(comparison_table(best_seeds(every_seed), {}, summary))}
    assert (rows["rnn"]["test_accuracy"], rows["rnn"]["seeds"], rows["rnn"]["test_accuracy_mean"]) == (0.82, 3, 0.82)
    assert rows["rnn"]["test_accuracy_std"] == 0.02


def test_the_seeds_table_is_shown_only_when_some_architecture_has_several():
    from tasks.stages.compare import seeds_markdown

    assert seeds_markdown([_seed("rnn", 42, 0.8, 0.8)]) == ""
    shown = seeds_markdown([_seed("rnn", 42, 0.8, 0.79), _seed("rnn", 43, 0.84, 0.78)])
    assert "| rnn | 43 | 0.8400 | 0.8900 | 0.7800 | 10 |" in shown and "best validation accuracy" in shown


def test_behaviour_and_robustness_figures_are_shown_for_the_models_that_have_them():
    checked = _evaluation("rnn", 100, 0.85)
    checked.metrics.update({"behaviour_pass_rate": 0.8123, "behaviour_mft_negation_pass_rate": 0.25,
                            "robust_first_50_words_accuracy": 0.7712})
    table = comparison_table([checked, _evaluation("ensemble", None, 0.9)], {})
    rows = {row["architecture"]: row for row in records(table)}
    assert (rows["rnn"]["behaviour_pass_rate"], rows["rnn"]["behaviour_negation"]) == (0.8123, 0.25)
    assert rows["rnn"]["robust_first_50_words"] == 0.7712 and rows["rnn"]["behaviour_mft"] is None
    shown = checks_markdown(table)
    assert "| rnn-100 | 0.8500 | 0.812 |  | 0.250 |  |  |  | 0.771 |" in shown
    assert "ensemble" not in shown  # no checks, no row
    assert checks_markdown(comparison_table([_evaluation("rnn", 100, 0.85)], {})) == ""
