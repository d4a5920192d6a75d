"""The report of a scoring run: its files (scored, skipped, quarantined) as a Prefect table artifact."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.core.records import FileOutcome


def publish_scoring(outcomes: list[FileOutcome], versions: dict[str, str]) -> list[dict]:
    """One row per file, published as the `scoring-report` artifact; the rows."""
    rows = [
        {
            "file": outcome.input.name,
            "status": outcome.status,
            "rows": outcome.rows,
            "failed_rows": outcome.failed_rows,
            "output": outcome.output.name if outcome.output else "",
            "reason": outcome.reason or "",
            "seconds": round(outcome.seconds, 1),
        }
        for outcome in outcomes
    ]
    counts = {status: sum(r["status"] == status for r in rows) for status in ("scored", "skipped", "quarantined")}
    create_table_artifact(
        key="scoring-report",
        table=rows,
        description=f"{counts['scored']} scored, {counts['skipped']} skipped, {counts['quarantined']} quarantined "
        f"with {', '.join(versions.values()) or 'no models (nothing to score)'}",
    )
    return rows


publish_scoring_task = task(publish_scoring, name="publish-scoring", cache_policy=NO_CACHE)
