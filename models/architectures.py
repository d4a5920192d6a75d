"""The model families by name: the notebook's four recurrent classifiers, the TF-IDF baseline, the ensemble.

Each recurrent model reads right-padded token ids of any length (batches are padded only to
their own longest review); its recurrent layers stop at each review's last real token.
The baseline (models/baseline.py) reads raw text; the ensemble (models/ensemble.py) combines
the others' probabilities.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras
    import numpy as np

# The architectures and the sequence length the notebook trains each at: the names that
# config, CLI, MLflow and the registry use all come from here.
NOTEBOOK_SEQ_LEN = {"rnn": 100, "birnn": 100, "bigru": 100, "bilstm": 2494}
RECURRENT = tuple(NOTEBOOK_SEQ_LEN)
BASELINE = "baseline"  # TF-IDF features and logistic regression, on raw text
ENSEMBLE = "ensemble"  # the trained models' probabilities, combined by weights fitted on validation
# What `reviewflow train` trains, each as its own task, child run and registered model.
ARCHITECTURES = (*RECURRENT, BASELINE)
# The models a scoring run can use: every trained family, and the ensemble of them.
SCORING_MODELS = (*ARCHITECTURES, ENSEMBLE)
PRETRAIN = "pretrain"  # the word vectors the recurrent models' embeddings start from: child run `pretrain-<method>`
# The second half of a run's name where a family has no length (`baseline-tfidf`).
VARIANT = {BASELINE: "tfidf", ENSEMBLE: "stacked"}
# Test accuracy the notebook reached (the bilstm never finished there).
NOTEBOOK_ACCURACY = {"rnn": 0.7674, "birnn": 0.7822, "bigru": 0.7894, "bilstm": None}


def run_name(architecture: str, seq_len: int | None = None, seed: int | None = None) -> str:
    """`<arch>-<seq_len>` (`bilstm-2494`) for a recurrent model, `baseline-tfidf`, `ensemble-stacked`;
    with a seed (one of several in a run), `bilstm-2494-seed43`."""
    name = f"{architecture}-{seq_len}" if architecture in NOTEBOOK_SEQ_LEN else f"{architecture}-{VARIANT[architecture]}"
    return name if seed is None else f"{name}-seed{seed}"


def pretrain_run_name(method: str) -> str:
    """`pretrain-word2vec`: the pretrain stage's child run."""
    return f"{PRETRAIN}-{method}"


# Each architecture's recurrent layers, first to last: the cell, and per layer (bidirectional, return_sequences).
RECURRENT_LAYERS = {
    "rnn": ("SimpleRNN", [(False, False)]),
    "birnn": ("SimpleRNN", [(True, True), (True, False)]),
    "bigru": ("GRU", [(True, True), (True, False)]),
    "bilstm": ("LSTM", [(True, False)]),
}


def recurrent_layers(
    architecture: str, units: int = 64, dropout: float = 0.0, recurrent_dropout: float = 0.0
) -> Iterator[tuple[keras.layers.Layer, bool]]:
    """The architecture's recurrent layers, first to last, each with whether it runs both ways.

    Made one at a time as the caller asks: under a fixed seed, the order layers are made in (each
    with its wrapper) decides which initial weights each gets.
    """
    from keras import layers

    if architecture not in RECURRENT_LAYERS:
        raise ValueError(f"unknown architecture {architecture!r} (choose from {', '.join(RECURRENT)})")
    cell, stack = RECURRENT_LAYERS[architecture]
    for both, sequences in stack:
        yield getattr(layers, cell)(units, return_sequences=sequences, dropout=dropout, recurrent_dropout=recurrent_dropout), both


def build_model(
    architecture: str,
    vocab_size: int,
    embedding_dim: int = 64,
    units: int = 64,
    spatial_dropout: float = 0.0,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
    embedding_matrix: np.ndarray | None = None,
) -> keras.Model:
    """An uncompiled classifier whose output is the probability that a review is positive.

    The dropouts are training practice, not architecture: at prediction they do nothing, and
    the layers and their sizes stay the notebook's. The recurrent layers read each row up to its
    last real token (models/recurrent.py), which is what masking the padding gives, cheaper.
    With `embedding_matrix` (vocab_size x embedding_dim, e.g. models.word_vectors.embedding_matrix)
    the embedding starts from it, and is then trained as the other weights.
    """
    # Imported here: reading the names above must not cost TensorFlow's four-second import.
    import keras
    from keras import layers

    from models.recurrent import PaddedRecurrent, TokenCounts

    # The recurrent layers are made first: the order layers are made in decides, under a fixed
    # seed, which initial weights each gets, and so the metrics a seed gives.
    middle = [
        PaddedRecurrent(cell, bidirectional=both, return_sequences=cell.return_sequences, name=f"recurrent_{i}")
        for i, (cell, both) in enumerate(recurrent_layers(architecture, units, dropout, recurrent_dropout))
    ]
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, embedding_dim, name="embedding")(tokens)
    if spatial_dropout:
        x = layers.SpatialDropout1D(spatial_dropout, name="spatial_dropout")(x)
    lengths = TokenCounts(name="lengths")(tokens)
    for layer in middle:
        x = layer([x, lengths])
    model = classifier_head(tokens, x, architecture)
    if embedding_matrix is not None:
        # Set after the random initialisation, not instead of it: the same seed then draws the same
        # recurrent and dense weights with either start, so comparing the two measures the vectors alone.
        model.get_layer("embedding").set_weights([embedding_matrix])
    return model


def classifier_head(tokens: keras.KerasTensor, x: keras.KerasTensor, architecture: str) -> keras.Model:
    """The notebook's head on the recurrent layers' output: `Dense(64, relu)`, then `Dense(1, sigmoid)` = P(positive)."""
    import keras
    from keras import layers

    x = layers.Dense(64, activation="relu", name="dense")(x)
    probability = layers.Dense(1, activation="sigmoid", name="positive")(x)
    return keras.Model(tokens, probability, name=architecture)


def recurrent_macs_per_token(architecture: str, embedding_dim: int = 64, units: int = 64) -> int:
    """Multiply-adds the recurrent layers of `build_model` spend on one token of one review, forward only.

    A cell of `gates` gates over an input of width d does `gates * units * (d + units)`; a
    bidirectional layer runs two, and its output (2 x units) is the next layer's input. The
    embedding lookup and the dense head work once per review, not per token, and are left out.
    """
    def cell(gates: int, width: int) -> int:
        return gates * units * (width + units)

    stacks = {
        "rnn": cell(1, embedding_dim),
        "birnn": 2 * cell(1, embedding_dim) + 2 * cell(1, 2 * units),
        "bigru": 2 * cell(3, embedding_dim) + 2 * cell(3, 2 * units),
        "bilstm": 2 * cell(4, embedding_dim),
    }
    if architecture not in stacks:
        raise ValueError(f"unknown architecture {architecture!r} (choose from {', '.join(RECURRENT)})")
    return stacks[architecture]
