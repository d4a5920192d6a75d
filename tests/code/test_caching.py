"""Cache keys of completed work, and what a kept result must be to be reused."""

import json
from pathlib import Path

import pytest

from tasks.core.caching import RECORD_SERIALIZER, code_version, drop_unusable_entry, file_digest, source_digest, store_identity, unusable_reason
from tasks.core.config import load_config
from tasks.core.records import Evaluation, PreparedData, TrainedModel, TrainingJob
from tasks.stages.baseline import baseline_key
from tasks.stages.evaluate import evaluate_key
from tasks.stages.ingest import ingest_key
from tasks.stages.prepare import prepare_key, prepared_fingerprint
from tasks.stages.train import train_key
from tasks.stages.validate import validate_key

CODE = "c0de"


def _train_key(*overrides: str, code: str = CODE, architecture: str = "rnn", store: str = "sqlite:////s.db#1") -> str:
    config = load_config("smoke", list(overrides))
    fingerprint = prepared_fingerprint("t4b1e", config.prepare, config.train.seed)
    # As the flow's jobs hold them (tasks.stages.train.training_jobs): the architecture's own settings.
    job = TrainingJob(architecture=architecture, seq_len=config.train.seq_len[architecture], settings=config.train.for_architecture(architecture))
    return train_key(fingerprint, job, store, code)


def test_same_inputs_give_the_same_key():
    assert _train_key() == _train_key()
    config = load_config("smoke")
    assert ingest_key("sha256:ab", config.data, CODE) == ingest_key("sha256:ab", load_config("smoke").data, CODE)
    assert validate_key("t", config.validation, CODE) == validate_key("t", load_config("smoke").validation, CODE)
    assert prepare_key("t", config.prepare, [100, 2494], 42, CODE) == prepare_key("t", config.prepare, [2494, 100, 100], 42, CODE)


@pytest.mark.parametrize(
    "setting",
    ["train.epochs=2", "train.units=32", "train.embedding_dim=16", "train.batch_size=64", "train.learning_rate=0.01",
     "train.seed=7", "train.by_architecture.rnn.learning_rate=0.01", "prepare.vocab_size=4000", "prepare.keep=start", "prepare.validation_fraction=0.2"],
)
def test_a_result_relevant_setting_changes_the_training_key(setting):
    assert _train_key(setting) != _train_key()


@pytest.mark.parametrize(
    "setting",
    ["train.max_workers=1", "train.task_runner=dask", "train.dask_address=tcp://h:8786", "train.architectures=rnn",
     "train.seq_len.bilstm=400", "train.by_architecture.bilstm.dropout=0.1", "data.cache_dir=/elsewhere", "output_dir=/elsewhere", "scoring.chunk_size=10",
     "servers.mlflow_port=5001", "tracking.registered_model_prefix=x-", "reuse=false"],
)
def test_a_setting_that_does_not_change_the_model_keeps_the_training_key(setting):
    assert _train_key(setting) == _train_key()


def test_the_key_holds_the_settings_an_architecture_trains_with_however_they_were_set():
    assert _train_key("train.by_architecture.rnn.dropout=0.1") == _train_key("train.dropout=0.1", "train.by_architecture.bilstm.dropout=0.1")
    assert _train_key("train.by_architecture.bilstm.dropout=0.1", architecture="bilstm") != _train_key(architecture="bilstm")


def test_the_architecture_its_length_the_code_and_the_store_are_in_the_training_key():
    assert _train_key(architecture="birnn") != _train_key()
    assert _train_key("train.seq_len.rnn=50") != _train_key()
    assert _train_key(code="other") != _train_key()
    assert _train_key(store="http://mlflow:5000#1") != _train_key()


def test_stage_keys_follow_their_data_digest_section_and_code():
    config = load_config("smoke")
    assert ingest_key("sha256:ab", config.data, CODE) != ingest_key("sha256:cd", config.data, CODE)
    assert ingest_key("sha256:ab", config.data, CODE) != ingest_key("sha256:ab", config.data, "new")
    assert ingest_key("sha256:ab", config.data, CODE) != ingest_key("sha256:ab", load_config("default").data, CODE)
    assert ingest_key("sha256:ab", config.data, CODE) == ingest_key(
        "sha256:ab", load_config("smoke", ["data.cache_dir=/x"]).data, CODE
    )
    assert validate_key("t", config.validation, CODE) != validate_key("u", config.validation, CODE)
    assert validate_key("t", config.validation, CODE) != validate_key(
        "t", load_config("smoke", ["validation.min_text_chars=5"]).validation, CODE
    )
    assert prepare_key("t", config.prepare, [100], 42, CODE) != prepare_key("t", config.prepare, [100, 2494], 42, CODE)
    assert prepare_key("t", config.prepare, [100], 42, CODE) != prepare_key("t", config.prepare, [100], 42, "new")
    # The fingerprint a trained model is keyed by leaves the lengths out: adding a length reuses models.
    assert prepared_fingerprint("t", config.prepare, 42) != prepared_fingerprint("u", config.prepare, 42)
    assert evaluate_key("run1", "fp", 100, config.evaluation, CODE) != evaluate_key("run2", "fp", 100, config.evaluation, CODE)
    assert evaluate_key("run1", "fp", 100, config.evaluation, CODE) != evaluate_key("run1", "fp", 100, config.evaluation, "new")


