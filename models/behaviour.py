"""Behavioural tests of a sentiment classifier, in the spirit of CheckList (Ribeiro et al., 2020).

The suite is data: templates filled with words make a few hundred cases, of three kinds, each
judged from a model's P(positive):
- minimum functionality (`mft_*`): short reviews with a plain label; a case passes when the
  predicted label (P >= 0.5) is the expected one;
- invariance (`inv_*`): a change that should not matter (a name, place or number swapped, a
  neutral sentence added, a typo, the casing); a case passes when the predicted label stays
  the same and P moves by less than INVARIANCE_TOLERANCE;
- direction (`dir_*`): a strongly negative (positive) sentence added; a case passes when P
  falls (rises), or was already within SATURATION of 0 (1), where it has no room to move.

The one random choice, where a typo goes, is seeded by the review itself, so the suite is the
same on every run. `run_suite` takes any `predict(texts) -> P(positive)` and scores all the
cases in one call.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

INVARIANCE_TOLERANCE = 0.1  # a move of P this large is a change of opinion, even when the label stays
SATURATION = 0.02  # P this close to 0 or 1 cannot fall or rise much further: a direction case passes
KINDS = {"mft": "mft", "inv": "invariance", "dir": "direction"}  # a test's name prefix -> its kind
CRITERIA = {
    "mft": "the predicted label (P(positive) >= 0.5) is the expected one",
    "invariance": f"the predicted label is unchanged and |P(after) - P(before)| < {INVARIANCE_TOLERANCE}",
    "direction": f"P(positive) moves the stated way, or already lies within {SATURATION} of the end it is pushed to",
}

POSITIVE = ["good", "great", "excellent", "wonderful", "brilliant", "enjoyable", "fantastic", "superb"]
NEGATIVE = ["bad", "terrible", "awful", "boring", "dreadful", "poor", "horrible", "dull"]
POSITIVE_VERBS = ["loved", "enjoyed", "liked"]
NEGATIVE_VERBS = ["hated", "disliked", "despised"]
THINGS = ["movie", "film", "performance"]

# test -> (template, fillers of its slots, expected label): every combination of the fillers is a case.
MINIMUM_FUNCTIONALITY: dict[str, list[tuple[str, dict[str, list[str]], int]]] = {
    "mft_short": [
        ("The {thing} was {adjective}.", {"thing": THINGS, "adjective": POSITIVE}, 1),
        ("The {thing} was {adjective}.", {"thing": THINGS, "adjective": NEGATIVE}, 0),
        ("What a {adjective} {thing}!", {"thing": THINGS, "adjective": POSITIVE}, 1),
        ("What a {adjective} {thing}!", {"thing": THINGS, "adjective": NEGATIVE}, 0),
        ("I {verb} this {thing}.", {"verb": POSITIVE_VERBS, "thing": THINGS}, 1),
        ("I {verb} this {thing}.", {"verb": NEGATIVE_VERBS, "thing": THINGS}, 0),
        ("I {verb} every minute of this {thing}.", {"verb": POSITIVE_VERBS, "thing": THINGS}, 1),
        ("I {verb} every minute of this {thing}.", {"verb": NEGATIVE_VERBS, "thing": THINGS}, 0),
    ],
    "mft_negation": [
        ("The {thing} was not {adjective}.", {"thing": THINGS, "adjective": POSITIVE}, 0),
        ("The {thing} was not {adjective} at all.", {"thing": THINGS, "adjective": NEGATIVE}, 1),
        ("I did not {verb} this {thing}.", {"verb": ["like", "enjoy", "love"], "thing": THINGS}, 0),
    ],
}

# test -> (templates, the slot swapped, its values): the first value gives the original text,
# each other value a case compared with it; {adjective} takes each of SWAP_ADJECTIVES.
SWAP_ADJECTIVES = ["great", "enjoyable", "terrible", "boring"]
SWAPS: dict[str, tuple[list[str], str, list[str]]] = {
    "inv_names": (
        ["{name} was {adjective} in the lead role.", "I watched it with {name} and we both found it {adjective}."],
        "name", ["John", "Mary", "Ahmed", "Mei", "Olga", "Kwame"],
    ),
    "inv_places": (
        ["I saw it in {place} and it was {adjective}.", "A {adjective} film set in {place}."],
        "place", ["London", "Texas", "Mumbai", "Paris", "Lagos", "Tokyo"],
    ),
    "inv_numbers": (
        ["I saw it {number} years ago and it was {adjective}.", "It runs for {number} minutes and it is {adjective}."],
        "number", ["2", "4", "7", "15", "30", "95"],
    ),
}

REVIEWS = [
    "The acting was superb and the story kept me interested until the very end.",
    "A wonderful film with a clever script and a moving final scene.",
    "I loved the characters, and the music is beautiful.",
    "One of the best comedies I have seen in years, funny from start to finish.",
    "Great performances all round; I would happily watch it again.",
    "A touching story, beautifully filmed and well acted.",
    "The plot made no sense and the acting was wooden.",
    "A boring film with a weak script and a predictable ending.",
    "I hated the characters, and the jokes fell flat.",
    "One of the worst movies I have ever seen, a complete waste of time.",
    "Poor performances all round; I could not wait for it to end.",
    "A dull story, badly filmed and badly acted.",
]
NEUTRAL_SENTENCES = [
    "I watched it on a Sunday afternoon.",
    "It was released in the spring.",
    "My brother came with me.",
    "The cinema is on the main street.",
]
NEGATIVE_SENTENCES = ["It was the worst film I have ever seen.", "I hated every minute of it.", "What a waste of money."]
POSITIVE_SENTENCES = ["It was the best film I have ever seen.", "I loved every minute of it.", "An absolute masterpiece."]


def with_typo(text: str, seed: int) -> str:
    """`text` with two neighbouring letters swapped in one word of four letters or more (seeded)."""
    rng = random.Random(f"{seed}:{text}")
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if sum(c.isalpha() for c in w) >= 4]
    index = rng.choice(candidates)
    word = words[index]
    # Only swaps that change the word and stay among its letters (never across its punctuation).
    spots = [i for i in range(len(word) - 1) if word[i].isalpha() and word[i + 1].isalpha() and word[i] != word[i + 1]]
    spot = rng.choice(spots)
    words[index] = word[:spot] + word[spot + 1] + word[spot] + word[spot + 2 :]
    return " ".join(words)


# test -> the altered copies of a review, each a case compared with the review as it is.
PERTURBATIONS: dict[str, Callable[[str], list[str]]] = {
    "inv_neutral": lambda review: [f"{review} {sentence}" for sentence in NEUTRAL_SENTENCES],
    "inv_typos": lambda review: [with_typo(review, seed) for seed in (0, 1)],
    "inv_casing": lambda review: [review.upper(), review.lower()],
}
# test -> (sentences added to each review and neutral sentence, the way P must move: +1 rise, -1 fall).
DIRECTIONS: dict[str, tuple[list[str], int]] = {
    "dir_add_negative": (NEGATIVE_SENTENCES, -1),
    "dir_add_positive": (POSITIVE_SENTENCES, +1),
}


@dataclass(frozen=True)
class Case:
    """One text to score; invariance and direction cases are compared with an original text."""

    test: str  # `mft_negation`, `inv_names`, `dir_add_negative`...
    text: str
    expected: int | None = None  # mft: the label the text must get
    original: str | None = None  # inv, dir: the text it is compared with
    direction: int = 0  # dir: +1 P must rise, -1 it must fall

    @property
    def kind(self) -> str:
        return kind_of(self.test)


def kind_of(test: str) -> str:
    """`mft`, `invariance` or `direction`, from the test's name (`inv_names` -> `invariance`)."""
    return KINDS[test.split("_")[0]]


