"""The comparison of the trained models: one table (test figures, margins over the baseline, behaviour,
seeds, registered version and alias), logged to the parent run and published as Prefect artifacts."""

from __future__ import annotations

import json

import pandas as pd
from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from models.architectures import BASELINE, ENSEMBLE, NOTEBOOK_ACCURACY, RECURRENT, run_name
from models.slices import slices_from_metrics, worst_slice
from tasks.core.markdown import markdown_table
from tasks.core.records import Evaluation, Registration
from tasks.stages.seeds import seed_rows, seed_summary
from tasks.tracking import Tracking, run_url
from tasks.tracking.runs import log_metrics, log_table, log_text, set_tags

MARGINS = ("acc_vs_baseline", "auc_vs_baseline", "time_x_baseline")  # the margin columns of the comparison


# The behavioural and robustness figures of the comparison (column -> the metric of tasks.stages.evaluate);
# empty for the ensemble, which has no text-in model to check.
CHECKS = {
    "behaviour_pass_rate": "behaviour_pass_rate",
    "behaviour_mft": "behaviour_mft_pass_rate",
    "behaviour_negation": "behaviour_mft_negation_pass_rate",
    "behaviour_invariance": "behaviour_invariance_pass_rate",
    "behaviour_direction": "behaviour_direction_pass_rate",
    "robust_no_punctuation": "robust_lowercase_no_punctuation_accuracy",
    "robust_first_50_words": "robust_first_50_words_accuracy",
}


NAN = float("nan")


def publish_comparison(
    evaluations: list[Evaluation], registrations: list[Registration], tracking: Tracking, every_seed: list[Evaluation] | None = None
) -> list[dict]:
    """The table of the registered models (one per architecture, the best seed on validation), with each
    architecture's test figures over all its seeds (`every_seed`), logged to the parent run and published in Prefect."""
    every_seed = every_seed or evaluations
    summary = seed_summary(every_seed)
    table = comparison_table(evaluations, {r.architecture: (r.version, r.alias) for r in registrations}, summary)
    parent = tracking.parent_run_id
    markdown = comparison_markdown(table, evaluations, tracking) + checks_markdown(table) + seeds_markdown(every_seed)
    log_metrics(tracking, parent, {f"{arch}.{k}": v for arch, figures in summary.items() for k, v in figures.items()})
    log_table(tracking, parent, pd.DataFrame(seed_rows(every_seed), dtype=object), "seeds.json")  # object: seeds stay ints, or null
    log_table(tracking, parent, table, "comparison.json")
    log_text(tracking, parent, table.to_csv(index=False), "comparison.csv")
    log_text(tracking, parent, markdown, "comparison.md")
    best = table.sort_values("test_accuracy", ascending=False).iloc[0]
    set_tags(
        tracking,
        parent,
        {
            "mlflow.note.content": f"Best: {run_name(best['architecture'], best['seq_len'] or None)} "
            f"(test accuracy {best['test_accuracy']:.4f}, AUC {best['test_auc']:.4f}).{verdict(table)}\n\n{markdown}"
        },
    )
    rows = records(table)
    create_table_artifact(key="model-comparison", table=rows, description="Test metrics of the trained models, with margins over the baseline")
    create_markdown_artifact(key="training-summary", markdown=markdown, description="Models trained, with links to their MLflow runs")
    publish_gate(registrations, tracking)
    return rows


def publish_gate(registrations: list[Registration], tracking: Tracking) -> None:
    """Each registered version's gate record (verdict, both models' figures, margins, reason) as the parent run's
    `gate.json` and the Prefect artifact `registry-gate`."""
    records = [{"model": r.name, "version": r.version, "alias": r.alias, "champion": r.champion or None, **r.gate} for r in registrations]
    log_text(tracking, tracking.parent_run_id, json.dumps(records, indent=2), "gate.json")
    rows = [[f"{r['model']}/{r['version']}", r["gate.verdict"], r["alias"], r["champion"] or "none", r["gate.candidate_accuracy"],
             r["gate.champion_accuracy"], r["gate.worst_slice"], r["gate.reason"]] for r in records]
    header = ["version", "verdict", "alias", "compared with", "candidate accuracy", "champion accuracy", "worst slice (difference)", "reason"]
    create_markdown_artifact(key="registry-gate", markdown=markdown_table(header, rows),
                             description="The champion gate: each new version against the champion, scored again in this run")


def _worst_slice(metrics: dict[str, float]) -> str:
    """`length_over_300 0.8123`: the slice where the model is least accurate (empty without slices)."""
    worst = worst_slice(slices_from_metrics(metrics))
    return "" if worst is None else f"{worst[0]} {worst[1]:.4f}"


def records(table: pd.DataFrame) -> list[dict]:
    """The table's rows with None where a figure is missing (NaN is not JSON)."""
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def verdict(table: pd.DataFrame) -> str:
    """One sentence: does the best recurrent model beat the baseline, and at what cost (empty without both)."""
    recurrent = table[table["architecture"].isin(RECURRENT)]
    if recurrent.empty or table["acc_vs_baseline"].isna().all():
        return ""
    best = recurrent.sort_values("test_accuracy", ascending=False).iloc[0]
    return (
        f" Best recurrent model {best['architecture']}-{best['seq_len']}: {best['acc_vs_baseline']:+.4f} accuracy and "
        f"{best['auc_vs_baseline']:+.4f} AUC against the TF-IDF baseline, for {best['time_x_baseline']:.1f}x its training time."
    )


