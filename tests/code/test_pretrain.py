"""Word vectors: their shape, what they learn on a made-up corpus, and the embedding matrix a vocabulary gets from them."""

from __future__ import annotations

import logging
import random

import numpy as np
import pandas as pd
import pytest

from models.text import PAD_ID, UNKNOWN_ID, Vocabulary
from models.word_vectors import UNCOVERED_SCALE, embedding_matrix, learn_word_vectors, nearest_words, rescaled
from tasks.core.config import PretrainConfig, TrackingConfig
from tasks.core.records import PreparedData, UnlabeledReviews
from tasks.stages.pretrain import neighbours_table, pretrain_vectors
from tasks.tracking import connect
from tasks.tracking.runs import start_parent_run


def made_up_corpus(sentences: int = 600, seed: int = 0) -> list[list[str]]:
    """Cats and dogs share their contexts (pets' words), cars and trucks theirs (road words); the two never meet."""
    rng = random.Random(seed)
    pets, roads = ["fed", "stroked", "walked", "groomed", "petted"], ["drove", "parked", "fuelled", "washed", "repaired"]
    corpus = []
    for _ in range(sentences):
        animal, vehicle = rng.choice(["cat", "dog"]), rng.choice(["car", "truck"])
        corpus.append(["i", rng.choice(pets), "the", animal, "and", rng.choice(pets), "it", "again"])
        corpus.append(["we", rng.choice(roads), "the", vehicle, "then", rng.choice(roads), "it", "twice"])
    return corpus


@pytest.fixture(scope="module")
def vectors():
    return learn_word_vectors(made_up_corpus(), "word2vec", dimensions=16, window=3, epochs=10, min_count=2, seed=1, workers=1)


def test_vectors_have_the_configured_width_and_words_sharing_contexts_are_nearer(vectors) -> None:
    assert vectors.vector_size == 16 and vectors["cat"].shape == (16,)
    assert vectors.similarity("cat", "dog") > vectors.similarity("cat", "car") + 0.2
    assert vectors.similarity("car", "truck") > vectors.similarity("truck", "dog") + 0.2


def test_the_same_corpus_and_seed_give_the_same_vectors(vectors) -> None:
    again = learn_word_vectors(made_up_corpus(), "word2vec", dimensions=16, window=3, epochs=10, min_count=2, seed=1, workers=1)
    assert np.array_equal(again["cat"], vectors["cat"])


def test_fasttext_learns_vectors_of_the_same_width() -> None:
    fast = learn_word_vectors(made_up_corpus(100), "fasttext", dimensions=8, window=3, epochs=2, min_count=2, seed=1, workers=1)
    assert fast["cat"].shape == (8,) and fast["catz"].shape == (8,)  # subwords give unseen words a vector


