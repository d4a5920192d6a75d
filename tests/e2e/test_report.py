"""`reviewflow report` against a real `mlflow server`: tables computed from recorded runs, --write, --json, and its errors.

The runs are recorded here with MlflowClient as a training records them (no training), so the
figures are known and the means are computed independently of tasks/results.py.
"""

import json
import statistics
import time

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from models.architectures import RECURRENT
from tasks.core.config import flatten, load_config
from tasks.core.servers import free_port
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e

EXPERIMENT = "report-e2e"
COMMIT = "c0ffee0123456789c0ffee0123456789c0ffee01"
# (architecture, seed) -> (test accuracy, test AUC, training seconds or None when not recorded)
MAIN = {
    ("rnn", 1): (0.7012, 0.7801, 30.0), ("rnn", 2): (0.7188, 0.7904, 34.0), ("rnn", 3): (0.7093, 0.7822, 31.0),
    ("bigru", 1): (0.7801, 0.8512, 90.0), ("bigru", 2): (0.7722, 0.8471, 95.0), ("bigru", 3): (0.7869, 0.8560, 99.0),
    ("baseline", None): (0.8541, 0.9302, None),
}
ABLATION = {("rnn", 1): (0.7305, 0.8001, 33.0), ("rnn", 2): (0.7251, 0.7990, 35.0), ("bigru", 1): (0.7702, 0.8455, 97.0), ("bigru", 2): (0.7655, 0.8401, 92.0)}


def _record(client: MlflowClient, experiment_id: str, name: str, overrides: list[str], models: dict, status: str = "FINISHED") -> str:
    """A parent run and its model runs as `reviewflow train --profile smoke` records them (the data contract)."""
    config = flatten(load_config("smoke", overrides).model_dump(mode="json"))
    parent = client.create_run(experiment_id, run_name=name, tags={"profile": "smoke", "mlflow.source.git.commit": COMMIT}).info.run_id
    client.log_batch(parent, params=[Param(k, str(v)) for k, v in config.items()])
    now = int(time.time() * 1000)
    for (architecture, seed), (accuracy, auc, seconds) in models.items():
        tags = {"mlflow.parentRunId": parent, "architecture": architecture, **({"seed": str(seed)} if seed is not None else {})}
        child = client.create_run(experiment_id, run_name=f"{architecture}-{seed}", tags=tags).info.run_id
        metrics = {"test_accuracy": accuracy, "test_auc": auc, "test_f1": accuracy, **({"train_seconds": seconds} if seconds else {})}
        params = [Param("seq_len", "100")] if architecture in RECURRENT else []
        client.log_batch(child, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()], params=params)
        client.set_terminated(child, "FINISHED")
    client.set_terminated(parent, status)
    return parent


@pytest.fixture(scope="module")
def recorded(mlflow_server, tmp_path_factory):
    """The runs, and a folder whose mlflow.yaml names their experiment (the CLI reads it from its folder)."""
    client = MlflowClient(mlflow_server, mlflow_server)
    experiment_id = client.create_experiment(EXPERIMENT)
    ablation = _record(client, experiment_id, "smoke-vocab", ["train.epochs=2", "prepare.vocab_size=8000"], ABLATION)
    main = _record(client, experiment_id, "smoke-main", ["train.epochs=2"], MAIN)
    # A seed whose training failed: no figure of it may count.
    failed = client.create_run(experiment_id, run_name="rnn-100", tags={"mlflow.parentRunId": main, "architecture": "rnn", "seed": "4"})
    client.log_batch(failed.info.run_id, metrics=[Metric("test_accuracy", 0.1, 0, 0)])
    client.set_terminated(failed.info.run_id, "FAILED")
    # Newer than the main run, and neither may be `latest`: a training still running, and a run that is no training.
    _record(client, experiment_id, "smoke-running", [], {}, status="RUNNING")
    other = client.create_run(experiment_id, run_name="notes").info.run_id
    client.set_terminated(other, "FINISHED")
    child = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{main}' and tags.architecture = 'bigru'")[0].info.run_id
    folder = tmp_path_factory.mktemp("report")
    (folder / "mlflow.yaml").write_text(f"experiment: {EXPERIMENT}\ntracking_uri: unused\nregistered_model_prefix: reviewflow-\n")
    return {"server": mlflow_server, "folder": folder, "main": main, "ablation": ablation, "child": child, "other": other}


def _report(recorded, *args: str):
    return run_cli(["report", *args], env={"MLFLOW_TRACKING_URI": recorded["server"]}, cwd=recorded["folder"], timeout=300)


