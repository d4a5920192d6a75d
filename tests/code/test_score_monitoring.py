"""Drift and shadow scoring in a scored file's manifest, report and history rows.

Plain functions stand in for the models (as in test_score_files.py); a reference profile is built
from stand-in reviews with tasks.scoring.drift, as registering builds one from the test split.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.ensemble import Stacker
from models.text import Vocabulary
from tasks.scoring.core import Monitoring, score_file
from tasks.scoring.drift import Reference, profile_texts
from tasks.scoring.history import drift_table, files_table, shadow_table
from tasks.scoring.publish import drift_summary, shadow_summary
from tasks.scoring.rows import EnsembleScorer, ShadowScorers
from tests.code.test_score_files import VERSIONS, Recorder, read_output, rnn_probability, write_input

WORDS = "the film was a story of love and loss told with warmth wit and great acting but the plot was slow".split()


def reviews(count: int, seed: int) -> list[str]:
    """Stand-in reviews of 60 to 240 words from a small vocabulary."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, rng.integers(60, 240))) for _ in range(count)]


VOCABULARY = Vocabulary(WORDS[:15])  # a few of the words are unknown to it
REFERENCE_TEXTS = reviews(2000, seed=1)


def references(models: tuple[str, ...] = ("rnn", "bigru")) -> dict[str, Reference]:
    """Each model's reference: the stand-in reviews as that model scores them."""
    scorers = Recorder().scorers
    return {
        model: Reference(VERSIONS[model], profile_texts(REFERENCE_TEXTS, VOCABULARY, scorers[model](REFERENCE_TEXTS)), VOCABULARY)
        for model in models
    }


def one_liners(count: int) -> list[str]:
    return [["Great.", "Awful movie.", "Loved it!", "Meh.", "Two hours I will never get back."][i % 5] for i in range(count)]


def test_reviews_like_the_reference_do_not_drift_and_the_manifest_has_each_models_figures(workdir: Path) -> None:
    source = write_input(workdir / "r.csv", [{"text": t} for t in reviews(1000, seed=2)])
    outcome = score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 300, monitoring=Monitoring(references()))
    manifest = json.loads((workdir / "out" / "r.csv.manifest.json").read_text())
    assert set(manifest["drift"]) == {"rnn", "bigru"} and manifest["drifted"] is False and manifest["drift_reasons"] == []
    figures = manifest["drift"]["rnn"]
    assert figures["reference"] == "3" and figures["threshold"] == 0.2 and not figures["drifted"]
    assert figures["length_psi"] < 0.05 and figures["probability_psi"] < 0.05 and abs(figures["oov_rate_difference"]) < 0.01
    assert figures["profile"]["rows"] == 1000 and len(figures["profile"]["length_histogram"]) == 9
    assert outcome.drift == manifest["drift"] and outcome.drifted is False and manifest["shadow"] is None


def test_one_line_reviews_are_scored_flagged_and_warned_about(workdir: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = write_input(workdir / "short.csv", [{"text": t} for t in one_liners(250)])
    with caplog.at_level(logging.WARNING, logger="reviewflow"):
        outcome = score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 7, monitoring=Monitoring(references()))
    assert outcome.status == "scored" and outcome.rows == 250 and outcome.drifted is True
    assert len(read_output(workdir / "out" / "short.scored.csv")) == 250  # still scored, every row
    manifest = json.loads((workdir / "out" / "short.csv.manifest.json").read_text())
    assert manifest["drifted"] is True and manifest["drift"]["rnn"]["length_psi"] > 0.2
    assert any(r.startswith("rnn: length_psi ") and "> threshold 0.2000" in r for r in manifest["drift_reasons"])
    assert [r.levelname for r in caplog.records] == ["WARNING"] and "drifted" in caplog.records[0].getMessage()


def test_the_threshold_decides_the_flag(workdir: Path) -> None:
    source = write_input(workdir / "short.csv", [{"text": t} for t in one_liners(250)])
    outcome = score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 100, monitoring=Monitoring(references(), drift_threshold=1e6))
    assert outcome.drifted is False and outcome.drift["rnn"]["length_psi"] > 0.2


def test_a_file_of_too_few_rows_keeps_its_figures_but_is_never_flagged(workdir: Path) -> None:
    source = write_input(workdir / "short.csv", [{"text": t} for t in one_liners(50)])
    outcome = score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 100, monitoring=Monitoring(references()))
    figures = outcome.drift["rnn"]
    assert outcome.drifted is False and figures["length_psi"] > 0.2 and not figures["drifted"] and figures["reasons"] == []
    assert figures["too_few_rows"] == "50 scored rows, fewer than the 200 a flag needs"
    assert drift_summary(outcome.drift).startswith("not flagged, 50 scored rows, fewer than the 200 a flag needs: PSI up to ")
    small = score_file(source, workdir / "small", Recorder().scorers, VERSIONS, 100, monitoring=Monitoring(references(), drift_min_rows=50))
    assert small.drifted is True


