"""Reaching the MLflow tracking server: the connection every tracking and registry call is made with.

Runs are always addressed by explicit id (MLflow's fluent active run is thread-local and
tasks run in other threads and processes). The modules beside this one hold every MLflow
call of reviewflow, by concern: `runs` (logging), `recorded` (reading recorded runs);
`tasks/registry/` holds the registry's.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel

from tasks.core.config import TrackingConfig
from tasks.core.errors import ReviewflowError, one_line, redacted

# MLflow's UI opens an experiment in the view its kind names; without it, it guessed GenAI (Traces, Judges, Prompts).
EXPERIMENT_TAGS = {"mlflow.experimentKind": "custom_model_development"}
# MLflow 3.17's UI follows its GenAI / Model training switch (this URL parameter, else the browser's last
# choice, GenAI at first) over the experiment's kind: the links reviewflow gives open the training view.
TRAINING_VIEW = "workflowType=machine_learning"


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
    if uri.startswith(("http://", "https://")):
        check_server_answers(uri)
    tracking = Tracking(tracking_uri=uri, experiment_id="", registered_model_prefix=settings.registered_model_prefix)
    try:
        with _creating(uri):
            experiment = _experiment(tracking.client(), uri, settings)
    except (MlflowException, ReviewflowError) as exc:
        raise ReviewflowError(redacted(f"MLflow tracking at {uri} failed: {one_line(exc)}")) from None
    except OSError as exc:
        raise ReviewflowError(redacted(f"MLflow tracking at {uri} is unreachable: {one_line(exc)}")) from None
    return tracking.model_copy(update={"experiment_id": experiment})


@contextlib.contextmanager
def _creating(uri: str) -> Iterator[None]:
    """For the embedded SQLite store, one process at a time: two runs started at once in a new folder would
    both create its tables, and one would fail (SQLite has no transactional schema changes across processes)."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    database = Path(uri.removeprefix("sqlite:///"))
    database.parent.mkdir(parents=True, exist_ok=True)
    with open(database.with_name(database.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the OS releases it when a holder dies
        yield


def _experiment(client: MlflowClient, uri: str, settings: TrackingConfig) -> str:
    """The experiment's id, created (or tagged) as needed."""
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        location = _artifact_location(uri, settings.artifact_location)
        experiment_id = client.create_experiment(settings.experiment, artifact_location=location, tags=EXPERIMENT_TAGS)
    else:
        experiment_id = experiment.experiment_id
        for key, value in EXPERIMENT_TAGS.items():  # experiments made before the tag existed get it too
            if experiment.tags.get(key) != value:
                client.set_experiment_tag(experiment_id, key, value)
    return experiment_id


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


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def run_url(tracking: Tracking, run_id: str) -> str | None:
    """The run's page in the MLflow UI, when the tracking URI is a server."""
    if not is_server(tracking.tracking_uri):
        return None
    base = redacted(tracking.tracking_uri).rstrip("/")
    return f"{base}/#/experiments/{tracking.experiment_id}/runs/{run_id}?{TRAINING_VIEW}"
