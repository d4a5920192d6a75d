"""Train one architecture: build, fit on length-bucketed batches, save the text-in classifier."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from prefect import task

from models.architectures import BASELINE, build_model, recurrent_macs_per_token
from models.batching import batch_count
from models.optimizers import FusedAdam
from models.sentiment import SentimentClassifier, training_dataset
from models.text import Vocabulary
from models.word_vectors import rescaled
from tasks.core.caching import cache_key, reused, store_identity
from tasks.core.config import Config, TrainConfig
from tasks.core.errors import ReviewflowError
from tasks.core.processes import in_own_process, limit_threads
from tasks.core.records import PreparedData, TrainedModel, TrainingJob, WordVectors
from tasks.tracking import Tracking
from tasks.tracking.runs import finish_run, log_metrics, start_child_run

log = logging.getLogger("reviewflow")


# Batches per call into TensorFlow: Keras's Python loop between calls cost a small model about 4% of its
# training here (SimpleRNN, one thread: 25.5 ms a batch at 32 against 26.7 at 1). Only per-batch
# callbacks would notice, and there are none.
STEPS_PER_EXECUTION = 32


def seeded(settings: TrainConfig) -> None:
    """Seed Python, NumPy and TensorFlow; with `deterministic`, also make TensorFlow's ops repeatable."""
    keras.utils.set_random_seed(settings.seed)
    if settings.deterministic:
        tf.config.experimental.enable_op_determinism()


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


def training_jobs(config: Config, prepared: PreparedData) -> list[TrainingJob]:
    """Every training of the run, in the configured order: each recurrent architecture once per seed
    (`seed`, `seed + 1`, ...) with its own settings, the baseline once."""
    jobs = []
    for architecture in config.train.architectures:
        if architecture == BASELINE:
            jobs.append(TrainingJob(architecture=BASELINE))
            continue
        seq_len, settings = config.train.seq_len[architecture], config.train.for_architecture(architecture)
        for seed in range(settings.seed, settings.seed + settings.seeds):
            one_seed = settings.model_copy(update={"seed": seed, "seeds": 1})
            cost = training_cost(architecture, seq_len, prepared, one_seed)
            jobs.append(TrainingJob(architecture=architecture, seq_len=seq_len, settings=one_seed, several_seeds=settings.seeds > 1, cost=cost))
    return jobs


def starts_from_vectors(job: TrainingJob) -> bool:
    """Whether the job's embedding starts from the pretrain stage's word vectors."""
    return job.settings is not None and job.settings.embedding_init == "pretrained"


def train_architecture(
    job: TrainingJob, prepared: PreparedData, vectors: WordVectors | None, tracking: Tracking, threads: int, models_dir: Path
) -> TrainedModel:
    """Fit one architecture with one seed on the train split, watching the validation split (never test), its embedding
    starting from `vectors` when given; the classifier is saved in `models_dir/<job.name>` (`rnn-100`, or `rnn-100-seed43`
    when the run trains several seeds)."""
    architecture, seq_len, settings, name = job.architecture, job.seq_len, job.settings, job.name
    embedding = np.load(vectors.embedding_path) if vectors else None
    if embedding is not None and embedding.shape[1] != settings.embedding_dim:
        raise ReviewflowError(
            f"{name}: its embedding_dim {settings.embedding_dim} differs from the pretrained vectors' {embedding.shape[1]} "
            f"(train.embedding_dim): set train.by_architecture.{architecture}.embedding_init=random"
        )
    if embedding is not None and settings.embedding_scale == "initialiser":
        embedding = rescaled(embedding)
    limit_threads(threads)
    seeded(settings)
    run_id = start_child_run(
        tracking,
        architecture,
        seq_len,
        {
            "architecture": architecture,
            "seq_len": seq_len,
            **settings.model_settings(),
            "vocab_size": prepared.vocab_size,
            "keep": prepared.keep,
            "train_rows": prepared.rows["train"],
            "validation_rows": prepared.rows["validation"],
            "threads": threads,
        },
        {"seed": str(settings.seed)},
        name,
    )
    # The process id lets an operator match a death to the kernel's log (dmesg: out of memory).
    log.info("%s: training on %d reviews, %d threads (process %d)", name, prepared.rows["train"], threads, os.getpid())
    try:
        callbacks = [EpochLog(name, settings.epochs), EpochMetrics(tracking, run_id)]
        model, history, seconds = fit_model(architecture, seq_len, prepared, settings, callbacks, embedding)
        log_metrics(tracking, run_id, {"train_seconds": seconds, "epochs_trained": len(history.epoch)})
        log.info("%s: trained in %.0f s", name, seconds)
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
        seed=settings.seed,
        several_seeds=job.several_seeds,
    )


