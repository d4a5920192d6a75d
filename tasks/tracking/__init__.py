"""Every MLflow call of reviewflow: run names, logging, registering, aliases.

Runs are always addressed by explicit id (MLflow's fluent active run is thread-local and
tasks run in other threads and processes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Literal

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import BaseModel

from models.architectures import ENSEMBLE, run_name
from models.classifiers import is_baseline, load_classifier
from tasks.core.config import PROFILES, TrackingConfig
from tasks.core.errors import ReviewflowError, one_line, redacted
from tasks.core.files import remove, remove_stale_temporaries, temporary_sibling
from tasks.core.records import ModelRun, TrainingRun

log = logging.getLogger("reviewflow")
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
ENSEMBLE_CODE = Path(__file__).with_name("pyfunc_ensemble.py")
ENSEMBLE_SPEC = "ensemble.json"  # the ensemble's artifact: its stacker and pinned member versions
MODELS_PACKAGE = Path(__file__).resolve().parents[1] / "models"
CHAMPION, CHALLENGER = "champion", "challenger"
REUSED_FROM_TAG = "reviewflow.reused_from_run"
LOGGED_MODEL_FOLDER = "model"  # what log_and_register adds to a child run
GATE_METRIC = "test_accuracy"
CACHE_STAMP = "reviewflow-cache.json"  # written last into a model cache entry: the version it holds
PARENT_TAG = "mlflow.parentRunId"


class Tracking(BaseModel):
    """What a task needs to reach the tracking server and the run it logs under."""

    tracking_uri: str
    experiment_id: str
    registered_model_prefix: str
    parent_run_id: str | None = None

    def client(self) -> MlflowClient:
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        return MlflowClient(self.tracking_uri, self.tracking_uri)


def connect(settings: TrackingConfig) -> Tracking:
    """Reach the tracking store (creating the embedded SQLite store if needed) and the experiment."""
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if uri.startswith(("http://", "https://")):
        check_server_answers(uri)
    tracking = Tracking(tracking_uri=uri, experiment_id="", registered_model_prefix=settings.registered_model_prefix)
    client = tracking.client()
    try:
        experiment = client.get_experiment_by_name(settings.experiment)
        if experiment is None:
            location = _artifact_location(uri, settings.artifact_location)
            experiment_id = client.create_experiment(settings.experiment, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
    except (MlflowException, ReviewflowError) as exc:
        raise ReviewflowError(redacted(f"MLflow tracking at {uri} failed: {one_line(exc)}")) from None
    except OSError as exc:
        raise ReviewflowError(redacted(f"MLflow tracking at {uri} is unreachable: {one_line(exc)}")) from None
    return tracking.model_copy(update={"experiment_id": experiment_id})


def check_server_answers(uri: str, attempts: int = 3, timeout: float = 5) -> None:
    """Fail in seconds, with one line naming the address, when the tracking server does not answer.

    MLflow's own client retries an unreachable server with backoff for minutes; a server
    that is down when a run starts should stop it before any data is prepared.
    """
    parts = urllib.parse.urlsplit(uri)
    # The health check needs no credentials, and urllib would read user:token@ as part of the host.
    health = parts._replace(netloc=parts.netloc.rpartition("@")[2], path=parts.path.rstrip("/") + "/health").geturl()
    for attempt in range(attempts):
        try:
            with urllib.request.urlopen(health, timeout=timeout):
                return
        except urllib.error.HTTPError:
            return  # it answers: MLflow's own calls will report what is wrong
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            if attempt + 1 < attempts:
                time.sleep(1 + attempt)
    raise ReviewflowError(redacted(f"the MLflow tracking server at {uri} does not answer ({one_line(reason, 120)})"))


def _artifact_location(uri: str, artifact_location: str | None) -> str | None:
    # A server decides where artifacts go; the embedded store keeps them beside its database.
    if not artifact_location or uri.startswith(("http://", "https://")):
        return None
    return Path(artifact_location).resolve().as_uri()


def start_parent_run(tracking: Tracking, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
    client = tracking.client()
    run = client.create_run(tracking.experiment_id, run_name=run_name, tags={**tags, **_git_tags()})
    client.log_batch(run.info.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
    return run.info.run_id


def start_child_run(
    tracking: Tracking,
    architecture: str,
    seq_len: int | None,
    params: dict[str, Any],
    tags: dict[str, str] | None = None,
    name: str | None = None,
) -> str:
    """The nested run of one model: named `<arch>-<seq_len>` (`baseline-tfidf`, `ensemble-stacked`) unless
    `name` says otherwise, tagged `architecture` and `tags`."""
    client = tracking.client()
    tags = {**(tags or {}), "mlflow.parentRunId": tracking.parent_run_id, "architecture": architecture}
    run = client.create_run(tracking.experiment_id, run_name=name or run_name(architecture, seq_len), tags=tags)
    client.log_batch(run.info.run_id, params=[Param(k, _param_value(v)) for k, v in params.items()])
    return run.info.run_id


def parent_of(tracking: Tracking, run_id: str) -> str | None:
    """The parent run of `run_id`, or None for a top-level run."""
    try:
        return tracking.client().get_run(run_id).data.tags.get("mlflow.parentRunId")
    except MlflowException as exc:
        raise ReviewflowError(
            f"MLflow run {run_id} at {tracking.tracking_uri} cannot be read ({one_line(exc)}); run with --fresh"
        ) from None


def read_training_run(settings: TrackingConfig, reference: str) -> TrainingRun:
    """The recorded training `reference` names, with its models' finished child runs.

    `reference` is a training's parent run id, `latest` (the experiment's newest finished
    training) or `latest:<profile>`. It only reads: no store or experiment is created.
    """
    uri = settings.tracking_uri
    if uri.startswith(("http://", "https://")):
        check_server_answers(uri)
    elif uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise ReviewflowError(f"no MLflow store at {uri.removeprefix('sqlite:///')}: nothing was recorded there (or set MLFLOW_TRACKING_URI)")
    client = MlflowClient(uri, uri)
    try:
        if reference.partition(":")[0] == "latest":
            run = _latest_training(client, settings.experiment, reference.partition(":")[2], uri)
        else:
            run = _training(client, reference, uri)
        children = client.search_runs(
            [run.info.experiment_id], f"tags.{PARENT_TAG} = '{run.info.run_id}' and attributes.status = 'FINISHED'", max_results=10000
        )
    except (MlflowException, OSError) as exc:
        raise ReviewflowError(redacted(f"reading MLflow runs at {uri} failed: {one_line(exc, 300)}")) from None
    tags = run.data.tags
    return TrainingRun(
        run_id=run.info.run_id,
        name=run.info.run_name or "",
        status=run.info.status,
        start_time_ms=run.info.start_time or 0,
        profile=tags["profile"],
        commit=tags.get("mlflow.source.git.commit", ""),
        params=run.data.params,
        models=[_model_run(child) for child in children if "architecture" in child.data.tags],
    )


def _training(client: MlflowClient, run_id: str, uri: str) -> Any:
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            raise ReviewflowError(redacted(f"no MLflow run {run_id!r} at {uri}")) from None
        raise
    tags = run.data.tags
    if PARENT_TAG in tags:
        raise ReviewflowError(
            f"MLflow run {run_id} ({run.info.run_name}) is one model's run inside the training run {tags[PARENT_TAG]}: give a training run's id"
        )
    if "profile" not in tags:
        raise ReviewflowError(f"MLflow run {run_id} ({run.info.run_name}) is not a reviewflow training run (it has no `profile` tag)")
    return run


def _latest_training(client: MlflowClient, experiment_name: str, profile: str, uri: str) -> Any:
    if profile and profile not in PROFILES:
        raise ReviewflowError(f"latest:{profile}: unknown profile (choose from {', '.join(PROFILES)})")
    experiment = client.get_experiment_by_name(experiment_name)
    wanted = "attributes.status = 'FINISHED'" + (f" and tags.profile = '{profile}'" if profile else "")
    token = None
    while experiment is not None:
        page = client.search_runs([experiment.experiment_id], wanted, order_by=["attributes.start_time DESC"], max_results=500, page_token=token)
        # Model runs are finished runs too: the newest top-level one with a profile is the training.
        trainings = [r for r in page if PARENT_TAG not in r.data.tags and "profile" in r.data.tags]
        if trainings:
            return trainings[0]
        token = page.token
        if not token:
            break
    of_profile = f" of profile {profile}" if profile else ""
    raise ReviewflowError(redacted(f"no finished training run{of_profile} in the MLflow experiment {experiment_name!r} at {uri}"))


def _model_run(run: Any) -> ModelRun:
    seed, seq_len = run.data.tags.get("seed", ""), run.data.params.get("seq_len", "")
    return ModelRun(
        run_id=run.info.run_id,
        architecture=run.data.tags["architecture"],
        seed=int(seed) if seed.lstrip("-").isdigit() else None,
        seq_len=int(seq_len) if seq_len.isdigit() else None,
        metrics=run.data.metrics,
    )


def copy_child_run(tracking: Tracking, source_run_id: str) -> str:
    """A child run of the current parent that repeats a finished child run of an earlier flow run:
    its name, tags, params, every metric's history and its artifacts (not a logged model),
    tagged `reviewflow.reused_from_run=<source>`. Returns the new run's id."""
    client = tracking.client()
    source = client.get_run(source_run_id)
    tags = {k: v for k, v in source.data.tags.items() if not k.startswith("mlflow.")}
    tags.update({"mlflow.parentRunId": tracking.parent_run_id, REUSED_FROM_TAG: source_run_id})
    run = client.create_run(tracking.experiment_id, run_name=source.info.run_name, tags=tags)
    run_id = run.info.run_id
    try:
        client.log_batch(run_id, params=[Param(k, v) for k, v in source.data.params.items()])
        history = [m for key in source.data.metrics for m in client.get_metric_history(source_run_id, key)]
        for start in range(0, len(history), 1000):  # MLflow's limit per batch
            batch = history[start : start + 1000]
            client.log_batch(run_id, metrics=[Metric(m.key, m.value, m.timestamp, m.step) for m in batch])
        with tempfile.TemporaryDirectory() as folder:
            for artifact in client.list_artifacts(source_run_id):
                if artifact.path == LOGGED_MODEL_FOLDER:
                    continue
                local = client.download_artifacts(source_run_id, artifact.path, folder)
                if artifact.is_dir:
                    client.log_artifacts(run_id, local, artifact.path)
                else:
                    client.log_artifact(run_id, local)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _param_value(value: Any) -> str:
    return redacted(str(value))[:6000]


