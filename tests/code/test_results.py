"""The results tables' pure functions (tasks/results.py) on plain data: figures over seeds, setting differences, markers."""

import statistics

import pytest

from tasks.core.config import flatten, load_config
from tasks.core.errors import ReviewflowError
from tasks.core.records import ModelRun, TrainingRun
from tasks.report import (
    ABSENT,
    ablation,
    change_label,
    changes,
    default_settings,
    replace_between_markers,
    report_figures,
    report_markdown,
    reproduce_command,
    settings,
    shown,
    summarize,
)


def _model(architecture: str, seed: int | None, accuracy: float, seconds: float | None = 10.0, seq_len: int | None = 100) -> ModelRun:
    metrics = {"test_accuracy": accuracy, "test_auc": accuracy + 0.05, "test_f1": accuracy}
    if seconds is not None:
        metrics["train_seconds"] = seconds
    return ModelRun(run_id=f"{architecture}-{seed}", architecture=architecture, seed=seed, seq_len=seq_len, metrics=metrics)


def _params(profile: str, *overrides: str) -> dict[str, str]:
    """A training's params as MLflow holds them: the flattened config, as text."""
    return {k: str(v) for k, v in flatten(load_config(profile, list(overrides)).model_dump(mode="json")).items()}


def _training(run_id: str, params: dict[str, str], models: list[ModelRun], profile: str = "smoke") -> TrainingRun:
    return TrainingRun(run_id=run_id, name=f"{profile}-{run_id}", status="FINISHED", start_time_ms=1_764_400_000_000,
                       profile=profile, commit="0123456789abcdef", params=params, models=models)


def test_summarize_gives_mean_sample_std_range_and_median_per_architecture_over_seeds():
    runs = [_model("bigru", 3, 0.80, 30.0), _model("rnn", 2, 0.70, 5.0), _model("rnn", 1, 0.74, 9.0), _model("rnn", 3, 0.72, 7.0)]
    runs.append(_model("baseline", None, 0.88, None, seq_len=None))
    rnn, bigru, baseline = summarize(runs)
    assert [r["architecture"] for r in (rnn, bigru, baseline)] == ["rnn", "bigru", "baseline"]  # SCORING_MODELS order
    assert rnn["seeds"] == [1, 2, 3] and rnn["test_accuracy"] == [0.74, 0.70, 0.72]  # each seed, in seed order
    assert rnn["mean_accuracy"] == pytest.approx(0.72)
    assert rnn["std_accuracy"] == pytest.approx(0.02)  # sample (n - 1) standard deviation
    assert (rnn["min_accuracy"], rnn["max_accuracy"]) == (0.70, 0.74)
    assert rnn["mean_auc"] == pytest.approx(0.77) and rnn["median_train_seconds"] == 7.0
    assert rnn["seq_len"] == [100] and rnn["notebook_accuracy"] == 0.7674
    assert bigru["std_accuracy"] is None  # one seed: no spread
    assert baseline["seeds"] == [None] and baseline["median_train_seconds"] is None and baseline["seq_len"] == []


def test_a_model_run_without_test_accuracy_is_left_out():
    failed = ModelRun(run_id="x", architecture="rnn", seed=4, seq_len=100, metrics={})
    (rnn,) = summarize([_model("rnn", 1, 0.7), failed])
    assert rnn["seeds"] == [1]


def test_settings_parse_params_split_dicts_and_drop_paths_and_servers():
    params = {"train.epochs": "2", "train.seq_len": "{'rnn': 100, 'bilstm': 400}", "data.reviews_per_split": "None",
              "prepare.keep": "end", "baseline.ngram_range": "[1, 2]", "output_dir": "data/runs", "tracking.experiment": "None",
              "data.source": "/somewhere/aclImdb.tar.gz", "train.max_workers": "2", "ensemble.enabled": "True"}
    assert settings(params) == {
        "train.epochs": 2, "train.seq_len.rnn": 100, "train.seq_len.bilstm": 400, "data.reviews_per_split": None,
        "prepare.keep": "end", "baseline.ngram_range": [1, 2], "ensemble.enabled": True,
    }


def test_a_profile_run_with_nothing_set_differs_from_its_defaults_in_nothing():
    assert changes(default_settings("smoke"), settings(_params("smoke"))) == {}
    assert reproduce_command("smoke", {}) == "reviewflow train --profile smoke"


def test_the_reproduce_command_sets_what_differs_from_the_profile_and_the_cli_accepts_it():
    params = _params("default", "train.epochs=2", "train.seq_len.bilstm=400", "data.reviews_per_split=500",
                     "baseline.ngram_range=[1,2]", "train.architectures=rnn,bigru", "train.by_architecture.bilstm.dropout=0.1")
    changed = changes(default_settings("default"), settings(params))
    command = reproduce_command("default", changed)
    assert command == (
        "reviewflow train --profile default --set 'baseline.ngram_range=[1,2]' --set data.reviews_per_split=500 "
        "--set 'train.architectures=[rnn,bigru]' --set train.by_architecture.bilstm.dropout=0.1 --set train.epochs=2 "
        "--set train.seq_len.bilstm=400"
    )
    overrides = [part.strip("'") for part in command.split(" --set ")[1:]]
    assert settings(_params("default", *overrides)) == settings(params)  # the command makes the same settings


