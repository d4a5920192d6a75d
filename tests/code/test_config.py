import pytest

from tasks.core.config import Config, ScoringConfig, load_config, tracking_settings
from tasks.core.errors import ReviewflowError


def test_profile_alone_gives_the_whole_profile():
    smoke = Config.model_validate({"profile": "smoke"})
    assert smoke == Config(profile="smoke") == load_config("smoke")
    assert smoke.train.epochs == 1 and smoke.data.reviews_per_split == 2000
    default = Config()
    assert (default.train.epochs, default.train.batch_size, default.train.embedding_dim, default.train.units) == (3, 128, 64, 64)
    assert default.train.seq_len == {"rnn": 100, "birnn": 100, "bigru": 100, "bilstm": 2494}


def test_overrides_are_typed_and_merge_into_the_profile():
    config = load_config("smoke", ["train.epochs=2", "train.architectures=rnn,bigru", "train.seq_len.bilstm=300"])
    assert config.train.epochs == 2
    assert config.train.architectures == ["rnn", "bigru"]
    assert config.train.seq_len["bilstm"] == 300 and config.train.seq_len["rnn"] == 100
    assert config.prepare.vocab_size == 5000


def test_an_architecture_trains_with_its_own_settings_on_top_of_the_shared_ones():
    config = load_config("smoke", ["train.learning_rate=0.01", "train.by_architecture.bilstm.dropout=0.1"])
    assert config.train.by_architecture == {"bigru": {"spatial_dropout": 0.4}, "bilstm": {"learning_rate": 0.001, "dropout": 0.1}}
    rnn, bigru, bilstm = (config.train.for_architecture(a) for a in ("rnn", "bigru", "bilstm"))
    assert (rnn.learning_rate, rnn.dropout, rnn.spatial_dropout) == (0.01, 0.0, 0.2)
    assert (bigru.learning_rate, bigru.spatial_dropout) == (0.01, 0.4)
    assert (bilstm.learning_rate, bilstm.dropout, bilstm.epochs) == (0.001, 0.1, 1)
    assert bilstm.by_architecture == {} and bilstm.for_architecture("bilstm") == bilstm


def test_the_evaluation_checks_are_on_for_every_test_review_unless_set():
    assert Config().evaluation.model_dump() == {"behaviour": True, "robustness": True, "robustness_reviews": 5000}
    config = load_config("smoke", ["evaluation.behaviour=false", "evaluation.robustness_reviews=500"])
    assert not config.evaluation.behaviour and config.evaluation.robustness_reviews == 500


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=2", "unknown setting 'train.epoch'"),
        ("nope=1", "unknown setting 'nope'"),
        ("train.epochs=abc", "bad value for train.epochs"),
        ("train.epochs=0", "bad value for train.epochs"),
        ("train.architectures=lstm", "bad value for train.architectures"),
        ("train.task_runner=threads", "bad value for train.task_runner"),
        ("prepare.keep=middle", "bad value for prepare.keep"),
        ("evaluation.robustness_reviews=1", "bad value for evaluation.robustness_reviews"),
        ("scoring.drift_threshold=-1", "bad value for scoring.drift_threshold"),
        ("scoring.drift_threshold=0", "bad value for scoring.drift_threshold"),
        ("scoring.shadow_alias=", "bad value for scoring.shadow_alias"),
        ("train.seq_len.bilstm=-5", "train.seq_len has bad entries"),
        ("train.by_architecture.lstm.dropout=0.1", "train.by_architecture.lstm: unknown architecture"),
        ("train.by_architecture.bilstm.dropout=2", "train.by_architecture.bilstm: bad value for dropout"),
        ("train.by_architecture.bilstm.seed=7", "train.by_architecture.bilstm: seed: no setting that may differ"),
        ("train.by_architecture.rnn.nope=1", "train.by_architecture.rnn: nope: no setting that may differ"),
        ("train.by_architecture.bigru=0.4", "bad value for train.by_architecture.bigru"),
        ("epochs", "expected key=value"),
    ],
)
def test_bad_overrides_give_one_line_naming_the_key(override, message):
    with pytest.raises(ReviewflowError) as caught:
        load_config("default", [override])
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_unknown_profile_is_refused():
    with pytest.raises(ReviewflowError, match="unknown profile 'fast'"):
        load_config("fast")


