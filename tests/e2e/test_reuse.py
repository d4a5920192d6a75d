"""Completed work is reused: reruns in one folder train only what is not trained yet.

One sequence of `reviewflow train --profile smoke` runs (on 500 reviews per split) in the same folder, PREFECT_HOME and
embedded MLflow store (each run starts its own temporary Prefect server):
1. only rnn and birnn (as if the run had stopped after two models);
2. all five (the four and the baseline), with a registered-model prefix the registry refuses:
   rnn and birnn are reused, bigru, bilstm and the baseline train, and registration fails with one line;
3. all five with the prefix fixed and settings that do not change models: nothing trains,
   all five are registered, and the ensemble (fitted anew every run, in a second) with them;
4. `--fresh` for rnn: everything is computed again.
All four learn their word vectors from the shared unlabeled reviews: the first and the fresh run
learn them, the two between reuse them (a `pretrain-word2vec` child run copied from the first's).
"""

import re
import time

import pytest
from mlflow import MlflowClient

from tests.helpers import FEW_REVIEWS, pretrain_run, run_cli, smoke_runs_since

pytestmark = pytest.mark.e2e
REUSED_TAG = "reviewflow.reused_from_run"


class Run:
    def __init__(self, result, seconds: float, parent, children, pretrain):
        self.result, self.seconds, self.parent, self.pretrain = result, seconds, parent, pretrain
        self.children = {r.data.tags["architecture"]: r for r in children}
        self.log = result.stdout + result.stderr

    def task_states(self, prefix: str) -> dict[str, str]:
        """Task-run name -> final state name, for task runs named `<prefix>-...`."""
        found = re.findall(rf"Task run '({prefix}-[\w-]+)' - Finished in state (\w+)\(", self.log)
        return dict(found)

    def trained(self) -> list[str]:
        return sorted(re.findall(r"reviewflow - (\w+)-\d+: trained in", self.log))


@pytest.fixture(scope="module")
def reruns(tmp_path_factory, imdb_archive, imdb_unlabeled, shared_cache):
    workdir = tmp_path_factory.mktemp("reuse")
    uri = f"sqlite:///{workdir / 'data' / 'mlflow' / 'mlflow.db'}"
    env = {"REVIEWFLOW_DATA": str(imdb_archive), "REVIEWFLOW_UNLABELED": str(imdb_unlabeled), "PREFECT_HOME": str(workdir / "prefect-home")}
    base = ["train", "--profile", "smoke", "--set", f"data.cache_dir={shared_cache}", *FEW_REVIEWS]
    runs: list[Run] = []

    def train(*args: str) -> Run:
        started_ms, started = int(time.time() * 1000), time.monotonic()
        result = run_cli([*base, *args], env=env, cwd=workdir)
        seconds = time.monotonic() - started
        client = MlflowClient(uri, uri)
        parent, children = smoke_runs_since(client, started_ms)
        print(f"reuse run {len(runs) + 1} ({' '.join(args)}): {seconds:.0f} s, exit {result.returncode}")
        runs.append(Run(result, seconds, parent, children, pretrain_run(client, parent)))
        return runs[-1]

    train("--set", "train.architectures=rnn,birnn")
    train("--set", "tracking.registered_model_prefix=team:reviewflow-")
    train("--set", "train.max_workers=1", "--set", "scoring.chunk_size=500")
    train("--fresh", "--set", "train.architectures=rnn")
    return runs, MlflowClient(uri, uri)


