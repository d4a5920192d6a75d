"""Batch scoring end to end: smoke-trained registered models score real test reviews."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.architectures import ARCHITECTURES, ENSEMBLE
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def review_files(tmp_path_factory, shared_cache):
    """A CSV, a JSONL, a Parquet file and a .txt folder of real test reviews (made, never committed)."""
    table = next(shared_cache.glob("reviews-*[0-9a-f].parquet"))
    test = pd.read_parquet(table).query("split == 'test'").sample(120, random_state=3)
    folder = tmp_path_factory.mktemp("reviews")
    test.iloc[:40][["review_id", "text"]].to_csv(folder / "batch one.csv", index=False)
    jsonl = test.iloc[40:70].rename(columns={"review_id": "id"})[["id", "text"]]
    jsonl.to_json(folder / "batch-two.jsonl", orient="records", lines=True)
    test.iloc[70:100][["text"]].to_parquet(folder / "batch3.parquet", index=False)
    txt = folder / "letters"
    txt.mkdir()
    for i, text in enumerate(test.iloc[100:120]["text"]):
        (txt / f"review-{i:02d}.txt").write_text(text, encoding="utf-8")
    return folder, test


@pytest.fixture(scope="module")
def scored(smoke_training, review_files, mlflow_server, tmp_path_factory):
    folder, _ = review_files
    output = tmp_path_factory.mktemp("scored")
    paths = [folder / "batch one.csv", folder / "batch-two.jsonl", folder / "batch3.parquet", folder / "letters"]
    result = run_cli(["score", *map(str, paths), "--output", str(output)], env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr[-4000:]
    return output, paths, result


def _read(path):
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True)
    return pd.read_parquet(path)


def test_every_row_is_scored_in_order_with_its_id(scored, review_files):
    output, _, _ = scored
    _, test = review_files
    expected = {
        "batch one.scored.csv": ("review_id", test.iloc[:40]["review_id"].tolist()),
        "batch-two.scored.jsonl": ("id", test.iloc[40:70]["review_id"].tolist()),
        "batch3.scored.parquet": ("row", list(range(30))),
        "letters.scored.csv": ("review_id", [f"review-{i:02d}" for i in range(20)]),
    }
    for name, (id_column, ids) in expected.items():
        frame = _read(output / name)
        assert frame[id_column].tolist() == ids, name
        probabilities = frame[[f"prob_{a}" for a in ARCHITECTURES]].to_numpy(dtype=float)
        assert ((probabilities >= 0) & (probabilities <= 1)).all(), name
        assert ((frame["prob_ensemble"] >= 0) & (frame["prob_ensemble"] <= 1)).all(), name
        assert (frame["sentiment"] == np.where(frame["prob_ensemble"] >= 0.5, "positive", "negative")).all()


def test_manifests_name_the_champion_versions(scored, smoke_training, mlflow_server):
    output, _, _ = scored
    _, client, *_ = smoke_training
    champions = {
        a: f"reviewflow-{a}/{client.get_model_version_by_alias(f'reviewflow-{a}', 'champion').version}"
        for a in (*ARCHITECTURES, ENSEMBLE)
    }
    manifests = sorted(output.glob("*.manifest.json"))
    assert len(manifests) == 4
    for manifest in manifests:
        recorded = json.loads(manifest.read_text())
        assert recorded["versions"] == champions
        assert recorded["prob_ensemble"]["source"] == "registered ensemble"
        assert recorded["prob_ensemble"]["model"] == champions[ENSEMBLE]


def test_scores_equal_the_registered_pyfunc_on_the_same_texts(scored, review_files, mlflow_server, mlflow_at):
    output, _, _ = scored
    _, test = review_files
    mlflow_at(mlflow_server)
    texts = test.iloc[:40]["text"].tolist()
    frame = _read(output / "batch one.scored.csv")
    for architecture in ARCHITECTURES:
        model = mlflow.pyfunc.load_model(f"models:/reviewflow-{architecture}@champion")
        expected = np.asarray(model.predict(pd.DataFrame({"text": texts}))).reshape(-1)
        assert np.abs(frame[f"prob_{architecture}"].to_numpy(dtype=float) - expected).max() < 1e-6
    # prob_ensemble is the registered ensemble's, though scoring reuses the member columns rather than loading it.
    ensemble = mlflow.pyfunc.load_model("models:/reviewflow-ensemble@champion")
    expected = np.asarray(ensemble.predict(pd.DataFrame({"text": texts}))).reshape(-1)
    assert np.abs(frame["prob_ensemble"].to_numpy(dtype=float) - expected).max() < 1e-6


def test_the_ensemble_alone_and_the_mean_without_it(smoke_training, review_files, mlflow_server, tmp_path):
    folder, _ = review_files
    alone = run_cli(["score", str(folder / "batch one.csv"), "--output", str(tmp_path / "alone"), "--models", "ensemble"],
                    env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert alone.returncode == 0, alone.stderr[-3000:]
    frame = pd.read_csv(tmp_path / "alone" / "batch one.scored.csv")
    assert list(frame.columns) == ["review_id", "prob_ensemble", "sentiment", "error"]
    mean = run_cli(["score", str(folder / "batch one.csv"), "--output", str(tmp_path / "mean"), "--models", "rnn,baseline"],
                   env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert mean.returncode == 0, mean.stderr[-3000:]
    frame = pd.read_csv(tmp_path / "mean" / "batch one.scored.csv")
    assert np.allclose(frame["prob_ensemble"], frame[["prob_rnn", "prob_baseline"]].mean(axis=1))
    manifest = json.loads((tmp_path / "mean" / "batch one.csv.manifest.json").read_text())
    assert manifest["prob_ensemble"] == {"source": "mean", "of": ["prob_rnn", "prob_baseline"]}


def test_a_second_run_skips_files_already_scored(scored, mlflow_server):
    output, paths, _ = scored
    before = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    result = run_cli(["score", *map(str, paths), "--output", str(output)], env={"MLFLOW_TRACKING_URI": mlflow_server})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("skipped") == 4
    assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == before


def test_an_unreadable_file_is_quarantined_and_the_others_scored(smoke_training, mlflow_server, tmp_path):
    (tmp_path / "good.csv").write_text("text\nA fine film.\n", encoding="utf-8")
    (tmp_path / "bad.csv").write_bytes(b"text\nA fine \xff film.\n")
    result = run_cli(
        ["score", str(tmp_path / "good.csv"), str(tmp_path / "bad.csv"), "--output", str(tmp_path / "out"), "--models", "rnn"],
        env={"MLFLOW_TRACKING_URI": mlflow_server},
    )
    assert result.returncode == 1
    assert "reviewflow: quarantined bad.csv: not UTF-8" in result.stderr
    assert (tmp_path / "out" / "good.scored.csv").is_file()
    assert (tmp_path / "out" / "quarantine" / "bad.csv.reason.txt").is_file()


def test_an_alias_nobody_holds_gives_one_line(smoke_training, mlflow_server, tmp_path):
    (tmp_path / "r.csv").write_text("text\nfine\n", encoding="utf-8")
    result = run_cli(
        ["score", str(tmp_path / "r.csv"), "--output", str(tmp_path / "out"), "--alias", "nobody"],
        env={"MLFLOW_TRACKING_URI": mlflow_server},
    )
    assert result.returncode == 2
    assert "no version of reviewflow-rnn has the alias 'nobody'" in result.stderr
    assert "Traceback" not in result.stderr  # a missing model is bad input, not a bug
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
