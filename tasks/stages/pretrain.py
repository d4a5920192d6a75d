"""Pretrain: word vectors (gensim) learned from the training split's text and the unlabeled reviews.

Never from validation or test text: the training split is `prepare`'s (validation already held
out), and ingest left out every unlabeled review whose text equals a labeled one's. The words are
`models.text.tokenize`'s, as everywhere; the vectors become an embedding matrix aligned to the
run's vocabulary, which the recurrent models start from (`train.embedding_init=pretrained`).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task

from models.architectures import PRETRAIN, pretrain_run_name
from models.text import Vocabulary, tokenize
from models.word_vectors import embedding_matrix, learn_word_vectors, nearest_words, save_vectors
from tasks.core.caching import cache_key, file_digest, reused, section, store_identity
from tasks.core.config import PretrainConfig
from tasks.core.errors import ReviewflowError, one_line
from tasks.core.markdown import markdown_table
from tasks.core.processes import in_own_process
from tasks.core.records import PreparedData, UnlabeledReviews, WordVectors
from tasks.tracking import Tracking
from tasks.tracking.runs import finish_run, log_artifact, log_metrics, log_text, start_child_run

log = logging.getLogger("reviewflow")

PROBE_WORDS = ("great", "awful", "boring", "oscar")  # the nearest-neighbours table's rows


def pretrain_vectors(
    prepared: PreparedData, unlabeled: UnlabeledReviews | None, settings: PretrainConfig, dimensions: int,
    tracking: Tracking, threads: int, folder: Path,
) -> WordVectors:
    """Learn the vectors, write the embedding matrix for the vocabulary to `folder/embedding.npy`, and record
    the child run `pretrain-<method>`: params, corpus size, seconds, coverage, the vectors and their nearest words."""
    name = pretrain_run_name(settings.method)
    train_texts, _ = prepared.texts("train")
    unlabeled_texts = pd.read_parquet(unlabeled.path, columns=["text"])["text"].dropna().tolist() if unlabeled else []
    if not unlabeled_texts:
        log.info("%s: no unlabeled reviews (the dataset has no train/unsup/ and data.unlabeled_source is not set): "
                 "learning from the %d training reviews alone", name, len(train_texts))
    # Interned: the corpus's millions of tokens then share one string per word.
    sentences = [[sys.intern(word) for word in tokenize(text)] for text in train_texts + unlabeled_texts]
    tokens = sum(len(s) for s in sentences)
    params = {
        "architecture": PRETRAIN, "method": settings.method, "embedding_dim": dimensions, **settings.model_dump(exclude={"method"}),
        "tokenizer": "models.text.tokenize", "pretrain_train_reviews": len(train_texts),
        "pretrain_unlabeled_reviews": len(unlabeled_texts), "unlabeled_source": unlabeled.source if unlabeled else "",
        "corpus_reviews": len(sentences), "corpus_tokens": tokens, "threads": threads,
    }
    run_id = start_child_run(tracking, PRETRAIN, None, params, name=name)
    try:
        log.info("%s: learning %d-wide vectors from %d reviews (%s tokens), %d threads", name, dimensions, len(sentences), f"{tokens:,}", threads)
        started = time.perf_counter()
        try:
            vectors = learn_word_vectors(
                sentences, settings.method, dimensions, settings.window, settings.epochs, settings.min_count, settings.seed, threads
            )
        except RuntimeError as exc:  # gensim's refusal of a corpus with no word to learn
            raise ReviewflowError(f"{name}: no word vectors learned ({one_line(exc)}): is pretrain.min_count ({settings.min_count}) "
                                  "above every word's count?") from None
        seconds = time.perf_counter() - started
        words = Vocabulary.load(prepared.vocabulary_path).words
        matrix, coverage = embedding_matrix(words, vectors, settings.seed)
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / "embedding.npy", matrix)
        save_vectors(vectors, words, folder / "vectors.bin")
        log_artifact(tracking, run_id, folder / "vectors.bin")
        log_text(tracking, run_id, neighbours_table(vectors), "neighbours.md")
        log_metrics(tracking, run_id, {"pretrain_seconds": seconds, "vocabulary_coverage": coverage})
    except BaseException:
        finish_run(tracking, run_id, succeeded=False)
        raise
    finish_run(tracking, run_id, succeeded=True)
    log.info("%s: learned in %.0f s; they cover %.1f%% of the vocabulary", name, seconds, 100 * coverage)
    fingerprint = vectors_fingerprint(prepared.fingerprint, _unlabeled_digest(unlabeled), settings, dimensions)
    return WordVectors(
        method=settings.method, run_id=run_id, embedding_path=folder / "embedding.npy", fingerprint=fingerprint, coverage=coverage, seconds=seconds
    )


def neighbours_table(vectors: Any) -> str:
    """Markdown: each probe word's five nearest words, with their cosine similarity."""
    rows = [
        (probe, ", ".join(f"{word} {similarity:.2f}" for word, similarity in near) or "(not in the vectors)")
        for probe, near in nearest_words(vectors, PROBE_WORDS).items()
    ]
    return markdown_table(["word", "nearest words (cosine similarity)"], rows) + "\n"


def pretrain_in_own_process(
    prepared: PreparedData, unlabeled: UnlabeledReviews | None, settings: PretrainConfig, dimensions: int,
    tracking: Tracking, threads: int, folder: Path,
) -> WordVectors:
    """`pretrain_vectors` in a process of its own (its corpus's memory goes with it), holding a slot like a training;
    first in line, since every recurrent training that starts from the vectors waits for it."""
    args = (prepared, unlabeled, settings, dimensions, tracking, threads, folder)
    return in_own_process(pretrain_vectors, pretrain_run_name(settings.method), *args, cost=math.inf)


def _unlabeled_digest(unlabeled: UnlabeledReviews | None) -> str | None:
    return file_digest(unlabeled.path) if unlabeled else None


def vectors_fingerprint(prepared_fingerprint: str, unlabeled_digest: str | None, settings: PretrainConfig, dimensions: int) -> str:
    """What the vectors are learned from: the splits, the kept unlabeled reviews, the settings and the width."""
    return cache_key("vectors", prepared=prepared_fingerprint, unlabeled=unlabeled_digest, pretrain=section(settings), dimensions=dimensions)


def pretrain_key(vectors_fingerprint: str, store: str, code: str) -> str:
    # The store: a reused result names its child run, which must be in the same store.
    return cache_key("pretrain", vectors=vectors_fingerprint, store=store, code=code)


def pretrain_inputs_key(inputs: dict[str, Any], code: str) -> str | None:
    unlabeled, tracking = inputs["unlabeled"], inputs["tracking"]
    if unlabeled and not unlabeled.path.is_file():
        return None
    fingerprint = vectors_fingerprint(inputs["prepared"].fingerprint, _unlabeled_digest(unlabeled), inputs["settings"], inputs["dimensions"])
    return pretrain_key(fingerprint, store_identity(tracking.tracking_uri, tracking.experiment_id), code)


pretrain_task = task(pretrain_in_own_process, name="pretrain", task_run_name="pretrain-{settings.method}", **reused(pretrain_inputs_key))
