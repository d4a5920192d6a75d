"""Drift monitoring and shadow scoring end to end: smoke-trained registered models, their reference profiles, real reviews."""

import json

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from models.architectures import ARCHITECTURES, ENSEMBLE
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e

MODELS = (*ARCHITECTURES, ENSEMBLE)
ONE_LINERS = ["Great.", "Awful movie.", "Loved it!", "Meh.", "Not bad at all.", "Terrible acting.", "A must see.", "Boring."]
SHOPPING = ["2 litres of milk", "eggs (a dozen)", "bread, wholemeal", "bananas", "olive oil", "coffee beans", "rice 1kg", "dish soap"]


@pytest.fixture(scope="module")
def drift_files(tmp_path_factory, shared_cache):
    """Held-out IMDB test reviews (a thousand: PSI over a few dozen rows is mostly sampling noise), one-line reviews,
    and text that is no review at all (lines of this project's source and a shopping list)."""
    table = next(shared_cache.glob("reviews-*[0-9a-f].parquet"))
    test = pd.read_parquet(table).query("split == 'test'").sample(1000, random_state=21)
    folder = tmp_path_factory.mktemp("drift-inputs")
    test[["review_id", "text"]].to_csv(folder / "held-out.csv", index=False)
    # Each over scoring.drift_min_rows (200), the fewest rows a flag needs.
    pd.DataFrame({"text": [ONE_LINERS[i % len(ONE_LINERS)] for i in range(240)]}).to_csv(folder / "one-liners.csv", index=False)
    from tasks.scoring import core

    source = [line.strip() for line in open(core.__file__, encoding="utf-8") if any(c.isalpha() for c in line)][:120]
    pd.DataFrame({"text": source + SHOPPING * 15}).to_json(folder / "not-reviews.jsonl", orient="records", lines=True)
    return folder


