"""The four recurrent architectures: the notebook's layer specs, padding that is never read, and length bucketing; the names of every family."""

import ast
from pathlib import Path

import keras
import numpy as np
import pytest

from models.architectures import ARCHITECTURES, BASELINE, ENSEMBLE, RECURRENT, SCORING_MODELS, build_model, run_name
from models.batching import Sequences
from models.sentiment import SentimentClassifier
from models.text import Vocabulary
from tasks.bench.notebook import notebook_model

# The notebook's recurrent layers, first to last: (layer, bidirectional, returns sequences)
NOTEBOOK_STACK = {
    "rnn": [("SimpleRNN", False, False)],
    "birnn": [("SimpleRNN", True, True), ("SimpleRNN", True, False)],
    "bigru": [("GRU", True, True), ("GRU", True, False)],
    "bilstm": [("LSTM", True, False)],
}


@pytest.mark.parametrize("architecture", list(RECURRENT))
def test_layer_specs_match_the_notebook(architecture):
    model = build_model(architecture, vocab_size=100)
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    embedding = next(layer for layer in layers if isinstance(layer, keras.layers.Embedding))
    assert embedding.input_dim == 100 and embedding.output_dim == 64
    recurrent = [layer for layer in layers if layer.__class__.__name__ == "PaddedRecurrent"]
    assert [(layer.forward_layer.__class__.__name__, layer.bidirectional, layer.return_sequences) for layer in recurrent] == NOTEBOOK_STACK[architecture]
    assert all(layer.forward_layer.units == 64 for layer in recurrent)
    assert all((layer.backward_layer is not None) == layer.bidirectional for layer in recurrent)
    dense = [layer for layer in layers if isinstance(layer, keras.layers.Dense)]
    assert [(d.units, d.activation.__name__) for d in dense] == [(64, "relu"), (1, "sigmoid")]
    assert layers[-1] is dense[-1]


@pytest.mark.parametrize("architecture", list(RECURRENT))
def test_the_notebooks_way_reads_the_padding_with_plain_keras_layers(architecture):
    model = notebook_model(architecture, vocab_size=100)
    stack = [layer for layer in model.layers if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional))]
    described = [
        ((layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer).__class__.__name__,
         isinstance(layer, keras.layers.Bidirectional),
         (layer.forward_layer if isinstance(layer, keras.layers.Bidirectional) else layer).return_sequences)
        for layer in stack
    ]
    assert described == NOTEBOOK_STACK[architecture]
    assert not next(layer for layer in model.layers if isinstance(layer, keras.layers.Embedding)).mask_zero


@pytest.mark.parametrize("architecture", list(RECURRENT))
def test_the_same_seed_builds_the_same_initial_weights(architecture):
    def weights(seed: int) -> list[np.ndarray]:
        keras.utils.set_random_seed(seed)
        return build_model(architecture, vocab_size=50, embedding_dim=8, units=4).get_weights()

    first, again, other = weights(3), weights(3), weights(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_names_lengths_and_notebook_figures_cover_the_same_architectures():
    from models.architectures import NOTEBOOK_ACCURACY, NOTEBOOK_SEQ_LEN

    assert tuple(NOTEBOOK_SEQ_LEN) == RECURRENT == tuple(NOTEBOOK_ACCURACY)
    assert ARCHITECTURES == (*RECURRENT, BASELINE) and SCORING_MODELS == (*ARCHITECTURES, ENSEMBLE)
    assert [run_name(a, NOTEBOOK_SEQ_LEN.get(a)) for a in SCORING_MODELS] == [
        "rnn-100", "birnn-100", "bigru-100", "bilstm-2494", "baseline-tfidf", "ensemble-stacked",
    ]


def test_unknown_architecture_is_refused():
    with pytest.raises(ValueError, match="unknown architecture 'lstm'"):
        build_model("lstm", 100)


def test_models_package_imports_neither_prefect_nor_mlflow():
    imported = set()
    package = Path(__file__).resolve().parents[2] / "models"
    for path in package.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert "keras" in imported
    assert not imported & {"prefect", "mlflow", "tasks", "flows"}


@pytest.mark.parametrize("architecture", list(RECURRENT))
def test_length_bucketing_predicts_the_same_as_padding_to_2494(architecture):
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    sequences = Sequences.from_list([rng.integers(2, 300, size=n).astype(np.int32) for n in rng.integers(1, 600, size=120)])
    classifier = SentimentClassifier(build_model(architecture, 300, 16, 16), Vocabulary([]), 2494, "end")
    bucketed = classifier.predict_sequences(sequences, batch_size=32)
    full = classifier.model.predict(sequences.pad(np.arange(len(sequences)), 2494), verbose=0).reshape(-1)
    assert np.abs(bucketed - full).max() < 1e-5
    # The comparison can fail: with padding read as a real token the scores move.
    unmasked = sequences.pad(np.arange(len(sequences)), 2494)
    unmasked[unmasked == 0] = 1
    assert np.abs(classifier.model.predict(unmasked, verbose=0).reshape(-1) - full).max() > 1e-3


def test_the_embedding_starts_from_a_given_matrix_and_the_same_seed_draws_the_other_weights_as_without_it():
    matrix = np.random.default_rng(0).normal(0, 0.3, size=(100, 64)).astype("float32")
    keras.utils.set_random_seed(1)
    plain = build_model("birnn", vocab_size=100)
    keras.utils.set_random_seed(1)
    started = build_model("birnn", vocab_size=100, embedding_matrix=matrix)
    np.testing.assert_array_equal(started.get_layer("embedding").get_weights()[0], matrix)
    for before, after in zip(plain.layers, started.layers):
        if before.name != "embedding":
            assert all(np.array_equal(a, b) for a, b in zip(before.get_weights(), after.get_weights())), before.name