def _git_tags() -> dict[str, str]:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=MODELS_PACKAGE.parent, capture_output=True, text=True, timeout=5
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"mlflow.source.git.commit": commit} if commit else {}


def log_dataset(tracking: Tracking, run_id: str, table_path: Path, source: str, digest: str, name: str) -> None:
    """Record the training table as the run's MLflow dataset input, with the source's digest."""
    reviews = pd.read_parquet(table_path, columns=["review_id", "split", "label", "rating"])
    with warnings.catch_warnings():
        # Schema hints about integer columns and ambiguous local sources: noise for a record of what was read.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(reviews, source=redacted(source), targets="label", name=name, digest=digest[:36])
    # By id, not `with mlflow.start_run(...)`: leaving that block would mark the parent FINISHED
    # while its models still train, and it would stay so if the flow were killed.
    context = InputTag(key="mlflow.data.context", value="training")
    tracking.client().log_inputs(run_id, datasets=[DatasetInput(dataset=dataset._to_mlflow_entity(), tags=[context])])


def log_metrics(tracking: Tracking, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    tracking.client().log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def log_artifact(tracking: Tracking, run_id: str, path: Path, artifact_path: str | None = None) -> None:
    tracking.client().log_artifact(run_id, str(path), artifact_path)


def log_artifacts(tracking: Tracking, run_id: str, folder: Path, artifact_path: str | None = None) -> None:
    tracking.client().log_artifacts(run_id, str(folder), artifact_path)


def log_text(tracking: Tracking, run_id: str, text: str, artifact_file: str) -> None:
    tracking.client().log_text(run_id, text, artifact_file)


def log_table(tracking: Tracking, run_id: str, table: pd.DataFrame, artifact_file: str) -> None:
    tracking.client().log_table(run_id, table, artifact_file)


def log_figure(tracking: Tracking, run_id: str, figure: Any, artifact_file: str) -> None:
    tracking.client().log_figure(run_id, figure, artifact_file)


def set_tags(tracking: Tracking, run_id: str, tags: dict[str, str]) -> None:
    tracking.client().log_batch(run_id, tags=[RunTag(k, redacted(v)) for k, v in tags.items()])


def finish_run(tracking: Tracking, run_id: str, succeeded: bool) -> None:
    tracking.client().set_terminated(run_id, "FINISHED" if succeeded else "FAILED")


def end_unfinished(tracking: Tracking, parent_run_id: str, status: Literal["FAILED", "KILLED"]) -> None:
    """A failed or interrupted training: its child runs still RUNNING, then the parent, end with `status`."""
    client = tracking.client()
    running = client.search_runs(
        [tracking.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}' and attributes.status = 'RUNNING'",
    )
    for run in running:
        client.set_terminated(run.info.run_id, status)
    client.set_terminated(parent_run_id, status)


def registered_name(tracking: Tracking, architecture: str) -> str:
    return f"{tracking.registered_model_prefix}{architecture}"


def log_and_register(
    tracking: Tracking, run_id: str, architecture: str, model_dir: Path, input_example: pd.DataFrame
) -> str:
    """Log the text-in pyfunc model in the run and register it; returns the new version.

    A classifier folder travels as the artifact `classifier`; the ensemble's `ensemble.json`
    (stacker and member versions) as `ensemble`, its members staying in the registry.
    """
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, pd.Series([0.5] * len(input_example), name="prob_positive"))
    name = registered_name(tracking, architecture)
    if architecture == ENSEMBLE:
        code, artifacts, requirements = ENSEMBLE_CODE, {"ensemble": str(model_dir / ENSEMBLE_SPEC)}, _pip_requirements(True, True)
    else:
        baseline = is_baseline(model_dir)
        code, artifacts, requirements = PYFUNC_CODE, {"classifier": str(model_dir)}, _pip_requirements(not baseline, baseline)
    tracking.client()
    try:
        if tracking.tracking_uri.startswith(("http://", "https://")):
            check_server_answers(tracking.tracking_uri)  # gone: say so in seconds, not after minutes of retries
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name=LOGGED_MODEL_FOLDER,
                python_model=str(code),
                artifacts=artifacts,
                code_paths=[str(MODELS_PACKAGE)],
                signature=signature,
                input_example=input_example,
                pip_requirements=requirements,
                registered_model_name=name,
            )
    except (MlflowException, ReviewflowError) as exc:
        reason = str(exc) if isinstance(exc, ReviewflowError) else one_line(exc)
        raise ReviewflowError(redacted(
            f"registering {name} at {tracking.tracking_uri} failed: {reason} "
            f"(the trained model stays in {model_dir}; run again to register it without training)"
        )) from None  # fmt: skip
    return str(info.registered_model_version)