def test_data_source_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("REVIEWFLOW_DATA", "/tmp/reviews.csv")
    assert Config().data.source == "/tmp/reviews.csv"
    assert load_config("default", ["data.source=/x/y.parquet"]).data.source == "/x/y.parquet"


def test_tracking_uri_comes_from_the_environment_then_mlflow_yaml(workdir, monkeypatch):
    assert tracking_settings(Config().tracking).tracking_uri == "sqlite:///data/mlflow/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_settings(Config().tracking).tracking_uri == "http://127.0.0.1:5999"


def test_a_broken_mlflow_yaml_gives_one_line(workdir):
    (workdir / "mlflow.yaml").write_text("experiment: [unclosed\n")
    with pytest.raises(ReviewflowError, match="mlflow.yaml: not valid YAML"):
        tracking_settings(Config().tracking)
    (workdir / "mlflow.yaml").write_text("- a list\n")
    with pytest.raises(ReviewflowError, match="expected a mapping"):
        tracking_settings(Config().tracking)


def test_drift_and_shadow_settings_reach_the_scheduled_score_deployment():
    from flows.deployments import score_parameters

    assert (ScoringConfig().drift_threshold, ScoringConfig().shadow_alias) == (0.2, None)
    config = load_config("default", ["scoring.shadow_alias=challenger", "scoring.drift_threshold=0.3"])
    scoring = score_parameters(config)["scoring"]
    assert (scoring["shadow_alias"], scoring["drift_threshold"]) == ("challenger", 0.3)
    assert ScoringConfig.model_validate(scoring).shadow_alias == "challenger"  # as the flow run reads its parameter


@pytest.mark.parametrize(
    "options, message",
    [
        (["--set", "scoring.drift_threshold=-1"], "bad value for scoring.drift_threshold: Input should be greater than 0 (got -1)"),
        (["--shadow", ""], "bad value for --shadow: String should have at least 1 character"),
        (["--set", "train.epochs=2"], "--set 'train.epochs=2': score takes scoring settings only"),
    ],
)
def test_score_refuses_bad_drift_and_shadow_options_in_one_line(workdir, capsys, options, message):
    from flows.cli import main

    assert main(["score", "r.csv", "--output", "out", *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"reviewflow: error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize(
    "override, message",
    [
        ("servers.mlflow_backend_store_uri=mysql://db/mlflow", "bad value for servers.mlflow_backend_store_uri: Value error, expected a postgresql://"),
        ("servers.prefect_database_url=sqlite:///x.db", "bad value for servers.prefect_database_url: Value error, expected a postgresql://"),
        ("servers.heartbeat_s=5", "bad value for servers.heartbeat_s"),
    ],
)
def test_bad_team_settings_give_one_line(override, message):
    with pytest.raises(ReviewflowError) as caught:
        load_config("default", [override])
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_database_url_with_a_password_is_refused_without_showing_it():
    with pytest.raises(ReviewflowError) as caught:
        load_config("default", ["servers.mlflow_backend_store_uri=postgresql://team:s3cret@db:5432/mlflow"])
    assert "put it in PGPASSWORD" in str(caught.value) and "s3cret" not in str(caught.value)


def test_postgresql_urls_are_accepted_with_or_without_a_driver():
    config = load_config("default", ["servers.mlflow_backend_store_uri=postgresql://team@db/mlflow",
                                     "servers.prefect_database_url=postgresql+asyncpg://team@db:5433/prefect"])
    assert config.servers.mlflow_backend_store_uri == "postgresql://team@db/mlflow"
    from tasks.core.servers import with_driver

    assert with_driver(config.servers.prefect_database_url, "asyncpg") == "postgresql+asyncpg://team@db:5433/prefect"
    assert with_driver("postgres://team@db/mlflow") == "postgresql://team@db/mlflow"
