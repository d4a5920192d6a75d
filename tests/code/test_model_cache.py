"""The local cache of registered model versions, against a real MLflow store (embedded SQLite, no server)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.baseline import BaselineClassifier, BaselineSettings
from tasks.core.config import TrackingConfig
from tasks.registry.versions import log_and_register
from tasks.scoring.model_cache import CACHE_STAMP, load_model_version, load_reference, load_registered_models
from tasks.tracking import connect
from tasks.tracking.runs import finish_run, start_child_run, start_parent_run

TEXTS = ["a great film", "an awful film", "great acting and a great plot", "awful, boring and awful"]
LABELS = np.array([1, 0, 1, 0])


@pytest.fixture
def registered(tmp_path: Path):
    """A real MLflow store holding `t-baseline/1` with the alias `champion`; its artifact folder."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    artifacts = tmp_path / "artifacts"
    tracking = connect(TrackingConfig(experiment="t", tracking_uri=uri, artifact_location=str(artifacts), registered_model_prefix="t-"))
    parent = start_parent_run(tracking, "smoke-1", {}, {"profile": "smoke"})
    tracking = tracking.model_copy(update={"parent_run_id": parent})
    run = start_child_run(tracking, "baseline", None, {})
    folder = tmp_path / "baseline-tfidf"
    BaselineClassifier.fit(TEXTS, LABELS, BaselineSettings(min_df=1, C=10.0)).save(folder)
    version = log_and_register(tracking, run, "baseline", folder, pd.DataFrame({"text": TEXTS[:1]}))
    tracking.client().set_registered_model_alias("t-baseline", "champion", version)
    finish_run(tracking, run, True)
    finish_run(tracking, parent, True)
    return tracking, artifacts


def entry(cache: Path) -> Path:
    (found,) = cache.glob("*/t-baseline/1")
    return found


def test_a_second_load_reads_the_cache_without_any_download(registered, tmp_path):
    tracking, artifacts = registered
    cache = tmp_path / "cache"
    classifiers, versions = load_registered_models(tracking, ["baseline"], "champion", cache)
    assert versions == {"baseline": "t-baseline/1"}
    expected = classifiers["baseline"].predict(TEXTS)
    stamp = json.loads((entry(cache) / CACHE_STAMP).read_text())
    assert stamp["name"] == "t-baseline" and stamp["version"] == "1"

    # The store's artifacts gone: the second load can only come from the cache (the registry still answers).
    shutil.rmtree(artifacts)
    again, _ = load_registered_models(tracking, ["baseline"], "champion", cache)
    assert np.array_equal(again["baseline"].predict(TEXTS), expected)
    assert np.array_equal(load_model_version(tracking, "t-baseline", "1", cache).predict(TEXTS), expected)
    assert [p.name for p in entry(cache).parent.iterdir()] == ["1"]  # no temporary download left beside it


def test_a_partial_cache_entry_is_ignored_and_replaced(registered, tmp_path):
    tracking, _ = registered
    cache = tmp_path / "cache"
    expected = load_model_version(tracking, "t-baseline", "1", cache).predict(TEXTS)
    folder = entry(cache)
    # As if a copy had stopped halfway: no stamp, and a file of the classifier missing.
    (folder / CACHE_STAMP).unlink()
    (next(folder.rglob("weights.npz"))).unlink()
    assert np.array_equal(load_model_version(tracking, "t-baseline", "1", cache).predict(TEXTS), expected)
    assert (folder / CACHE_STAMP).is_file() and next(folder.rglob("weights.npz")).is_file()
    assert [p.name for p in folder.parent.iterdir()] == ["1"]


def test_an_entry_of_another_store_s_version_1_is_replaced(registered, tmp_path):
    tracking, _ = registered
    cache = tmp_path / "cache"
    load_model_version(tracking, "t-baseline", "1", cache)
    stamp_path = entry(cache) / CACHE_STAMP
    # The store deleted and trained again under the same URI: its version 1 is another run's model.
    stamp_path.write_text(json.dumps({**json.loads(stamp_path.read_text()), "run_id": "an-earlier-run"}))
    load_model_version(tracking, "t-baseline", "1", cache)
    assert json.loads(stamp_path.read_text())["run_id"] != "an-earlier-run"


def test_a_killed_run_s_download_is_cleaned_up_and_never_used(registered, tmp_path):
    tracking, _ = registered
    cache = tmp_path / "cache"
    load_model_version(tracking, "t-baseline", "1", cache)
    folder = entry(cache)
    shutil.rmtree(folder)
    killed = folder.with_name(".1.999999-0123abcd.tmp")  # a download of a process that no longer runs
    killed.mkdir()
    (killed / "MLmodel").write_text("half")
    assert load_model_version(tracking, "t-baseline", "1", cache).predict(TEXTS).shape == (len(TEXTS),)
    assert [p.name for p in folder.parent.iterdir()] == ["1"]


def test_a_version_s_drift_reference_comes_with_it_and_an_older_one_has_none(registered, tmp_path):
    from models.text import Vocabulary
    from tasks.core.files import write_json
    from tasks.scoring.drift import profile_texts

    tracking, _ = registered
    cache = tmp_path / "cache"
    old = load_reference(tracking, "t-baseline/1", cache)  # registered without a reference_profile
    assert (old.version, old.profile, old.vocabulary) == ("t-baseline/1", None, None)

    reference = tmp_path / "reference_profile"
    reference.mkdir()
    vocabulary = Vocabulary(["great", "awful", "film"])
    write_json(reference / "profile.json", profile_texts(TEXTS, vocabulary, np.array([0.9, 0.1, 0.8, 0.2])))
    vocabulary.save(reference / "vocabulary.json")
    tracking = tracking.model_copy(update={"parent_run_id": start_parent_run(tracking, "smoke-2", {}, {})})
    run = start_child_run(tracking, "baseline", None, {})
    version = log_and_register(tracking, run, "baseline", tmp_path / "baseline-tfidf", pd.DataFrame({"text": TEXTS[:1]}), reference)
    loaded = load_reference(tracking, f"t-baseline/{version}", cache)
    assert loaded.profile == json.loads((reference / "profile.json").read_text())
    assert loaded.vocabulary.words == ["great", "awful", "film"]