def _pip_requirements(tensorflow: bool, sklearn: bool) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    wanted = ["numpy", "pandas", "mlflow"]
    if sklearn:
        wanted += ["scikit-learn", "scipy"]
    if tensorflow:
        wanted.append("keras")
        try:
            wanted.append(f"tensorflow-cpu=={version('tensorflow-cpu')}")
        except PackageNotFoundError:
            wanted.append("tensorflow")
    return [w if "==" in w or w == "tensorflow" else f"{w}=={version(w)}" for w in wanted]


def set_model_version_tags(tracking: Tracking, name: str, version: str, tags: dict[str, str]) -> None:
    client = tracking.client()
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def apply_champion_gate(tracking: Tracking, architecture: str, version: str, score: float) -> tuple[str, float | None]:
    """`champion` moves to `version` when `score` >= the champion's; otherwise it is `challenger`.

    Returns the alias given and the previous champion's score (None if there was none).
    """
    client = tracking.client()
    name = registered_name(tracking, architecture)
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        current = None
    champion_score = None
    if current is not None and str(current.version) != str(version):
        champion_score = client.get_run(current.run_id).data.metrics.get(GATE_METRIC)
    alias = CHAMPION if champion_score is None or score >= champion_score else CHALLENGER
    client.set_registered_model_alias(name, alias, version)
    client.set_model_version_tag(name, version, GATE_METRIC, f"{score:.4f}")
    return alias, champion_score


