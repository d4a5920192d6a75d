"""The notebook's way of training and scoring, kept only as the baseline that benchmarks measure against.

Token ids padded after the text into float64 arrays of the full length, no masking (the recurrent
layers read the padding as words), and `predict()` on one review at a time. The layers are the
architecture's (`models.architectures.recurrent_layers`, the same head); only the way data reaches them differs.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np

from models.architectures import classifier_head, recurrent_layers
from models.batching import Sequences
from models.text import Vocabulary

BATCH_SIZE = 128


def padded_float64(sequences: Sequences, seq_len: int) -> np.ndarray:
    """`x[i, :len(s)] = s[:seq_len]`, the notebook's padding, as float64."""
    x = np.zeros((len(sequences), seq_len), dtype=np.float64)
    for i in range(len(sequences)):
        ids = sequences.tokens[sequences.offsets[i] : sequences.offsets[i + 1]][:seq_len]
        x[i, : len(ids)] = ids
    return x


def notebook_model(architecture: str, vocab_size: int, embedding_dim: int = 64, units: int = 64) -> keras.Model:
    """The architecture as the notebook builds and compiles it: plain (Bidirectional) recurrent layers reading every
    position, padding included; Adam, binary cross-entropy, accuracy."""
    from keras import layers

    middle = [layers.Bidirectional(layer) if both else layer for layer, both in recurrent_layers(architecture, units)]
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(tokens)
    for layer in middle:
        x = layer(x)
    model = classifier_head(tokens, x, architecture)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def predict_one_at_a_time(models: Sequence[tuple[keras.Model, int]], vocabulary: Vocabulary, texts: Sequence[str]) -> np.ndarray:
    """P(positive) of each text from each `(model, seq_len)`: one `predict()` call per review and model, as the notebook scores new text."""
    probabilities = np.empty((len(texts), len(models)))
    for i, text in enumerate(texts):
        ids = Sequences.from_list([vocabulary.encode(text)])
        for j, (model, seq_len) in enumerate(models):
            probabilities[i, j] = float(model.predict(padded_float64(ids, seq_len), verbose=0)[0, 0])
    return probabilities
