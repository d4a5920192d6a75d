"""The behavioural suite and the text alterations, judged with tiny hand-written scorers."""

import json
import re
from collections import Counter

import numpy as np
import pytest

from models import behaviour
from models.behaviour import INVARIANCE_TOLERANCE, SATURATION, Case, build_suite, run_suite, with_typo
from models.robustness import (
    ALTERATIONS,
    altered_accuracies,
    first_words,
    lowercase_no_punctuation,
    stratified_sample,
    without_line_breaks,
)

TESTS = ["mft_short", "mft_negation", "inv_names", "inv_places", "inv_numbers", "inv_neutral", "inv_typos", "inv_casing",
         "dir_add_negative", "dir_add_positive"]
GOOD = {*behaviour.POSITIVE, *behaviour.POSITIVE_VERBS, "best", "masterpiece", "beautiful", "beautifully", "funny", "superb"}
BAD = {*behaviour.NEGATIVE, *behaviour.NEGATIVE_VERBS, "worst", "waste", "wooden", "weak", "badly", "flat"}


def keyword_scorer(texts: list[str]) -> np.ndarray:
    """A model of word counts: sigmoid(#good words - #bad words). Blind to negation, and to anything else."""
    scores = []
    for text in texts:
        words = re.findall(r"[a-z']+", text.lower())
        scores.append(sum(w in GOOD for w in words) - sum(w in BAD for w in words))
    return 1 / (1 + np.exp(-np.array(scores, dtype=float)))


def test_the_suite_is_a_few_hundred_cases_of_every_test_the_same_on_every_build():
    cases = build_suite()
    counts = Counter(case.test for case in cases)
    assert list(counts) == TESTS and 300 <= len(cases) <= 800
    assert counts["mft_short"] >= 100 and min(counts.values()) >= 20
    assert build_suite() == cases
    assert {case.kind for case in cases} == {"mft", "invariance", "direction"}
    for case in cases:
        if case.kind == "mft":
            assert case.expected in (0, 1) and case.original is None
        else:
            assert case.original and case.original != case.text
        assert (case.direction != 0) == (case.kind == "direction")
    assert len({(c.test, c.text, c.original) for c in cases}) == len(cases)  # no case twice


def test_mft_cases_say_what_they_expect():
    expected = {c.text: c.expected for c in build_suite() if c.kind == "mft"}
    assert expected["The film was great."] == 1 and expected["I hated this movie."] == 0
    assert expected["The movie was not good."] == 0 and expected["The film was not bad at all."] == 1


def test_invariance_and_direction_cases_change_only_what_they_name():
    cases = {c.test: c for c in reversed(build_suite())}  # the first case of each test
    assert cases["inv_names"].original.replace("John", "Mary") == cases["inv_names"].text
    assert cases["inv_casing"].text == cases["inv_casing"].original.upper()
    assert cases["inv_neutral"].text.startswith(cases["inv_neutral"].original + " ")
    assert cases["dir_add_negative"].direction == -1 and cases["dir_add_positive"].direction == 1
    assert cases["dir_add_negative"].text == f"{cases['dir_add_negative'].original} {behaviour.NEGATIVE_SENTENCES[0]}"


def test_a_typo_swaps_two_neighbouring_letters_of_one_word_the_same_way_every_time():
    review = "The acting was superb and the story kept me interested until the very end."
    typo = with_typo(review, 0)
    changed = [(a, b) for a, b in zip(review.split(" "), typo.split(" ")) if a != b]
    assert len(changed) == 1
    [(word, mistyped)] = changed
    assert sorted(word) == sorted(mistyped) and sum(x != y for x, y in zip(word, mistyped)) == 2
    assert with_typo(review, 0) == typo
    assert len({with_typo(review, seed) for seed in range(5)}) > 1


def test_a_word_counting_scorer_passes_the_plain_cases_and_fails_negation():
    """The suite can fail: a model that only counts sentiment words gets short reviews right,
    ignores names, places, numbers and casing, follows added sentences, and misreads every negation."""
    rates = run_suite(keyword_scorer).pass_rates()
    assert rates["mft_short"] == 1.0
    assert rates["mft_negation"] == 0.0
    assert rates["inv_names"] == rates["inv_places"] == rates["inv_numbers"] == rates["inv_casing"] == 1.0
    assert rates["dir_add_negative"] == rates["dir_add_positive"] == 1.0
    assert rates["mft"] == pytest.approx(132 / (132 + 57), abs=0.01)


def test_a_constant_scorer_is_invariant_to_everything_and_moves_no_way():
    rates = run_suite(lambda texts: np.full(len(texts), 0.5)).pass_rates()
    assert rates["invariance"] == 1.0  # invariance alone says nothing of a model that reads nothing
    assert rates["direction"] == 0.0
    assert 0.3 < rates["mft"] < 0.7