def run_url(tracking: Tracking, run_id: str) -> str | None:
    """The run's page in the MLflow UI, when the tracking URI is a server."""
    if not tracking.tracking_uri.startswith(("http://", "https://")):
        return None
    base = redacted(tracking.tracking_uri).rstrip("/")
    return f"{base}/#/experiments/{tracking.experiment_id}/runs/{run_id}"


def load_registered_models(
    tracking: Tracking, architectures: list[str], alias: str, cache: Path
) -> tuple[dict[str, Any], dict[str, str]]:
    """The classifiers (`predict(texts)` -> P(positive)) of the versions that hold `alias`, and those versions.

    Which version holds an alias is asked every time (aliases move); each version is then loaded
    by its exact number from the local cache, downloaded there the first time (see `cached_version`).
    """
    client = tracking.client()
    classifiers, versions = {}, {}
    for architecture in architectures:
        name = registered_name(tracking, architecture)
        try:
            found = client.get_model_version_by_alias(name, alias)
        except MlflowException:
            raise ReviewflowError(
                redacted(f"no version of {name} has the alias {alias!r} at {tracking.tracking_uri}: train first, or pick another --alias")
            ) from None
        classifiers[architecture] = _load_classifier(tracking, found, cache)
        versions[architecture] = f"{name}/{found.version}"
    return classifiers, versions


