"""The `train` and `score` deployments, served to a Prefect server (`reviewflow serve`, `reviewflow up`).

`train/train` has no schedule: it runs when started from the Prefect UI or API, e.g. with
just `{"profile": "smoke"}`. `score/score` scans the scoring inbox every
`scoring.interval_minutes`. Each flow run executes in a subprocess of the serving process
(`python -m prefect.engine`), in the serving process's folder and environment.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tasks.core.config import Config
from tasks.core.errors import ReviewflowError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

TRAIN = "train"  # deployment names; the full names are `train/train` and `score/score`
SCORE = "score"
NO_API = "reviewflow serve needs PREFECT_API_URL (a Prefect server), or use `reviewflow up`"
# The sections that change what a training run does (the scoring section does not).
TRAINING_SECTIONS = ("output_dir", "reuse", "data", "validation", "prepare", "train", "baseline", "ensemble", "evaluation", "tracking")


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
