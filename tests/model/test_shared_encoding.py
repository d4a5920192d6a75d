"""Recurrent models of one vocabulary encode each batch once between them, and score exactly as alone."""

import keras
import numpy as np

from models.architectures import build_model
from models.baseline import BaselineClassifier
from models.sentiment import SentimentClassifier, share_encoding
from models.text import Vocabulary

WORDS = ["good", "bad", "film", "plot", "great", "awful", "actor", "boring", "fun", "story"]


class CountingVocabulary(Vocabulary):
    """A vocabulary that counts the texts it encodes."""

    encoded = 0

    def encode(self, text: str) -> np.ndarray:
        CountingVocabulary.encoded += 1
        return super().encode(text)


def reviews(count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    # Lengths from 1 to 60 words, so the shorter models cut many reviews and the longer few.
    return [" ".join(rng.choice([*WORDS, "unheard"], size=n)) for n in rng.integers(1, 60, size=count)]


def classifiers(vocabulary: Vocabulary) -> list[SentimentClassifier]:
    keras.utils.set_random_seed(3)
    settings = [("rnn", 8, "end"), ("bigru", 20, "end"), ("bilstm", 50, "end"), ("birnn", 12, "start")]
    return [SentimentClassifier(build_model(arch, vocabulary.size, 8, 8), vocabulary, n, keep) for arch, n, keep in settings]


def test_shared_encoding_scores_exactly_as_each_model_alone():
    texts = reviews(150)
    alone = [c.predict(texts, batch_size=32) for c in classifiers(Vocabulary(WORDS))]
    together = classifiers(Vocabulary(WORDS))
    assert share_encoding(together) == 1
    for classifier, expected in zip(together, alone):
        assert np.array_equal(classifier.predict(texts, batch_size=32), expected)
        unshared = SentimentClassifier(classifier.model, Vocabulary(WORDS), classifier.seq_len, classifier.keep)
        assert classifier.encode(texts).tokens.tolist() == unshared.encode(texts).tokens.tolist()


def test_a_batch_is_encoded_once_for_all_models_of_one_vocabulary():
    vocabulary = CountingVocabulary(WORDS)
    group = classifiers(vocabulary)
    share_encoding(group)
    texts = reviews(40, seed=1)
    CountingVocabulary.encoded = 0
    for classifier in group:
        classifier.predict(list(texts))  # a new list of the same texts, as each column's call gets
    assert CountingVocabulary.encoded == len(texts)
    other = reviews(40, seed=2)
    for classifier in group:
        classifier.predict(other)
    assert CountingVocabulary.encoded == 2 * len(texts)


def test_only_models_with_the_same_vocabulary_share_and_the_baseline_is_left_alone():
    first, second = classifiers(Vocabulary(WORDS))[:2], classifiers(Vocabulary(WORDS[:5]))[:1]
    baseline = BaselineClassifier.__new__(BaselineClassifier)
    assert share_encoding([*first, *second, baseline, first[0]]) == 1
    assert first[0].encoding is first[1].encoding is not None
    assert second[0].encoding is None
    assert first[0].encoding.seq_len == 20  # the longest of the group, both keeping the end
