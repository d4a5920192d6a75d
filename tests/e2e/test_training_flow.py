"""The training flow end to end: the `reviewflow train` command, real MLflow, real Prefect."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.architectures import ARCHITECTURES, BASELINE, ENSEMBLE, RECURRENT
from models.baseline import BaselineClassifier
from models.sentiment import SentimentClassifier
from tests.helpers import pretrain_run

pytestmark = pytest.mark.e2e
TEXTS = ["A moving, beautifully acted film. I loved it.", "Boring, predictable and far too long.", "ok"]


def test_cli_prints_the_comparison_table(smoke_training):
    result, *_ = smoke_training
    header, *rows = [line for line in result.stdout.splitlines() if line.strip()][-8:]
    assert header.split()[:3] == ["architecture", "seq_len", "test_accuracy"]
    assert "version" in header and "alias" in header
    assert header.split()[6:12] == ["acc_vs_baseline", "auc_vs_baseline", "time_x_baseline", "seeds", "test_accuracy_mean", "test_accuracy_std"]
    assert "behaviour_pass_rate" not in header  # in MLflow and Prefect, too wide for a terminal
    assert sorted(row.split()[0] for row in rows[1:]) == sorted([*ARCHITECTURES, ENSEMBLE])
    assert all("champion" in row for row in rows[1:])


def test_first_run_in_a_new_prefect_home_uses_one_temporary_server_and_prints_no_traceback(smoke_training):
    result, *_, workdir = smoke_training
    assert (workdir / "prefect-home" / "prefect.db").is_file()
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    # Prefect's own fallback announces each server it starts; the command starts its one itself.
    assert "Starting temporary server" not in output


def test_one_nested_child_run_per_architecture_with_params_and_metrics(smoke_training):
    _, client, parent, children, _ = smoke_training
    assert parent.info.status == "FINISHED"
    assert sorted(r.info.run_name for r in children) == sorted(
        ["rnn-100", "birnn-100", "bigru-100", "bilstm-2494", "baseline-tfidf", "ensemble-stacked"]
    )
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["architecture"] == run.data.params["architecture"]
        for metric in ("test_accuracy", "test_auc", "test_loss", "test_f1", "val_accuracy"):
            assert metric in run.data.metrics, (run.info.run_name, metric)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {"plots/confusion_matrix.png", "plots/roc_curve.png"} <= artifacts
    for run in (r for r in children if r.data.tags["architecture"] in RECURRENT):
        assert run.info.status == "FINISHED"
        assert run.data.tags["architecture"] == run.data.params["architecture"]
        for param in ("architecture", "seq_len", "embedding_dim", "units", "epochs", "batch_size", "vocab_size"):
            assert param in run.data.params
        assert run.data.params["vocab_size"] == "5000"
        for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "test_accuracy", "test_auc", "test_loss", "test_f1"):
            assert metric in run.data.metrics, (run.info.run_name, metric)
        assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 1  # one per epoch (smoke: 1 epoch)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert artifacts == {"plots/training_curves.png", "plots/confusion_matrix.png", "plots/roc_curve.png"}
        assert "model_summary.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_parent_run_records_config_dataset_validation_and_comparison(smoke_training):
    _, client, parent, _, _ = smoke_training
    assert parent.data.params["profile"] == "smoke"
    assert parent.data.params["train.epochs"] == "1"
    assert parent.data.tags.get("mlflow.source.git.commit")
    inputs = client.get_run(parent.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.digest
    top = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"comparison.json", "comparison.csv", "comparison.md", "validation", "vocabulary.json"} <= top
    validation = {a.path for a in client.list_artifacts(parent.info.run_id, "validation")}
    assert "validation/validation.json" in validation
    assert "Best:" in parent.data.tags["mlflow.note.content"]
    assert "against the TF-IDF baseline" in parent.data.tags["mlflow.note.content"]
    assert "| accuracy vs baseline | AUC vs baseline | time vs baseline |" in parent.data.tags["mlflow.note.content"]


def test_each_architecture_is_registered_as_champion(smoke_training):
    _, client, _, children, _ = smoke_training
    run_ids = {r.data.tags["architecture"]: r.info.run_id for r in children}
    for architecture in (*ARCHITECTURES, ENSEMBLE):
        version = client.get_model_version_by_alias(f"reviewflow-{architecture}", "champion")
        assert version.run_id == run_ids[architecture]


def test_the_baseline_trains_on_the_same_split_and_registers_as_arrays(smoke_training, mlflow_server, mlflow_at, tmp_path):
    import mlflow

    _, client, _, children, workdir = smoke_training
    (run,) = [r for r in children if r.data.tags["architecture"] == BASELINE]
    rnn = next(r for r in children if r.data.tags["architecture"] == "rnn")
    assert run.data.params["train_rows"] == rnn.data.params["train_rows"] == "1800"
    assert run.data.params["validation_rows"] == rnn.data.params["validation_rows"] == "200"
    assert {"ngram_range", "min_df", "max_features", "sublinear_tf", "C", "max_iter", "tokenizer"} <= set(run.data.params)
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "features"} <= set(run.data.metrics)
    mlflow_at(mlflow_server)
    model = mlflow.pyfunc.load_model("models:/reviewflow-baseline@champion")
    scores = np.asarray(model.predict(pd.DataFrame({"text": TEXTS}))).reshape(-1)
    trained = BaselineClassifier.load(next((workdir / "runs").glob("*/models/baseline-tfidf")))
    assert np.abs(scores - trained.predict(TEXTS)).max() < 1e-12
    local = mlflow.artifacts.download_artifacts("models:/reviewflow-baseline@champion", dst_path=str(tmp_path))
    names = [p.name for p in Path(local).rglob("*") if p.is_file()]
    assert "weights.npz" in names and not [n for n in names if n.endswith((".pkl", ".pickle", ".joblib"))]
    requirements = (Path(local) / "requirements.txt").read_text()
    assert "scikit-learn" in requirements and "tensorflow" not in requirements


def test_the_ensemble_is_pinned_to_the_member_versions_of_its_run(smoke_training, mlflow_server, mlflow_at):
    import mlflow

    from models.ensemble import Stacker

    _, client, _, children, _ = smoke_training
    (run,) = [r for r in children if r.data.tags["architecture"] == ENSEMBLE]
    version = client.get_model_version_by_alias("reviewflow-ensemble", "champion")
    members = {a: client.get_model_version_by_alias(f"reviewflow-{a}", "champion") for a in ARCHITECTURES}
    # Pinned to the versions registered in the same run, each named in a tag.
    assert {k: v for k, v in version.tags.items() if k.startswith("member.")} == {
        f"member.{a}": f"reviewflow-{a}/{v.version}" for a, v in members.items()
    }
    weights = {a: run.data.metrics[f"weight_{a}"] for a in ARCHITECTURES}
    mlflow_at(mlflow_server)
    ensemble = mlflow.pyfunc.load_model("models:/reviewflow-ensemble@champion")
    scores = np.asarray(ensemble.predict(pd.DataFrame({"text": TEXTS}))).reshape(-1)
    member_scores = {
        a: np.asarray(mlflow.pyfunc.load_model(f"models:/reviewflow-{a}/{v.version}").predict(pd.DataFrame({"text": TEXTS}))).reshape(-1)
        for a, v in members.items()
    }
    stacker = Stacker(tuple(weights), tuple(weights.values()), run.data.metrics["intercept"])
    assert np.abs(scores - stacker.predict(member_scores)).max() < 1e-6


def test_registered_bilstm_scores_raw_text_as_evaluation_did(smoke_training, mlflow_server, mlflow_at):
    import mlflow

    *_, workdir = smoke_training
    mlflow_at(mlflow_server)
    model = mlflow.pyfunc.load_model("models:/reviewflow-bilstm@champion")
    scores = np.asarray(model.predict(pd.DataFrame({"text": TEXTS}))).reshape(-1)
    assert scores.shape == (3,) and ((scores >= 0) & (scores <= 1)).all()
    trained = SentimentClassifier.load(next((workdir / "runs").glob("*/models/bilstm-2494")))
    assert np.abs(scores - trained.predict(TEXTS)).max() < 1e-6


def test_the_pretrain_child_run_holds_the_vectors_learned_with_the_unlabeled_reviews(smoke_training, imdb_unlabeled, tmp_path):
    _, client, parent, children, _ = smoke_training
    run = pretrain_run(client, parent)
    assert run.info.run_name == "pretrain-word2vec" and run.info.status == "FINISHED"
    params = run.data.params
    assert params["unlabeled_source"] == str(imdb_unlabeled) and params["pretrain_unlabeled_reviews"] == "2000"  # smoke's data.unlabeled_limit
    assert params["embedding_dim"] == "64" and int(params["corpus_tokens"]) > 0
    assert int(params["corpus_reviews"]) == 2000 + int(params["pretrain_train_reviews"])
    assert 0.9 <= run.data.metrics["vocabulary_coverage"] <= 1 and run.data.metrics["pretrain_seconds"] > 0
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {"vectors.bin", "neighbours.md"}
    neighbours = client.download_artifacts(run.info.run_id, "neighbours.md", str(tmp_path))
    assert all(f"| {word} |" in Path(neighbours).read_text() for word in ("great", "awful", "boring", "oscar"))
    recurrent = [r for r in children if r.data.tags["architecture"] in RECURRENT]
    assert {r.data.params["embedding_init"] for r in recurrent} == {"pretrained"}
    validation = client.download_artifacts(parent.info.run_id, "validation/validation-unlabeled.json", str(tmp_path))
    assert '"kept": 2000' in Path(validation).read_text()
