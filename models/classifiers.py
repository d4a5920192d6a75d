"""Load a saved text-in classifier of any family from its folder.

A baseline folder holds `baseline.json`; a recurrent one `model.keras`. Imports are lazy, so
loading the baseline never imports TensorFlow.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from models import baseline


def load_classifier(folder: Path) -> Any:
    """The BaselineClassifier or SentimentClassifier saved in `folder`; both have `predict(texts)`."""
    folder = Path(folder)
    if (folder / baseline.SETTINGS_FILE).is_file():
        return baseline.BaselineClassifier.load(folder)
    from models.sentiment import SentimentClassifier

    return SentimentClassifier.load(folder)


def is_baseline(folder: Path) -> bool:
    return (Path(folder) / baseline.SETTINGS_FILE).is_file()


def share_encoding(classifiers: Iterable[Any]) -> int:
    """Let the recurrent classifiers of one vocabulary encode each batch once between them
    (models.sentiment.share_encoding); the baseline reads raw text. Returns the shared encodings."""
    recurrent = [c for c in classifiers if not isinstance(c, baseline.BaselineClassifier)]
    if not recurrent:
        return 0
    from models.sentiment import share_encoding as share

    return share(recurrent)
