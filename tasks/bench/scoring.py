"""Scoring benchmarks: batch scoring vs the notebook's one-review `predict()`, start-up with the models
already fetched vs the first time, peak memory over a large file, and a Dask cluster against one process."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import psutil

from models.architectures import RECURRENT
from tasks.bench.sides import Figure, Side, alternate, compared

MODELS = tuple(RECURRENT)  # the champions the scoring benchmarks score with, unless told fewer
MEMORY_POLL_S = 0.1


def write_reviews(texts: list[str], rows: int, path: Path) -> Path:
    """A CSV of `rows` reviews (`review_id`, `text`), the given real texts repeated in order as needed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    step = 100_000
    with path.open("w", encoding="utf-8", newline="") as file:
        for start in range(0, rows, step):
            ids = range(start, min(rows, start + step))
            frame = pd.DataFrame({"review_id": [f"r{i}" for i in ids], "text": [texts[i % len(texts)] for i in ids]})
            frame.to_csv(file, header=start == 0, index=False)
    return path


def pipeline_scoring(tracking_uri: str, reviews: Path, work: Path, threads: int, architectures: tuple[str, ...]) -> Callable[[], float]:
    """The scoring flow's own steps (read a file, score every chunk with the champions, write the scored
    file and its manifest) with the models loaded once, as a served deployment keeps them; reviews/s."""
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    from tasks.core.config import ScoringConfig, TrackingConfig
    from tasks.core.processes import limit_threads
    from tasks.scoring.core import score_file
    from tasks.scoring.registered import load_models

    limit_threads(threads)
    models = load_models(list(architectures), "champion", TrackingConfig())
    rows = sum(1 for _ in reviews.open(encoding="utf-8")) - 1
    chunk_size = ScoringConfig().chunk_size
    runs = iter(range(10**6))

    def measure() -> float:
        output = work / f"out-{next(runs)}"
        started = time.perf_counter()
        outcome = score_file(reviews, output, models.scorers, models.versions, chunk_size)
        seconds = time.perf_counter() - started
        if outcome.status != "scored":
            raise RuntimeError(f"the bench's reviews were not scored: {outcome}")
        shutil.rmtree(output)
        return rows / seconds

    return measure


def notebook_scoring(tracking_uri: str, texts: list[str], threads: int, architectures: tuple[str, ...]) -> Callable[[], float]:
    """The notebook's `predict()`: one review at a time through each of the same champions; reviews/s."""
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    import mlflow

    from tasks.bench.notebook import predict_one_at_a_time
    from tasks.core.config import TrackingConfig, tracking_settings
    from tasks.core.processes import limit_threads
    from tasks.registry.versions import registered_name
    from tasks.tracking import connect

    limit_threads(threads)
    tracking = connect(tracking_settings(TrackingConfig()))
    classifiers = [
        mlflow.pyfunc.load_model(f"models:/{registered_name(tracking, arch)}@champion").unwrap_python_model().classifier
        for arch in architectures
    ]
    models = [(c.model, c.seq_len) for c in classifiers]
    predict_one_at_a_time(models, classifiers[0].vocabulary, texts[:2])  # warm up

    def measure() -> float:
        started = time.perf_counter()
        predict_one_at_a_time(models, classifiers[0].vocabulary, texts)
        return len(texts) / (time.perf_counter() - started)

    return measure


def score(tracking_uri: str, texts: list[str], rows: int, notebook_rows: int, work: Path, repeats: int, threads: int,
          architectures: tuple[str, ...] = MODELS) -> Figure:
    reviews = write_reviews(texts, rows, work / "score" / "reviews.csv")
    with Side("ours-score", pipeline_scoring, tracking_uri, reviews, work / "score", threads, architectures) as ours, \
            Side("notebook-score", notebook_scoring, tracking_uri, texts[:notebook_rows], threads, architectures) as notebook:
        samples = alternate(ours.measure, notebook.measure, repeats)
    return compared(*samples, "reviews/s", "higher", ">= 100", models=",".join(architectures), reviews=rows, notebook_reviews=notebook_rows)


def score_command(reviews: Path, output: Path, architectures: tuple[str, ...], *options: str) -> list[str]:
    return [sys.executable, "-m", "flows.cli", "score", str(reviews), "--output", str(output), "--models", ",".join(architectures), *options]


