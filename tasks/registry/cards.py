"""A model card in markdown, the description of a registered model version, made only from evidence of its run.

A card is not written from partial evidence: a missing piece is an error naming every piece that is missing.
"""

from __future__ import annotations

import numpy as np

from tasks.core.errors import ReviewflowError
from tasks.core.markdown import markdown_table

REQUIRED = ("data_source", "data_digest", "commit", "settings", "metrics", "slices", "gate")
INTENDED_USE = "Binary sentiment of English movie reviews: the model gives the probability that a review is positive."


def model_card(model_name: str, version: str, evidence: dict) -> str:
    """The markdown card of `model_name` version `version` from `evidence` (keys: REQUIRED, and optionally
    behaviour, run_id, architecture, seq_len, keep)."""
    missing = [name for name in REQUIRED if _empty(evidence.get(name))]
    gate = evidence.get("gate")
    # A gate without its verdict or reason does not say why the version got its alias.
    if "gate" not in missing and not (isinstance(gate, dict) and all(not _empty(gate.get(k)) for k in ("verdict", "reason"))):
        missing.append("gate")
    if missing:
        raise ReviewflowError(f"model card for {model_name}/{version}: missing evidence: {', '.join(missing)}")
    sections = [
        f"# {model_name} version {version}",
        _summary(evidence),
        f"## Data\n\n- Source: {evidence['data_source']}\n- Digest: `{evidence['data_digest']}`",
        f"## Code\n\n- Commit: `{evidence['commit']}`",
        "## Settings\n\n" + _table(("setting", "value"), evidence["settings"]),
        "## Metrics\n\n" + _table(("metric", "value"), evidence["metrics"]),
        "## Slices\n\n" + slices_markdown(evidence["slices"]),
    ]
    if not _empty(evidence.get("behaviour")):
        sections.append("## Behaviour\n\n" + _table(("test", "pass rate"), evidence["behaviour"]))
    gate_lines = f"## Gate\n\n- Verdict: {gate['verdict']}\n- Reason: {gate['reason']}"
    if not _empty(gate.get("figures")):
        gate_lines += "\n\n" + _table(("figure", "value"), gate["figures"])
    sections += [
        gate_lines,
        f"## Intended use\n\n{INTENDED_USE}",
        "## Known limits\n\n" + "\n".join(f"- {limit}" for limit in _limits(evidence)),
    ]
    return "\n\n".join(sections) + "\n"


def _empty(value: object) -> bool:
    # 0 and False are evidence; None, blank text and empty collections are not.
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, (dict, list, tuple, set)) and not value


def _summary(evidence: dict) -> str:
    parts = [
        f"architecture {evidence['architecture']}" if evidence.get("architecture") else "",
        f"seq_len {evidence['seq_len']}" if evidence.get("seq_len") else "",
        f"run `{evidence['run_id']}`" if evidence.get("run_id") else "",
    ]
    return "Registered from " + ", ".join(part for part in parts if part) + "." if any(parts) else "Registered model version."


def _table(header: tuple[str, str], rows: dict) -> str:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {_cell(name)} | {_cell(value)} |" for name, value in rows.items()]
    return "\n".join(lines)


def _cell(value: object) -> str:
    text = f"{value:.4f}" if isinstance(value, (float, np.floating)) else str(value)
    # A bar or line break inside a cell would end the cell or the table.
    return " ".join(text.split()).replace("|", "\\|")


def _limits(evidence: dict) -> list[str]:
    limits = ["Trained and tested on English IMDB movie reviews only; other languages, domains or styles are untested."]
    slices = evidence["slices"]
    long, short = slices.get("length_over_300"), slices.get("length_0_100")
    if long and short:
        limits.append(
            f"On reviews over 300 tokens ({long['rows']} rows) accuracy is {long['accuracy']:.4f} "
            f"against {short['accuracy']:.4f} on reviews up to 100 tokens ({short['rows']} rows)."
        )
    if evidence.get("seq_len"):
        seq_len, keep = evidence["seq_len"], evidence.get("keep") or "end"
        which = "last" if keep == "end" else "first"
        limits.append(f"It reads only the {which} {seq_len} tokens of a longer review (keep='{keep}'); the rest is ignored.")
    return limits


def slices_markdown(slices: dict[str, dict[str, float | None]]) -> str:
    """The slices (models.slices.slice_metrics) as a markdown table; an AUC that is None shows as n/a."""
    rows = [
        [name, int(f["rows"]), f"{f['accuracy']:.4f}", "n/a" if f["auc"] is None else f"{f['auc']:.4f}"] for name, f in slices.items()
    ]
    return markdown_table(["slice", "rows", "accuracy", "AUC"], rows)
