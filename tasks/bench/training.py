"""Training benchmarks: throughput of the pipeline's way vs the notebook's, the four trainings run
as the flow runs them vs one after another, and how close the BiLSTM gets to the machine's peak."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from models.architectures import recurrent_macs_per_token
from models.batching import bucketed_batches
from tasks.bench.sides import Figure, Side, alternate, compared
from tasks.core.config import TrainConfig
from tasks.core.processes import in_own_process, process_slots
from tasks.core.records import PreparedData

WARM_UP_BATCHES = 2  # traced and compiled before any timing, on both sides
PEAK_MATRIX = 2048  # the matrix multiply that stands for the machine's peak: 2048 x 2048 by 2048 x 2048, float32


def sampled_rows(prepared: PreparedData, seq_len: int, settings: TrainConfig, rows: int) -> np.ndarray:
    """About `rows` training rows as a real epoch batches them: whole batches, drawn from the length buckets of the
    whole split. (The first `rows` reviews bucketed among themselves would give a few wide batches: a small
    sample's longest reviews pad its last batch far more than an epoch's buckets do.)"""
    lengths = prepared.load("train", seq_len)[0].lengths
    batches = bucketed_batches(lengths, settings.batch_size, np.random.default_rng(settings.seed))
    return np.sort(np.concatenate(batches[: max(1, -(-rows // settings.batch_size))]))


def pipeline_training(architecture: str, seq_len: int, prepared: PreparedData, settings: TrainConfig, rows: int, threads: int) -> Callable[[], float]:
    """The pipeline's way: int32 ids in length buckets, padding never read, the configured practice; measures reviews/s of one epoch."""
    from models.sentiment import training_dataset
    from tasks.core.processes import limit_threads
    from tasks.stages.train import compiled_model, seeded

    limit_threads(threads)
    settings = settings.for_architecture(architecture)
    seeded(settings)
    sequences, labels = prepared.load("train", seq_len)
    sample = sampled_rows(prepared, seq_len, settings, rows)
    sequences, labels, rows = sequences.take(sample), labels[sample], len(sample)
    model = compiled_model(architecture, prepared.vocab_size, settings, -(-rows // settings.batch_size))
    warm = min(rows, WARM_UP_BATCHES * settings.batch_size)
    model.fit(training_dataset(sequences.take(np.arange(warm)), labels[:warm], settings.batch_size, settings.seed), epochs=1, shuffle=False, verbose=0)

    def measure() -> float:
        started = time.perf_counter()
        model.fit(training_dataset(sequences, labels, settings.batch_size, settings.seed), epochs=1, shuffle=False, verbose=0)
        return rows / (time.perf_counter() - started)

    return measure


def notebook_training(architecture: str, seq_len: int, prepared: PreparedData, settings: TrainConfig, rows: int, threads: int) -> Callable[[], float]:
    """The notebook's way on the same rows: float64 ids padded after the text to `seq_len`, no masking, batch 128; reviews/s of one epoch."""
    from tasks.bench.notebook import BATCH_SIZE, notebook_model, padded_float64
    from tasks.core.processes import limit_threads

    limit_threads(threads)
    sequences, labels = prepared.load("train", seq_len)
    sample = sampled_rows(prepared, seq_len, settings, rows)
    x, y, rows = padded_float64(sequences.take(sample), seq_len), labels[sample].astype(np.float64), len(sample)
    model = notebook_model(architecture, prepared.vocab_size)
    warm = min(rows, WARM_UP_BATCHES * BATCH_SIZE)
    model.fit(x[:warm], y[:warm], batch_size=BATCH_SIZE, epochs=1, verbose=0)

    def measure() -> float:
        started = time.perf_counter()
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=1, verbose=0)
        return rows / (time.perf_counter() - started)

    return measure


def train_throughput(architecture: str, seq_len: int, prepared: PreparedData, settings: TrainConfig, rows: int, repeats: int, threads: int) -> Figure:
    with Side(f"ours-{architecture}", pipeline_training, architecture, seq_len, prepared, settings, rows, threads) as ours, \
            Side(f"notebook-{architecture}", notebook_training, architecture, seq_len, prepared, settings, rows, threads) as notebook:
        samples = alternate(ours.measure, notebook.measure, repeats)
    target = ">= 8" if architecture == "bilstm" else ">= 1.0"
    return compared(*samples, "reviews/s", "higher", target, reviews=rows, seq_len=seq_len, threads=threads, epochs_timed=1)


def matmul_peak(threads: int) -> Callable[[], float]:
    """GFLOP/s of a large float32 matrix multiply: what this machine's cores can do at best."""
    import tensorflow as tf

    from tasks.core.processes import limit_threads

    limit_threads(threads)
    a = tf.random.uniform((PEAK_MATRIX, PEAK_MATRIX), seed=1)
    multiply = tf.function(lambda m: tf.linalg.matmul(m, m))
    multiply(a).numpy()

    def measure() -> float:
        times = 10
        started = time.perf_counter()
        for _ in range(times):
            result = multiply(a)
        result.numpy()
        return times * 2 * PEAK_MATRIX**3 / (time.perf_counter() - started) / 1e9

    return measure


def bilstm_gflops(prepared: PreparedData, settings: TrainConfig, rows: int, threads: int) -> Callable[[], float]:
    """GFLOP/s the BiLSTM's training achieves: its recurrent multiply-adds over the padded batches it computes, x2
    (a multiply-add is two operations) x3 (the backward pass costs about twice the forward), per second of an epoch."""
    settings = settings.for_architecture("bilstm")
    seq_len = 2494
    reviews_per_second = pipeline_training("bilstm", seq_len, prepared, settings, rows, threads)
    lengths = prepared.load("train", seq_len)[0].lengths[sampled_rows(prepared, seq_len, settings, rows)]
    batches = bucketed_batches(lengths, settings.batch_size, np.random.default_rng(settings.seed))
    padded_tokens = sum(len(b) * int(lengths[b].max()) for b in batches)
    flops_per_review = 2 * 3 * recurrent_macs_per_token("bilstm", settings.embedding_dim, settings.units) * padded_tokens / len(lengths)

    def measure() -> float:
        return reviews_per_second() * flops_per_review / 1e9

    return measure


def efficiency(prepared: PreparedData, settings: TrainConfig, rows: int, repeats: int, threads: int) -> Figure:
    with Side("bilstm-gflops", bilstm_gflops, prepared, settings, rows, threads) as achieved, Side("matmul-peak", matmul_peak, threads) as peak:
        samples = alternate(achieved.measure, peak.measure, repeats)
    how = ("recurrent multiply-adds of the BiLSTM per token (2 directions x 4 gates x 64 x (64 + 64)) x padded tokens of its "
           "length-bucketed batches x 2 (flops per multiply-add) x 3 (forward + backward), per second of a training epoch; "
           f"peak: float32 {PEAK_MATRIX} x {PEAK_MATRIX} matrix multiply, same threads")
    return compared(*samples, "GFLOP/s", "higher", "", reviews=rows, threads=threads, computed=how)


def _train_alone(architecture: str, seq_len: int, prepared: PreparedData, settings: TrainConfig, threads: int) -> tuple[float, float]:
    """Seconds of the training, and the CPU seconds its process (all its threads) spent on it, loading the data and
    building the model included (a fraction of a second)."""
    from tasks.core.processes import limit_threads
    from tasks.stages.train import fit_model, seeded

    limit_threads(threads)
    settings = settings.for_architecture(architecture)
    seeded(settings)
    cpu = time.process_time()
    seconds = fit_model(architecture, seq_len, prepared, settings, [])[2]
    return seconds, time.process_time() - cpu


def parallel(prepared: PreparedData, settings: TrainConfig, architectures: list[str], cores: int, repeats: int) -> Figure:
    """Wall seconds of the trainings as the flow runs them (a process each, `cores` at a time, a core each,
    costliest first) vs one after another, each with every core."""
    from tasks.core.processes import threads_per_training
    from tasks.stages.train import training_cost

    costs = {a: training_cost(a, settings.seq_len[a], prepared, settings.for_architecture(a)) for a in architectures}

    # Each sample's training seconds per architecture, both ways: what the two sides' walls are made of; and the
    # CPU seconds of each: where a training of one thread spent fewer CPU seconds than seconds, it waited (for a
    # core, or for anything else) the rest of the time.
    fits: dict[str, list[dict[str, float]]] = {"as_the_flow_does": [], "one_after_another": []}
    cpu: dict[str, list[dict[str, float]]] = {"as_the_flow_does": [], "one_after_another": []}

    def record(way: str, results: dict[str, tuple[float, float]]) -> None:
        fits[way].append({a: seconds for a, (seconds, _) in results.items()})
        cpu[way].append({a: cpu_seconds for a, (_, cpu_seconds) in results.items()})

    def as_the_flow_does() -> float:
        workers = min(len(architectures), cores)
        started = time.perf_counter()
        with process_slots(workers, expected=len(architectures)), ThreadPoolExecutor(len(architectures)) as pool:
            jobs = {
                a: pool.submit(in_own_process, _train_alone, a, a, settings.seq_len[a], prepared, settings, threads_per_training(workers),
                               cost=costs[a])
                for a in sorted(costs, key=costs.get, reverse=True)
            }
            record("as_the_flow_does", {a: job.result() for a, job in jobs.items()})
        return time.perf_counter() - started

    def one_after_another() -> float:
        started = time.perf_counter()
        record("one_after_another", {a: in_own_process(_train_alone, a, a, settings.seq_len[a], prepared, settings, cores) for a in architectures})
        return time.perf_counter() - started

    samples = alternate(as_the_flow_does, one_after_another, repeats)
    return compared(*samples, "s", "lower", "<= 0.80", architectures=architectures, train_reviews=prepared.rows["train"],
                    epochs=settings.epochs, cores=cores, fit_seconds=fits, fit_cpu_seconds=cpu)