def filled(template: str, fillers: dict[str, list[str]]) -> list[str]:
    """The template with every combination of its slots' fillers."""
    return [template.format(**dict(zip(fillers, values))) for values in itertools.product(*fillers.values())]


def build_suite() -> list[Case]:
    """Every case of the suite, in a fixed order."""
    cases = [
        Case(test, text, expected=label)
        for test, templates in MINIMUM_FUNCTIONALITY.items()
        for template, fillers, label in templates
        for text in filled(template, fillers)
    ]
    for test, (templates, slot, values) in SWAPS.items():
        for template, adjective in itertools.product(templates, SWAP_ADJECTIVES):
            original, *others = [template.format(**{slot: value, "adjective": adjective}) for value in values]
            cases += [Case(test, text, original=original) for text in others]
    for test, perturb in PERTURBATIONS.items():
        cases += [Case(test, text, original=review) for review in REVIEWS for text in perturb(review)]
    for test, (sentences, direction) in DIRECTIONS.items():
        for base, sentence in itertools.product(REVIEWS + NEUTRAL_SENTENCES, sentences):
            cases.append(Case(test, f"{base} {sentence}", original=base, direction=direction))
    return cases


@dataclass
class Outcome:
    """How one test went: its cases, how many passed, and each failing case."""

    test: str
    cases: int = 0
    passed: int = 0
    failures: list[dict] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.cases if self.cases else float("nan")