def _scorer(probabilities: dict[str, float]):
    calls = []

    def predict(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.array([probabilities[t] for t in texts])

    return predict, calls


def test_pass_criteria_at_their_edges():
    p = {"a": 0.5, "b": 0.4999, "c": 0.7, "c+": 0.7 + INVARIANCE_TOLERANCE - 0.001, "c++": 0.7 + INVARIANCE_TOLERANCE + 0.001,
         "d": 0.49, "d'": 0.51, "e": 0.3, "e-": 0.29, "e=": 0.3, "e+": 0.31, "s": SATURATION, "s+": SATURATION + 0.01}
    cases = [
        Case("mft_short", "a", expected=1),  # P >= 0.5 is positive
        Case("mft_short", "b", expected=1),
        Case("inv_names", "c+", original="c"),  # moved less than the tolerance
        Case("inv_names", "c++", original="c"),  # more
        Case("inv_names", "d'", original="d"),  # a small move across 0.5 changes the label
        Case("dir_add_negative", "e-", original="e", direction=-1),
        Case("dir_add_negative", "e=", original="e", direction=-1),  # no move is no pass
        Case("dir_add_negative", "e+", original="e", direction=-1),
        Case("dir_add_negative", "s+", original="s", direction=-1),  # already at the floor: passes
        Case("dir_add_positive", "e+", original="e", direction=1),
    ]
    predict, calls = _scorer(p)
    report = run_suite(predict, cases)
    assert len(calls) == 1 and sorted(calls[0]) == calls[0] and len(calls[0]) == len(set(calls[0]))
    outcomes = report.tests
    assert (outcomes["mft_short"].cases, outcomes["mft_short"].passed) == (2, 1)
    assert outcomes["mft_short"].failures == [{"text": "b", "expected": 1, "probability": 0.4999}]
    assert [f["text"] for f in outcomes["inv_names"].failures] == ["c++", "d'"]
    assert [f["text"] for f in outcomes["dir_add_negative"].failures] == ["e=", "e+"]
    expected = {"original": "e", "text": "e+", "before": 0.3, "after": 0.31, "expected": "fall"}
    assert outcomes["dir_add_negative"].failures[1] == expected
    assert report.pass_rates() == {
        "mft_short": 0.5, "inv_names": 1 / 3, "dir_add_negative": 0.5, "dir_add_positive": 1.0,
        "mft": 0.5, "invariance": 1 / 3, "direction": 0.6, "overall": 5 / 10,
    }


def test_the_report_as_json_and_markdown():
    report = run_suite(keyword_scorer)
    stored = json.loads(json.dumps(report.to_dict()))
    assert set(stored) == {"criteria", "pass_rates", "tests"} and set(stored["criteria"]) == {"mft", "invariance", "direction"}
    negation = stored["tests"]["mft_negation"]
    assert negation["cases"] == 57 and negation["passed"] == 0 and len(negation["failures"]) == 57
    assert {"text": "The movie was not good.", "expected": 0} == {k: negation["failures"][0][k] for k in ("text", "expected")}
    lines = report.markdown().splitlines()
    assert lines[0] == "| test | cases | passed | pass rate |"
    assert "| mft_negation | 57 | 0 | 0.000 |" in lines and lines[-1].startswith("| overall | ")


def test_the_alterations():
    review = "Don't miss it!<br /><br />A <i>great</i> film, 10/10.<BR>Really."
    assert lowercase_no_punctuation(review) == "dont miss itbr br a igreati film 1010brreally"
    assert without_line_breaks(review) == "Don't miss it!  A <i>great</i> film, 10/10. Really."
    assert first_words("one two  three\nfour", 3) == "one two three" and first_words("short", 50) == "short"
    long = " ".join(f"w{i}" for i in range(80))
    assert ALTERATIONS["first_50_words"](long).split() == [f"w{i}" for i in range(50)]
    assert list(ALTERATIONS) == ["lowercase_no_punctuation", "first_50_words", "without_line_breaks"]


def test_accuracy_on_altered_copies():
    texts = ["Great film!", "GREAT", "awful<br />film", "great " + "x " * 60 + "awful awful"]
    labels = np.array([1, 1, 0, 0])

    def scorer(texts: list[str]) -> np.ndarray:  # positive when it reads "great" and no "awful"
        return np.array([0.9 if "great" in t.lower() and "awful" not in t else 0.1 for t in texts])

    # Cut to its first 50 words, the last review loses the "awful" at its end.
    accuracies = altered_accuracies(scorer, texts, labels)
    assert accuracies == {"lowercase_no_punctuation": 1.0, "first_50_words": 0.75, "without_line_breaks": 1.0}


def test_a_stratified_sample_keeps_the_label_shares_and_its_seed():
    labels = np.array([0] * 700 + [1] * 300)
    rows = stratified_sample(labels, 101)
    assert len(rows) == 101 and (np.diff(rows) > 0).all()
    assert Counter(labels[rows].tolist()) == {0: 71, 1: 30}
    assert np.array_equal(stratified_sample(labels, 101), rows)
    assert not np.array_equal(stratified_sample(labels, 101, seed=1), rows)
    assert np.array_equal(stratified_sample(labels, 5000), np.arange(1000))