def test_a_setting_newer_than_the_run_is_not_set_and_an_older_one_is():
    changed = changes({"train.seeds": [42], "train.epochs": 3}, {"train.seed": 7, "train.epochs": 3})
    assert changed == {"train.seed": (ABSENT, 7), "train.seeds": ([42], ABSENT)}
    assert reproduce_command("smoke", changed) == "reviewflow train --profile smoke --set train.seed=7"


def test_values_are_shown_as_set_takes_them():
    assert [shown(v) for v in (None, True, False, [1, 2], ["rnn", "bigru"], 0.001, "end")] == [
        "null", "true", "false", "[1,2]", "[rnn,bigru]", "0.001", "end"
    ]


def test_change_labels_name_each_differing_setting_from_to():
    changed = changes({"prepare.vocab_size": 5000, "train.epochs": 1}, {"prepare.vocab_size": 8000, "train.epochs": 2})
    assert change_label(changed) == "prepare.vocab_size 5000 → 8000; train.epochs 1 → 2"
    assert change_label({}) == "no setting changed"


def test_an_ablation_is_labelled_by_its_changed_settings_not_its_seeds_or_models_and_compared_per_architecture():
    main_models = [_model("rnn", s, a) for s, a in ((1, 0.70), (2, 0.72), (3, 0.74))] + [_model("bigru", 1, 0.80)]
    main = summarize(main_models)
    other = _training("b", _params("smoke", "prepare.vocab_size=8000", "train.seed=9", "train.architectures=rnn,bilstm"),
                      [_model("rnn", 1, 0.75), _model("rnn", 2, 0.77), _model("bilstm", 1, 0.85, seq_len=400)])
    result = ablation(main, settings(_params("smoke")), other)
    assert result["change"] == "prepare.vocab_size 5000 → 8000"
    rnn, bilstm = result["rows"]
    assert rnn["mean_accuracy"] == pytest.approx(0.76) and rnn["difference"] == pytest.approx(0.76 - 0.72)
    assert rnn["seeds"] == [1, 2] and rnn["std_accuracy"] == pytest.approx(statistics.stdev([0.75, 0.77]))
    assert bilstm["difference"] is None  # the main run has no bilstm


def test_the_markdown_holds_the_caption_the_figures_and_the_ablations():
    main = _training("a", _params("smoke", "train.epochs=2"), [_model("rnn", 1, 0.70, 8.0), _model("rnn", 2, 0.72, 12.0),
                     _model("bilstm", 1, 0.81, seq_len=2494), _model("baseline", None, 0.86, None, seq_len=None)])
    other = _training("b", _params("smoke", "train.epochs=3"), [_model("rnn", 1, 0.69), _model("rnn", 2, 0.69)])
    markdown = report_markdown(report_figures(main, [other], "reviewflow report a --ablation b"))
    assert "Training run `smoke-a` (`a`), profile `smoke`, commit `0123456789ab`, started 2025-11-29 07:06 UTC." in markdown
    assert "Settings changed from the profile's defaults: `train.epochs=2`. To reproduce: `reviewflow train --profile smoke --set train.epochs=2`." in markdown
    assert "| `rnn` | 100 | 2 (1, 2) | 0.7100 | 0.0141 | 0.7000–0.7200 | 0.7000, 0.7200 | 0.7674 | 0.7600 | 10 s |" in markdown
    assert "| `bilstm` | 2494 | 1 (1) | 0.8100 | — | 0.8100–0.8100 | 0.8100 | never finished | 0.8600 | 10 s |" in markdown
    assert "| `baseline` | — | 1 | 0.8600 | — | 0.8600–0.8600 | 0.8600 | — | 0.9100 | — |" in markdown
    assert "| train.epochs 2 → 3 | `smoke-b` | `rnn` | 2 (1, 2) | 0.6900 | 0.0000 | -0.0200 |" in markdown
    assert "Generated from the MLflow runs by `reviewflow report a --ablation b`." in markdown


def test_markers_replace_only_what_lies_between_them():
    text = "# Title\n<!-- results:smoke -->\nold table\n<!-- /results:smoke -->\nafter\n"
    assert replace_between_markers(text, "smoke", "| new |\n", "README.md") == (
        "# Title\n<!-- results:smoke -->\n| new |\n<!-- /results:smoke -->\nafter\n"
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("no markers", "README.md has no marker <!-- results:smoke -->"),
        ("<!-- results:default -->\n<!-- /results:default -->", "README.md has no marker <!-- results:smoke -->"),
        ("<!-- results:smoke -->\n", "README.md has no marker <!-- /results:smoke -->"),
        ("<!-- /results:smoke -->\n<!-- results:smoke -->", "README.md: the marker <!-- /results:smoke --> comes before"),
        ("<!-- results:smoke --><!-- results:smoke --><!-- /results:smoke -->", "README.md has 2 times the marker <!-- results:smoke -->"),
    ],
)
def test_a_file_without_the_run_profiles_markers_is_refused_in_one_line(text, message):
    with pytest.raises(ReviewflowError) as raised:
        replace_between_markers(text, "smoke", "| new |", "README.md")
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)
