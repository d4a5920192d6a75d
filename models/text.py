"""The one tokenizer and vocabulary, shared by training, evaluation and scoring.

Token ids: 0 is padding (masked by the embedding), 1 is an unknown word, 2.. are the
vocabulary's words by descending training frequency.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PAD_ID = 0
UNKNOWN_ID = 1
_LINE_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
_WORD = re.compile(r"[\w']+")


def tokenize(text: str) -> list[str]:
    """Lower-cased words of a review, with HTML line breaks removed."""
    return _WORD.findall(_LINE_BREAK.sub(" ", text).lower())


class Vocabulary:
    """Maps words to token ids; fitted on training text only."""

    def __init__(self, words: list[str]):
        self.words = words
        self._ids = {word: i + 2 for i, word in enumerate(words)}

    @classmethod
    def fit(cls, texts: Iterable[str], size: int) -> Vocabulary:
        """The `size - 2` most frequent words (ties broken alphabetically, so fits repeat)."""
        counts = Counter(word for text in texts for word in tokenize(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        return cls([word for word, _ in ranked[: max(size - 2, 0)]])

    @property
    def size(self) -> int:
        """Number of token ids, padding and unknown included (the embedding's input_dim)."""
        return len(self.words) + 2

    def encode(self, text: str) -> np.ndarray:
        """Token ids of one review as int32; at least one id, so no sequence is fully masked."""
        ids = [self._ids.get(word, UNKNOWN_ID) for word in tokenize(text)]
        return np.asarray(ids or [UNKNOWN_ID], dtype=np.int32)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps({"words": self.words}), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        return cls(json.loads(Path(path).read_text(encoding="utf-8"))["words"])


def truncate(ids: np.ndarray, seq_len: int, keep: str) -> np.ndarray:
    """At most `seq_len` ids, keeping the review's `start` or `end`."""
    if len(ids) <= seq_len:
        return ids
    return ids[:seq_len] if keep == "start" else ids[-seq_len:]
