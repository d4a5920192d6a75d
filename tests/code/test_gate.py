"""The champion gate's verdicts, reasons and tags."""

import pytest

from tasks.core.errors import ReviewflowError
from tasks.registry.gate import Scores, decide, forced

CHAMPION = Scores(accuracy=0.8430, auc=0.9200, slices={"length_0_100": 0.8700, "length_over_300": 0.8100})


def _candidate(accuracy: float, over_300: float = 0.8100, **slices: float) -> Scores:
    return Scores(accuracy=accuracy, auc=0.9300, slices={"length_0_100": 0.8700, "length_over_300": over_300, **slices})


def test_better_by_the_margin_promotes_to_champion():
    verdict = decide(_candidate(0.8512), CHAMPION, gate_margin=0.005, slice_margin=0.02)
    assert (verdict.verdict, verdict.alias) == ("promote", "champion")
    assert verdict.reason == "candidate test_accuracy 0.8512 vs champion 0.8430 (+0.0082 >= gate_margin 0.0050)"


def test_a_difference_equal_to_the_margin_promotes_despite_float_noise():
    # 20128 and 20003 right of 25000: in floats 0.80512 - 0.80012 is 0.004999999999999893.
    champion = Scores(accuracy=20003 / 25000, auc=0.92)
    assert decide(Scores(accuracy=20128 / 25000, auc=0.92), champion, gate_margin=0.005, slice_margin=0.02).verdict == "promote"


@pytest.mark.parametrize("accuracy", [0.8470, 0.8430, 0.8390])
def test_within_the_margin_either_way_holds_as_challenger(accuracy):
    verdict = decide(_candidate(accuracy), CHAMPION, gate_margin=0.005, slice_margin=0.02)
    assert (verdict.verdict, verdict.alias) == ("hold", "challenger")
    assert "within gate_margin 0.0050" in verdict.reason


def test_worse_by_the_margin_rejects_without_an_alias():
    verdict = decide(_candidate(0.8380), CHAMPION, gate_margin=0.005, slice_margin=0.02)
    assert (verdict.verdict, verdict.alias) == ("reject", "challenger")
    assert verdict.reason == "candidate test_accuracy 0.8380 vs champion 0.8430 (-0.0050 <= -gate_margin 0.0050)"


def test_a_slice_worse_by_more_than_the_slice_margin_rejects_a_better_candidate():
    verdict = decide(_candidate(0.8600, over_300=0.7800), CHAMPION, gate_margin=0.005, slice_margin=0.02)
    assert (verdict.verdict, verdict.alias) == ("reject", "challenger")
    assert verdict.reason == (
        "candidate accuracy on slice length_over_300 0.7800 vs champion 0.8100 (-0.0300 < -slice_margin 0.0200)"
    )
    assert verdict.figures()["gate.worst_slice"] == "length_over_300 -0.0300"


def test_a_slice_worse_within_the_slice_margin_or_unshared_does_not_reject():
    candidate = _candidate(0.8600, over_300=0.7950, rating_mild=0.1)
    assert decide(candidate, CHAMPION, gate_margin=0.005, slice_margin=0.02).verdict == "promote"


def test_no_champion_promotes_and_says_so():
    verdict = decide(_candidate(0.70), None, gate_margin=0.005, slice_margin=0.02)
    assert (verdict.verdict, verdict.alias) == ("promote", "champion")
    assert verdict.reason.startswith("there is no champion")
    figures = verdict.figures()
    assert figures["gate.champion_accuracy"] == "none" and figures["gate.worst_slice"] == "none"
    assert figures["gate.candidate_accuracy"] == "0.7000"


def test_a_margin_of_zero_promotes_any_non_negative_difference_and_rejects_the_rest():
    assert decide(_candidate(0.8430), CHAMPION, gate_margin=0.0, slice_margin=0.02).verdict == "promote"
    assert decide(_candidate(0.8429), CHAMPION, gate_margin=0.0, slice_margin=0.02).verdict == "reject"


def test_negative_margins_are_refused():
    with pytest.raises(ReviewflowError):
        decide(_candidate(0.85), CHAMPION, gate_margin=-0.01, slice_margin=0.02)


def test_figures_are_the_gate_tags_as_strings_with_four_decimals():
    figures = decide(_candidate(0.8512, over_300=0.8000), CHAMPION, gate_margin=0.005, slice_margin=0.02).figures()
    assert figures == {
        "gate.verdict": "promote",
        "gate.reason": "candidate test_accuracy 0.8512 vs champion 0.8430 (+0.0082 >= gate_margin 0.0050)",
        "gate.candidate_accuracy": "0.8512",
        "gate.champion_accuracy": "0.8430",
        "gate.candidate_auc": "0.9300",
        "gate.champion_auc": "0.9200",
        "gate.margin": "0.0050",
        "gate.slice_margin": "0.0200",
        "gate.worst_slice": "length_over_300 -0.0100",
    }


@pytest.mark.parametrize("reason", ["", "   \n"])
def test_a_forced_promotion_refuses_a_blank_reason(reason):
    with pytest.raises(ReviewflowError, match="a forced promotion needs --reason"):
        forced(_candidate(0.80), reason, "ana", "2025-01-02T03:04:05Z")


def test_a_forced_promotion_becomes_champion_and_names_who_and_when():
    verdict = forced(_candidate(0.80), "roll back\nafter an incident", "ana", "2025-01-02T03:04:05Z")
    assert (verdict.verdict, verdict.alias) == ("forced", "champion")
    assert verdict.reason == "forced by ana at 2025-01-02T03:04:05Z: roll back after an incident"
    figures = verdict.figures()
    assert figures["gate.forced_by"] == "ana" and figures["gate.forced_at"] == "2025-01-02T03:04:05Z"
    assert figures["gate.candidate_accuracy"] == "0.8000" and figures["gate.margin"] == "none"