def test_the_evaluation_key_follows_the_evaluation_section_only():
    def key(*overrides: str) -> str:
        return evaluate_key("run1", "fp", 100, load_config("smoke", list(overrides)).evaluation, CODE)

    assert key() == key("train.epochs=2") == key("ensemble.C=3") == key("evaluation.robustness_reviews=5000")
    for setting in ("evaluation.behaviour=false", "evaluation.robustness=false", "evaluation.robustness_reviews=500"):
        assert key(setting) != key(), setting


def test_the_baseline_key_follows_its_own_section_not_the_recurrent_settings():
    def key(*overrides: str, store: str = "sqlite:////s.db#1") -> str:
        config = load_config("smoke", list(overrides))
        return baseline_key(prepared_fingerprint("t4b1e", config.prepare, config.train.seed), config.baseline, store, CODE)

    assert key() == key("train.epochs=2") == key("train.architectures=baseline") == key("ensemble.C=3")
    for setting in ("baseline.C=1", "baseline.min_df=3", "baseline.ngram_range=[1,2]", "baseline.max_features=1000", "baseline.nb_weighting=false",
                    "baseline.sublinear_tf=false", "prepare.validation_fraction=0.2", "train.seed=7"):
        assert key(setting) != key(), setting
    assert key(store="http://mlflow:5000#1") != key()


def test_code_version_is_a_digest_of_the_sources():
    assert len(code_version()) == 64 and code_version() == code_version()


def test_digests_of_files_folders_and_urls(tmp_path):
    (tmp_path / "a.csv").write_text("text,label\nfine,1\n")
    first = source_digest(str(tmp_path / "a.csv"))
    assert first == f"sha256:{file_digest(tmp_path / 'a.csv')}"
    (tmp_path / "a.csv").write_text("text,label\nawful,0\n")
    assert source_digest(str(tmp_path / "a.csv")) != first
    folder = tmp_path / "aclImdb" / "train" / "pos"
    folder.mkdir(parents=True)
    (folder / "1_9.txt").write_text("great")
    assert source_digest(str(tmp_path / "aclImdb")).startswith("folder:")
    assert source_digest("https://example.org/a.tar.gz") == "url:https://example.org/a.tar.gz"
    assert source_digest(str(tmp_path / "missing.csv")) is None


def test_a_relative_sqlite_store_is_named_by_its_absolute_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert store_identity("sqlite:///data/mlflow.db", "1") == f"sqlite:///{tmp_path}/data/mlflow.db#1"
    assert store_identity("http://127.0.0.1:5000", "1") == "http://127.0.0.1:5000#1"


def _entry(record, serializer=RECORD_SERIALIZER) -> bytes:
    return json.dumps(
        {"metadata": {"serializer": serializer.model_dump(mode="json")}, "result": serializer.dumps(record).decode()}
    ).encode()


def _evaluation(folder: Path) -> Evaluation:
    trained = TrainedModel(
        architecture="rnn", seq_len=100, run_id="r1", classifier_dir=folder, seconds=1.5, history={"loss": [0.5]}
    )
    return Evaluation(trained=trained, metrics={"test_accuracy": 0.8})


def test_records_round_trip_through_the_json_serializer(tmp_path):
    evaluation = _evaluation(tmp_path)
    back = RECORD_SERIALIZER.loads(RECORD_SERIALIZER.dumps(evaluation))
    assert type(back) is Evaluation and back == evaluation and isinstance(back.trained.classifier_dir, Path)
    prepared = PreparedData(folder=tmp_path, table_path=tmp_path / "t.parquet", vocab_size=10, keep="end", rows={"train": 1}, fingerprint="fp")
    assert RECORD_SERIALIZER.loads(RECORD_SERIALIZER.dumps(prepared)) == prepared
    with pytest.raises(TypeError):
        RECORD_SERIALIZER.dumps(object())
    with pytest.raises(ValueError, match="unknown record type"):
        RECORD_SERIALIZER.loads(b'{"__record__": "Popen", "data": {}}')


def test_a_kept_result_is_unusable_when_its_folder_is_gone_or_it_is_not_ours(tmp_path):
    from prefect.serializers import PickleSerializer

    models = tmp_path / "rnn-100"
    models.mkdir()
    assert unusable_reason(_entry(_evaluation(models))) is None
    assert "is gone" in unusable_reason(_entry(_evaluation(tmp_path / "deleted")))
    assert "not written by reviewflow" in unusable_reason(_entry({"a": 1}, PickleSerializer()))
    assert "cannot be read" in unusable_reason(b"not json")


def test_an_unusable_entry_is_dropped_before_the_lookup(tmp_path):
    from prefect.filesystems import LocalFileSystem

    storage = LocalFileSystem(basepath=str(tmp_path / "results"))
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "good").write_bytes(_entry(_evaluation(tmp_path)))
    (tmp_path / "results" / "stale").write_bytes(_entry(_evaluation(tmp_path / "deleted")))
    drop_unusable_entry(storage, "good")
    drop_unusable_entry(storage, "stale")
    drop_unusable_entry(storage, "absent")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["good"]