def comparison_markdown(table: pd.DataFrame, evaluations: list[Evaluation], tracking: Tracking) -> str:
    run_ids = {e.trained.architecture: e.trained.run_id for e in evaluations}
    header = ["model", "test accuracy", "notebook", "AUC", "F1", "train s", "seeds", "accuracy over seeds", "accuracy vs baseline",
              "AUC vs baseline", "time vs baseline", "worst slice", "version", "alias", "MLflow run"]
    rows = []
    for row in table.to_dict(orient="records"):
        architecture = row["architecture"]
        notebook = NOTEBOOK_ACCURACY.get(architecture)
        url = run_url(tracking, run_ids[architecture])
        link = f"[{run_ids[architecture][:8]}]({url})" if url else run_ids[architecture][:8]
        margins = [_shown(row[k], f) for k, f in zip(MARGINS, ("{:+.4f}", "{:+.4f}", "{:.1f}x"))]
        rows.append([
            run_name(architecture, row["seq_len"] or None), f"{row['test_accuracy']:.4f}", notebook if notebook is not None else "none",
            f"{row['test_auc']:.4f}", f"{row['test_f1']:.4f}", f"{row['train_seconds']:.0f}", row["seeds"],
            f"{row['test_accuracy_mean']:.4f} ± {row['test_accuracy_std']:.4f}", *margins, row["worst_slice"], row["version"], row["alias"], link,
        ])
    markdown = markdown_table(header, rows)
    if ENSEMBLE in run_ids:
        markdown += "\n\nThe ensemble's training time is its members' added up, plus its own fit on the validation split."
    return markdown


def _shown(value: float | None, pattern: str) -> str:
    return "" if value is None or value != value else pattern.format(value)


def checks_markdown(table: pd.DataFrame) -> str:
    """Behavioural pass rates and accuracy on altered reviews, per model that has them (empty when none has)."""
    checked = table.dropna(subset=list(CHECKS), how="all")
    if checked.empty:
        return ""
    header = ["model", "test accuracy", "all cases", "minimum functionality", "negation", "invariance", "direction",
              "lower-cased, no punctuation", "first 50 words"]
    rows = [
        [run_name(row["architecture"], row["seq_len"] or None), f"{row['test_accuracy']:.4f}", *(_shown(row[c], "{:.3f}") for c in CHECKS)]
        for row in checked.to_dict(orient="records")
    ]
    intro = "Behaviour (pass rates of the templated cases) and robustness (test accuracy on altered reviews):"
    return f"\n\n{intro}\n\n{markdown_table(header, rows)}"


def seeds_markdown(every_seed: list[Evaluation]) -> str:
    """Each seed's figures, when some architecture was trained with several (empty otherwise)."""
    if all(n["seeds"] == 1 for n in seed_summary(every_seed).values()):
        return ""
    header = ["model", "seed", "test accuracy", "AUC", "validation accuracy", "train s"]
    rows = [
        [row["architecture"], row["seed"] if row["seed"] is not None else "", f"{row['test_accuracy']:.4f}", f"{row['test_auc']:.4f}",
         _shown(row["validation_accuracy"], "{:.4f}"), f"{row['train_seconds']:.0f}"]
        for row in seed_rows(every_seed)
    ]
    intro = "Every seed (the registered model of an architecture is its seed with the best validation accuracy):"
    return f"\n\n{intro}\n\n{markdown_table(header, rows)}"


def comparison_table(
    evaluations: list[Evaluation], registrations: dict[str, tuple[str, str]], summary: dict[str, dict[str, float]] | None = None
) -> pd.DataFrame:
    """One row per model, the columns the CLI prints and MLflow/Prefect show.

    With several seeds, `summary` (tasks.stages.seeds.seed_summary) gives each architecture's mean and
    standard deviation of test accuracy over its seeds; a model with one seed shows its own.

    Margins over the baseline (when it was trained): test accuracy and AUC differences, and
    the training time as a multiple of the baseline's; empty on the baseline's own row.
    """
    baseline = next((e for e in evaluations if e.trained.architecture == BASELINE), None)
    rows = []
    for evaluation in evaluations:
        trained = evaluation.trained
        version, alias = registrations.get(trained.architecture, ("", ""))
        over_seeds = (summary or {}).get(trained.architecture, {})
        compared = baseline is not None and evaluation is not baseline
        margins = dict.fromkeys(MARGINS)
        if compared:
            margins = {  # `+ 0.0`: a difference that rounds to zero shows as 0.0000, not -0.0000
                "acc_vs_baseline": round(evaluation.metrics["test_accuracy"] - baseline.metrics["test_accuracy"], 4) + 0.0,
                "auc_vs_baseline": round(evaluation.metrics["test_auc"] - baseline.metrics["test_auc"], 4) + 0.0,
                "time_x_baseline": round(trained.seconds / max(baseline.trained.seconds, 1e-9), 1),
            }
        rows.append(
            {
                "architecture": trained.architecture,
                "seq_len": trained.seq_len if trained.seq_len is not None else "",
                "test_accuracy": round(evaluation.metrics["test_accuracy"], 4),
                "test_auc": round(evaluation.metrics["test_auc"], 4),
                "test_f1": round(evaluation.metrics["test_f1"], 4),
                "train_seconds": round(trained.seconds, 1),
                **margins,
                "seeds": int(over_seeds.get("seeds", 1)),
                "test_accuracy_mean": round(over_seeds.get("test_accuracy_mean", evaluation.metrics["test_accuracy"]), 4),
                "test_accuracy_std": round(over_seeds.get("test_accuracy_std", 0.0), 4),
                **{column: round(evaluation.metrics.get(metric, NAN), 4) for column, metric in CHECKS.items()},
                "worst_slice": _worst_slice(evaluation.metrics),
                "version": version,
                "alias": alias,
            }
        )
    return pd.DataFrame(rows)


publish_comparison_task = task(publish_comparison, name="publish-comparison", cache_policy=NO_CACHE)