@pytest.fixture(scope="module")
def drift_scored(smoke_training, drift_files, mlflow_server, tmp_path_factory):
    output = tmp_path_factory.mktemp("drift-scored")
    paths = [drift_files / name for name in ("held-out.csv", "one-liners.csv", "not-reviews.jsonl")]
    result = run_cli(["score", *map(str, paths), "--output", str(output)], env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr[-4000:]  # drift flags files; it never fails the run
    manifests = {p.name.removesuffix(".manifest.json"): json.loads(p.read_text()) for p in output.glob("*.manifest.json")}
    return output, manifests, result


def _scoring_run(mlflow_server, output):
    client = MlflowClient(mlflow_server, mlflow_server)
    experiment = client.get_experiment_by_name("reviewflow-scoring")
    (run,) = client.search_runs([experiment.experiment_id], f"params.output_dir = '{output}'")
    return client, experiment, run


def test_held_out_reviews_do_not_drift(drift_scored):
    _, manifests, _ = drift_scored
    manifest = manifests["held-out.csv"]
    assert manifest["drifted"] is False and manifest["drift_reasons"] == []
    assert set(manifest["drift"]) == set(MODELS)
    for model, figures in manifest["drift"].items():
        assert figures["reference"] == manifest["versions"][model]  # every version of this code carries its reference
        assert figures["length_psi"] < 0.1 and figures["probability_psi"] < figures["threshold"] == 0.2, (model, figures)
        assert abs(figures["oov_rate_difference"]) < 0.01 and abs(figures["positive_rate_difference"]) < 0.1, (model, figures)
        assert figures["profile"]["rows"] == 1000


@pytest.mark.parametrize("name", ["one-liners.csv", "not-reviews.jsonl"])
def test_one_line_reviews_and_text_that_is_no_review_drift_and_are_still_scored(drift_scored, name):
    output, manifests, result = drift_scored
    manifest = manifests[name]
    assert manifest["drifted"] is True and manifest["scored"] == manifest["rows"] > 0
    for model in MODELS:
        assert manifest["drift"][model]["length_psi"] > 1, (model, manifest["drift"][model])
        assert f"{model}: length_psi " in " ".join(manifest["drift_reasons"])
    assert f"{name}: drifted from the models' reference profiles" in result.stderr
    assert len(pd.read_csv(output / manifest["output"]) if name.endswith(".csv") else pd.read_json(output / manifest["output"], lines=True)) == manifest["rows"]


def test_text_that_is_no_review_is_mostly_out_of_vocabulary(drift_scored):
    _, manifests, _ = drift_scored
    figures = manifests["not-reviews.jsonl"]["drift"]["bilstm"]
    assert figures["oov_rate_difference"] > 0.1 > abs(manifests["held-out.csv"]["drift"]["bilstm"]["oov_rate_difference"])


def test_the_scoring_run_in_mlflow_has_the_figures_and_the_flag(drift_scored, mlflow_server):
    output, manifests, result = drift_scored
    client, experiment, run = _scoring_run(mlflow_server, output)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert run.info.status == "FINISHED" and run.data.tags["drifted"] == "true"
    assert run.data.tags["drifted_files"] == "one-liners.csv, not-reviews.jsonl"
    metrics = run.data.metrics
    assert (metrics["files"], metrics["files_scored"], metrics["files_drifted"]) == (3, 3, 2)
    assert metrics["rows"] == sum(m["rows"] for m in manifests.values()) and metrics["rows_per_second"] > 0
    assert metrics["max_length_psi.bilstm"] == max(m["drift"]["bilstm"]["length_psi"] for m in manifests.values())
    assert run.data.params["drift_threshold"] == "0.2" and run.data.params["version.bilstm"] == manifests["held-out.csv"]["versions"]["bilstm"]
    table = json.loads(open(client.download_artifacts(run.info.run_id, "drift.json", str(output.parent))).read())
    frame = pd.DataFrame(table["data"], columns=table["columns"])
    assert len(frame) == 3 * len(MODELS)
    held_out = frame[frame["file"] == "held-out.csv"]
    assert not held_out["drifted"].any() and frame[frame["file"] != "held-out.csv"]["drifted"].all()
    assert "drifted" in result.stdout  # the report's column, printed as the run's table


@pytest.fixture(scope="module")
def batch(tmp_path_factory, shared_cache):
    table = next(shared_cache.glob("reviews-*[0-9a-f].parquet"))
    folder = tmp_path_factory.mktemp("shadow-inputs")
    reviews = pd.read_parquet(table).query("split == 'test'").sample(40, random_state=5)[["review_id", "text"]]
    reviews.to_csv(folder / "batch.csv", index=False)
    return folder / "batch.csv"


def test_the_champion_shadowing_itself_agrees_everywhere(smoke_training, batch, mlflow_server, tmp_path):
    result = run_cli(["score", str(batch), "--output", str(tmp_path), "--shadow", "champion"], env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr[-4000:]
    frame = pd.read_csv(tmp_path / "batch.scored.csv")
    main = ["review_id", *(f"prob_{a}" for a in ARCHITECTURES), "prob_ensemble", "sentiment", "error"]
    assert list(frame.columns) == main + [f"shadow_prob_{m}" for m in MODELS]
    for model in MODELS:
        np.testing.assert_array_equal(frame[f"shadow_prob_{model}"], frame[f"prob_{model}"])
    manifest = json.loads((tmp_path / "batch.csv.manifest.json").read_text())
    # 40 held-out reviews: figures, but fewer rows than a flag needs (their PSI is mostly sampling noise).
    assert manifest["drifted"] is False and "fewer than the 200" in manifest["drift"]["bilstm"]["too_few_rows"]
    assert manifest["shadow"] == {"alias": "champion", "versions": manifest["versions"], "rows": 40, "agreement": dict.fromkeys(MODELS, 1.0)}
    _, _, run = _scoring_run(mlflow_server, tmp_path)
    assert {m: run.data.metrics[f"agreement.{m}"] for m in MODELS} == dict.fromkeys(MODELS, 1.0)
    assert run.data.params["shadow_alias"] == "champion" and run.data.tags["shadow_alias"] == "champion"


def test_a_shadow_alias_some_models_lack_skips_them_with_a_warning(smoke_training, batch, mlflow_server, tmp_path):
    _, client, *_ = smoke_training
    rnn = client.get_model_version_by_alias("reviewflow-rnn", "champion").version
    client.set_registered_model_alias("reviewflow-rnn", "rnn-only", rnn)
    result = run_cli(["score", str(batch), "--output", str(tmp_path), "--models", "rnn,bigru,ensemble", "--shadow", "rnn-only"],
                     env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr[-4000:]
    assert "shadow 'rnn-only': no version of reviewflow-bigru has the alias: bigru is not shadowed" in result.stderr
    assert "shadow 'rnn-only': no version of reviewflow-ensemble has the alias: ensemble is not shadowed" in result.stderr
    frame = pd.read_csv(tmp_path / "batch.scored.csv")
    assert list(frame.columns)[-2:] == ["error", "shadow_prob_rnn"]
    shadow = json.loads((tmp_path / "batch.csv.manifest.json").read_text())["shadow"]
    assert shadow["versions"] == {"rnn": f"reviewflow-rnn/{rnn}"} and shadow["agreement"] == {"rnn": 1.0}


def test_an_unknown_shadow_alias_is_skipped_with_a_warning(smoke_training, batch, mlflow_server, tmp_path):
    result = run_cli(["score", str(batch), "--output", str(tmp_path / "with"), "--models", "rnn", "--shadow", "nobody"],
                     env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr[-4000:]
    assert "shadow 'nobody': no model has a version with this alias: no shadow scoring" in result.stderr
    without = run_cli(["score", str(batch), "--output", str(tmp_path / "without"), "--models", "rnn"], env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert without.returncode == 0, without.stderr[-4000:]
    # No shadow scored: the very bytes of a run that asked for none.
    assert (tmp_path / "with" / "batch.scored.csv").read_bytes() == (tmp_path / "without" / "batch.scored.csv").read_bytes()
    assert json.loads((tmp_path / "with" / "batch.csv.manifest.json").read_text())["shadow"] is None


def test_an_unreachable_tracking_server_stops_scoring_in_one_line(tmp_path):
    from tasks.core.servers import free_port

    (tmp_path / "r.csv").write_text("text\nA fine film.\n", encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    result = run_cli(["score", str(tmp_path / "r.csv"), "--output", str(tmp_path / "out"), "--shadow", "challenger"],
                     env={"MLFLOW_TRACKING_URI": f"http://{address}"})
    lines = [line for line in result.stderr.splitlines() if line.startswith("reviewflow: error:")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-3000:]
    assert f"the MLflow tracking server at http://{address} does not answer" in lines[0]
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
