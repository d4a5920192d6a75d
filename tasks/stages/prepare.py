"""Prepare: fit the vocabulary on training text, encode every split once, store ragged int32."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import task
from sklearn.model_selection import train_test_split

from models.batching import Sequences
from models.text import Vocabulary, truncate
from tasks.core.caching import cache_key, file_digest, reused, section
from tasks.core.config import PrepareConfig
from tasks.core.records import PreparedData

log = logging.getLogger("reviewflow")


def prepare_sequences(table_path: Path, settings: PrepareConfig, seq_lens: list[int], seed: int, folder: Path) -> PreparedData:
    """Hold out validation rows from train, fit the vocabulary on the rest, encode all splits.

    The test split is only encoded here: it is read again only by the final evaluation.
    """
    started = time.perf_counter()
    reviews = pd.read_parquet(table_path, columns=["text", "label", "split", "rating"]).reset_index(drop=True)
    splits = split_for_training(reviews, settings.validation_fraction, seed)
    vocabulary = Vocabulary.fit(splits["train"]["text"], settings.vocab_size)
    folder.mkdir(parents=True, exist_ok=True)
    vocabulary.save(folder / "vocabulary.json")
    for name, frame in splits.items():
        encoded = [vocabulary.encode(text) for text in frame["text"]]
        np.save(folder / f"{name}-labels.npy", frame["label"].to_numpy(dtype=np.int32))
        # What evaluation slices by: each review's length in tokens, and its rating (NaN where it has none).
        np.save(folder / f"{name}-token-lengths.npy", np.array([len(ids) for ids in encoded], dtype=np.int64))
        np.save(folder / f"{name}-ratings.npy", pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
        # Row positions in the table: models that read raw text (the baseline) see the same split.
        np.save(folder / f"{name}-rows.npy", frame.index.to_numpy(dtype=np.int64))
        for seq_len in sorted(set(seq_lens)):
            Sequences.from_list([truncate(ids, seq_len, settings.keep) for ids in encoded]).save(
                folder / f"{name}-{seq_len}.npz"
            )
    rows = {name: len(frame) for name, frame in splits.items()}
    log.info(
        "prepared %s reviews (vocabulary %d ids, lengths %s) in %.1f s",
        rows, vocabulary.size, sorted(set(seq_lens)), time.perf_counter() - started,
    )
    return PreparedData(
        folder=folder,
        table_path=table_path,
        vocab_size=vocabulary.size,
        keep=settings.keep,
        rows=rows,
        fingerprint=prepared_fingerprint(file_digest(table_path), settings, seed),
    )


def split_for_training(reviews: pd.DataFrame, validation_fraction: float, seed: int) -> dict[str, pd.DataFrame]:
    """train / validation (stratified, carved from train) / test."""
    train = reviews[reviews["split"] == "train"]
    fit_part, validation = train_test_split(
        train, test_size=validation_fraction, random_state=seed, stratify=train["label"]
    )
    return {"train": fit_part, "validation": validation, "test": reviews[reviews["split"] == "test"]}


def prepare_key(table_digest: str, settings: PrepareConfig, seq_lens: list[int], seed: int, code: str) -> str:
    return cache_key(
        "prepare", table=table_digest, prepare=section(settings), seq_lens=sorted(set(seq_lens)), seed=seed, code=code
    )


def prepared_fingerprint(table_digest: str, settings: PrepareConfig, seed: int) -> str:
    """What encoded splits are made from. Not the lengths: a length's files depend only on these and
    that length, so a model reused after another length was added still matches."""
    return cache_key("prepared", table=table_digest, prepare=section(settings), seed=seed)


def prepare_inputs_key(inputs: dict[str, Any], code: str) -> str | None:
    table = Path(inputs["table_path"])
    if not table.is_file():
        return None
    return prepare_key(file_digest(table), inputs["settings"], inputs["seq_lens"], inputs["seed"], code)


prepare_task = task(prepare_sequences, name="prepare", **reused(prepare_inputs_key))
