"""The `train` and `score` deployments: served by one process (`reviewflow serve`, `reviewflow up`), or put on a
work pool (`reviewflow deploy`) for workers on any machine (`reviewflow worker`).

`train/train` has no schedule: it runs when started from the Prefect UI or API, e.g. with
just `{"profile": "smoke"}`. `score/score` scans the scoring inbox every
`scoring.interval_minutes`. Each flow run executes in a subprocess of the serving process
(`python -m prefect.engine`), in the serving process's folder and environment.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks.core.config import Config
from tasks.core.errors import ReviewflowError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

TRAIN = "train"  # deployment names; the full names are `train/train` and `score/score`
SCORE = "score"
NO_API = "reviewflow serve needs PREFECT_API_URL (a Prefect server), or use `reviewflow up`"
# The sections that change what a training run does (the scoring section does not).
TRAINING_SECTIONS = ("output_dir", "reuse", "data", "validation", "prepare", "train", "pretrain", "baseline", "ensemble", "evaluation", "tracking")


def serve_deployments(config: Config) -> None:
    """Serve `train` and `score` to the Prefect API until interrupted (Ctrl-C or SIGTERM)."""
    api_url = prefect_api_url()
    if not api_url:
        raise ReviewflowError(NO_API)
    _check_answers(api_url)
    from prefect import serve

    deployments = build_deployments(config)
    # Pause the inbox schedule when serving stops (re-applying on the next start unpauses it).
    serve(*deployments, pause_on_shutdown=True)


def deploy_deployments(config: Config, api_url: str | None = None, auth: str | None = None) -> None:
    """Put `train` and `score` on the work pool `servers.work_pool` (made, of type process, when missing), for
    `reviewflow worker`s to run in this folder; and the automation that marks a run whose worker is gone Crashed.

    `api_url` and `auth` default to Prefect's own settings (PREFECT_API_URL, PREFECT_API_AUTH_STRING).
    """
    pool = config.servers.work_pool
    if not pool:
        raise ReviewflowError("reviewflow deploy needs a work pool: set servers.work_pool, e.g. --set servers.work_pool=reviewflow")
    api_url = api_url or prefect_api_url()
    if not api_url:
        raise ReviewflowError("reviewflow deploy needs PREFECT_API_URL (the team's Prefect server)")
    _check_answers(api_url)
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url, **({PREFECT_API_AUTH_STRING: auth} if auth else {})}):
        _ensure_work_pool(pool)
        folder = str(Path.cwd().resolve())
        for deployment in build_deployments(config):
            # Flow runs start in this folder on the worker's machine (relative data/ paths are its), and report
            # that they are alive every heartbeat_s: the automation below watches for the silence of a lost worker.
            env = {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(config.servers.heartbeat_s)}
            deployment.job_variables = {"working_dir": folder, "env": env}
            deployment.apply(work_pool_name=pool)
        _ensure_lost_run_automation(config.servers.heartbeat_s)


LOST_RUN_AUTOMATION = "reviewflow: mark a flow run whose worker is gone Crashed"
LOST_AFTER_HEARTBEATS = 4  # Prefect's guide uses three; one more spares a run on a busy 2-core machine


def _ensure_work_pool(pool: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            found = client.read_work_pool(pool)
        except ObjectNotFound:
            template = ProcessWorker.get_default_base_job_template()
            client.create_work_pool(WorkPoolCreate(name=pool, type=ProcessWorker.type, base_job_template=template))
            return
    if found.type != ProcessWorker.type:
        raise ReviewflowError(f"work pool {pool!r} is of type {found.type!r}: reviewflow's deployments need a pool of type 'process'")


def _ensure_lost_run_automation(heartbeat_s: int) -> None:
    """Prefect's recipe for zombie flow runs: a run that sent a heartbeat and then nothing for a while is Crashed
    (https://docs.prefect.io/v3/advanced/detect-zombie-flows); without it the run of a lost worker stays Running."""
    from prefect.automations import Automation
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    silence = timedelta(seconds=LOST_AFTER_HEARTBEATS * heartbeat_s)
    with contextlib.suppress(ValueError):  # not there yet; otherwise replaced, so a new heartbeat_s applies
        Automation.read(name=LOST_RUN_AUTOMATION).delete()
    Automation(
        name=LOST_RUN_AUTOMATION,
        description=f"No heartbeat or state change for {silence.total_seconds():.0f} s after a heartbeat: its worker or machine is gone.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.*"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=silence,
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message=f"no heartbeat for {silence.total_seconds():.0f} s: its worker is gone")],
    ).create()


