"""The ensemble's stacker: fitted on the validation split only, and what it does with its members."""

import json

import numpy as np
import pytest

from models.ensemble import Stacker, logit
from tasks.core.config import EnsembleConfig, TrackingConfig
from tasks.core.records import Evaluation, Predictions, PreparedData, TrainedModel
from tasks.stages.ensemble import fit_ensemble
from tasks.tracking import connect
from tasks.tracking.runs import start_parent_run


def _members(rng: np.random.Generator, validation: int = 400, test: int = 300) -> dict[str, Predictions]:
    """Three members: one sharp, one noisy, one that is noise alone."""
    labels = {"validation": rng.integers(0, 2, validation), "test": rng.integers(0, 2, test)}
    members = {}
    for name, noise in (("good", 0.6), ("weak", 2.0), ("noise", None)):
        splits = {}
        for split, y in labels.items():
            signal = np.zeros(len(y)) if noise is None else (2 * y - 1) * 1.5
            splits[split] = 1 / (1 + np.exp(-(signal + rng.normal(0, noise or 1.0, len(y)))))
        members[name] = Predictions(
            validation=splits["validation"], validation_labels=labels["validation"], test=splits["test"], test_labels=labels["test"]
        )
    return members


def test_the_stacker_weighs_members_by_what_they_know():
    members = _members(np.random.default_rng(0))
    stacker = Stacker.fit({n: p.validation for n, p in members.items()}, members["good"].validation_labels)
    weights = dict(zip(stacker.members, stacker.weights))
    assert weights["good"] > weights["weak"] > abs(weights["noise"])
    combined = stacker.predict({n: p.test for n, p in members.items()})
    accuracy = ((combined >= 0.5) == members["good"].test_labels).mean()
    assert accuracy >= ((members["good"].test >= 0.5) == members["good"].test_labels).mean() - 0.02
    assert Stacker.from_dict(json.loads(json.dumps(stacker.to_dict()))) == stacker


def test_the_stacker_needs_two_members_and_their_probabilities():
    with pytest.raises(ValueError, match="at least two members"):
        Stacker.fit({"a": np.array([0.2, 0.8])}, np.array([0, 1]))
    stacker = Stacker(("a", "b"), (1.0, 1.0), 0.0)
    with pytest.raises(ValueError, match="no probabilities of ensemble members"):
        stacker.predict({"a": np.array([0.5])})
    # Certain members stay finite: probabilities are clipped before the logit.
    assert np.isfinite(logit(np.array([0.0, 1.0]))).all()
    assert stacker.predict({"a": np.array([0.9]), "b": np.array([0.9])})[0] == pytest.approx(0.9**2 / (0.9**2 + 0.1**2))


def _evaluations(folder, members: dict[str, Predictions]) -> list[Evaluation]:
    evaluations = []
    for name, predictions in members.items():
        path = folder / f"{name}.predictions.npz"
        predictions.save(path)
        trained = TrainedModel(architecture=name, seq_len=None, run_id="r", classifier_dir=folder / name, seconds=10.0, history={})
        evaluations.append(Evaluation(trained=trained, metrics={}, predictions_path=path))
    return evaluations


def _prepared(folder, test_rows: int) -> PreparedData:
    """What the evaluation slices the test split by: each review's length in tokens and its rating."""
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "test-token-lengths.npy", np.resize([20, 150, 700], test_rows))
    np.save(folder / "test-ratings.npy", np.resize([1.0, 4.0, 8.0, 10.0], test_rows))
    return PreparedData(folder=folder, table_path=folder / "t.parquet", vocab_size=10, keep="end", rows={"test": test_rows})


def test_the_ensemble_is_fitted_on_validation_only_changing_test_data_leaves_its_weights(tmp_path):
    """The flow's fit step on a real MLflow store: other test probabilities and labels give the same
    weights, and only the test metrics move."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = connect(TrackingConfig(experiment="t", tracking_uri=uri, artifact_location=str(tmp_path / "a"), registered_model_prefix="t-"))
    tracking = tracking.model_copy(update={"parent_run_id": start_parent_run(tracking, "smoke-1", {}, {})})
    members = _members(np.random.default_rng(1))
    rng = np.random.default_rng(2)
    shuffled = {
        name: p.model_copy(update={"test": rng.permutation(p.test), "test_labels": 1 - p.test_labels}) for name, p in members.items()
    }
    results = []
    for run, predictions in (("first", members), ("other-test", shuffled)):
        (tmp_path / run).mkdir()
        prepared = _prepared(tmp_path / run / "prepared", len(predictions["good"].test))
        evaluation = fit_ensemble(_evaluations(tmp_path / run, predictions), EnsembleConfig(), prepared, tracking, tmp_path / run / "models")
        spec = json.loads((evaluation.trained.classifier_dir / "ensemble.json").read_text())
        results.append((spec["stacker"], evaluation))
    (first, first_evaluation), (other, other_evaluation) = results
    assert first == other
    assert first_evaluation.metrics["test_accuracy"] != other_evaluation.metrics["test_accuracy"]

    run = tracking.client().get_run(first_evaluation.trained.run_id)
    assert run.info.run_name == "ensemble-stacked" and run.data.tags["architecture"] == "ensemble"
    assert run.data.params["members"] == "good,weak,noise"
    assert run.data.metrics["weight_good"] == pytest.approx(first["weights"][0])
    assert {"test_accuracy", "test_auc", "test_f1", "test_loss", "val_accuracy"} <= set(run.data.metrics)
    assert {"slice_length_0_100_accuracy", "slice_length_over_300_auc", "slice_rating_strong_accuracy", "slice_rating_mild_rows"} <= set(run.data.metrics)
    assert first_evaluation.trained.seconds >= 30.0  # its members' training time is part of its cost


def test_no_ensemble_of_one_model_or_when_disabled(tmp_path):
    members = _members(np.random.default_rng(3))
    evaluations = _evaluations(tmp_path, members)
    assert fit_ensemble(evaluations[:1], EnsembleConfig(), None, None, tmp_path) is None
    assert fit_ensemble(evaluations, EnsembleConfig(enabled=False), None, None, tmp_path) is None
