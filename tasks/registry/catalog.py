"""The registry as people use it by hand: `reviewflow models` (every version, its aliases, figures and verdict)
and `reviewflow promote` (champion moved past the gate, with who, when and why on the version)."""

from __future__ import annotations

import getpass
import os
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException

from models.architectures import SCORING_MODELS
from tasks.core.errors import ReviewflowError, one_line, redacted
from tasks.registry.gate import forced
from tasks.registry.versions import (
    CHALLENGER,
    CHAMPION,
    GATE_METRIC,
    delete_alias,
    registered_name,
    set_alias,
    set_description,
    set_model_version_tags,
    version_with_alias,
)
from tasks.tracking import Tracking

FORCED_FROM_TAG = "gate.forced_from"  # the champion a forced promotion replaced


def model_rows(tracking: Tracking) -> list[dict]:
    """One row per registered version of every reviewflow model, newest first within each model: its aliases,
    test accuracy and AUC (of its run), and its gate verdict, who decided it and why."""
    client = tracking.client()
    rows = []
    try:
        for architecture in SCORING_MODELS:
            name = registered_name(tracking, architecture)
            versions = client.search_model_versions(f"name = '{name}'")
            aliases = _aliases(client, name) if versions else {}
            for found in sorted(versions, key=lambda v: int(v.version), reverse=True):
                metrics = client.get_run(found.run_id).data.metrics if found.run_id else {}
                tags = found.tags or {}
                rows.append({
                    "model": name,
                    "version": int(found.version),
                    "aliases": ",".join(aliases.get(str(found.version), [])),
                    "test_accuracy": _rounded(metrics.get(GATE_METRIC)),
                    "test_auc": _rounded(metrics.get("test_auc")),
                    "verdict": tags.get("gate.verdict", ""),
                    "registered": datetime.fromtimestamp(found.creation_timestamp / 1000, UTC).strftime("%Y-%m-%d %H:%M"),
                    "reason": tags.get("gate.reason", ""),
                })
    except MlflowException as exc:
        raise ReviewflowError(redacted(f"reading the registry at {tracking.tracking_uri} failed: {one_line(exc, 300)}")) from None
    return rows


def promote(tracking: Tracking, model: str, version: str, reason: str, who: str | None = None) -> str:
    """Move `champion` of `model` (an architecture, `rnn`, or its registered name) to `version` by hand: refused
    without a reason; the version records `gate.verdict=forced`, who, when, why and the champion it replaced."""
    name = model if model.startswith(tracking.registered_model_prefix) else registered_name(tracking, model)
    who = who or os.environ.get("REVIEWFLOW_USER") or getpass.getuser()
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    verdict = forced(None, reason, who, when)  # refuses a blank reason before anything is looked up
    client = tracking.client()
    try:
        found = client.get_model_version(name, str(version))
    except MlflowException:
        raise ReviewflowError(redacted(f"no version {version} of {name} at {tracking.tracking_uri} (see `reviewflow models`)")) from None
    previous = version_with_alias(tracking, name, CHAMPION)
    replaced = f"{name}/{previous.version}" if previous is not None else "none"
    # The gate's own figures from registration stay on the version beside the forced verdict: both are its history.
    tags = {key: value for key, value in verdict.figures().items() if key in ("gate.verdict", "gate.reason", "gate.forced_by", "gate.forced_at")}
    tags |= {FORCED_FROM_TAG: replaced, "gate.verdict_at_registration": (found.tags or {}).get("gate.verdict", "none")}
    set_model_version_tags(tracking, name, str(version), tags)
    card = (found.description or "").rstrip()
    set_description(tracking, name, str(version), f"{card}\n\n## Promoted by hand\n\n- {verdict.reason}\n- Replaced: {replaced}\n")
    set_alias(tracking, name, CHAMPION, str(version))
    challenger = version_with_alias(tracking, name, CHALLENGER)
    if challenger is not None and str(challenger.version) == str(version):
        delete_alias(tracking, name, CHALLENGER)  # promoted: no longer the candidate waiting
    return f"{name}/{version} is champion (was {replaced}): {verdict.reason}"


def _aliases(client, name: str) -> dict[str, list[str]]:
    by_version: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    return {v: sorted(a) for v, a in by_version.items()}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
