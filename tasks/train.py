"""Train one architecture: build, fit on length-bucketed batches, save the text-in classifier."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import keras
import tensorflow as tf
from prefect import task

from models.architectures import build_model
from models.sentiment import SentimentClassifier, training_dataset
from models.text import Vocabulary
from tasks.caching import reused, train_inputs_key
from tasks.config import TrainConfig
from tasks.processes import in_own_process
from tasks.records import PreparedData, TrainedModel
from tasks.tracking import Tracking, finish_run, log_metrics, start_child_run

log = logging.getLogger("reviewflow")


def available_cores() -> int:
    return os.cpu_count() or 1


def threads_per_training(concurrent: int) -> int:
    """Cores each concurrent training may use, so together they do not oversubscribe the machine."""
    return max(1, available_cores() // max(1, concurrent))


def limit_threads(threads: int) -> None:
    # Must happen before the first TensorFlow op in the process (each training has its own).
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass


class EpochLog(keras.callbacks.Callback):
    """One log line per epoch, so progress shows in the flow-run logs."""

    def __init__(self, name: str, epochs: int):
        super().__init__()
        self.name, self.epochs = name, epochs
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        shown = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items())
        log.info("%s epoch %d/%d %s (%.0f s)", self.name, epoch + 1, self.epochs, shown, time.perf_counter() - self.started)


class EpochMetrics(keras.callbacks.Callback):
    """Keras's per-epoch metrics (loss, accuracy, val_loss, val_accuracy) logged to one MLflow run."""

    def __init__(self, tracking: Tracking, run_id: str):
        super().__init__()
        self.tracking, self.run_id = tracking, run_id

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        log_metrics(self.tracking, self.run_id, logs or {}, step=epoch)


def train_architecture(
    architecture: str,
    seq_len: int,
    prepared: PreparedData,
    settings: TrainConfig,
    tracking: Tracking,
    threads: int,
    models_dir: Path,
) -> TrainedModel:
    """Fit one architecture on the train split, watching the validation split (never test); the
    classifier is saved in `models_dir/<arch>-<seq_len>`."""
    limit_threads(threads)
    keras.utils.set_random_seed(settings.seed)
    name = f"{architecture}-{seq_len}"
    run_id = start_child_run(
        tracking,
        architecture,
        seq_len,
        {
            "architecture": architecture,
            "seq_len": seq_len,
            "embedding_dim": settings.embedding_dim,
            "units": settings.units,
            "epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
            "vocab_size": prepared.vocab_size,
            "keep": prepared.keep,
            "train_rows": prepared.rows["train"],
            "validation_rows": prepared.rows["validation"],
            "seed": settings.seed,
            "threads": threads,
        },
    )
    try:
        model, history, seconds = _fit(architecture, seq_len, prepared, settings, tracking, run_id, threads)
    except BaseException:
        finish_run(tracking, run_id, succeeded=False)
        raise
    classifier_dir = Path(models_dir) / name
    SentimentClassifier(model, Vocabulary.load(prepared.vocabulary_path), seq_len, prepared.keep).save(classifier_dir)
    return TrainedModel(
        architecture=architecture,
        seq_len=seq_len,
        run_id=run_id,
        classifier_dir=classifier_dir,
        seconds=seconds,
        history={k: [float(v) for v in vs] for k, vs in history.history.items()},
    )


def _fit(architecture: str, seq_len: int, prepared: PreparedData, settings: TrainConfig, tracking: Tracking, run_id: str, threads: int):
    name = f"{architecture}-{seq_len}"
    train_x, train_y = prepared.load("train", seq_len)
    val_x, val_y = prepared.load("validation", seq_len)
    model = build_model(architecture, prepared.vocab_size, settings.embedding_dim, settings.units)
    model.compile(
        optimizer=keras.optimizers.Adam(settings.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    # The process id lets an operator match a death to the kernel's log (dmesg: out of memory).
    log.info("%s: training on %d reviews, %d threads (process %d)", name, len(train_x), threads, os.getpid())
    started = time.perf_counter()
    history = model.fit(
        training_dataset(train_x, train_y, settings.batch_size, settings.seed),
        validation_data=training_dataset(val_x, val_y, settings.batch_size, None),
        epochs=settings.epochs,
        shuffle=False,  # the dataset reshuffles its length buckets every epoch
        callbacks=[EpochLog(name, settings.epochs), EpochMetrics(tracking, run_id)],
        verbose=0,
    )
    seconds = time.perf_counter() - started
    log.info("%s: trained in %.0f s", name, seconds)
    return model, history, seconds


def train_in_own_process(
    architecture: str,
    seq_len: int,
    prepared: PreparedData,
    settings: TrainConfig,
    tracking: Tracking,
    threads: int,
    models_dir: Path,
) -> TrainedModel:
    """`train_architecture` in a process of its own: killed (out of memory), it fails alone and says so."""
    name = f"{architecture}-{seq_len}"
    return in_own_process(train_architecture, name, architecture, seq_len, prepared, settings, tracking, threads, models_dir)


train_task = task(
    train_in_own_process, name="train", task_run_name="train-{architecture}-{seq_len}", **reused(train_inputs_key)
)
