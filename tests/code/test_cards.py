"""Model cards: a card from full evidence holds its figures and sections; missing evidence is one line naming it."""

import numpy as np
import pytest

from models.slices import slice_metrics
from tasks.core.errors import ReviewflowError
from tasks.registry.cards import REQUIRED, model_card
from tasks.registry.gate import Scores, decide


def _evidence() -> dict:
    # Reviews up to 100 tokens: 8 of 10 right; over 300 tokens: 3 of 5 right.
    labels = np.array([1, 0] * 5 + [1, 0, 1, 0, 1])
    probabilities = np.where(labels == 1, 0.9, 0.1).astype(float)
    probabilities[[0, 1, 10, 11]] = [0.3, 0.6, 0.4, 0.8]
    lengths = np.array([40] * 10 + [500] * 5)
    verdict = decide(Scores(0.8512, 0.93, {}), Scores(0.8430, 0.92, {}), 0.005, 0.02)
    return {
        "data_source": "shared/data/aclImdb_v1_labeled.tar.gz",
        "data_digest": "sha256:0123abcd",
        "commit": "ca16160",
        "settings": {"train.epochs": 3, "train.dropout": 0.25, "data.keep": "end"},
        "metrics": {"test_accuracy": 0.8512, "test_auc": np.float32(0.93126), "test_f1": 0.85, "test_loss": 0.3456},
        "slices": slice_metrics(labels, probabilities, lengths, None),
        "gate": {"verdict": verdict.verdict, "reason": verdict.reason, "figures": verdict.figures()},
        "behaviour": {"mft_negation": 0.75},
        "run_id": "abc123",
        "architecture": "bilstm",
        "seq_len": 100,
    }


def test_a_card_from_full_evidence_has_every_section_and_figure():
    card = model_card("reviewflow-rnn", "3", _evidence())
    assert card.startswith("# reviewflow-rnn version 3\n")
    for section in ("Data", "Code", "Settings", "Metrics", "Slices", "Behaviour", "Gate", "Intended use", "Known limits"):
        assert f"\n## {section}\n" in card
    for text in ("bilstm", "seq_len 100", "`abc123`", "sha256:0123abcd", "`ca16160`", "| train.dropout | 0.2500 |",
                 "| test_accuracy | 0.8512 |", "| test_auc | 0.9313 |", "| mft_negation | 0.7500 |", "- Verdict: promote",
                 "(+0.0082 >= gate_margin 0.0050)", "| gate.champion_accuracy | 0.8430 |",
                 "probability that a review is positive", "English IMDB"):  # fmt: skip
        assert text in card
    assert "| length_0_100 | 10 | 0.8000 |" in card
    limit = "on reviews over 300 tokens (5 rows) accuracy is 0.6000 against 0.8000 on reviews up to 100 tokens (10 rows)"
    assert limit in card.lower()
    assert "only the last 100 tokens" in card and "keep='end'" in card


def test_behaviour_and_the_seq_len_limit_only_when_in_evidence():
    evidence = _evidence()
    del evidence["behaviour"], evidence["seq_len"]
    evidence["architecture"] = "baseline"
    card = model_card("reviewflow-baseline", "1", evidence)
    assert "## Behaviour" not in card and "tokens of a longer review" not in card


def test_keep_start_reads_the_first_tokens():
    assert "only the first 100 tokens" in model_card("reviewflow-rnn", "3", _evidence() | {"keep": "start"})


def test_missing_and_empty_evidence_are_named_in_one_line():
    evidence = _evidence()
    del evidence["commit"]
    evidence["slices"] = {}
    with pytest.raises(ReviewflowError) as raised:
        model_card("reviewflow-rnn", "3", evidence)
    assert str(raised.value) == "model card for reviewflow-rnn/3: missing evidence: commit, slices"


def test_no_evidence_names_every_required_piece():
    with pytest.raises(ReviewflowError) as raised:
        model_card("reviewflow-rnn", "3", {"data_source": "  "})
    assert str(raised.value) == f"model card for reviewflow-rnn/3: missing evidence: {', '.join(REQUIRED)}"
    assert "\n" not in str(raised.value)


def test_a_gate_without_a_verdict_is_missing():
    with pytest.raises(ReviewflowError, match="missing evidence: gate$"):
        model_card("reviewflow-rnn", "3", _evidence() | {"gate": {"reason": "because"}})
