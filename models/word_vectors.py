"""Word vectors learned from review text with gensim, and the embedding matrix they give a vocabulary.

Skip-gram with negative sampling (`sg=1, negative=5`): what STACK-NOTES measured on this corpus
(its nearest words to "great" were fantastic, terrific, wonderful).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from models.text import PAD_ID, UNKNOWN_ID

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

Method = Literal["word2vec", "fasttext"]
# Keras's default embedding initialiser (uniform in +-0.05): a word the vectors do not cover starts as it would without them.
UNCOVERED_SCALE = 0.05


def learn_word_vectors(
    sentences: Sequence[list[str]], method: Method, dimensions: int, window: int, epochs: int, min_count: int, seed: int, workers: int
) -> KeyedVectors:
    """Vectors for every word seen `min_count` times or more. With one worker the same input and seed give the same
    vectors; with more, gensim's threads race and the vectors differ a little from run to run."""
    from gensim.models import FastText, Word2Vec

    learner = {"word2vec": Word2Vec, "fasttext": FastText}[method]
    model = learner(
        sentences, vector_size=dimensions, window=window, min_count=min_count, sg=1, negative=5, epochs=epochs, seed=seed, workers=workers
    )
    return model.wv


def embedding_matrix(words: list[str], vectors: KeyedVectors, seed: int) -> tuple[np.ndarray, float]:
    """Rows aligned to a vocabulary's token ids, and the share of its words the vectors cover.

    Row PAD_ID is zeros (padding is never read); row UNKNOWN_ID the mean vector of the words outside the
    vocabulary (what that id stands for); a word's row its vector (FastText builds one from subwords for
    a word it did not see), else small random values as Keras would give it.
    """
    dimensions = vectors.vector_size
    rng = np.random.default_rng(seed)
    matrix = rng.uniform(-UNCOVERED_SCALE, UNCOVERED_SCALE, size=(len(words) + 2, dimensions)).astype(np.float32)
    matrix[PAD_ID] = 0.0
    in_vocabulary = set(words)
    outside = [i for i, word in enumerate(vectors.index_to_key) if word not in in_vocabulary]
    matrix[UNKNOWN_ID] = vectors.vectors[outside].mean(axis=0) if outside else 0.0
    covered = 0
    for token_id, word in enumerate(words, start=2):
        if word in vectors.key_to_index:
            covered += 1
        if word in vectors:  # FastText: a vector from its subwords, whenever it has any
            matrix[token_id] = vectors[word]
    return matrix, covered / max(len(words), 1)


def rescaled(matrix: np.ndarray) -> np.ndarray:
    """The embedding matrix scaled as a whole so its standard deviation is Keras's initialiser's (uniform in
    +-UNCOVERED_SCALE): each row keeps its direction, and the rows keep their relative lengths."""
    target = UNCOVERED_SCALE / np.sqrt(3.0)
    spread = float(np.delete(matrix, PAD_ID, axis=0).std())  # the zeros of padding are no spread
    return matrix if spread == 0.0 else (matrix * (target / spread)).astype(matrix.dtype)


def nearest_words(vectors: KeyedVectors, probes: Sequence[str], count: int = 5) -> dict[str, list[tuple[str, float]]]:
    """Each probe word's `count` nearest words by cosine similarity; an empty list for a word the vectors lack."""
    return {probe: vectors.most_similar(probe, topn=count) if probe in vectors.key_to_index else [] for probe in probes}


def save_vectors(vectors: KeyedVectors, words: list[str], path: Path) -> None:
    """The vectors of the vocabulary's words in word2vec's binary format (`KeyedVectors.load_word2vec_format(path, binary=True)`)."""
    from gensim.models import KeyedVectors

    covered = [word for word in words if word in vectors.key_to_index]
    kept = KeyedVectors(vectors.vector_size)
    kept.add_vectors(covered, vectors[covered] if covered else np.zeros((0, vectors.vector_size), dtype=np.float32))
    kept.save_word2vec_format(str(path), binary=True)