@dataclass
class BehaviourReport:
    """The suite's outcome per test (`mft_short`, `inv_names`...), in the suite's order."""

    tests: dict[str, Outcome]

    def groups(self) -> dict[str, list[Outcome]]:
        """Each test alone, each kind (`mft`, `invariance`, `direction`) with its tests, and `overall`."""
        groups = {test: [outcome] for test, outcome in self.tests.items()}
        for kind in KINDS.values():
            if members := [o for o in self.tests.values() if kind_of(o.test) == kind]:
                groups[kind] = members
        groups["overall"] = list(self.tests.values())
        return groups

    def pass_rates(self) -> dict[str, float]:
        """Pass rate of each test, each kind and `overall`: a group's cases counted together."""
        return {name: _pooled(members).pass_rate for name, members in self.groups().items()}

    def to_dict(self) -> dict:
        """JSON-ready: the pass criteria, the pass rates and every failing case."""
        return {
            "criteria": CRITERIA,
            "pass_rates": {name: round(rate, 4) for name, rate in self.pass_rates().items()},
            "tests": {
                test: {"cases": o.cases, "passed": o.passed, "pass_rate": round(o.pass_rate, 4), "failures": o.failures}
                for test, o in self.tests.items()
            },
        }

    def markdown(self) -> str:
        """A table of the cases and pass rate of each test, each kind and overall."""
        lines = ["| test | cases | passed | pass rate |", "|---|---|---|---|"]
        for name, members in self.groups().items():
            total = _pooled(members)
            lines.append(f"| {name} | {total.cases} | {total.passed} | {total.pass_rate:.3f} |")
        return "\n".join(lines) + "\n"


def judged(case: Case, scores: dict[str, float]) -> tuple[bool, dict]:
    """Whether the case passes, and what it was (for the report of failing cases)."""
    after = scores[case.text]
    if case.kind == "mft":
        detail = {"text": case.text, "expected": case.expected, "probability": round(after, 4)}
        return (after >= 0.5) == bool(case.expected), detail
    before = scores[case.original]
    detail = {"original": case.original, "text": case.text, "before": round(before, 4), "after": round(after, 4)}
    if case.kind == "invariance":
        return (after >= 0.5) == (before >= 0.5) and abs(after - before) < INVARIANCE_TOLERANCE, detail
    moved = (after - before) * case.direction
    saturated = before >= 1 - SATURATION if case.direction > 0 else before <= SATURATION
    return moved > 0 or saturated, {**detail, "expected": "rise" if case.direction > 0 else "fall"}


def run_suite(predict: Callable[[list[str]], np.ndarray], cases: Iterable[Case] | None = None) -> BehaviourReport:
    """Score every case's texts in one `predict` call and judge each case (default: the whole suite)."""
    cases = build_suite() if cases is None else list(cases)
    texts = sorted({text for case in cases for text in (case.text, case.original) if text is not None})
    scores = dict(zip(texts, np.asarray(predict(texts), dtype=np.float64).reshape(-1).tolist(), strict=True))
    tests: dict[str, Outcome] = {}
    for case in cases:
        outcome = tests.setdefault(case.test, Outcome(case.test))
        passed, detail = judged(case, scores)
        outcome.cases += 1
        outcome.passed += passed
        if not passed:
            outcome.failures.append(detail)
    return BehaviourReport(tests)


def _pooled(outcomes: Sequence[Outcome]) -> Outcome:
    """Several tests' cases counted as one (their failures are left in each test's own outcome)."""
    return Outcome("+".join(o.test for o in outcomes), sum(o.cases for o in outcomes), sum(o.passed for o in outcomes))