def test_a_rerun_trains_only_the_models_not_trained_before(reruns):
    (first, second, *_), client = reruns
    assert first.result.returncode == 0, first.result.stderr[-3000:]
    assert first.trained() == ["birnn", "rnn"]
    assert second.trained() == ["bigru", "bilstm"]
    assert second.task_states("train") == {
        "train-rnn-100-seed42": "Cached", "train-birnn-100-seed42": "Cached", "train-bigru-100-seed42": "Completed",
        "train-bilstm-2494-seed42": "Completed",
        "train-baseline-tfidf": "Completed",
    }
    assert second.task_states("evaluate")["evaluate-rnn-100"] == "Cached"
    assert {second.task_states(stage)[name] for stage in ("ingest", "validate") for name in second.task_states(stage)} == {"Cached"}
    # Each model still has its child run in the new parent, the reused ones saying where they came from.
    assert sorted(second.children) == ["baseline", "bigru", "bilstm", "birnn", "rnn"]  # it failed before the ensemble
    for architecture in ("rnn", "birnn"):
        copy, original = second.children[architecture], first.children[architecture]
        assert copy.data.tags[REUSED_TAG] == original.info.run_id
        assert f"{architecture}-100: reused the model trained in MLflow run {original.info.run_id}" in second.log
        assert copy.info.run_name == original.info.run_name and copy.data.params == original.data.params
        assert copy.data.metrics == original.data.metrics
        history = [(m.step, m.value) for m in client.get_metric_history(copy.info.run_id, "val_loss")]
        assert history == [(m.step, m.value) for m in client.get_metric_history(original.info.run_id, "val_loss")]
        assert {a.path for a in client.list_artifacts(copy.info.run_id, "plots")} == {
            "plots/training_curves.png", "plots/confusion_matrix.png", "plots/roc_curve.png"
        }
    for architecture in ("bigru", "bilstm", "baseline"):
        assert REUSED_TAG not in second.children[architecture].data.tags


def test_a_registration_failure_is_one_line_and_the_rerun_registers_without_training(reruns):
    (first, second, third, _), client = reruns
    errors = [line for line in second.result.stderr.splitlines() if line.startswith("reviewflow: error:")]
    assert second.result.returncode == 2 and len(errors) == 1, second.result.stderr[-3000:]
    assert "registering team:reviewflow-rnn" in errors[0] and "run again to register it without training" in errors[0]
    assert second.parent.info.status == "FAILED"

    assert third.result.returncode == 0, third.result.stderr[-3000:]
    assert third.trained() == []
    assert set(third.task_states("train").values()) == {"Cached"} and len(third.task_states("train")) == 5
    trained_in = {"rnn": first, "birnn": first, "bigru": second, "bilstm": second, "baseline": second}
    assert sorted(third.children) == sorted([*trained_in, "ensemble"])
    ensemble = third.children.pop("ensemble")
    assert REUSED_TAG not in ensemble.data.tags
    (version,) = client.search_model_versions(f"run_id = '{ensemble.info.run_id}'")
    assert version.name == "reviewflow-ensemble"
    for architecture, child in third.children.items():
        # Always the run that trained the model, never a copy of it.
        assert child.data.tags[REUSED_TAG] == trained_in[architecture].children[architecture].info.run_id
        (version,) = client.search_model_versions(f"run_id = '{child.info.run_id}'")
        assert version.name == f"reviewflow-{architecture}"
    print(f"rerun after the registration failure: {third.seconds:.0f} s (the failed run: {second.seconds:.0f} s)")


def test_fresh_computes_everything_again(reruns):
    (*_, fresh), _ = reruns
    assert fresh.result.returncode == 0, fresh.result.stderr[-3000:]
    assert fresh.trained() == ["rnn"]
    for stage in ("ingest", "validate", "prepare", "train", "evaluate"):
        assert set(fresh.task_states(stage).values()) == {"Completed"}, stage
    assert REUSED_TAG not in fresh.children["rnn"].data.tags


def test_the_word_vectors_are_learned_once_and_reused_by_the_reruns(reruns):
    (first, second, third, fresh), _ = reruns
    assert first.task_states("pretrain") == {"pretrain-word2vec": "Completed"}
    assert first.pretrain.data.params["pretrain_unlabeled_reviews"] == "2000"
    for rerun in (second, third):
        assert rerun.task_states("pretrain") == {"pretrain-word2vec": "Cached"}
        # The rerun's own pretrain child run repeats the first's: params, figures, the vectors and their neighbours.
        assert rerun.pretrain.data.tags[REUSED_TAG] == first.pretrain.info.run_id
        assert rerun.pretrain.data.params == first.pretrain.data.params and rerun.pretrain.data.metrics == first.pretrain.data.metrics
    assert fresh.task_states("pretrain") == {"pretrain-word2vec": "Completed"} and REUSED_TAG not in fresh.pretrain.data.tags
