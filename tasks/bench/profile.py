"""Where a training flow run's minutes went, from Prefect's record of its task runs.

Every task run of the flow run and of its subflows (train-models) with its start (seconds after
the flow run's start) and duration; the time before the first task and after the last (Prefect,
MLflow and process start-up; closing) shows as its own rows.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tasks.core.errors import ReviewflowError


def flow_profile(reference: str = "latest") -> dict[str, Any]:
    """The profile of the training flow run `reference` (an id, or `latest`: the last finished `train` run)."""
    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        if reference == "latest":
            runs = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["train"])),
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.COMPLETED]))),
                sort=FlowRunSort.START_TIME_DESC, limit=1,
            )
        else:
            runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[reference])))
        if not runs:
            raise ReviewflowError(f"no training flow run {reference!r} in Prefect's record at this PREFECT_API_URL / PREFECT_HOME")
        flow_run = runs[0]
        subflows = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[flow_run.id])))
        ids = [flow_run.id, *(s.id for s in subflows)]
        task_runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
    if flow_run.start_time is None or flow_run.end_time is None:
        raise ReviewflowError(f"flow run {flow_run.name} ({flow_run.id}) has not finished")
    return profile_rows(flow_run.name, str(flow_run.id), flow_run.start_time, flow_run.end_time,
                        [(t.name, t.start_time, t.end_time, t.state_name) for t in task_runs])


def profile_rows(
    name: str, run_id: str, start: datetime, end: datetime, tasks: list[tuple[str, datetime | None, datetime | None, str | None]]
) -> dict[str, Any]:
    timed = sorted((t for t in tasks if t[1] is not None and t[2] is not None), key=lambda t: t[1])
    rows = [{"task": n, "start_s": (s - start).total_seconds(), "seconds": (e - s).total_seconds(), "state": state or ""} for n, s, e, state in timed]
    wall = (end - start).total_seconds()
    if timed:
        first, last = timed[0][1], max(t[2] for t in timed)
        rows.insert(0, {"task": "(start-up: before the first task)", "start_s": 0.0, "seconds": (first - start).total_seconds(), "state": ""})
        rows.append({"task": "(after the last task)", "start_s": (last - start).total_seconds(), "seconds": (end - last).total_seconds(), "state": ""})
    return {"flow_run": name, "flow_run_id": run_id, "wall_seconds": wall, "rows": rows}


def profile_markdown(profile: dict[str, Any]) -> str:
    lines = [
        f"Flow run `{profile['flow_run']}` ({profile['flow_run_id']}): {profile['wall_seconds']:.0f} s wall.",
        "",
        "| task | starts at s | seconds | share of wall | state |",
        "|---|---|---|---|---|",
    ]
    for row in profile["rows"]:
        share = row["seconds"] / profile["wall_seconds"] if profile["wall_seconds"] else 0
        lines.append(f"| {row['task']} | {row['start_s']:.0f} | {row['seconds']:.1f} | {share:.0%} | {row['state']} |")
    return "\n".join(lines)
