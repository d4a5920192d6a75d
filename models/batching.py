"""Length bucketing: batches of reviews of similar length, padded only to their own longest.

Sequences are kept ragged (a flat int32 array plus offsets), so a split costs 4 bytes per
token instead of `rows x seq_len` float64 cells.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.text import PAD_ID

# Reviews are sorted by length within pools of this many batches, then the batches are
# shuffled: similar lengths share a batch while the order of batches stays random.
POOL_BATCHES = 50
# Batches of one width let TensorFlow build the training step for a known shape, which trained
# about 15% faster here than batches whose width varies: below this saving, one width it is.
KNOWN_SHAPE_GAIN = 1.15


@dataclass(frozen=True)
class Sequences:
    """Ragged token ids: review i is `tokens[offsets[i]:offsets[i + 1]]`."""

    tokens: np.ndarray
    offsets: np.ndarray

    @classmethod
    def from_list(cls, sequences: Sequence[np.ndarray]) -> Sequences:
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        tokens = np.concatenate(sequences).astype(np.int32) if len(sequences) else np.zeros(0, np.int32)
        return cls(tokens, offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def pad(self, rows: np.ndarray, length: int | None = None) -> np.ndarray:
        """Rows as an int32 matrix padded at the end to `length` (default: their longest)."""
        lengths = self.lengths[rows]
        width = int(lengths.max()) if length is None else length
        batch = np.full((len(rows), width), PAD_ID, dtype=np.int32)
        for i, (row, n) in enumerate(zip(rows, lengths)):
            start = self.offsets[row]
            batch[i, :n] = self.tokens[start : start + n]
        return batch

    def take(self, rows: np.ndarray) -> Sequences:
        """The reviews `rows`, in that order."""
        return Sequences.from_list([self.tokens[self.offsets[r] : self.offsets[r + 1]] for r in rows])

    def save(self, path: Path) -> None:
        np.savez(path, tokens=self.tokens, offsets=self.offsets)

    @classmethod
    def load(cls, path: Path) -> Sequences:
        with np.load(path) as stored:
            return cls(stored["tokens"], stored["offsets"])


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None = None) -> list[np.ndarray]:
    """Row indices grouped into batches of similar length.

    With `rng`, batches are drawn at random (for training); without, every row is taken in
    order of length (for prediction, where the caller restores the original order).
    """
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    shuffled = rng.permutation(len(lengths))
    pool = batch_size * POOL_BATCHES
    batches = []
    for start in range(0, len(shuffled), pool):
        chunk = shuffled[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def training_width(lengths: np.ndarray, batch_size: int) -> int | None:
    """The one width to pad every batch to (the longest row) when that computes at most
    `KNOWN_SHAPE_GAIN` times the tokens of length buckets; None: each batch to its own longest."""
    if not len(lengths):
        return None
    ordered = np.sort(lengths)[::-1]
    bucketed = sum(int(ordered[i]) * len(ordered[i : i + batch_size]) for i in range(0, len(ordered), batch_size))
    widest = int(ordered[0])
    return widest if widest * len(lengths) <= KNOWN_SHAPE_GAIN * bucketed else None


def batch_count(rows: int, batch_size: int) -> int:
    """How many batches `bucketed_batches` makes of `rows` rows (with or without shuffling)."""
    pool = batch_size * POOL_BATCHES
    full_pools, rest = divmod(rows, pool)
    return full_pools * POOL_BATCHES + -(-rest // batch_size)