def test_embedding_matrix_rows_follow_the_vocabulary_ids(vectors) -> None:
    words = ["the", "cat", "car", "unseenword"]
    matrix, coverage = embedding_matrix(words, vectors, seed=3)
    assert matrix.shape == (len(words) + 2, 16) and matrix.dtype == np.float32
    assert not matrix[PAD_ID].any()
    outside = [w for w in vectors.index_to_key if w not in words]
    np.testing.assert_allclose(matrix[UNKNOWN_ID], vectors[outside].mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(matrix[3], vectors["cat"])  # ids 2.. are the words in order
    assert np.abs(matrix[5]).max() <= UNCOVERED_SCALE and matrix[5].any()  # not covered: small random
    assert coverage == 3 / 4
    assert np.array_equal(embedding_matrix(words, vectors, seed=3)[0], matrix)


def test_rescaled_vectors_have_the_initialisers_spread_and_keep_their_directions(vectors) -> None:
    matrix = embedding_matrix(["the", "cat", "car", "dog", "truck"], vectors, seed=3)[0]
    scaled = rescaled(matrix)
    assert np.delete(scaled, PAD_ID, axis=0).std() == pytest.approx(UNCOVERED_SCALE / np.sqrt(3), rel=1e-4)
    assert not scaled[PAD_ID].any() and scaled.dtype == np.float32
    cosine = lambda a, b: a @ b / np.linalg.norm(a) / np.linalg.norm(b)  # noqa: E731
    assert cosine(scaled[3], scaled[5]) == pytest.approx(cosine(matrix[3], matrix[5]), rel=1e-5)
    assert np.linalg.norm(matrix[3]) > 2 * np.linalg.norm(scaled[3])  # learned vectors are wider than Keras's start


def test_nearest_words_table_names_each_probe(vectors) -> None:
    near = nearest_words(vectors, ["cat", "oscar"], count=2)
    assert len(near["cat"]) == 2 and near["oscar"] == []
    table = neighbours_table(vectors)
    assert table.startswith("| word | nearest words (cosine similarity) |") and "| oscar | (not in the vectors) |" in table


@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    """The pretrain stage over a made-up training split, logging to one store (made once: it takes seconds)."""
    folder = tmp_path_factory.mktemp("pretrain")
    texts = [" ".join(sentence) for sentence in made_up_corpus(200)]
    pd.DataFrame({"text": texts}).to_parquet(folder / "reviews.parquet")
    np.save(folder / "train-rows.npy", np.arange(len(texts) // 2))
    np.save(folder / "train-labels.npy", np.zeros(len(texts) // 2, dtype=np.int32))
    vocabulary = Vocabulary.fit(texts, 12)
    vocabulary.save(folder / "vocabulary.json")
    prepared = PreparedData(folder=folder, table_path=folder / "reviews.parquet", vocab_size=vocabulary.size, keep="end", rows={"train": len(texts) // 2})
    pd.DataFrame({"review_id": ["u0", "u1"], "text": texts[-2:]}).to_parquet(folder / "unlabeled.parquet")
    unlabeled = UnlabeledReviews(path=folder / "unlabeled.parquet", source="made-up", rows=2, dropped=0)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    tracking = connect(TrackingConfig(experiment="t", tracking_uri=uri, artifact_location=str(folder / "a"), registered_model_prefix="t-"))
    tracking = tracking.model_copy(update={"parent_run_id": start_parent_run(tracking, "smoke-1", {}, {})})
    settings = PretrainConfig(epochs=2, min_count=1)

    def pretrain(with_unlabeled: bool, name: str):
        vectors = pretrain_vectors(prepared, unlabeled if with_unlabeled else None, settings, 8, tracking, 1, folder / name)
        return vectors, tracking.client().get_run(vectors.run_id)

    return pretrain, prepared


def test_the_stage_gives_an_embedding_of_the_configured_shape_and_its_child_run(stage) -> None:
    pretrain, prepared = stage
    vectors, run = pretrain(True, "with")
    assert np.load(vectors.embedding_path).shape == (prepared.vocab_size, 8) and vectors.coverage == 1.0
    assert run.info.run_name == "pretrain-word2vec" and run.data.tags["architecture"] == "pretrain"
    assert run.data.params["pretrain_unlabeled_reviews"] == "2" and run.data.params["corpus_reviews"] == str(prepared.rows["train"] + 2)
    assert {"pretrain_seconds", "vocabulary_coverage"} <= set(run.data.metrics)


def test_with_no_unlabeled_reviews_it_learns_from_the_training_text_alone_and_says_so(stage, caplog) -> None:
    pretrain, prepared = stage
    with caplog.at_level(logging.INFO, logger="reviewflow"):
        _, run = pretrain(False, "without")
    assert run.data.params["pretrain_unlabeled_reviews"] == "0" and run.data.params["corpus_reviews"] == str(prepared.rows["train"])
    (line,) = [r.getMessage() for r in caplog.records if "no unlabeled reviews" in r.getMessage()]
    assert f"learning from the {prepared.rows['train']} training reviews alone" in line
