"""Registered versions: logging a model as a text-in pyfunc, registering it, its aliases and tags, and fetching it.

A version is a pyfunc model whose input is a DataFrame with a string column `text` and whose
output is P(positive); it carries its vocabulary (or its ensemble spec) and the `models/` code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from models.architectures import ENSEMBLE
from models.classifiers import is_baseline
from tasks.core.errors import ReviewflowError, one_line, redacted
from tasks.core.provenance import PROJECT_ROOT
from tasks.tracking import Tracking, check_server_answers, is_server
from tasks.tracking.runs import LOGGED_MODEL_FOLDER

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
ENSEMBLE_CODE = Path(__file__).with_name("pyfunc_ensemble.py")
ENSEMBLE_SPEC = "ensemble.json"  # the ensemble's artifact: its stacker and pinned member versions
MODELS_PACKAGE = PROJECT_ROOT / "models"
CHAMPION, CHALLENGER = "champion", "challenger"
GATE_METRIC = "test_accuracy"
REFERENCE_PROFILE = "reference_profile"  # the artifact a version's drift reference travels as
# The input example every version carries (its signature: a string column `text`).
INPUT_EXAMPLE = pd.DataFrame({"text": ["A moving story, wonderfully acted.", "Dull plot and wooden dialogue; I left early."]})


def registered_name(tracking: Tracking, architecture: str) -> str:
    return f"{tracking.registered_model_prefix}{architecture}"


def log_and_register(
    tracking: Tracking, run_id: str, architecture: str, model_dir: Path, input_example: pd.DataFrame, reference_profile: Path | None = None
) -> str:
    """Log the text-in pyfunc model in the run and register it; returns the new version.

    A classifier folder travels as the artifact `classifier`; the ensemble's `ensemble.json`
    (stacker and member versions) as `ensemble`, its members staying in the registry. The folder
    `reference_profile` (`profile.json`: tasks.scoring.drift's profile of the test split as this model
    scored it; `vocabulary.json`: the vocabulary its out-of-vocabulary rate counts against) travels as
    the artifact `reference_profile`, which batch scoring compares each file with.
    """
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, pd.Series([0.5] * len(input_example), name="prob_positive"))
    name = registered_name(tracking, architecture)
    if architecture == ENSEMBLE:
        code, artifacts, requirements = ENSEMBLE_CODE, {"ensemble": str(model_dir / ENSEMBLE_SPEC)}, _pip_requirements(True, True)
    else:
        baseline = is_baseline(model_dir)
        code, artifacts, requirements = PYFUNC_CODE, {"classifier": str(model_dir)}, _pip_requirements(not baseline, baseline)
    if reference_profile is not None:
        artifacts[REFERENCE_PROFILE] = str(reference_profile)
    tracking.client()
    try:
        if is_server(tracking.tracking_uri):
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
        )) from None
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




def set_alias(tracking: Tracking, name: str, alias: str, version: str) -> None:
    tracking.client().set_registered_model_alias(name, alias, version)


def delete_alias(tracking: Tracking, name: str, alias: str) -> None:
    tracking.client().delete_registered_model_alias(name, alias)


def set_description(tracking: Tracking, name: str, version: str, description: str) -> None:
    """The version's description in the registry (its model card: the MLflow UI shows it on the version's page)."""
    tracking.client().update_model_version(name, version, description=description)


def version_with_alias(tracking: Tracking, name: str, alias: str) -> ModelVersion | None:
    """The version of registered model `name` that holds `alias`; None when none does (or no such model)."""
    try:
        return tracking.client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def model_version(tracking: Tracking, name: str, version: str) -> ModelVersion:
    return tracking.client().get_model_version(name, version)


def download_version(tracking: Tracking, name: str, version: str, destination: Path) -> None:
    """A registered version's files (`MLmodel`, `artifacts/`, `code/`) into `destination`."""
    from mlflow.store.artifact.models_artifact_repo import ModelsArtifactRepository

    tracking.client()
    try:
        ModelsArtifactRepository(f"models:/{name}/{version}").download_artifacts("", str(destination))
    except (MlflowException, OSError) as exc:
        raise ReviewflowError(redacted(f"downloading {name}/{version} from {tracking.tracking_uri} failed: {one_line(exc)}")) from None


def artifact_path(folder: Path, artifact: str) -> str:
    """Where a pyfunc model's artifact lies inside its downloaded folder, as its `MLmodel` file records it."""
    from mlflow.models import Model

    return Model.load(str(folder)).flavors["python_function"]["artifacts"][artifact]["path"]


# Runs in a fresh interpreter, so the version scores with the `models` code it was logged with (MLflow puts
# the version's code first on the path), not with this checkout's.
_SCORE_SCRIPT = """
import sys
import numpy as np, pandas as pd, mlflow.pyfunc
uri, texts, out = sys.argv[1:4]
model = mlflow.pyfunc.load_model(uri)
np.save(out, np.asarray(model.predict(pd.read_parquet(texts)), dtype=np.float64).reshape(-1))
"""


def score_version(tracking: Tracking, name: str, version: str, texts: list[str]) -> np.ndarray:
    """P(positive) of each text from registered version `name`/`version`, through its own pyfunc (its own
    vocabulary and code), in a process of its own."""
    with tempfile.TemporaryDirectory(prefix="reviewflow-gate-") as folder:
        inputs, outputs = Path(folder) / "texts.parquet", Path(folder) / "probabilities.npy"
        pd.DataFrame({"text": texts}).to_parquet(inputs, index=False)
        uri = tracking.tracking_uri
        if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):  # relative: the process runs elsewhere
            uri = "sqlite:///" + str(Path(uri.removeprefix("sqlite:///")).resolve())
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri}
        command = [sys.executable, "-c", _SCORE_SCRIPT, f"models:/{name}/{version}", str(inputs), str(outputs)]
        done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise ReviewflowError(redacted(f"scoring {name}/{version} from {tracking.tracking_uri} for the gate failed: {one_line(last, 300)}"))
        return np.load(outputs)
