"""`reviewflow bench`: every benchmark side by side with the notebook's way (or its own baseline), in one
invocation on the same real reviews, with its own MLflow tracking server and Prefect server.

The bench's code lives together in `tasks/bench/`: this module runs the benchmarks and records them;
`training`, `scoring` and `overhead` measure; `sides` alternates and compares; `notebook` is the notebook's
way of training and scoring that they measure against; `profile` reads a flow run's record.

The figures go to the terminal as a table, to `--json`, to `--write` (between a file's
`<!-- results:bench -->` markers) and to an MLflow run in the experiment `reviewflow-bench`.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from models.architectures import RECURRENT
from tasks.bench import overhead as overhead_bench
from tasks.bench import scoring as scoring_bench
from tasks.bench import training as training_bench
from tasks.bench.sides import Figure
from tasks.core.config import Config, DataConfig, ScoringConfig, TrackingConfig, tracking_settings
from tasks.core.errors import ReviewflowError, redacted
from tasks.core.files import atomic_write, write_json
from tasks.core.markdown import markdown_table
from tasks.core.provenance import git_commit
from tasks.core.servers import free_port, start_mlflow_server, start_prefect_server
from tasks.report import replace_between_markers
from tasks.tracking import Tracking, connect
from tasks.tracking.recorded import read_json_artifact
from tasks.tracking.runs import finish_run, log_artifacts, log_metrics, start_parent_run

log = logging.getLogger("reviewflow")

BENCHMARKS = ("train_rnn", "train_birnn", "train_bigru", "train_bilstm", "efficiency", "parallel", "overhead", "score", "score_startup", "score_memory",
              "score_dask")
NEEDS_MODELS = {"score", "score_startup", "score_memory", "score_dask"}  # they score with champions a training registered
EXPERIMENT = "reviewflow-bench"
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Sizes:
    reviews_per_split: int  # the bench's data: this many real reviews in train and in test
    train_rows: int  # reviews per timed epoch, length 100
    bilstm_rows: int  # reviews per timed epoch, length 2494
    repeats: int  # measurements of each side, alternated (training throughput, efficiency, scoring, start-up)
    flow_repeats: int  # of the minutes-long ones: overhead and parallel
    epochs: int  # of the whole trainings in overhead and parallel
    score_rows: int
    notebook_score_rows: int  # one predict() per review and model is slow: fewer reviews, the same measure (reviews/s)
    startup_repeats: int  # whole `reviewflow score` commands, each side
    memory_rows: int
    dask_rows: int  # score_dask's file
    dask_repeats: int  # whole commands each way


# About 40 minutes on 2 cores, and as long again for each command over a 1,000,000-review file (score_memory, score_dask).
FULL = Sizes(10_000, 4096, 1024, 3, 3, 1, 10_000, 100, 3, 1_000_000, 1_000_000, 1)
# Under 15 minutes on 2 cores: 5,000 reviews for the flow-level ones (train and test), fewer repeats.
QUICK = Sizes(2_500, 768, 512, 3, 1, 1, 2_000, 20, 2, 20_000, 20_000, 2)


def bench(
    quick: bool = False, only: list[str] | None = None, json_path: Path | None = None, write: Path | None = None, sizes: Sizes | None = None,
    threads: int | None = None, section: str = "bench", models: list[str] | None = None,
) -> dict[str, Any]:
    """Run the benchmarks (`only` some of them) at the full or quick sizes (or `sizes`); returns what --json writes.
    `threads` (default: every core) is what each side of the training benchmarks may use; `models` (default: the
    four recurrent champions), what the scoring benchmarks score with."""
    names = list(only or BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ReviewflowError(f"unknown benchmark {', '.join(unknown)} (choose from {', '.join(BENCHMARKS)})")
    architectures = tuple(models or scoring_bench.MODELS)
    strangers = [m for m in architectures if m not in RECURRENT]
    if strangers:
        raise ReviewflowError(f"--models names {', '.join(strangers)}, not a recurrent model (choose from {', '.join(RECURRENT)})")
    names = [n for n in BENCHMARKS if n in names]
    sizes = sizes or (QUICK if quick else FULL)
    existing = _target(write, section)  # a bad --write fails before minutes of work
    recorder = connect(_tracking_settings())
    started, measured = time.perf_counter(), git_commit(mark_dirty=True)  # the code measured, whatever the checkout holds by the end
    work = Path(tempfile.mkdtemp(prefix="reviewflow-bench-"))
    try:
        figures = run_benchmarks(names, sizes, work, threads, architectures)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "quick": quick,
        "threads": threads,
        "models": list(architectures),
        "commit": measured,
        "machine": machine(),
        "seconds": time.perf_counter() - started,
        "sizes": sizes.__dict__,
        "benchmarks": {name: figure.as_dict() for name, figure in figures.items()},
    }
    markdown = bench_markdown([result])
    result["mlflow_run_id"] = record(recorder, result, markdown)
    if json_path:
        write_json(json_path, result)
    _write_table(write, existing, markdown, section)
    print(markdown)
    return result


def _tracking_settings() -> TrackingConfig:
    return tracking_settings(TrackingConfig()).model_copy(update={"experiment": EXPERIMENT})


def _target(write: Path | None, section: str) -> str | None:
    """The text of the file the table goes into, checked for its markers; None without one."""
    existing = _read(write) if write else None
    if existing is not None:
        replace_between_markers(existing, section, "", str(write))
    return existing


def _write_table(write: Path | None, existing: str | None, markdown: str, section: str) -> None:
    if existing is not None:
        with atomic_write(write) as file:
            file.write(replace_between_markers(existing, section, markdown, str(write)).encode("utf-8"))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReviewflowError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def run_benchmarks(names: list[str], sizes: Sizes, work: Path, threads: int | None = None,
                   architectures: tuple[str, ...] = scoring_bench.MODELS) -> dict[str, Figure]:
    from tasks.stages.ingest import ingest_reviews
    from tasks.stages.prepare import prepare_sequences

    # The project's download and Parquet cache: the dataset is read from its archive once, not per bench.
    data = {"reviews_per_split": sizes.reviews_per_split, "cache_dir": str(DataConfig().cache_dir.resolve())}
    config = Config.model_validate({"data": data, "train": {"epochs": sizes.epochs}})
    table = ingest_reviews(config.data)
    cores = os.cpu_count() or 1
    threads = threads or cores
    figures: dict[str, Figure] = {}
    step = _progress(names)
    if any(n.startswith("train_") or n in ("efficiency", "parallel") for n in names):
        seq_lens = sorted(set(config.train.seq_len[a] for a in RECURRENT))
        prepared = prepare_sequences(table.path, config.prepare, seq_lens, config.train.seed, work / "prepared")
    for architecture in RECURRENT:
        if f"train_{architecture}" in names:
            rows = sizes.bilstm_rows if architecture == "bilstm" else sizes.train_rows
            step(f"train_{architecture}")
            figures[f"train_{architecture}"] = training_bench.train_throughput(
                architecture, config.train.seq_len[architecture], prepared, config.train, rows, sizes.repeats, threads
            )
    if "efficiency" in names:
        step("efficiency")
        figures["efficiency"] = training_bench.efficiency(prepared, config.train, sizes.bilstm_rows, sizes.repeats, threads)
    if "parallel" in names:
        step("parallel")
        figures["parallel"] = training_bench.parallel(prepared, config.train, list(RECURRENT), cores, sizes.flow_repeats)
    if "overhead" in names or NEEDS_MODELS & set(names):
        figures.update(_with_servers(names, sizes, work, data, table.path, architectures))
    return figures


def _with_servers(names: list[str], sizes: Sizes, work: Path, data: dict[str, Any], table_path: Path,
                  architectures: tuple[str, ...]) -> dict[str, Figure]:
    """The benchmarks that need a tracking server and a Prefect server (started here, stopped after)."""
    figures: dict[str, Figure] = {}
    mlflow_server = start_mlflow_server(work / "mlflow", HOST, free_port())
    prefect = None
    try:
        prefect = start_prefect_server(work / "prefect", HOST, free_port())
        env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url, "PREFECT_API_URL": f"{prefect.url}/api",
               "PREFECT_HOME": str(work / "prefect-client")}
        # Small test-sized data must still pass the flow's validation of row counts.
        overrides = {**{f"data.{k}": str(v) for k, v in data.items()}, "validation.min_rows_per_split": str(min(1000, sizes.reviews_per_split))}
        step = _progress(names)
        if "overhead" in names:
            step("overhead")
            figures["overhead"] = overhead_bench.overhead(overrides, sizes.epochs, work, env, mlflow_server.url, sizes.flow_repeats)
        elif NEEDS_MODELS & set(names):
            log.info("bench: training the champions to score with (not measured)")
            overhead_bench.run_timed(overhead_bench.flow_command(overrides, sizes.epochs), env, work)
        texts = pd.read_parquet(table_path, columns=["text", "split"]).query("split == 'test'")["text"].tolist()
        if "score" in names:
            step("score")
            figures["score"] = scoring_bench.score(mlflow_server.url, texts, sizes.score_rows, sizes.notebook_score_rows, work, sizes.repeats,
                                                   os.cpu_count() or 1, architectures)
        if "score_startup" in names:
            step("score_startup")
            figures["score_startup"] = scoring_bench.score_startup(texts, work, env, work / ScoringConfig().model_cache, sizes.startup_repeats,
                                                                   architectures)
        if "score_memory" in names:
            step("score_memory")
            figures["score_memory"] = scoring_bench.score_memory(texts, sizes.memory_rows, work, env, architectures)
        if "score_dask" in names:
            step("score_dask")
            figures["score_dask"] = scoring_bench.score_dask(texts, sizes.dask_rows, work, env, sizes.dask_repeats, architectures)
    finally:
        if prefect is not None:
            prefect.stop()
        mlflow_server.stop()
    return figures


def _progress(names: list[str]):
    def step(name: str) -> None:
        log.info("bench %d/%d: %s", names.index(name) + 1, len(names), name)

    return step




def machine() -> dict[str, Any]:
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    packages = ["tensorflow", "tensorflow-cpu", "keras", "mlflow", "prefect", "great-expectations", "pandas", "numpy", "scikit-learn"]
    versions = {}
    for package in packages:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return {"cores": os.cpu_count() or 1, "cpu": cpu, "python": platform.python_version(), "system": platform.platform(), "versions": versions}


def bench_markdown(results: list[dict[str, Any]]) -> str:
    """The table of one bench run, or of several recorded ones (a benchmark measured twice: the later run's figure)."""
    chosen: dict[str, tuple[dict[str, Any], int]] = {}
    for number, result in enumerate(results, 1):
        chosen.update({name: (figure, number) for name, figure in result["benchmarks"].items()})
    several = len(results) > 1
    lines = [_run_line(result, number if several else None) for number, result in enumerate(results, 1)]
    lines += [
        "",
        "Medians of alternated repeats; ratio = ours / baseline.",
    ]
    header = ["benchmark", "ours", "baseline", "ratio", "target", "met", "unit", "samples (ours; baseline)"] + (["run"] if several else [])
    rows = []
    for name in sorted(chosen, key=BENCHMARKS.index):
        f, number = chosen[name]
        samples = "; ".join(", ".join(_number(v) for v in f["samples"].get(side, [])) for side in ("ours", "baseline") if f["samples"].get(side))
        met = {True: "yes", False: "**no**", None: ""}[f["met"]]
        ratio = "" if f["ratio"] is None else f"{f['ratio']:.3g}"
        row = [name, _number(f["ours"]), _number(f["baseline"]), ratio, f["target"] or "reported", met, f["unit"], samples]
        rows.append(row + ([number] if several else []))
    lines.append(markdown_table(header, rows))
    overhead = chosen.get("overhead")
    if overhead:
        startup = overhead[0]["details"]["startup_seconds_median"]
        lines += ["", f"Overhead: the flow's start-up (command start to its first training) took {startup:.1f} s (median)."]
    parallel = chosen.get("parallel")
    if parallel and "fit_seconds" in parallel[0]["details"]:  # runs recorded before it have none
        details = parallel[0]["details"]
        lines += ["", f"Parallel: each training's seconds (median of the samples), {_fit_seconds(details['fit_seconds'], details.get('fit_cpu_seconds'))}."]
    efficiency = chosen.get("efficiency")
    if efficiency:
        lines += ["", f"Efficiency: {efficiency[0]['details']['computed']}."]
    return "\n".join(lines)


def _fit_seconds(fits: dict[str, list[dict[str, float]]], cpu: dict[str, list[dict[str, float]]] | None) -> str:
    """Both ways' training seconds per architecture; with `cpu` (runs recorded before it have none), each one's CPU seconds."""
    def medians(way: str) -> str:
        def median(samples: list[dict[str, float]], architecture: str) -> float:
            return statistics.median(s[architecture] for s in samples)

        return ", ".join(
            f"{a} {median(fits[way], a):.1f}" + (f" (CPU {median(cpu[way], a):.1f})" if cpu else "") for a in fits[way][0]
        )

    return (f"as the flow runs them (a core each, side by side): {medians('as_the_flow_does')}; "
            f"one after another (every core each): {medians('one_after_another')}")


def _run_line(result: dict[str, Any], number: int | None) -> str:
    """What was run, where and when: the command, the commit, the machine, the minutes (and the MLflow run, once recorded)."""
    m = result["machine"]
    names = list(result["benchmarks"])
    only = "" if names == list(BENCHMARKS) else f" --only {','.join(names)}"
    only += f" --threads {result['threads']}" if result.get("threads") else ""
    only += f" --models {','.join(result['models'])}" if result.get("models", list(RECURRENT)) != list(RECURRENT) else ""
    recorded = f", MLflow run `{result['mlflow_run_id']}`" if result.get("mlflow_run_id") else ""
    return (
        f"{f'Run {number}: ' if number else ''}`reviewflow bench{' --quick' if result['quick'] else ''}{only}` "
        f"({'quick' if result['quick'] else 'full'} sizes), commit `{result['commit'][:12]}`, {m['cores']} cores, {m['cpu']}, "
        f"TensorFlow {m['versions'].get('tensorflow') or m['versions'].get('tensorflow-cpu')}; {result['seconds'] / 60:.0f} min{recorded}."
    )


def table(run_ids: list[str], write: Path | None, section: str = "bench") -> str:
    """The table of recorded bench runs (MLflow run ids in `reviewflow-bench`), printed and put into `write`."""
    existing = _target(write, section)
    settings = _tracking_settings()
    store = settings.tracking_uri.removeprefix("sqlite:///")
    if store != settings.tracking_uri and not Path(store).is_file():  # a read makes no new store
        raise ReviewflowError(f"no bench runs are recorded in {settings.tracking_uri} (`reviewflow bench` records them)")
    recorder = connect(settings)
    markdown = bench_markdown([recorded(recorder, run_id) for run_id in run_ids])
    _write_table(write, existing, markdown, section)
    return markdown


def recorded(recorder: Tracking, run_id: str) -> dict[str, Any]:
    """The `bench.json` that bench run `run_id` logged."""
    return {**read_json_artifact(recorder, run_id, "bench.json", "a bench run"), "mlflow_run_id": run_id}


def _number(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def record(recorder: Tracking, result: dict[str, Any], markdown: str) -> str:
    """The bench run in MLflow: each figure a metric, the commit a tag, the ratios as a bar chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tags = {"mlflow.source.git.commit": result["commit"].removesuffix("-dirty"), "commit": result["commit"],
            "quick": str(result["quick"]).lower(), "cpu": result["machine"]["cpu"], "threads": str(result["threads"] or "all")}
    params = {"cores": result["machine"]["cores"], **result["machine"]["versions"], **result["sizes"]}
    run_id = start_parent_run(recorder, f"bench-{'quick' if result['quick'] else 'full'}", params, tags)
    metrics = {f"{name}.{side}": figure[side] for name, figure in result["benchmarks"].items() for side in ("ours", "baseline", "ratio")}
    log_metrics(recorder, run_id, {**{k: v for k, v in metrics.items() if v is not None}, "seconds": result["seconds"]})
    with tempfile.TemporaryDirectory() as folder:
        ratios = {n: f["ratio"] for n, f in result["benchmarks"].items() if f["ratio"] is not None}
        if ratios:
            figure, axis = plt.subplots(figsize=(7, 0.45 * len(ratios) + 1.2))
            axis.barh(list(ratios), list(ratios.values()), color="tab:blue")
            axis.axvline(1, color="grey", linestyle=":")
            axis.set_xscale("log")
            axis.set_xlabel("ours / baseline (log scale)")
            axis.invert_yaxis()
            figure.tight_layout()
            figure.savefig(Path(folder) / "ratios.png", dpi=120)
            plt.close(figure)
        write_json(Path(folder) / "bench.json", result)
        (Path(folder) / "bench.md").write_text(markdown, encoding="utf-8")
        log_artifacts(recorder, run_id, Path(folder))
    finish_run(recorder, run_id, succeeded=True)
    log.info("bench recorded in MLflow: %s, run %s", redacted(recorder.tracking_uri), run_id)
    return run_id
