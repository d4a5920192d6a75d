"""The notebook's four recurrent classifiers, chosen by name from one registry.

Each reads right-padded token ids of any length (batches are padded only to their own
longest review); the embedding masks the padding so the recurrent layers skip it.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers


def _classifier(name: str, vocab_size: int, embedding_dim: int, recurrent: list[layers.Layer]) -> keras.Model:
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(tokens)
    for layer in recurrent:
        x = layer(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    probability = layers.Dense(1, activation="sigmoid", name="positive")(x)
    return keras.Model(tokens, probability, name=name)


def rnn(vocab_size: int, embedding_dim: int = 64, units: int = 64) -> keras.Model:
    return _classifier("rnn", vocab_size, embedding_dim, [layers.SimpleRNN(units)])


def birnn(vocab_size: int, embedding_dim: int = 64, units: int = 64) -> keras.Model:
    return _classifier(
        "birnn",
        vocab_size,
        embedding_dim,
        [
            layers.Bidirectional(layers.SimpleRNN(units, return_sequences=True)),
            layers.Bidirectional(layers.SimpleRNN(units)),
        ],
    )


def bigru(vocab_size: int, embedding_dim: int = 64, units: int = 64) -> keras.Model:
    return _classifier(
        "bigru",
        vocab_size,
        embedding_dim,
        [
            layers.Bidirectional(layers.GRU(units, return_sequences=True)),
            layers.Bidirectional(layers.GRU(units)),
        ],
    )


def bilstm(vocab_size: int, embedding_dim: int = 64, units: int = 64) -> keras.Model:
    return _classifier("bilstm", vocab_size, embedding_dim, [layers.Bidirectional(layers.LSTM(units))])


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {
    "rnn": rnn,
    "birnn": birnn,
    "bigru": bigru,
    "bilstm": bilstm,
}


def build_model(architecture: str, vocab_size: int, embedding_dim: int = 64, units: int = 64) -> keras.Model:
    """An uncompiled classifier whose output is the probability that a review is positive."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r} (choose from {', '.join(ARCHITECTURES)})")
    return ARCHITECTURES[architecture](vocab_size, embedding_dim, units)
