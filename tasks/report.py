"""The results of recorded trainings, as tables: each model over its seeds, and what each changed setting was worth.

Every figure comes from the MLflow runs named (`tasks.tracking.read_training_run`); the
functions that make the tables are pure, so a README's results are a function of its runs.
"""

from __future__ import annotations

import ast
import shlex
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from models.architectures import NOTEBOOK_ACCURACY, SCORING_MODELS
from tasks.core.config import TrackingConfig, flatten, load_config, tracking_settings, where_or_how_keys
from tasks.core.errors import ReviewflowError, one_line
from tasks.core.files import atomic_write, write_json
from tasks.core.markdown import markdown_table
from tasks.core.records import ModelRun, TrainingRun
from tasks.stages.seeds import spread
from tasks.tracking.recorded import read_training_run

NONE_SHOWN = "—"
# Params that say where things are and how the work was run, not what was computed, are never a
# difference (data.source is the dataset's path, which differs between machines).
NOT_SETTINGS = where_or_how_keys()
# Not an ablation's label: the draws a run averages over (the seeds column shows them), and which
# models it trained (the table compares each model with the same model of the main run).
NOT_ABLATED = ("train.seed", "train.seeds", "train.architectures")


class Absent:
    """A setting a run does not have (recorded before the setting existed, or after it was removed)."""

    def __repr__(self) -> str:
        return NONE_SHOWN


ABSENT = Absent()


def report(reference: str, ablations: list[str], write: Path | None = None, json_path: Path | None = None) -> str:
    """The markdown of the training `reference` names and of its ablation runs; optionally put
    between the file `write`'s markers of the run's profile, and the figures into `json_path`."""
    settings = tracking_settings(TrackingConfig())
    main = read_training_run(settings, reference)
    others = [read_training_run(settings, other) for other in ablations]
    command = " ".join(["reviewflow report", main.run_id, *(f"--ablation {o.run_id}" for o in others)])
    figures = report_figures(main, others, command)
    markdown = report_markdown(figures)
    # Every check before any write, so a refused --write leaves nothing half-done.
    text = replace_between_markers(_read(write), main.profile, markdown, str(write)) if write else None
    try:
        if json_path:
            write_json(json_path, figures)
        if write:
            with atomic_write(write) as file:
                file.write(text.encode("utf-8"))
    except OSError as exc:
        raise ReviewflowError(f"cannot write {exc.filename}: {exc.strerror or one_line(exc)}") from None
    return markdown


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewflowError(f"cannot read {path}: {getattr(exc, 'strerror', None) or one_line(exc)}") from None


def report_figures(main: TrainingRun, ablations: list[TrainingRun], command: str) -> dict[str, Any]:
    """Everything the tables show, as plain data (what --json writes)."""
    main_settings = settings(main.params)
    changed = changes(default_settings(main.profile), main_settings)
    results = summarize(main.models)
    return {
        "generated_by": command,
        "run": {
            "run_id": main.run_id,
            "name": main.name,
            "profile": main.profile,
            "status": main.status,
            "commit": main.commit,
            "started": started(main.start_time_ms),
            "changed_settings": {k: shown(v) for k, (_, v) in changed.items() if v is not ABSENT},
            "reproduce": reproduce_command(main.profile, changed),
        },
        "results": results,
        "ablations": [ablation(results, main_settings, other) for other in ablations],
    }


def settings(params: dict[str, str]) -> dict[str, Any]:
    """A run's params as values (`"[1, 2]"` -> [1, 2]), a dict one setting per key (`train.seq_len.bilstm`),
    without the params that are no setting of the results (paths, servers, tracking)."""
    values: dict[str, Any] = {}
    for key, text in params.items():
        if key.startswith(NOT_SETTINGS):
            continue
        value = _value(text)
        if isinstance(value, dict):
            values.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            values[key] = value
    return values


def _value(text: str) -> Any:
    # MLflow holds params as str(value): Python literals for numbers, lists, dicts, None and booleans.
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def default_settings(profile: str) -> dict[str, Any]:
    """The settings a training of `profile` has when nothing is `--set`, as `settings` gives a run's."""
    config = load_config(profile)
    return settings({k: str(v) for k, v in flatten(config.model_dump(mode="json")).items()})


