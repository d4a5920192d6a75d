"""The cost of the operated pipeline: the training flow (Prefect, Great Expectations, MLflow against a real
tracking server) vs a bare Keras script doing the same training on the same data.

Run as `python -m tasks.bench.overhead CONFIG_JSON`, this module is the bare script: the same table,
the same prepared splits, the four models fitted one after another with every core, then scored on
the test split; no Prefect, no validation, no tracking.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from models.architectures import RECURRENT
from tasks.bench.sides import Figure, alternate, compared
from tasks.core.config import Config

# What the bench's flow leaves out, because the bare script does none of it: the baseline and the
# ensemble, the behaviour suite and the robustness copies (their costs are the models', not orchestration's).
FLOW_SETTINGS = {
    "train.architectures": ",".join(RECURRENT),
    "evaluation.behaviour": "false",
    "evaluation.robustness": "false",
    "ensemble.enabled": "false",
}


def flow_command(data: dict[str, str], epochs: int) -> list[str]:
    """`reviewflow train` on the bench's data (`data.*` settings), computing everything afresh."""
    settings = {**FLOW_SETTINGS, **data, "train.epochs": str(epochs)}
    return [sys.executable, "-m", "flows.cli", "train", "--profile", "default", "--fresh",
            *(arg for key, value in settings.items() for arg in ("--set", f"{key}={value}"))]


def bare_config(settings: dict[str, str], epochs: int) -> Config:
    """The config of the flow's data (its `data.*` settings); the rest is the bare script's own."""
    data = {key.removeprefix("data."): value for key, value in settings.items() if key.startswith("data.")}
    return Config.model_validate({"data": data, "train": {"epochs": epochs}})


def run_timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall seconds of `command` and the time (epoch seconds) it started."""
    started_at, started = time.time(), time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed ({done.returncode}):\n{done.stdout.decode('utf-8', 'replace')[-3000:]}")
    return time.perf_counter() - started, started_at


def first_training_started(tracking_uri: str) -> float:
    """When (epoch seconds) the first model of the latest training began: its earliest child run's start."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("reviewflow")
    parent = client.search_runs([experiment.experiment_id], "tags.profile = 'default'", order_by=["start_time DESC"], max_results=1)
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent[0].info.run_id}'")
    return min(c.info.start_time for c in children) / 1000


def overhead(data: dict[str, str], epochs: int, work: Path, env: dict[str, str], tracking_uri: str, repeats: int) -> Figure:
    startups: list[float] = []

    def flow() -> float:
        seconds, started_at = run_timed(flow_command(data, epochs), env, work)
        startups.append(first_training_started(tracking_uri) - started_at)
        return seconds

    def bare() -> float:
        config = bare_config(data, epochs).model_dump_json()
        return run_timed([sys.executable, "-m", "tasks.bench.overhead", config], env, work)[0]

    samples = alternate(flow, bare, repeats)
    figure = compared(*samples, "s", "lower", "<= 1.10", data=data, epochs=epochs,
                      models=list(RECURRENT), flow_settings=FLOW_SETTINGS)
    figure.details["startup_seconds"] = startups
    figure.details["startup_seconds_median"] = sorted(startups)[len(startups) // 2]
    return figure


def bare_training(config: Config) -> dict[str, float]:
    """The bare script's work: test accuracy per model."""
    import numpy as np

    from models.sentiment import SentimentClassifier
    from models.text import Vocabulary
    from tasks.core.processes import available_cores, limit_threads
    from tasks.stages.ingest import ingest_reviews
    from tasks.stages.prepare import prepare_sequences
    from tasks.stages.train import fit_model, seeded

    limit_threads(available_cores())
    table = ingest_reviews(config.data)
    seq_lens = sorted({config.train.seq_len[a] for a in RECURRENT})
    accuracies = {}
    with tempfile.TemporaryDirectory() as folder:
        prepared = prepare_sequences(table.path, config.prepare, seq_lens, config.train.seed, Path(folder))
        for architecture in RECURRENT:
            seq_len = config.train.seq_len[architecture]
            settings = config.train.for_architecture(architecture)
            seeded(settings)
            model = fit_model(architecture, seq_len, prepared, settings, [])[0]
            classifier = SentimentClassifier(model, Vocabulary.load(prepared.vocabulary_path), seq_len, prepared.keep)
            sequences, labels = prepared.load("test", seq_len)
            accuracies[architecture] = float(np.mean((classifier.predict_sequences(sequences) >= 0.5) == labels))
    return accuracies


if __name__ == "__main__":
    print(json.dumps(bare_training(Config.model_validate_json(sys.argv[1]))))
