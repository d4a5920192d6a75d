"""MLflow calls on the embedded SQLite store: a real MLflow, no server."""

import pandas as pd
import pytest

from tasks.core.config import TrackingConfig
from tasks.tracking import connect
from tasks.tracking.runs import finish_run, log_dataset, start_parent_run


def test_recording_the_dataset_leaves_the_parent_running_until_the_flow_closes_it(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = connect(TrackingConfig(experiment="t", tracking_uri=uri, artifact_location=str(tmp_path / "a"), registered_model_prefix="t-"))
    parent = start_parent_run(tracking, "smoke-1", {"source": "https://me:pw@example.org/x.tar.gz"}, {"profile": "smoke"})
    table = tmp_path / "reviews.parquet"
    pd.DataFrame({"review_id": ["1", "2"], "split": ["train", "test"], "label": [1, 0], "rating": [9, 2]}).to_parquet(table)

    log_dataset(tracking, parent, table, "https://me:pw@example.org/x.tar.gz", "ab" * 32, "reviews-abab")

    run = tracking.client().get_run(parent)
    assert run.info.status == "RUNNING"  # a killed flow must not leave it FINISHED
    (recorded,) = run.inputs.dataset_inputs
    assert recorded.dataset.name == "reviews-abab" and recorded.dataset.digest == ("ab" * 32)[:36]
    assert "pw" not in recorded.dataset.source and "pw" not in run.data.params["source"]
    finish_run(tracking, parent, succeeded=False)
    assert tracking.client().get_run(parent).info.status == "FAILED"


def test_registering_with_the_server_gone_is_one_line_that_says_where_the_model_stays(tmp_path):
    from tasks.core.errors import ReviewflowError
    from tasks.core.servers import free_port
    from tasks.registry.versions import log_and_register
    from tasks.tracking import Tracking

    gone = Tracking(tracking_uri=f"http://127.0.0.1:{free_port()}", experiment_id="1", registered_model_prefix="t-", parent_run_id="p")
    with pytest.raises(ReviewflowError) as raised:
        log_and_register(gone, "run", "rnn", tmp_path / "rnn-100", pd.DataFrame({"text": ["fine"]}))
    message = str(raised.value)
    assert message.startswith(f"registering t-rnn at {gone.tracking_uri} failed: the MLflow tracking server at")
    assert message.endswith(f"(the trained model stays in {tmp_path / 'rnn-100'}; run again to register it without training)")