def test_chunks_of_any_size_give_the_same_drift_and_rows_with_errors_are_left_out(workdir: Path) -> None:
    texts = reviews(40, seed=3)
    records = [{"text": t} for t in texts] + [{"text": ""}, {"text": 42}, {"text": "?!"}]
    source = write_input(workdir / "r.jsonl", records)
    blocks = []
    for size in (1, 6, 1000):
        score_file(source, workdir / f"out{size}", Recorder().scorers, VERSIONS, size, monitoring=Monitoring(references()))
        blocks.append(json.loads((workdir / f"out{size}" / "r.jsonl.manifest.json").read_text())["drift"])
    assert blocks[0] == blocks[1] == blocks[2]
    assert blocks[0]["rnn"]["profile"] == profile_texts(texts, VOCABULARY, np.array([rnn_probability(t) for t in texts]))


def test_a_version_without_a_reference_is_recorded_as_absent_and_never_flagged(workdir: Path) -> None:
    source = write_input(workdir / "short.csv", [{"text": t} for t in one_liners(250)])
    outcome = score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 100, monitoring=Monitoring(references(("bigru",))))
    assert outcome.drift["rnn"] == {"reference": None}
    assert outcome.drift["bigru"]["drifted"] and outcome.drifted  # the other model still flags it


def test_a_file_without_scored_rows_has_profiles_but_no_figures(workdir: Path) -> None:
    source = write_input(workdir / "blank.csv", [{"text": " "}, {"text": "?"}])
    outcome = score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 100, monitoring=Monitoring(references()))
    assert outcome.status == "scored" and outcome.drifted is False
    assert outcome.drift["rnn"]["profile"]["rows"] == 0 and "length_psi" not in outcome.drift["rnn"]
    assert drift_summary(outcome.drift) == "no scored rows"


def _shadow_scorers(flip: bool = True) -> ShadowScorers:
    """A shadow `rnn` that disagrees on reviews shorter than 20 characters, and the same `bigru`."""
    recorder = Recorder()

    def rnn(texts: list[str]) -> np.ndarray:
        return np.array([(1 - rnn_probability(t)) if flip and len(t) < 20 else rnn_probability(t) for t in texts])

    return ShadowScorers(alias="challenger", versions={"rnn": "4", "bigru": "7"}, scorers={"rnn": rnn, "bigru": recorder.bigru})


SHADOW_TEXTS = ["A warm, funny film. Loved it.", "Forgettable.", "Dull from start to finish, and far too long.", "Great!", ""]


@pytest.mark.parametrize("name", ["r.csv", "r.jsonl", "r.parquet"])
def test_shadow_columns_come_after_the_others_with_their_agreement(workdir: Path, name: str) -> None:
    source = write_input(workdir / name, [{"text": t} for t in SHADOW_TEXTS])
    outcome = score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 2, monitoring=Monitoring(shadow=_shadow_scorers()))
    frame = read_output(next((workdir / "out").glob("r.scored.*")))
    assert list(frame.columns) == ["row", "prob_rnn", "prob_bigru", "prob_ensemble", "sentiment", "error", "shadow_prob_rnn", "shadow_prob_bigru"]
    np.testing.assert_allclose(frame["shadow_prob_bigru"][:4], frame["prob_bigru"][:4])
    assert pd.isna(frame["shadow_prob_rnn"][4]) and pd.isna(frame["shadow_prob_bigru"][4])  # the empty row: no probabilities
    shadow = json.loads((workdir / "out" / f"{name}.manifest.json").read_text())["shadow"]
    # rnn: "Forgettable." (0.12 -> 0.88) and "Great!" (0.06 -> 0.94) change sides; the others do not.
    assert shadow == {"alias": "challenger", "versions": {"rnn": "4", "bigru": "7"}, "rows": 4, "agreement": {"rnn": 0.5, "bigru": 1.0}}
    assert outcome.shadow == shadow


def test_without_a_shadow_the_output_is_byte_identical(workdir: Path) -> None:
    source = write_input(workdir / "r.parquet", [{"text": t} for t in SHADOW_TEXTS])
    score_file(source, workdir / "a", Recorder().scorers, VERSIONS, 2)
    score_file(source, workdir / "b", Recorder().scorers, VERSIONS, 2, monitoring=Monitoring(references()))
    assert (workdir / "a" / "r.scored.parquet").read_bytes() == (workdir / "b" / "r.scored.parquet").read_bytes()


