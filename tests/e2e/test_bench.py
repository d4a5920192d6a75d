"""`reviewflow bench` for real at test sizes: its own MLflow and Prefect servers, the flow and the bare
script, batch scoring and the notebook's predict(), recorded in a real tracking server.

Speed is not asserted (the machine is shared); what is checked is that each figure is measured,
compared and recorded as the bench says.
"""

import json

import pytest
from mlflow import MlflowClient

from models.architectures import RECURRENT
from tasks.bench.run import EXPERIMENT, Sizes, bench, bench_markdown, table
from tasks.core.errors import ReviewflowError
from tests.helpers import run_cli

pytestmark = pytest.mark.e2e

TINY = Sizes(reviews_per_split=600, train_rows=256, bilstm_rows=128, repeats=1, flow_repeats=1, epochs=1,
             score_rows=300, notebook_score_rows=4, startup_repeats=1, memory_rows=2000, dask_rows=300, dask_repeats=1)
CHOSEN = ["train_rnn", "overhead", "score", "score_startup", "score_memory"]


@pytest.fixture
def bench_folder(workdir, shared_cache, imdb_archive, mlflow_server, monkeypatch):
    """The bench reads the real archive through the session's Parquet cache and records to the real server."""
    (workdir / "data").mkdir()
    (workdir / "data" / "cache").symlink_to(shared_cache)
    monkeypatch.setenv("REVIEWFLOW_DATA", str(imdb_archive))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    return workdir


def test_bench_measures_both_sides_and_records_every_figure(bench_folder, mlflow_server):
    doc = bench_folder / "BENCHMARKS.md"
    doc.write_text("# Benchmarks\n<!-- results:bench -->\nold\n<!-- /results:bench -->\nafter\n", encoding="utf-8")

    result = bench(only=CHOSEN, json_path=bench_folder / "bench.json", write=doc, sizes=TINY)

    figures = result["benchmarks"]
    assert list(figures) == CHOSEN
    for name in ["train_rnn", "overhead", "score", "score_startup"]:
        figure = figures[name]
        assert len(figure["samples"]["ours"]) == len(figure["samples"]["baseline"]) >= 1, name
        assert figure["ours"] > 0 and figure["baseline"] > 0, name
        assert figure["ratio"] == pytest.approx(figure["ours"] / figure["baseline"]), name
    assert figures["train_rnn"]["unit"] == figures["score"]["unit"] == "reviews/s"
    assert figures["score_memory"]["baseline"] is None and figures["score_memory"]["ours"] > 100  # MB: TensorFlow alone is more
    startup = figures["overhead"]["details"]["startup_seconds"]
    assert 0 < startup[0] < figures["overhead"]["samples"]["ours"][0]
    assert result["machine"]["cores"] >= 1 and result["machine"]["versions"]["mlflow"]
    assert json.loads((bench_folder / "bench.json").read_text())["benchmarks"] == figures

    written = doc.read_text(encoding="utf-8")
    assert "old" not in written and written.endswith("after\n")
    assert "| train_rnn |" in written and "| score_memory |" in written

    client = MlflowClient(mlflow_server)
    run = client.get_run(result["mlflow_run_id"])
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.metrics["train_rnn.ratio"] == pytest.approx(figures["train_rnn"]["ratio"])
    assert run.data.metrics["score_memory.ours"] == pytest.approx(figures["score_memory"]["ours"])
    assert run.data.tags["commit"] == result["commit"]
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"ratios.png", "bench.json", "bench.md"}

    # The same table again from the recorded run alone, as `reviewflow bench --table RUN_ID --write FILE` writes it.
    again = bench_folder / "AGAIN.md"
    again.write_text("<!-- results:bench -->\n<!-- /results:bench -->\n", encoding="utf-8")
    table([result["mlflow_run_id"]], again)
    rows = [line for line in again.read_text(encoding="utf-8").splitlines() if line.startswith("| ")]
    assert rows == [line for line in written.splitlines() if line.startswith("| ")]
    assert f"MLflow run `{result['mlflow_run_id']}`" in again.read_text(encoding="utf-8")
    with pytest.raises(ReviewflowError, match="^no bench run 0123456789abcdef in http://127.0.0.1:"):
        table(["0123456789abcdef"], again)


def test_parallel_keeps_each_trainings_seconds_and_cpu_seconds_both_ways(bench_folder):
    result = bench(only=["parallel"], sizes=TINY)

    details = result["benchmarks"]["parallel"]["details"]
    for way in ("as_the_flow_does", "one_after_another"):
        (seconds,), (cpu,) = details["fit_seconds"][way], details["fit_cpu_seconds"][way]
        assert sorted(seconds) == sorted(cpu) == sorted(RECURRENT), way
        assert all(seconds[a] > 0 and cpu[a] > 0 for a in RECURRENT), way
    assert "(CPU " in bench_markdown([result])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--only", "train_rnn,warp_drive"], "unknown benchmark warp_drive (choose from train_rnn,"),
        (["--only", ","], "--only names no benchmark"),
        (["--write", "missing.md"], "cannot read missing.md"),
        (["--write", "plain.md"], "plain.md has no marker <!-- results:bench -->"),
        (["--write", "bench-only.md", "--section", "dask"], "bench-only.md has no marker <!-- results:dask -->"),
        (["--threads", "0"], "--threads must be at least 1, not 0"),
        (["--models", "rnn,baseline"], "--models names baseline, not a recurrent model (choose from rnn, birnn, bigru, bilstm)"),
        (["--models", ","], "--models names no model"),
    ],
)
def test_bad_bench_options_fail_in_one_line_before_any_work(workdir, args, message):
    (workdir / "plain.md").write_text("# no markers\n", encoding="utf-8")
    (workdir / "bench-only.md").write_text("<!-- results:bench -->\n<!-- /results:bench -->\n", encoding="utf-8")
    result = run_cli(["bench", "--quick", *args], cwd=workdir, timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"reviewflow: error: {message}")
    assert not (workdir / "data" / "mlflow").exists()  # nothing was recorded


def test_the_profile_of_a_training_reads_prefects_record_of_its_tasks(smoke_training):
    _, _, _, children, workdir = smoke_training
    result = run_cli(["bench", "--profile"], env={"PREFECT_HOME": str(workdir / "prefect-home")}, cwd=workdir, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    header, *rows = [line.split(" | ")[0].strip("| ") for line in result.stdout.splitlines() if line.startswith("| ")]
    assert header == "task"
    assert rows[0] == "(start-up: before the first task)" and rows[-1] == "(after the last task)"
    trained = {r for r in rows if r.startswith("train-") and r != "train-models-0"}
    assert len(trained) == len(children) - 1  # one task per trained model (the ensemble is fitted, not trained)
    assert any(r.startswith("validate") for r in rows) and any(r.startswith("evaluate-bilstm") for r in rows)


def test_the_profile_of_an_unknown_flow_run_is_one_line(workdir):
    result = run_cli(["bench", "--profile", "00000000-0000-0000-0000-000000000000"],
                     env={"PREFECT_HOME": str(workdir / "prefect-home")}, cwd=workdir, timeout=600)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("reviewflow: error: no training flow run '00000000-0000-0000-0000-000000000000'")


def test_the_table_of_bench_runs_never_recorded_is_one_line_and_makes_no_store(workdir):
    result = run_cli(["bench", "--table", "0123456789abcdef"], cwd=workdir, timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line == "reviewflow: error: no bench runs are recorded in sqlite:///data/mlflow/mlflow.db (`reviewflow bench` records them)"
    assert not (workdir / "data" / "mlflow").exists()
