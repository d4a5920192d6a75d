"""The model families by name: the notebook's four recurrent classifiers, the TF-IDF baseline, the ensemble.

Each recurrent model reads right-padded token ids of any length (batches are padded only to
their own longest review); the embedding masks the padding so the recurrent layers skip it.
The baseline (models/baseline.py) reads raw text; the ensemble (models/ensemble.py) combines
the others' probabilities.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import keras

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
# The second half of a run's name where a family has no length (`baseline-tfidf`).
VARIANT = {BASELINE: "tfidf", ENSEMBLE: "stacked"}
# Test accuracy the notebook reached (the bilstm never finished there).
NOTEBOOK_ACCURACY = {"rnn": 0.7674, "birnn": 0.7822, "bigru": 0.7894, "bilstm": None}


def run_name(architecture: str, seq_len: int | None = None, seed: int | None = None) -> str:
    """`<arch>-<seq_len>` (`bilstm-2494`) for a recurrent model, `baseline-tfidf`, `ensemble-stacked`;
    with a seed (one of several in a run), `bilstm-2494-seed43`."""
    name = f"{architecture}-{seq_len}" if architecture in NOTEBOOK_SEQ_LEN else f"{architecture}-{VARIANT[architecture]}"
    return name if seed is None else f"{name}-seed{seed}"


def build_model(
    architecture: str,
    vocab_size: int,
    embedding_dim: int = 64,
    units: int = 64,
    spatial_dropout: float = 0.0,
    dropout: float = 0.0,
    recurrent_dropout: float = 0.0,
) -> keras.Model:
    """An uncompiled classifier whose output is the probability that a review is positive.

    The dropouts are training practice, not architecture: at prediction they do nothing, and
    the layers and their sizes stay the notebook's.
    """
    # Imported here: reading the names above must not cost TensorFlow's four-second import.
    import keras
    from keras import layers

    drop = {"dropout": dropout, "recurrent_dropout": recurrent_dropout}
    recurrent = {
        "rnn": lambda: [layers.SimpleRNN(units, **drop)],
        "birnn": lambda: [
            layers.Bidirectional(layers.SimpleRNN(units, return_sequences=True, **drop)),
            layers.Bidirectional(layers.SimpleRNN(units, **drop)),
        ],
        "bigru": lambda: [
            layers.Bidirectional(layers.GRU(units, return_sequences=True, **drop)),
            layers.Bidirectional(layers.GRU(units, **drop)),
        ],
        "bilstm": lambda: [layers.Bidirectional(layers.LSTM(units, **drop))],
    }
    if architecture not in recurrent:
        raise ValueError(f"unknown architecture {architecture!r} (choose from {', '.join(RECURRENT)})")
    # The recurrent layers are made first: the order layers are made in decides, under a fixed
    # seed, which initial weights each gets, and so the metrics a seed gives.
    middle = recurrent[architecture]()
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    x = layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(tokens)
    if spatial_dropout:
        x = layers.SpatialDropout1D(spatial_dropout, name="spatial_dropout")(x)
    for layer in middle:
        x = layer(x)
    x = layers.Dense(64, activation="relu", name="dense")(x)
    probability = layers.Dense(1, activation="sigmoid", name="positive")(x)
    return keras.Model(tokens, probability, name=architecture)