def test_a_shadow_scores_an_already_scored_file_again_once(workdir: Path) -> None:
    source = write_input(workdir / "r.csv", [{"text": t} for t in SHADOW_TEXTS])
    assert score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 10).status == "scored"
    with_shadow = Monitoring(shadow=_shadow_scorers())
    assert score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 10, monitoring=with_shadow).status == "scored"
    assert score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 10, monitoring=with_shadow).status == "skipped"
    assert score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 10).status == "scored"  # the shadow columns go again


def test_the_shadow_ensemble_and_an_ensemble_only_shadow(workdir: Path) -> None:
    source = write_input(workdir / "r.csv", [{"text": t} for t in SHADOW_TEXTS])
    stacker = Stacker(("rnn", "bigru"), (1.5, -0.5), 0.25)
    ensemble = EnsembleScorer("reviewflow-ensemble/3", stacker, {"rnn": "reviewflow-rnn/4", "bigru": "reviewflow-bigru/7"},
                              {"rnn": Recorder().rnn, "bigru": Recorder().bigru})
    shadow = ShadowScorers("challenger", {"ensemble": "reviewflow-ensemble/3"}, {}, ensemble)
    score_file(source, workdir / "out", Recorder().scorers, VERSIONS, 3, monitoring=Monitoring(shadow=shadow))
    frame = read_output(workdir / "out" / "r.scored.csv")
    assert list(frame.columns)[-1] == "shadow_prob_ensemble" and "shadow_prob_rnn" not in frame
    texts = SHADOW_TEXTS[:4]
    expected = stacker.predict({"rnn": np.array([rnn_probability(t) for t in texts]), "bigru": Recorder().bigru(texts)})
    np.testing.assert_allclose(frame["shadow_prob_ensemble"][:4], expected)
    agreement = json.loads((workdir / "out" / "r.csv.manifest.json").read_text())["shadow"]["agreement"]
    ours = frame["prob_ensemble"][:4] >= 0.5  # the mean of the columns: no registered ensemble in this run
    assert agreement == {"ensemble": float(np.mean(ours == (expected >= 0.5)))}


def test_the_report_and_the_history_rows_show_drift_and_shadow(workdir: Path) -> None:
    short = write_input(workdir / "short.csv", [{"text": t} for t in one_liners(250)])
    fine = write_input(workdir / "fine.csv", [{"text": t} for t in reviews(300, seed=4)])
    monitoring = Monitoring(references(("rnn",)), shadow=_shadow_scorers())
    outcomes = [score_file(p, workdir / "out", Recorder().scorers, VERSIONS, 100, monitoring=monitoring) for p in (short, fine)]
    outcomes.append(score_file(fine, workdir / "out", Recorder().scorers, VERSIONS, 100, monitoring=monitoring))  # skipped
    # The report's cells (publish_scoring puts them in a Prefect artifact, which needs a Prefect API).
    assert [o.drifted for o in outcomes] == [True, False, None]
    drift = [drift_summary(o.drift) for o in outcomes]
    assert drift[0].startswith("drifted: length_psi (1 of 1 models)") and drift[1].startswith("ok: PSI at most ") and drift[2] == ""
    assert shadow_summary(outcomes[0].shadow) == "rnn 0.20, bigru 1.00" and shadow_summary(outcomes[2].shadow) == ""
    scored = outcomes[:2]
    table = drift_table(scored)
    assert [(r["file"], r["model"], r["reference"]) for r in table] == [
        ("short.csv", "rnn", "3"), ("short.csv", "bigru", None), ("fine.csv", "rnn", "3"), ("fine.csv", "bigru", None)
    ]
    assert table[0]["drifted"] and table[0]["length_psi"] > 0.2 and table[1]["length_psi"] is None
    assert [r["agreement"] for r in shadow_table(scored)] == [0.2, 1.0, 1.0, 1.0]
    assert [r["drifted"] for r in files_table(outcomes)] == [True, False, None]


def test_the_inbox_is_profiled_and_shadowed_too(workdir: Path) -> None:
    from tasks.scoring.core import score_inbox

    write_input(workdir / "inbox" / "short.csv", [{"text": t} for t in one_liners(250)])
    monitoring = Monitoring(references(), shadow=_shadow_scorers(flip=False))
    (outcome,) = score_inbox(workdir / "inbox", workdir / "out", workdir / "archive", Recorder().scorers, VERSIONS, 100, monitoring=monitoring)
    assert outcome.status == "scored" and outcome.drifted and outcome.shadow["agreement"] == {"rnn": 1.0, "bigru": 1.0}
    assert (workdir / "archive" / "short.csv").is_file()
