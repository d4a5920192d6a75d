"""The bench's table: one run's figures, or several recorded runs' merged (the later run wins a benchmark)."""

from tasks.bench.run import bench_markdown


def result(commit: str, figures: dict[str, float], run_id: str | None = None) -> dict:
    machine = {"cores": 2, "cpu": "a CPU", "versions": {"tensorflow": "2.21.0"}}
    benchmarks = {
        name: {"ours": ours, "baseline": 1.0, "ratio": ours, "unit": "reviews/s", "target": ">= 1.0", "met": ours >= 1.0,
               "samples": {"ours": [ours], "baseline": [1.0]}, "details": {}}
        for name, ours in figures.items()
    }
    found = {"quick": False, "commit": commit, "machine": machine, "seconds": 600.0, "benchmarks": benchmarks}
    return found | ({"mlflow_run_id": run_id} if run_id else {})


def rows(markdown: str) -> dict[str, list[str]]:
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines() if line.startswith("| ")]
    return {row[0]: row[1:] for row in cells[1:]}


def test_one_run_is_one_table_in_the_benchmarks_order_without_a_run_column():
    markdown = bench_markdown([result("a" * 40, {"score": 300.0, "train_rnn": 0.9})])
    assert list(rows(markdown)) == ["train_rnn", "score"]
    assert rows(markdown)["train_rnn"][:5] == ["0.9", "1", "0.9", ">= 1.0", "**no**"]
    assert "`reviewflow bench --only score,train_rnn` (full sizes), commit `aaaaaaaaaaaa`" in markdown
    assert "| run |" not in markdown


def test_several_runs_merge_and_each_row_names_the_run_it_comes_from():
    first = result("a" * 40, {"train_rnn": 0.9, "score": 300.0}, "run-one")
    second = result("b" * 40, {"score": 400.0, "score_memory": 1500.0}, "run-two")
    table = rows(bench_markdown([first, second]))
    assert list(table) == ["train_rnn", "score", "score_memory"]
    assert table["train_rnn"][0] == "0.9" and table["train_rnn"][-1] == "1"
    assert table["score"][0] == "400" and table["score"][-1] == "2"  # measured twice: the later run's
    markdown = bench_markdown([first, second])
    assert "Run 1: `reviewflow bench --only train_rnn,score`" in markdown and "MLflow run `run-one`" in markdown
    assert "Run 2: `reviewflow bench --only score,score_memory`" in markdown and "commit `bbbbbbbbbbbb`" in markdown


def test_a_run_with_its_own_thread_count_says_so_in_its_command():
    run = result("a" * 40, {"train_birnn": 1.1}) | {"threads": 1}
    assert "`reviewflow bench --only train_birnn --threads 1` (full sizes)" in bench_markdown([run])


def test_a_run_scoring_with_fewer_champions_says_which_in_its_command():
    run = result("a" * 40, {"score_dask": 900.0}) | {"models": ["rnn", "bigru"]}
    assert "`reviewflow bench --only score_dask --models rnn,bigru` (full sizes)" in bench_markdown([run])
    every = result("a" * 40, {"score_dask": 200.0}) | {"models": ["rnn", "birnn", "bigru", "bilstm"]}
    assert "--models" not in bench_markdown([every])


def test_parallel_says_what_each_training_took_both_ways_as_medians():
    run = result("a" * 40, {"parallel": 0.75})
    run["benchmarks"]["parallel"]["details"]["fit_seconds"] = {
        "as_the_flow_does": [{"bilstm": 30.0, "rnn": 5.0}, {"bilstm": 34.0, "rnn": 7.0}, {"bilstm": 31.0, "rnn": 6.0}],
        "one_after_another": [{"rnn": 4.0, "bilstm": 22.0}, {"rnn": 4.5, "bilstm": 25.0}, {"rnn": 3.0, "bilstm": 20.0}],
    }
    markdown = bench_markdown([run])
    assert "side by side): bilstm 31.0, rnn 6.0; one after another (every core each): rnn 4.0, bilstm 22.0." in markdown

    # With each training's CPU seconds (recorded since), each figure has its own beside it.
    run["benchmarks"]["parallel"]["details"]["fit_cpu_seconds"] = {
        "as_the_flow_does": [{"bilstm": 25.0, "rnn": 5.0}, {"bilstm": 24.0, "rnn": 6.0}, {"bilstm": 23.0, "rnn": 5.5}],
        "one_after_another": [{"rnn": 7.0, "bilstm": 40.0}, {"rnn": 8.0, "bilstm": 41.0}, {"rnn": 6.0, "bilstm": 39.0}],
    }
    markdown = bench_markdown([run])
    assert ("side by side): bilstm 31.0 (CPU 24.0), rnn 6.0 (CPU 5.5); one after another (every core each): "
            "rnn 4.0 (CPU 7.0), bilstm 22.0 (CPU 40.0).") in markdown


def test_a_parallel_recorded_before_its_training_seconds_were_kept_still_makes_a_table():
    assert "Parallel:" not in bench_markdown([result("a" * 40, {"parallel": 0.75})])