def fit_model(
    architecture: str, seq_len: int, prepared: PreparedData, settings: TrainConfig, callbacks: list[keras.callbacks.Callback],
    embedding: np.ndarray | None = None,
):
    """Build and fit one architecture with the configured training practice, its embedding starting from `embedding`
    when given (else random); returns the model, its history and seconds."""
    train_x, train_y = prepared.load("train", seq_len)
    val_x, val_y = prepared.load("validation", seq_len)
    model = compiled_model(architecture, prepared.vocab_size, settings, batch_count(len(train_x), settings.batch_size), embedding)
    if settings.restore_best_epoch or settings.patience:
        callbacks = [*callbacks, best_epoch(settings)]
    started = time.perf_counter()
    history = model.fit(
        training_dataset(train_x, train_y, settings.batch_size, settings.seed),
        validation_data=training_dataset(val_x, val_y, settings.batch_size, None),
        epochs=settings.epochs,
        shuffle=False,  # the dataset reshuffles its length buckets every epoch
        callbacks=callbacks,
        verbose=0,
    )
    return model, history, time.perf_counter() - started


def compiled_model(
    architecture: str, vocab_size: int, settings: TrainConfig, steps_per_epoch: int, embedding: np.ndarray | None = None
) -> keras.Model:
    model = build_model(
        architecture, vocab_size, settings.embedding_dim, settings.units,
        settings.spatial_dropout, settings.dropout, settings.recurrent_dropout, embedding,
    )
    model.compile(
        optimizer=optimizer(settings, steps_per_epoch),
        loss=keras.losses.BinaryCrossentropy(),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return model


def optimizer(settings: TrainConfig, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    rate = settings.learning_rate
    if settings.learning_rate_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(rate, decay_steps=settings.epochs * steps_per_epoch)
    return FusedAdam(rate, clipnorm=settings.clipnorm)


def best_epoch(settings: TrainConfig) -> keras.callbacks.EarlyStopping:
    """Keep the epoch with the best validation accuracy (and stop early after `patience` epochs without one)."""
    return keras.callbacks.EarlyStopping(
        monitor="val_accuracy", mode="max", patience=settings.patience or settings.epochs,
        restore_best_weights=settings.restore_best_epoch,
    )


def train_in_own_process(
    job: TrainingJob, prepared: PreparedData, vectors: WordVectors | None, tracking: Tracking, threads: int, models_dir: Path
) -> TrainedModel:
    """`train_architecture` in a process of its own: killed (out of memory), it fails alone and says so."""
    return in_own_process(train_architecture, job.name, job, prepared, vectors, tracking, threads, models_dir, cost=job.cost)


def training_cost(architecture: str, seq_len: int, prepared: PreparedData, settings: TrainConfig) -> float:
    """Multiply-adds of the recurrent layers over the whole training (forward and backward, about three
    forward passes, every epoch): what puts the longest training first when trainings wait for a core."""
    tokens = prepared.load("train", seq_len)[0].tokens.size
    return 3 * settings.epochs * tokens * recurrent_macs_per_token(architecture, settings.embedding_dim, settings.units)


def train_key(prepared_fingerprint: str, job: TrainingJob, store: str, code: str, vectors_fingerprint: str | None = None) -> str:
    """What a trained model is made from: the splits, the architecture, its length, the settings that change
    the model (another architecture's own settings change nothing here), the seed, the word vectors it starts
    from, the store and the code."""
    # `several_seeds` names the child run and the model's folder (`-seed43`), so it is part of what is reused.
    several = {"several_seeds": True} if job.several_seeds else {}
    vectors = {"vectors": vectors_fingerprint} if vectors_fingerprint else {}
    train = job.settings.model_settings(mode="json")
    return cache_key(
        f"train-{job.architecture}-{job.seq_len}", prepared=prepared_fingerprint, train=train, store=store, code=code, **several, **vectors
    )


def train_inputs_key(inputs: dict[str, Any], code: str) -> str | None:
    tracking, vectors = inputs["tracking"], inputs.get("vectors")
    store = store_identity(tracking.tracking_uri, tracking.experiment_id)
    return train_key(inputs["prepared"].fingerprint, inputs["job"], store, code, vectors.fingerprint if vectors else None)


train_task = task(
    train_in_own_process, name="train", task_run_name="train-{job.architecture}-{job.seq_len}-seed{job.settings.seed}", **reused(train_inputs_key)
)
