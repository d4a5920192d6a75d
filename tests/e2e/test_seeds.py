"""Several seeds, and the same seed twice: `reviewflow train --set train.seeds=2`, then again with `--fresh`.

Both runs train rnn with seeds 42 and 43 (and the baseline once) in one folder with an
embedded MLflow store. The first shows the seeds as child runs with their figures over seeds
on the parent and the registered model picked on validation; the second, computed again from
scratch in new processes, must give every seed exactly the same test metrics.
"""

import json
import time

import pytest
from mlflow import MlflowClient

from tests.helpers import run_cli, smoke_runs_since

pytestmark = pytest.mark.e2e
SEEDED = ["--set", "train.architectures=rnn,baseline", "--set", "train.seeds=2"]


@pytest.fixture(scope="module")
def twice(tmp_path_factory, imdb_archive, shared_cache):
    workdir = tmp_path_factory.mktemp("seeds")
    uri = f"sqlite:///{workdir / 'data' / 'mlflow' / 'mlflow.db'}"
    env = {"REVIEWFLOW_DATA": str(imdb_archive), "PREFECT_HOME": str(workdir / "prefect-home")}
    base = ["train", "--profile", "smoke", "--set", f"data.cache_dir={shared_cache}", *SEEDED]
    runs = []
    for extra in ([], ["--fresh"]):
        started_ms = int(time.time() * 1000)
        result = run_cli([*base, *extra], env=env, cwd=workdir)
        assert result.returncode == 0, result.stderr[-3000:]
        runs.append((result, *smoke_runs_since(MlflowClient(uri, uri), started_ms)))
    return runs, MlflowClient(uri, uri)


def test_each_seed_is_a_child_run_and_the_parent_has_the_figures_over_seeds(twice):
    ((result, parent, children), _), client = twice
    by_name = {c.info.run_name: c for c in children}
    assert sorted(by_name) == ["baseline-tfidf", "ensemble-stacked", "rnn-100-seed42", "rnn-100-seed43"]
    seeds = [by_name[f"rnn-100-seed{s}"] for s in (42, 43)]
    assert [(c.data.tags["architecture"], c.data.tags["seed"], c.data.params["seed"]) for c in seeds] == [
        ("rnn", "42", "42"), ("rnn", "43", "43")
    ]
    accuracies = [c.data.metrics["test_accuracy"] for c in seeds]
    assert accuracies[0] != accuracies[1]  # different seeds, different models
    metrics = parent.data.metrics
    assert metrics["rnn.seeds"] == 2 and metrics["baseline.seeds"] == 1
    assert metrics["rnn.test_accuracy_mean"] == pytest.approx(sum(accuracies) / 2)
    assert metrics["rnn.test_accuracy_min"] == min(accuracies) and metrics["rnn.test_accuracy_max"] == max(accuracies)
    assert all(c.data.metrics["train_seconds"] > 0 for c in seeds)
    with open(client.download_artifacts(parent.info.run_id, "seeds.json")) as stored:
        every_seed = _rows(json.load(stored))
    assert sorted((row["architecture"], row["seed"]) for row in every_seed) == [("baseline", None), ("rnn", 42), ("rnn", 43)]
    assert "| rnn | 43 |" in parent.data.tags["mlflow.note.content"]

    # The registered rnn is the seed with the better validation accuracy, whatever its test figure.
    # On a tie (smoke models are near chance) the first seed is taken.
    best, other = sorted(seeds, key=lambda c: -c.data.metrics["validation_accuracy"])  # stable: seed 42 first on a tie
    (version,) = client.search_model_versions(f"run_id = '{best.info.run_id}'")
    assert version.name == "reviewflow-rnn" and not client.search_model_versions(f"run_id = '{other.info.run_id}'")
    assert "rnn-100-seed42: trained in" in result.stderr + result.stdout


def test_the_same_config_data_and_seed_give_the_same_test_metrics(twice):
    (first, second), _ = twice
    log = second[0].stdout + second[0].stderr
    assert all(f"{name}: trained in" in log for name in ("rnn-100-seed42", "rnn-100-seed43"))  # computed again, not reused
    for name in ("rnn-100-seed42", "rnn-100-seed43", "baseline-tfidf"):
        once, again = ({c.info.run_name: c for c in run[2]}[name] for run in (first, second))
        assert once.info.run_id != again.info.run_id
        for metric in ("test_accuracy", "test_auc", "test_loss", "validation_accuracy"):
            assert again.data.metrics[metric] == once.data.metrics[metric], (name, metric)


def _rows(table: dict) -> list[dict]:
    """A `log_table` JSON (columns and data) as rows."""
    return [dict(zip(table["columns"], row)) for row in table["data"]]