def start_worker(config: Config, name: str | None = None) -> None:
    """Become a Prefect worker of `servers.work_pool` (`prefect worker start`), once the pool and both servers answer."""
    pool = config.servers.work_pool
    if not pool:
        raise ReviewflowError("reviewflow worker needs a work pool: set servers.work_pool, the one `reviewflow deploy` used")
    api_url = prefect_api_url()
    if not api_url:
        raise ReviewflowError("reviewflow worker needs PREFECT_API_URL (the team's Prefect server)")
    tracking_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
    if not tracking_uri.startswith(("http://", "https://")):
        # Otherwise each worker's runs would land in an embedded store of its own machine, out of the team's sight.
        raise ReviewflowError("reviewflow worker needs MLFLOW_TRACKING_URI, the team's MLflow server (http://host:port)")
    _check_answers(api_url)
    from tasks.tracking import check_server_answers

    check_server_answers(tracking_uri)
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_work_pool(pool)
        except ObjectNotFound:
            raise ReviewflowError(f"no work pool {pool!r} at {api_url}: run `reviewflow deploy` first") from None
    command = [sys.executable, "-m", "prefect", "worker", "start", "--pool", pool, "--type", "process", *(["--name", name] if name else [])]
    os.execv(sys.executable, command)


def prefect_api_url() -> str | None:
    """PREFECT_API_URL as Prefect sees it now (the environment, or the active Prefect profile)."""
    from prefect.settings import Settings

    return Settings().api.url


def _check_answers(api_url: str) -> None:
    """One line, rather than a connection traceback, when nothing answers at the API URL."""
    try:
        with urllib.request.urlopen(f"{api_url.rstrip('/')}/health", timeout=10):
            pass
    except urllib.error.HTTPError:
        pass  # a server answered (Prefect Cloud wants credentials even there)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReviewflowError(f"no Prefect server answers at PREFECT_API_URL={api_url} ({reason})") from None


def build_deployments(config: Config) -> list[RunnerDeployment]:
    from prefect.types.entrypoint import EntrypointType

    from flows.scoring import score
    from flows.training import train

    interval = timedelta(minutes=config.scoring.interval_minutes)
    return [
        train.to_deployment(
            name=TRAIN,
            parameters=train_parameters(config),
            description="Train, evaluate and register the four architectures, the TF-IDF baseline and their ensemble. Start a run with "
            '{"profile": "smoke"} (minutes) or {"profile": "default"} (the notebook\'s experiment), '
            "or fill in the config form.",
            tags=["reviewflow", "training"],
            # A module path, not a file path relative to the serving folder: flow runs import
            # `flows.training` from the installed package wherever the server runs.
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
        score.to_deployment(
            name=SCORE,
            interval=interval,
            parameters=score_parameters(config),
            description=f"Score the review files waiting in {config.scoring.inbox} with the "
            f"{config.scoring.alias!r} models"
            f"{f' (shadow: {config.scoring.shadow_alias!r})' if config.scoring.shadow_alias else ''}, every {_minutes(interval)}; "
            f"drift flagged over PSI {config.scoring.drift_threshold:g}.",
            tags=["reviewflow", "scoring"],
            entrypoint_type=EntrypointType.MODULE_PATH,
        ),
    ]


def train_parameters(config: Config) -> dict[str, Any]:
    """The `train` deployment's default parameters.

    Just the profile when the config is its profile's defaults (then a run started with
    `{"profile": "smoke"}` replaces it); the whole config when it has settings of its own
    (then a run chooses its profile inside `config`, as `{"config": {"profile": "smoke"}}`:
    the flow refuses a top-level profile that contradicts the config's).
    """
    mine = config.model_dump(mode="json", include=set(TRAINING_SECTIONS))
    plain = Config(profile=config.profile).model_dump(mode="json", include=set(TRAINING_SECTIONS))
    if mine == plain:
        return {"profile": config.profile}
    return {"config": config.model_dump(mode="json")}


def score_parameters(config: Config) -> dict[str, Any]:
    """The `score` deployment's parameters: the scoring section, its folders made absolute.

    Flow runs execute in the serving folder anyway; absolute paths show in the UI which
    folders are watched and written.
    """
    folders = {name: getattr(config.scoring, name).resolve() for name in ("inbox", "output_dir", "archive_dir", "model_cache")}
    scoring = config.scoring.model_copy(update=folders)
    return {"scoring": scoring.model_dump(mode="json")}


def _minutes(interval: timedelta) -> str:
    minutes = interval.total_seconds() / 60
    return f"{minutes:g} minute" + ("" if minutes == 1 else "s")


def main(argv: list[str] | None = None) -> int:
    """`python -m flows.deployments [CONFIG_JSON]`: what `reviewflow up` runs in its child process."""
    parser = argparse.ArgumentParser(prog="python -m flows.deployments", description="Serve the train and score deployments.")
    parser.add_argument("config", nargs="?", default="{}", help="the Config as JSON (default: the default profile)")
    args = parser.parse_args(argv)
    try:
        serve_deployments(Config.model_validate(json.loads(args.config)))
    except ReviewflowError as exc:
        print(f"reviewflow: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
