"""What one task hands to the next: small records of paths, names and figures, never arrays or models.

They live together so that a flow can pass a stage's result on without importing the stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from models.batching import Sequences


class ReviewTable(BaseModel):
    """Where the ingested table is and what it holds."""

    path: Path
    source: str
    digest: str
    rows: int
    rows_per_split: dict[str, int]


class ValidationReport(BaseModel):
    success: bool
    result_path: Path  # the GX validation result as JSON
    docs_path: Path | None  # index.html of the Data Docs site
    failures: list[str]  # one short string per failed expectation, e.g. "train: expect_column_values_to_be_unique(review_id)"


class PreparedData(BaseModel):
    """Where the encoded splits live."""

    folder: Path
    vocab_size: int
    keep: str
    rows: dict[str, int]
    fingerprint: str = ""  # what the splits were made from: table digest, prepare settings, split seed

    @property
    def vocabulary_path(self) -> Path:
        return self.folder / "vocabulary.json"

    def load(self, split: str, seq_len: int) -> tuple[Sequences, np.ndarray]:
        """Token ids of `split` cut to `seq_len`, and their labels."""
        return Sequences.load(self.folder / f"{split}-{seq_len}.npz"), np.load(self.folder / f"{split}-labels.npy")


class TrainedModel(BaseModel):
    architecture: str
    seq_len: int
    run_id: str
    classifier_dir: Path
    seconds: float
    history: dict[str, list[float]]


class Evaluation(BaseModel):
    trained: TrainedModel
    metrics: dict[str, float]


class Registration(BaseModel):
    architecture: str
    name: str
    version: str
    alias: str
    champion_score: float | None


class ModelsInUse(BaseModel):
    """The registered versions a scoring run uses, with a scorer (texts -> P(positive)) for each."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    versions: dict[str, str]
    scorers: dict[str, Any]


class FileOutcome(BaseModel):
    input: Path
    status: Literal["scored", "skipped", "quarantined"]
    output: Path | None  # the scored file (None when quarantined)
    rows: int  # rows in the input (0 when quarantined)
    failed_rows: int  # rows with an `error`
    reason: str | None  # why skipped/quarantined (one line)
    seconds: float


class Failure(BaseModel):
    """A model that did not train or evaluate, and why (one line)."""

    name: str  # `<arch>-<seq_len>`
    reason: str