def _one_line_error(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("reviewflow: error: "), result.stderr[-3000:]
    return result.stderr.strip()


def _accuracies(models: dict, architecture: str) -> list[float]:
    return [figures[0] for (a, _), figures in sorted(models.items(), key=lambda item: item[0][1] or 0) if a == architecture]


def test_the_report_of_the_latest_run_and_its_ablation_is_computed_from_the_runs(recorded):
    readme = recorded["folder"] / "README.md"
    readme.write_text("# Results\n\n<!-- results:smoke -->\nhand-typed 0.99\n<!-- /results:smoke -->\n\nThe rest.\n")

    result = _report(recorded, "latest:smoke", "--ablation", recorded["ablation"], "--write", "README.md", "--json", "figures.json")

    assert result.returncode == 0, result.stderr[-3000:]
    markdown = result.stdout
    assert f"Training run `smoke-main` (`{recorded['main']}`), profile `smoke`, commit `{COMMIT[:12]}`" in markdown
    assert "To reproduce: `reviewflow train --profile smoke --set train.epochs=2`" in markdown
    for architecture, seq_len, notebook in (("rnn", "100", "0.7674"), ("bigru", "100", "0.7894")):
        accuracy = _accuracies(MAIN, architecture)
        auc = statistics.mean(f[1] for (a, _), f in MAIN.items() if a == architecture)
        seconds = statistics.median(f[2] for (a, _), f in MAIN.items() if a == architecture)
        row = (
            f"| `{architecture}` | {seq_len} | 3 (1, 2, 3) | {statistics.mean(accuracy):.4f} | {statistics.stdev(accuracy):.4f} | "
            f"{min(accuracy):.4f}–{max(accuracy):.4f} | {', '.join(f'{a:.4f}' for a in accuracy)} | {notebook} | {auc:.4f} | {seconds:.0f} s |"
        )
        assert row in markdown
        difference = statistics.mean(_accuracies(ABLATION, architecture)) - statistics.mean(accuracy)
        assert f"| prepare.vocab_size 5000 → 8000 | `smoke-vocab` | `{architecture}` | 2 (1, 2) | " in markdown
        assert f"| {difference:+.4f} |" in markdown
    assert "| `baseline` | — | 1 | 0.8541 | — | 0.8541–0.8541 | 0.8541 | — | 0.9302 | — |" in markdown
    assert f"`reviewflow report {recorded['main']} --ablation {recorded['ablation']}`" in markdown

    text = readme.read_text()
    assert text == f"# Results\n\n<!-- results:smoke -->\n{markdown.strip()}\n<!-- /results:smoke -->\n\nThe rest.\n"
    figures = json.loads((recorded["folder"] / "figures.json").read_text())
    rnn = next(r for r in figures["results"] if r["architecture"] == "rnn")
    assert rnn["seeds"] == [1, 2, 3] and rnn["mean_accuracy"] == pytest.approx(statistics.mean(_accuracies(MAIN, "rnn")))
    assert figures["ablations"][0]["change"] == "prepare.vocab_size 5000 → 8000"


def test_a_file_without_the_markers_is_refused_and_nothing_is_written(recorded):
    notes = recorded["folder"] / "NOTES.md"
    notes.write_text("<!-- results:default -->\n<!-- /results:default -->\n")

    result = _report(recorded, recorded["main"], "--write", "NOTES.md", "--json", "refused.json")

    assert _one_line_error(result) == (
        "reviewflow: error: NOTES.md has no marker <!-- results:smoke --> "
        "(it needs <!-- results:smoke --> ... <!-- /results:smoke --> once each)"
    )
    assert notes.read_text() == "<!-- results:default -->\n<!-- /results:default -->\n"
    assert not (recorded["folder"] / "refused.json").exists()


@pytest.mark.parametrize(
    "run, message",
    [
        ("0123456789abcdef0123456789abcdef", "no MLflow run '0123456789abcdef0123456789abcdef' at "),
        ("child", "is one model's run inside the training run "),
        ("other", "(notes) is not a reviewflow training run"),
        ("latest:default", f"no finished training run of profile default in the MLflow experiment '{EXPERIMENT}' at "),
    ],
)
def test_a_run_that_is_no_finished_training_is_one_line(recorded, run, message):
    result = _report(recorded, recorded.get(run, run))
    assert message in _one_line_error(result)


def test_an_unreachable_tracking_server_is_one_line(recorded):
    gone = f"http://127.0.0.1:{free_port()}"
    result = run_cli(["report", "latest"], env={"MLFLOW_TRACKING_URI": gone}, cwd=recorded["folder"], timeout=300)
    assert _one_line_error(result).startswith(f"reviewflow: error: the MLflow tracking server at {gone} does not answer")
