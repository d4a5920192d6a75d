"""The text-in model: a trained classifier with its vocabulary and length settings.

Training, evaluation and scoring all encode text through this one class, so raw text gives
the same score everywhere.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import models.recurrent  # noqa: F401  (registers the layers that saved models name)
from models.batching import Sequences, batch_count, bucketed_batches, training_width
from models.text import PAD_ID, Vocabulary, truncate

PREDICT_BATCH = 256


class SharedEncoding:
    """The token ids of the latest batch of texts, computed once for every classifier of one vocabulary.

    Classifiers trained in one run share their vocabulary; each cuts these ids to its own
    `seq_len` at its own end, so it sees exactly what its own `encode` would give.
    """

    def __init__(self, vocabulary: Vocabulary, seq_len: int | None, keep: str):
        self.vocabulary = vocabulary
        self.seq_len = seq_len  # the longest of its classifiers' (None: uncut, when their ends differ)
        self.keep = keep
        self._lock = threading.Lock()
        self._texts: list[str] | None = None
        self._ids: list[np.ndarray] = []

    def ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        """Token ids of each text, cut to `seq_len`; the same batch again is not encoded again."""
        texts = list(texts)
        with self._lock:
            # Lists of the same string objects compare by identity first: cheap next to encoding.
            if texts != self._texts:
                ids = [self.vocabulary.encode(t) for t in texts]
                self._ids = ids if self.seq_len is None else [truncate(i, self.seq_len, self.keep) for i in ids]
                self._texts = texts
            return self._ids


def share_encoding(classifiers: Iterable[object]) -> int:
    """Let the SentimentClassifiers among `classifiers` that have the same vocabulary encode each batch once.

    Returns how many shared encodings were set up (one per distinct vocabulary used twice or more).
    """
    groups: list[list[SentimentClassifier]] = []
    for classifier in classifiers:
        if not isinstance(classifier, SentimentClassifier):
            continue  # the TF-IDF baseline reads raw text
        group = next((g for g in groups if g[0].vocabulary.words == classifier.vocabulary.words), None)
        if group is None:
            groups.append([classifier])
        elif all(classifier is not member for member in group):
            group.append(classifier)
    shared = [g for g in groups if len(g) > 1]
    for group in shared:
        same_end = len({c.keep for c in group}) == 1
        encoding = SharedEncoding(group[0].vocabulary, max(c.seq_len for c in group) if same_end else None, group[0].keep)
        for classifier in group:
            classifier.encoding = encoding
    return len(shared)


class SentimentClassifier:
    """Scores raw reviews: the probability that each is positive."""

    def __init__(self, model: keras.Model, vocabulary: Vocabulary, seq_len: int, keep: str):
        self.model = model
        self.vocabulary = vocabulary
        self.seq_len = seq_len
        self.keep = keep
        self.encoding: SharedEncoding | None = None  # set by share_encoding
        # One trace for every batch shape: bucketed batches differ in width.
        self._forward = tf.function(
            lambda tokens: model(tokens, training=False),
            input_signature=[tf.TensorSpec((None, None), tf.int32)],
            reduce_retracing=True,
        )

    def encode(self, texts: Sequence[str]) -> Sequences:
        """Token ids of each text, cut to `seq_len` at the configured end."""
        ids = self.encoding.ids(texts) if self.encoding is not None else (self.vocabulary.encode(t) for t in texts)
        return Sequences.from_list([truncate(i, self.seq_len, self.keep) for i in ids])

    def predict_sequences(self, sequences: Sequences, batch_size: int = PREDICT_BATCH) -> np.ndarray:
        """Probabilities in input order; batches are bucketed by length for speed."""
        probabilities = np.empty(len(sequences), dtype=np.float64)
        for rows in bucketed_batches(sequences.lengths, batch_size):
            batch = self._forward(sequences.pad(rows))
            probabilities[rows] = batch.numpy().astype(np.float64).reshape(-1)
        return probabilities

    def predict(self, texts: Sequence[str], batch_size: int = PREDICT_BATCH) -> np.ndarray:
        return self.predict_sequences(self.encode(texts), batch_size)

    def save(self, folder: Path) -> None:
        """Write `model.keras`, `vocabulary.json` and `settings.json` into `folder`."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / "model.keras")
        self.vocabulary.save(folder / "vocabulary.json")
        settings = {"seq_len": self.seq_len, "keep": self.keep}
        (folder / "settings.json").write_text(json.dumps(settings), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> SentimentClassifier:
        folder = Path(folder)
        settings = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
        model = keras.models.load_model(folder / "model.keras", compile=False)
        return cls(model, Vocabulary.load(folder / "vocabulary.json"), settings["seq_len"], settings["keep"])


def training_dataset(sequences: Sequences, labels: np.ndarray, batch_size: int, seed: int | None) -> tf.data.Dataset:
    """Padded `(x, y)` batches; with a seed, reshuffled on every pass (epoch). Batches are bucketed by
    length, or all padded to one known width where that is cheaper (`training_width`).

    Python only draws each batch's row numbers; gathering and padding the rows happen in
    TensorFlow (padding in Python cost a quarter of a small model's training time).
    """
    rng = np.random.default_rng(seed) if seed is not None else None
    tokens = tf.RaggedTensor.from_row_splits(sequences.tokens, sequences.offsets, validate=False)
    y = tf.constant(labels.astype(np.float32))
    width = training_width(sequences.lengths, batch_size)

    def batch_rows():
        yield from bucketed_batches(sequences.lengths, batch_size, rng)

    def padded(rows: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        x = tf.gather(tokens, rows).to_tensor(default_value=PAD_ID, shape=None if width is None else [None, width])
        return x, tf.gather(y, rows)

    rows = tf.data.Dataset.from_generator(batch_rows, output_signature=tf.TensorSpec((None,), tf.int64))
    # A known length gives Keras's progress its total and ends each epoch without a warning.
    rows = rows.apply(tf.data.experimental.assert_cardinality(batch_count(len(sequences), batch_size)))
    # Nothing here is tuned (a fixed prefetch, a sequential map), yet tf.data's autotuning, on by default,
    # left a training beside another busy process asleep with a core idle: the BiLSTM's epoch took 41 s
    # instead of 24 s for the same 24 s of CPU (BENCHMARKS.md, "what the BiLSTM waited for").
    options = tf.data.Options()
    options.autotune.enabled = False
    return rows.map(padded).prefetch(2).with_options(options)