def changes(base: dict[str, Any], other: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Each setting whose value differs, by key: (its value in `base`, in `other`), ABSENT where one lacks it."""
    pairs = {k: (base.get(k, ABSENT), other.get(k, ABSENT)) for k in sorted(set(base) | set(other))}
    return {k: (a, b) for k, (a, b) in pairs.items() if a != b}


def shown(value: Any) -> str:
    """A setting's value as `--set` takes it: `null`, `true`, `[1,2]`, `0.001`, `end`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(shown(v) for v in value) + "]"
    return str(value)


def reproduce_command(profile: str, changed: dict[str, tuple[Any, Any]]) -> str:
    """The `reviewflow train` command that makes a run with the settings `changed` from `profile`'s defaults."""
    # A setting the run lacks (newer than the run) cannot be set back: the run had its default.
    sets = [f"--set {shlex.quote(f'{k}={shown(v)}')}" for k, (_, v) in changed.items() if v is not ABSENT]
    return " ".join(["reviewflow train --profile", shlex.quote(profile), *sets])


def change_label(changed: dict[str, tuple[Any, Any]]) -> str:
    """`prepare.vocab_size 5000 → 8000; train.epochs 1 → 2`, or `no setting changed`."""
    return "; ".join(f"{k} {shown(a)} → {shown(b)}" for k, (a, b) in changed.items()) or "no setting changed"


def started(start_time_ms: int) -> str:
    return datetime.fromtimestamp(start_time_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def summarize(models: list[ModelRun]) -> list[dict[str, Any]]:
    """One row of figures per architecture (in the order of `SCORING_MODELS`), over its seeds."""
    groups: dict[str, list[ModelRun]] = defaultdict(list)
    for model in sorted(models, key=lambda m: (m.seed is None, m.seed or 0)):
        if "test_accuracy" in model.metrics:
            groups[model.architecture].append(model)
    order = [a for a in SCORING_MODELS if a in groups] + sorted(set(groups) - set(SCORING_MODELS))
    return [architecture_figures(a, groups[a]) for a in order]


def architecture_figures(architecture: str, runs: list[ModelRun]) -> dict[str, Any]:
    """Mean, sample standard deviation (None for one seed), min and max of test accuracy; mean AUC; median training time."""
    accuracy = [r.metrics["test_accuracy"] for r in runs]
    over = spread(accuracy)
    auc = [r.metrics["test_auc"] for r in runs if "test_auc" in r.metrics]
    seconds = [r.metrics["train_seconds"] for r in runs if "train_seconds" in r.metrics]
    return {
        "architecture": architecture,
        "seq_len": sorted({r.seq_len for r in runs if r.seq_len is not None}),
        "seeds": [r.seed for r in runs],
        "test_accuracy": accuracy,
        "mean_accuracy": over.mean,
        "std_accuracy": over.std,
        "min_accuracy": over.min,
        "max_accuracy": over.max,
        "notebook_accuracy": NOTEBOOK_ACCURACY.get(architecture),
        "mean_auc": statistics.mean(auc) if auc else None,
        "median_train_seconds": statistics.median(seconds) if seconds else None,
        "run_ids": [r.run_id for r in runs],
    }


def ablation(main_results: list[dict[str, Any]], main_settings: dict[str, Any], other: TrainingRun) -> dict[str, Any]:
    """What the settings `other` changed from the main run were worth: per architecture, its mean test
    accuracy and the difference to the main run's (None where the main run lacks the architecture)."""
    changed = {k: v for k, v in changes(main_settings, settings(other.params)).items() if k not in NOT_ABLATED}
    main_means = {r["architecture"]: r["mean_accuracy"] for r in main_results}
    rows = [
        {
            "architecture": r["architecture"],
            "seeds": r["seeds"],
            "mean_accuracy": r["mean_accuracy"],
            "std_accuracy": r["std_accuracy"],
            "difference": r["mean_accuracy"] - main_means[r["architecture"]] if r["architecture"] in main_means else None,
        }
        for r in summarize(other.models)
    ]
    return {"run_id": other.run_id, "name": other.name, "change": change_label(changed), "rows": rows}


def report_markdown(figures: dict[str, Any]) -> str:
    """The caption, the results table, the ablation table (when there are ablations) and how they were made."""
    run = figures["run"]
    commit = f"commit `{run['commit'][:12]}`" if run["commit"] else "no git commit recorded"
    status = "" if run["status"] == "FINISHED" else f", status {run['status']}"
    changed = ", ".join(f"`{k}={v}`" for k, v in run["changed_settings"].items()) or "none"
    lines = [
        f"Training run `{run['name']}` (`{run['run_id']}`), profile `{run['profile']}`, {commit}, started {run['started']}{status}.",
        f"Settings changed from the profile's defaults: {changed}. To reproduce: `{run['reproduce']}`.",
        "",
        markdown_table(
            ["model", "seq_len", "seeds", "test accuracy (mean)", "std", "min–max", "each seed", "notebook", "AUC (mean)", "training time (median)"],
            [
                [f"`{r['architecture']}`", "/".join(map(str, r["seq_len"])) or NONE_SHOWN, _seeds(r["seeds"]), f"{r['mean_accuracy']:.4f}",
                 _figure(r["std_accuracy"]), f"{r['min_accuracy']:.4f}–{r['max_accuracy']:.4f}", ", ".join(f"{a:.4f}" for a in r["test_accuracy"]),
                 _notebook(r["architecture"], r["notebook_accuracy"]), _figure(r["mean_auc"]), _seconds(r["median_train_seconds"])]
                for r in figures["results"]
            ],
        ),
    ]
    if figures["ablations"]:
        rows = [
            [other["change"], f"`{other['name']}`", f"`{r['architecture']}`", _seeds(r["seeds"]), f"{r['mean_accuracy']:.4f}",
             _figure(r["std_accuracy"]), NONE_SHOWN if r["difference"] is None else f"{r['difference']:+.4f}".replace("-0.0000", "+0.0000")]
            for other in figures["ablations"]
            for r in other["rows"]
        ]
        lines += [
            "",
            "Ablations: each a training that changes the settings named from the run above; the difference is its mean",
            "test accuracy minus the run above's.",
            "",
            markdown_table(["change", "run", "model", "seeds", "test accuracy (mean)", "std", "difference"], rows),
        ]
    lines += [
        "",
        f"Generated from the MLflow runs by `{figures['generated_by']}`. Over each model's seeds: the mean, the sample",
        "standard deviation, the lowest and highest test accuracy, and the median training time. The notebook's figures",
        "come from its own tokenizer with the test split as validation data, so they compare only roughly.",
    ]
    return "\n".join(lines)


def _seeds(seeds: list[int | None]) -> str:
    named = [str(s) for s in seeds if s is not None]
    return f"{len(seeds)} ({', '.join(named)})" if named else str(len(seeds))


def _figure(value: float | None) -> str:
    return NONE_SHOWN if value is None else f"{value:.4f}"


def _seconds(value: float | None) -> str:
    return NONE_SHOWN if value is None else f"{value:.0f} s"


def _notebook(architecture: str, accuracy: float | None) -> str:
    if accuracy is not None:
        return f"{accuracy:.4f}"
    return "never finished" if architecture in NOTEBOOK_ACCURACY else NONE_SHOWN


def replace_between_markers(text: str, profile: str, block: str, file_name: str) -> str:
    """`text` with what lies between `<!-- results:<profile> -->` and `<!-- /results:<profile> -->` replaced by `block`."""
    start, end = f"<!-- results:{profile} -->", f"<!-- /results:{profile} -->"
    for marker in (start, end):
        if text.count(marker) != 1:
            found = "no" if marker not in text else f"{text.count(marker)} times the"
            raise ReviewflowError(f"{file_name} has {found} marker {marker} (it needs {start} ... {end} once each)")
    before, rest = text.split(start)
    if end not in rest:
        raise ReviewflowError(f"{file_name}: the marker {end} comes before {start}")
    after = rest.split(end)[1]
    return f"{before}{start}\n{block.strip()}\n{end}{after}"