def run_score_command(reviews: Path, output: Path, env: dict[str, str], cwd: Path, architectures: tuple[str, ...], *options: str) -> tuple[float, float]:
    """Wall seconds of one `reviewflow score` and the peak resident memory (MB) of its process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(score_command(reviews, output, architectures, *options), env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    peak = 0.0
    tree = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            members = [tree, *tree.children(recursive=True)]
            peak = max(peak, sum(m.memory_info().rss for m in members if m.is_running()) / 2**20)
        except psutil.Error:
            pass
        time.sleep(MEMORY_POLL_S)
    seconds = time.perf_counter() - started
    out = process.stdout.read().decode("utf-8", "replace") if process.stdout else ""
    if process.returncode != 0:
        raise RuntimeError(f"reviewflow score failed ({process.returncode}):\n{out[-3000:]}")
    return seconds, peak


def score_startup(texts: list[str], work: Path, env: dict[str, str], model_cache: Path, repeats: int,
                  architectures: tuple[str, ...] = MODELS) -> Figure:
    """Seconds from `reviewflow score`'s start to its first scored row, measured as the whole command over a
    one-review file: with the champions already fetched (a scheduled run) vs the first time (cache emptied)."""
    one = write_reviews(texts, 1, work / "startup" / "one.csv")
    runs = iter(range(10**6))

    def timed() -> float:
        output = work / "startup" / f"out-{next(runs)}"
        seconds = run_score_command(one, output, env, work, architectures)[0]
        shutil.rmtree(output, ignore_errors=True)
        return seconds

    def first_time() -> float:
        shutil.rmtree(model_cache, ignore_errors=True)
        return timed()

    timed()  # fetch the champions once
    samples = alternate(timed, first_time, repeats)
    return compared(*samples, "s", "lower", "", reviews=1, models=",".join(architectures))


def score_memory(texts: list[str], rows: int, work: Path, env: dict[str, str], architectures: tuple[str, ...] = MODELS) -> Figure:
    reviews = write_reviews(texts, rows, work / "memory" / "reviews.csv")
    try:
        seconds, peak = run_score_command(reviews, work / "memory" / "out", env, work, architectures)
    finally:
        shutil.rmtree(work / "memory", ignore_errors=True)
    return Figure("MB", peak, None, None, "lower", "<= 2500", {"ours": [peak]},
                  {"reviews": rows, "models": ",".join(architectures), "seconds": seconds, "reviews_per_second": rows / seconds})


def score_dask(texts: list[str], rows: int, work: Path, env: dict[str, str], repeats: int, architectures: tuple[str, ...] = MODELS,
               workers: int = 2) -> Figure:
    """Reviews/s of `reviewflow score --dask` with a scheduler and `workers` one-thread workers (processes of their own,
    as on other machines) against `reviewflow score` in one process, whole commands alternated; both write the same
    bytes. The workers keep the models between commands, as a standing cluster does: each side is warmed up once."""
    folder = work / "dask"
    reviews, few = write_reviews(texts, rows, folder / "reviews.csv"), write_reviews(texts, 100, folder / "few.csv")
    runs = iter(range(10**6))
    with dask_cluster(folder, env, workers) as address:

        def side(*options: str, file: Path = reviews) -> Callable[[], float]:
            def measure() -> float:
                output = folder / f"out-{next(runs)}"
                seconds = run_score_command(file, output, env, work, architectures, *options)[0]
                shutil.rmtree(output)
                return rows / seconds

            return measure

        side("--dask", address, file=few)(), side(file=few)()  # the models into the workers and the model cache: not measured
        samples = alternate(side("--dask", address), side(), repeats)
    shutil.rmtree(folder, ignore_errors=True)
    return compared(*samples, "reviews/s", "higher", "", reviews=rows, models=",".join(architectures), workers=workers, cores=os.cpu_count() or 1)


@contextlib.contextmanager
def dask_cluster(folder: Path, env: dict[str, str], workers: int) -> Iterator[str]:
    """`dask scheduler` and `workers` `dask worker --nthreads 1` processes on loopback; their address."""
    from distributed import Client

    from tasks.core.servers import free_port

    address = f"tcp://127.0.0.1:{free_port()}"
    dask = str(Path(sys.executable).parent / "dask")
    commands = [[dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1], "--no-dashboard"]]
    commands += [[dask, "worker", address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--host", "127.0.0.1"]] * workers
    folder.mkdir(parents=True, exist_ok=True)
    processes = []
    try:
        for number, command in enumerate(commands):
            with open(folder / f"dask-{number}.log", "wb") as log:
                processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=folder))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(workers, timeout=300)
        yield address
    finally:
        for process in processes:
            process.kill()
            process.wait()
