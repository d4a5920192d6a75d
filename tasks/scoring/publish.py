"""The report of a scoring run: its files (scored, skipped, quarantined) as a Prefect table artifact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.core.records import FileOutcome


def publish_scoring(outcomes: list[FileOutcome], versions: dict[str, str]) -> list[dict]:
    """One row per file, published as the `scoring-report` artifact; the rows.

    `drifted` flags a file with a figure over scoring.drift_threshold (None: not scored now), `drift`
    says which; with a shadow alias, `shadow` gives each shadowed model's agreement.
    """
    shadowed = any(outcome.shadow for outcome in outcomes)
    rows = [
        {
            "file": outcome.input.name,
            "status": outcome.status,
            "rows": outcome.rows,
            "failed_rows": outcome.failed_rows,
            "output": outcome.output.name if outcome.output else "",
            "reason": outcome.reason or "",
            "seconds": round(outcome.seconds, 1),
            "drifted": outcome.drifted,
            "drift": drift_summary(outcome.drift),
            **({"shadow": shadow_summary(outcome.shadow)} if shadowed else {}),
        }
        for outcome in outcomes
    ]
    counts = {status: sum(r["status"] == status for r in rows) for status in ("scored", "skipped", "quarantined")}
    drifted = sum(bool(r["drifted"]) for r in rows)
    create_table_artifact(
        key="scoring-report",
        table=rows,
        description=f"{counts['scored']} scored ({drifted} drifted), {counts['skipped']} skipped, {counts['quarantined']} quarantined "
        f"with {', '.join(versions.values()) or 'no models (nothing to score)'}",
    )
    return rows


def drift_summary(drift: dict[str, dict] | None) -> str:
    """A file's drift in a few words: the largest PSI, and which figures of how many models went over the threshold."""
    if not drift:
        return ""
    measured = {model: figures for model, figures in drift.items() if figures.get("reference") and "length_psi" in figures}
    if not measured:
        return "no reference" if all(f.get("reference") is None for f in drift.values()) else "no scored rows"
    over: dict[str, list[str]] = {}
    for model, figures in measured.items():
        for reason in figures["reasons"]:
            over.setdefault(reason.split()[0], []).append(model)
    largest = max(max(f["length_psi"], f["probability_psi"]) for f in measured.values())
    too_few = next((f["too_few_rows"] for f in measured.values() if "too_few_rows" in f), None)
    if too_few:
        return f"not flagged, {too_few}: PSI up to {largest:.2f}"
    if not over:
        return f"ok: PSI at most {largest:.3f}"
    figures = ", ".join(f"{name} ({len(models)} of {len(measured)} models)" for name, models in over.items())
    return f"drifted: {figures}; PSI up to {largest:.2f}"


def shadow_summary(shadow: dict | None) -> str:
    """Each shadowed model's agreement with the run's version: `rnn 0.97, ensemble 1.00`."""
    if not shadow:
        return ""
    return ", ".join(f"{model} {rate:.2f}" if rate is not None else f"{model} -" for model, rate in shadow["agreement"].items())


publish_scoring_task = task(publish_scoring, name="publish-scoring", cache_policy=NO_CACHE)
