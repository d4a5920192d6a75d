"""The champion gate, model cards and forced promotion against a real MLflow server's registry.

Real baselines trained on real reviews: a deliberately weakened one (20 n-gram features) and a full one.
The gate must score the champion again through its own registered pyfunc, so a champion whose stored
figure was inflated is still beaten by a better candidate.
"""

import json
import os
from pathlib import Path

import pytest

from tasks.core.config import BaselineConfig, DataConfig, EvaluationConfig, PrepareConfig, RegistryConfig, TrackingConfig
from tasks.core.errors import ReviewflowError
from tasks.stages.baseline import train_baseline
from tasks.stages.evaluate import evaluate_model
from tasks.stages.ingest import ingest_reviews
from tasks.stages.prepare import prepare_sequences
from tasks.stages.register import register_model
from tasks.tracking import connect
from tasks.tracking.runs import start_parent_run
from tests.conftest import _started_mlflow_server
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e
WEAK = {"max_features": 20}  # a baseline that knows 20 n-grams: deliberately weak


@pytest.fixture(scope="module")
def registry_server(tmp_path_factory):
    """A tracking server of this module's own, so its registered names are the product's (`reviewflow-baseline`)."""
    import mlflow

    before = {name: os.environ.get(name) for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield from _started_mlflow_server(tmp_path_factory.mktemp("registry-mlflow"))
    # The tracking calls set MLflow's process-wide URIs (and their variables) to this server: put them back.
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for name, value in before.items():
        os.environ.pop(name, None)
        if value is not None:
            os.environ[name] = value


@pytest.fixture(scope="module")
def data(tmp_path_factory, imdb_archive, shared_cache):
    table = ingest_reviews(DataConfig(source=str(imdb_archive), cache_dir=shared_cache, reviews_per_split=800))
    prepared = prepare_sequences(table.path, PrepareConfig(vocab_size=3000), [100], 42, tmp_path_factory.mktemp("prepared"))
    return table, prepared


def _tracking(server: str, prefix: str):
    settings = TrackingConfig(experiment="reviewflow", tracking_uri=server, registered_model_prefix=prefix)
    tracking = connect(settings)
    return tracking.model_copy(update={"parent_run_id": start_parent_run(tracking, "gate-test", {}, {"profile": "smoke"})})


def _register(tracking, data, folder, **baseline):
    table, prepared = data
    trained = train_baseline(prepared, BaselineConfig(**baseline), tracking, folder)
    evaluation = evaluate_model(trained, prepared, tracking, 1, EvaluationConfig(behaviour=False, robustness=False))
    return register_model(evaluation, prepared, table, RegistryConfig(), tracking), evaluation


def _champion(tracking, name: str) -> str:
    return tracking.client().get_model_version_by_alias(name, "champion").version


def test_a_weakened_champion_is_beaten_and_a_strong_one_is_kept(registry_server, data, tmp_path):
    tracking = _tracking(registry_server, "gate-a-")
    weak, weak_evaluation = _register(tracking, data, tmp_path / "weak", **WEAK)
    assert (weak.verdict, weak.alias, weak.champion) == ("promote", "champion", "")

    strong, strong_evaluation = _register(tracking, data, tmp_path / "strong")
    assert (strong.verdict, strong.alias, strong.champion) == ("promote", "champion", f"gate-a-baseline/{weak.version}")
    # The champion's figure is its own predictions' on the same test reviews, equal to its evaluation's.
    assert float(strong.gate["gate.champion_accuracy"]) == pytest.approx(weak_evaluation.metrics["test_accuracy"], abs=5e-5)
    assert float(strong.gate["gate.candidate_accuracy"]) > float(strong.gate["gate.champion_accuracy"]) + 0.05

    weaker, _ = _register(tracking, data, tmp_path / "weak-again", **WEAK)
    assert (weaker.verdict, weaker.alias) == ("reject", "challenger")
    assert _champion(tracking, "gate-a-baseline") == strong.version
    tags = tracking.client().get_model_version("gate-a-baseline", weaker.version).tags
    assert tags["gate.verdict"] == "reject" and " vs champion " in tags["gate.reason"]  # overall or on a slice
    assert float(tags["gate.champion_accuracy"]) == pytest.approx(strong_evaluation.metrics["test_accuracy"], abs=5e-5)


def test_an_inflated_stored_figure_does_not_protect_a_champion(registry_server, data, tmp_path):
    tracking = _tracking(registry_server, "gate-b-")
    weak, weak_evaluation = _register(tracking, data, tmp_path / "weak", **WEAK)
    client = tracking.client()
    champion_run = client.get_model_version("gate-b-baseline", weak.version).run_id
    client.log_metric(champion_run, "test_accuracy", 0.99)  # what the old gate compared with
    assert client.get_run(champion_run).data.metrics["test_accuracy"] == 0.99

    better, _ = _register(tracking, data, tmp_path / "better")
    assert (better.verdict, better.alias) == ("promote", "champion")
    assert float(better.gate["gate.champion_accuracy"]) == pytest.approx(weak_evaluation.metrics["test_accuracy"], abs=5e-5)
    assert _champion(tracking, "gate-b-baseline") == better.version


def test_a_candidate_within_the_margin_is_held_as_challenger(registry_server, data, tmp_path):
    tracking = _tracking(registry_server, "gate-c-")
    first, _ = _register(tracking, data, tmp_path / "first")
    same, _ = _register(tracking, data, tmp_path / "same")  # the same data and settings: the same accuracy
    assert (same.verdict, same.alias) == ("hold", "challenger")
    assert "within gate_margin 0.0020" in same.gate["gate.reason"]
    assert _champion(tracking, "gate-c-baseline") == first.version


def test_each_version_carries_its_model_card_and_the_run_its_gate_record(registry_server, data, tmp_path):
    tracking = _tracking(registry_server, "gate-d-")
    registration, evaluation = _register(tracking, data, tmp_path / "carded")
    card = tracking.client().get_model_version("gate-d-baseline", registration.version).description
    for section in ("# gate-d-baseline version", "## Data", "## Code", "## Settings", "## Metrics", "## Slices", "## Gate",
                    "## Intended use", "## Known limits"):
        assert section in card, section
    assert f"{evaluation.metrics['test_accuracy']:.4f}" in card and "length_over_300" in card
    assert "English" in card and "Verdict: promote" in card


def test_registration_without_the_cards_evidence_fails_in_one_line_and_registers_nothing(registry_server, data, tmp_path):
    tracking = _tracking(registry_server, "gate-e-")
    table, prepared = data
    trained = train_baseline(prepared, BaselineConfig(), tracking, tmp_path)
    evaluation = evaluate_model(trained, prepared, tracking, 1, EvaluationConfig(behaviour=False, robustness=False))
    no_slices = evaluation.model_copy(update={"metrics": {k: v for k, v in evaluation.metrics.items() if not k.startswith("slice_")}})
    with pytest.raises(ReviewflowError, match="^model card for gate-e-baseline/new: missing evidence: slices$"):
        register_model(no_slices, prepared, table, RegistryConfig(), tracking)
    assert not tracking.client().search_model_versions("name = 'gate-e-baseline'")


def test_a_forced_promotion_needs_a_reason_and_is_recorded(registry_server, data, tmp_path):
    tracking = _tracking(registry_server, "reviewflow-")
    strong, _ = _register(tracking, data, tmp_path / "strong")
    weak, _ = _register(tracking, data, tmp_path / "weak", **WEAK)
    assert weak.verdict == "reject"
    env = {"MLFLOW_TRACKING_URI": registry_server, "REVIEWFLOW_USER": "ana"}

    refused = run_cli(["promote", "baseline", weak.version, "--reason", " "], env=env, cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.strip() == "reviewflow: error: a forced promotion needs --reason"
    missing = run_cli(["promote", "baseline", "99", "--reason", "x"], env=env, cwd=tmp_path)
    assert missing.returncode == 2 and "no version 99 of reviewflow-baseline" in missing.stderr
    assert _champion(tracking, "reviewflow-baseline") == strong.version

    done = run_cli(["promote", "baseline", weak.version, "--reason", "the small model serves the phone app"], env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _champion(tracking, "reviewflow-baseline") == weak.version
    tags = tracking.client().get_model_version("reviewflow-baseline", weak.version).tags
    assert tags["gate.verdict"] == "forced" and tags["gate.forced_by"] == "ana" and tags["gate.forced_at"].startswith("20")
    assert tags["gate.reason"].endswith(": the small model serves the phone app")
    assert tags["gate.forced_from"] == f"reviewflow-baseline/{strong.version}"
    assert tags["gate.verdict_at_registration"] == "reject" and float(tags["gate.champion_accuracy"]) > float(tags["gate.candidate_accuracy"])
    card = tracking.client().get_model_version("reviewflow-baseline", weak.version).description
    assert "## Gate" in card and card.rstrip().endswith(f"- Replaced: reviewflow-baseline/{strong.version}")

    listed = run_cli(["models"], env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    rows = {row["version"]: row for row in _table(listed.stdout) if row["model"] == "reviewflow-baseline"}
    # The weak version is champion alone (promoted, it is no longer the challenger waiting).
    assert (rows[weak.version]["aliases"], rows[weak.version]["verdict"]) == ("champion", "forced") and "ana" in rows[weak.version]["reason"]
    assert (rows[strong.version]["aliases"], rows[strong.version]["verdict"]) == ("", "promote")


def _table(text: str) -> list[dict[str, str]]:
    """The rows of a table the CLI printed, by the header's column positions."""
    header, _, *lines = text.splitlines()
    starts = [i for i, c in enumerate(header) if c != " " and (i == 0 or header[i - 1] == " ")]
    names = header.split()
    return [{n: line[a:b].strip() for n, a, b in zip(names, starts, [*starts[1:], None])} for line in lines]


def test_the_run_records_every_gate_decision_in_gate_json(smoke_training, tmp_path):
    _, client, parent, _, _ = smoke_training
    records = json.loads(Path(client.download_artifacts(parent.info.run_id, "gate.json", str(tmp_path))).read_text())
    assert {r["model"] for r in records} == {f"reviewflow-{m}" for m in ("rnn", "birnn", "bigru", "bilstm", "baseline", "ensemble")}
    for record in records:
        assert record["gate.verdict"] in {"promote", "hold", "reject"} and record["gate.reason"]
        assert record["alias"] == ("champion" if record["gate.verdict"] == "promote" else "challenger")
