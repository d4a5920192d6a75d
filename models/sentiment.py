"""The text-in model: a trained classifier with its vocabulary and length settings.

Training, evaluation and scoring all encode text through this one class, so raw text gives
the same score everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from models.batching import Sequences, batch_count, bucketed_batches, iterate_batches
from models.text import Vocabulary, truncate

PREDICT_BATCH = 256


class SentimentClassifier:
    """Scores raw reviews: the probability that each is positive."""

    def __init__(self, model: keras.Model, vocabulary: Vocabulary, seq_len: int, keep: str):
        self.model = model
        self.vocabulary = vocabulary
        self.seq_len = seq_len
        self.keep = keep
        # One trace for every batch shape: bucketed batches differ in width.
        self._forward = tf.function(
            lambda tokens: model(tokens, training=False),
            input_signature=[tf.TensorSpec((None, None), tf.int32)],
            reduce_retracing=True,
        )

    def encode(self, texts: Sequence[str]) -> Sequences:
        """Token ids of each text, cut to `seq_len` at the configured end."""
        return Sequences.from_list([truncate(self.vocabulary.encode(t), self.seq_len, self.keep) for t in texts])

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
    def load(cls, folder: Path) -> "SentimentClassifier":
        folder = Path(folder)
        settings = json.loads((folder / "settings.json").read_text(encoding="utf-8"))
        model = keras.models.load_model(folder / "model.keras", compile=False)
        return cls(model, Vocabulary.load(folder / "vocabulary.json"), settings["seq_len"], settings["keep"])


def training_dataset(sequences: Sequences, labels: np.ndarray, batch_size: int, seed: int | None) -> tf.data.Dataset:
    """Padded `(x, y)` batches; with a seed, reshuffled on every pass (epoch)."""
    rng = np.random.default_rng(seed) if seed is not None else None
    y = labels.astype(np.float32)

    def batches():
        yield from iterate_batches(sequences, y, batch_size, rng)

    signature = (tf.TensorSpec((None, None), tf.int32), tf.TensorSpec((None,), tf.float32))
    dataset = tf.data.Dataset.from_generator(batches, output_signature=signature)
    # A known length gives Keras's progress its total and ends each epoch without a warning.
    return dataset.apply(tf.data.experimental.assert_cardinality(batch_count(len(sequences), batch_size))).prefetch(2)
