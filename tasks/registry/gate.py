"""The champion gate: whether a candidate model version replaces the champion, both scored on the same test reviews.

The rule, as the spec words it ("promote (better by at least registry.gate_margin), hold (within the margin: the
candidate becomes challenger) or reject (worse, or worse on any slice by more than registry.slice_margin)"), read as:

1. reject if on any slice both were scored on the candidate's accuracy is below the champion's by more than slice_margin;
2. else promote if d = candidate accuracy - champion accuracy >= gate_margin;
3. else hold if -gate_margin < d < gate_margin (the candidate becomes challenger);
4. else (d <= -gate_margin) reject.

With gate_margin 0 any d >= 0 promotes and any d < 0 rejects; nothing is held. Every version that is not
promoted becomes `challenger` (DESIGN.md): the latest candidate, which shadow scoring can compare with the
champion; its `gate.verdict` says whether it was held or rejected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.core.errors import ReviewflowError, one_line

# Accuracies are counts over the same rows; rounding their difference keeps float noise (0.848 - 0.843 =
# 0.004999...) from turning a difference equal to the margin into one just under it.
_DIGITS = 12


@dataclass(frozen=True)
class Scores:
    """A model version's test accuracy and AUC, and its accuracy per slice (slice name -> accuracy)."""

    accuracy: float
    auc: float
    slices: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    """The gate's decision, why, and the alias the version gets."""

    verdict: str
    reason: str
    alias: str
    candidate: Scores | None = None
    champion: Scores | None = None
    gate_margin: float | None = None
    slice_margin: float | None = None
    forced_by: str = ""
    forced_at: str = ""

    def worst_slice(self) -> tuple[str, float] | None:
        """The shared slice where candidate minus champion accuracy is lowest, and that difference."""
        if self.candidate is None or self.champion is None:
            return None
        return _worst_shared_slice(self.candidate, self.champion)

    def figures(self) -> dict[str, str]:
        """Model-version tags `gate.*`, figures with 4 decimals; 'none' where the verdict lacks one (overwriting an older tag)."""
        candidate, champion, worst = self.candidate, self.champion, self.worst_slice()
        no_candidate, no_champion = candidate is None, champion is None
        tags = {
            "gate.verdict": self.verdict,
            "gate.reason": self.reason,
            "gate.candidate_accuracy": _figure(None if no_candidate else candidate.accuracy),
            "gate.champion_accuracy": _figure(None if no_champion else champion.accuracy),
            "gate.candidate_auc": _figure(None if no_candidate else candidate.auc),
            "gate.champion_auc": _figure(None if no_champion else champion.auc),
            "gate.margin": _figure(self.gate_margin),
            "gate.slice_margin": _figure(self.slice_margin),
            "gate.worst_slice": "none" if worst is None else f"{worst[0]} {worst[1]:+.4f}",
        }
        if self.verdict == "forced":
            tags |= {"gate.forced_by": self.forced_by, "gate.forced_at": self.forced_at}
        return tags


def decide(candidate: Scores, champion: Scores | None, gate_margin: float, slice_margin: float) -> Verdict:
    """Promote, hold or reject `candidate` against `champion` by the rule in this module's docstring."""
    if gate_margin < 0 or slice_margin < 0:
        raise ReviewflowError(f"the gate's margins must not be negative: gate_margin {gate_margin}, slice_margin {slice_margin}")
    figures = {"candidate": candidate, "champion": champion, "gate_margin": gate_margin, "slice_margin": slice_margin}
    if champion is None:
        reason = f"there is no champion; candidate test_accuracy {candidate.accuracy:.4f}, test_auc {candidate.auc:.4f}"
        return Verdict("promote", reason, "champion", **figures)
    worst = _worst_shared_slice(candidate, champion)
    if worst is not None and worst[1] < -slice_margin:
        name, difference = worst
        reason = (
            f"candidate accuracy on slice {name} {candidate.slices[name]:.4f} vs champion {champion.slices[name]:.4f} "
            f"({difference:+.4f} < -slice_margin {slice_margin:.4f})"
        )
        return Verdict("reject", reason, "challenger", **figures)
    difference = round(candidate.accuracy - champion.accuracy, _DIGITS)
    compared = f"candidate test_accuracy {candidate.accuracy:.4f} vs champion {champion.accuracy:.4f} ({difference:+.4f}"
    if difference >= gate_margin:
        return Verdict("promote", f"{compared} >= gate_margin {gate_margin:.4f})", "champion", **figures)
    if abs(difference) < gate_margin:
        return Verdict("hold", f"{compared} within gate_margin {gate_margin:.4f})", "challenger", **figures)
    return Verdict("reject", f"{compared} <= -gate_margin {gate_margin:.4f})", "challenger", **figures)


def forced(candidate: Scores | None, reason: str, who: str, when: str) -> Verdict:
    """A promotion by hand, past the gate; it must say why."""
    if not reason or not reason.strip():
        raise ReviewflowError("a forced promotion needs --reason")
    reason = f"forced by {who} at {when}: {one_line(reason)}"
    return Verdict("forced", reason, "champion", candidate, forced_by=who, forced_at=when)


def _worst_shared_slice(candidate: Scores, champion: Scores) -> tuple[str, float] | None:
    shared = [name for name in candidate.slices if name in champion.slices]
    differences = {name: round(candidate.slices[name] - champion.slices[name], _DIGITS) for name in shared}
    if not differences:
        return None
    name = min(differences, key=differences.__getitem__)
    return name, differences[name]


def _figure(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"


def scores_of(metrics: dict[str, float]) -> Scores:
    """A model's Scores from its metrics (`test_accuracy`, `test_auc`, `slice_<name>_accuracy`, as evaluation logs them)."""
    slices = {key.removeprefix("slice_").removesuffix("_accuracy"): value for key, value in metrics.items()
              if key.startswith("slice_") and key.endswith("_accuracy")}
    return Scores(metrics["test_accuracy"], metrics["test_auc"], slices)