def load_model_version(tracking: Tracking, name: str, version: str, cache: Path) -> Any:
    """The classifier of one exact registered version, from the local cache."""
    return _load_classifier(tracking, tracking.client().get_model_version(name, version), cache)


def _load_classifier(tracking: Tracking, found: ModelVersion, cache: Path) -> Any:
    # The pyfunc wrapper (pyfunc_model.py) only calls load_classifier on its `classifier`
    # artifact; loading that folder directly skips MLflow's model loading and its checks.
    folder = cached_version(tracking, found, cache)
    return load_classifier(folder / _artifact_path(folder, "classifier"))


def registered_ensemble(tracking: Tracking, alias: str, cache: Path) -> tuple[str, dict[str, Any]] | None:
    """The version of `reviewflow-ensemble` holding `alias` (`reviewflow-ensemble/4`) and its
    `ensemble.json` (stacker, pinned member versions), read from the local cache without loading
    its members; None when no version holds the alias."""
    client = tracking.client()
    name = registered_name(tracking, ENSEMBLE)
    try:
        found = client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    folder = cached_version(tracking, found, cache)
    spec = json.loads((folder / _artifact_path(folder, "ensemble")).read_text(encoding="utf-8"))
    return f"{name}/{found.version}", spec


def cached_version(tracking: Tracking, found: ModelVersion, cache: Path) -> Path:
    """The local copy of a registered version's files (the logged model: `MLmodel`, `artifacts/`, `code/`).

    A version's files never change, so they are downloaded once, under
    `<cache>/<store>/<name>/<version>` (`<store>`: a digest of the tracking URI). The download
    goes into a hidden folder beside the entry, which is renamed into place only when complete
    and stamped with the version's run and creation time: a half-written entry is never used,
    and a store created again (its version 1 another model) replaces the entry instead of reusing it.
    """
    folder = Path(cache).resolve() / _store_id(tracking.tracking_uri) / found.name / str(found.version)
    stamp = {"name": found.name, "version": str(found.version), "run_id": found.run_id or "", "created": found.creation_timestamp}
    if _stamp_of(folder) == stamp:
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder.parent)  # the downloads of killed runs
    download = temporary_sibling(folder)
    try:
        download.mkdir()
        _download_version(tracking, found.name, str(found.version), download)
        (download / CACHE_STAMP).write_text(json.dumps(stamp), encoding="utf-8")
        _sync_files(download)
        _install(download, folder, stamp)
    finally:
        if download.exists():
            remove(download)
    log.info("%s/%s: downloaded into the model cache %s", found.name, found.version, folder)
    return folder


def _download_version(tracking: Tracking, name: str, version: str, destination: Path) -> None:
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    try:
        ModelsArtifactRepository(f"models:/{name}/{version}").download_artifacts("", str(destination))
    except (MlflowException, OSError) as exc:
        raise ReviewflowError(redacted(f"downloading {name}/{version} from {tracking.tracking_uri} failed: {one_line(exc)}")) from None


def _install(download: Path, folder: Path, stamp: dict[str, Any]) -> None:
    """Rename a complete download into place; an entry that is not this version's (partial, stale) goes first."""
    if folder.exists() and _stamp_of(folder) != stamp:
        aside = temporary_sibling(folder)
        with contextlib.suppress(FileNotFoundError):  # another run may be replacing it too
            os.rename(folder, aside)
            remove(aside)
    try:
        os.rename(download, folder)
    except OSError:
        if _stamp_of(folder) != stamp:  # not another run's complete copy of the same version
            raise


def _stamp_of(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / CACHE_STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _sync_files(folder: Path) -> None:
    # A folder renamed into place must survive a crash as written, or it would look complete.
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as file:
                os.fsync(file.fileno())


def _artifact_path(folder: Path, artifact: str) -> str:
    """Where a pyfunc model's artifact lies inside its folder, as its `MLmodel` file records it."""
    from mlflow.models import Model

    return Model.load(str(folder)).flavors["python_function"]["artifacts"][artifact]["path"]


def _store_id(uri: str) -> str:
    """A short digest naming a tracking store: local paths made absolute, credentials left out."""
    for scheme in ("sqlite:///", "file://"):
        if uri.startswith(scheme):
            uri = scheme + str(Path(uri.removeprefix(scheme)).resolve())
            break
    else:
        parts = urllib.parse.urlsplit(uri)
        uri = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl() if parts.scheme else str(Path(uri).resolve())
    return hashlib.sha256(uri.encode("utf-8")).hexdigest()[:16]
