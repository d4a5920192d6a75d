"""What one task hands to the next: small records of paths, names and figures, never arrays or models.

They live together so that a flow can pass a stage's result on without importing the stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from models.architectures import run_name
from models.batching import Sequences
from tasks.core.config import TrainConfig


class UnlabeledReviews(BaseModel):
    """The unlabeled reviews kept for pretraining (a Parquet table of review_id and text), and where they came from."""

    path: Path
    source: str  # the dataset source (its train/unsup/) or data.unlabeled_source
    rows: int
    dropped: int  # left out because their text equals a labeled review's (a test review's would leak into pretraining)


class ReviewTable(BaseModel):
    """Where the ingested table is and what it holds."""

    path: Path
    source: str
    digest: str
    rows: int
    rows_per_split: dict[str, int]
    unlabeled: UnlabeledReviews | None = None  # none: neither the source nor data.unlabeled_source has any


class ValidationReport(BaseModel):
    success: bool
    result_path: Path  # the GX validation result as JSON
    docs_path: Path | None  # index.html of the Data Docs site
    failures: list[str]  # one short string per failed expectation, e.g. "train: expect_column_values_to_be_unique(review_id)"
    unlabeled_rows: int = 0  # unlabeled reviews validated (those kept for pretraining)
    unlabeled_dropped: int = 0  # unlabeled reviews left out at ingest: their text equals a labeled review's


class PreparedData(BaseModel):
    """Where the encoded splits live, and which rows of the table each split holds."""

    folder: Path
    table_path: Path
    vocab_size: int
    keep: str
    rows: dict[str, int]
    fingerprint: str = ""  # what the splits were made from: table digest, prepare settings, split seed

    @property
    def vocabulary_path(self) -> Path:
        return self.folder / "vocabulary.json"

    def load(self, split: str, seq_len: int) -> tuple[Sequences, np.ndarray]:
        """Token ids of `split` cut to `seq_len`, and their labels."""
        return Sequences.load(self.folder / f"{split}-{seq_len}.npz"), self.labels(split)

    def labels(self, split: str) -> np.ndarray:
        return np.load(self.folder / f"{split}-labels.npy")

    def token_lengths(self, split: str) -> np.ndarray:
        """Each review's length in tokens, before any cut to a model's length."""
        return np.load(self.folder / f"{split}-token-lengths.npy")

    def ratings(self, split: str) -> np.ndarray:
        """Each review's rating (1-10), NaN where the data has none."""
        return np.load(self.folder / f"{split}-ratings.npy")

    def texts(self, split: str) -> tuple[list[str], np.ndarray]:
        """The raw review texts of `split` (the same rows, in the same order, as its token ids), and their labels."""
        import pandas as pd

        texts = pd.read_parquet(self.table_path, columns=["text"])["text"]
        rows = np.load(self.folder / f"{split}-rows.npy")
        return texts.iloc[rows].tolist(), self.labels(split)


class WordVectors(BaseModel):
    """The pretrain stage's word vectors, as the embedding matrix they give the run's vocabulary."""

    method: str  # word2vec or fasttext
    run_id: str  # the `pretrain-<method>` child run
    embedding_path: Path  # .npy, float32, one row per token id of the vocabulary (models.word_vectors.embedding_matrix)
    fingerprint: str  # what they were learned from: the splits, the unlabeled reviews, the settings
    coverage: float  # share of the vocabulary's words with a learned vector
    seconds: float


class TrainingJob(BaseModel):
    """One training of a run, built once by the flow (tasks.stages.train.training_jobs): an architecture at its
    length with one seed's settings, its run name, and its cost (the costliest waiting training starts first)."""

    architecture: str
    seq_len: int | None = None  # none for the baseline, which reads raw text
    settings: TrainConfig | None = None  # the architecture's own, with one seed; none for the baseline (it has `config.baseline`)
    several_seeds: bool = False  # the run trains several seeds: the run name says which
    cost: float = 0.0  # multiply-adds of the recurrent layers over the whole training

    @property
    def seed(self) -> int | None:
        return self.settings.seed if self.settings else None

    @property
    def name(self) -> str:
        """`rnn-100`, `rnn-100-seed43` (one of several seeds), `baseline-tfidf`: its child run's and its model folder's name."""
        return run_name(self.architecture, self.seq_len, self.seed if self.several_seeds else None)


class TrainedModel(BaseModel):
    architecture: str
    seq_len: int | None  # None: the baseline and the ensemble read raw text or probabilities
    run_id: str
    classifier_dir: Path
    seconds: float
    history: dict[str, list[float]]
    seed: int | None = None  # the training seed (None: the baseline and the ensemble, which have none)
    several_seeds: bool = False  # one of several seeds of its architecture in the run: its name says which

    @property
    def name(self) -> str:
        """The child run's name: `bilstm-2494` (`bilstm-2494-seed43` among several seeds), `baseline-tfidf`, `ensemble-stacked`."""
        return run_name(self.architecture, self.seq_len, self.seed if self.several_seeds else None)


class Evaluation(BaseModel):
    trained: TrainedModel
    metrics: dict[str, float]
    # P(positive) on the validation and test splits, with their labels (`Predictions`): what the ensemble is fitted on.
    predictions_path: Path | None = None


class Predictions(BaseModel):
    """One model's probabilities on the validation and test splits, kept beside its folder as .npz."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    validation: np.ndarray
    validation_labels: np.ndarray
    test: np.ndarray
    test_labels: np.ndarray

    def save(self, path: Path) -> None:
        np.savez(path, **{k: getattr(self, k) for k in type(self).model_fields})

    @classmethod
    def load(cls, path: Path) -> Predictions:
        with np.load(path, allow_pickle=False) as stored:
            return cls(**{k: stored[k] for k in cls.model_fields})


class Registration(BaseModel):
    """A registered version, the alias the gate gave it and why (its `gate.*` tags)."""

    architecture: str
    name: str
    version: str
    alias: str
    verdict: str = ""  # promote, hold or reject
    champion: str = ""  # the champion it was compared with (`reviewflow-rnn/3`), none when there was none
    gate: dict[str, str] = {}


class ModelsInUse(BaseModel):
    """The registered versions a scoring run uses, with a scorer (texts -> P(positive)) for each."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    versions: dict[str, str]  # every model used, the ensemble too: `rnn` -> `reviewflow-rnn/3`
    scorers: dict[str, Any]  # one per prob_<arch> column
    ensemble: Any = None  # tasks.scoring.rows.EnsembleScorer when prob_ensemble is the registered ensemble's
    references: dict[str, Any] = {}  # tasks.scoring.drift.Reference per model of `versions`: what its drift is measured against


class FileOutcome(BaseModel):
    input: Path
    status: Literal["scored", "skipped", "quarantined"]
    output: Path | None  # the scored file (None when quarantined)
    rows: int  # rows in the input (0 when quarantined)
    failed_rows: int  # rows with an `error`
    reason: str | None  # why skipped/quarantined (one line)
    seconds: float
    drift: dict[str, dict] | None = None  # a scored file's manifest `drift` block: per model, its figures against its reference
    drifted: bool | None = None  # a figure over scoring.drift_threshold (None: not scored now)
    shadow: dict[str, Any] | None = None  # the manifest's `shadow` block (alias, versions, agreement), when a shadow alias scored too


class Failure(BaseModel):
    """A model that did not train or evaluate, and why (one line)."""

    name: str  # `<arch>-<seq_len>`
    reason: str


class ModelRun(BaseModel):
    """One child run of a recorded training: one model trained with one seed, and its test figures."""

    run_id: str
    architecture: str
    seed: int | None  # None: trained once (the baseline, the ensemble) or recorded before seeds
    seq_len: int | None  # None: not a recurrent model
    metrics: dict[str, float]


class TrainingRun(BaseModel):
    """A recorded training as MLflow holds it: its parent run's settings and its models' child runs."""

    run_id: str
    name: str
    status: str
    start_time_ms: int
    profile: str
    commit: str  # "" when the training was not started from a git checkout
    params: dict[str, str]  # the whole config, flattened (`train.epochs`), as MLflow stores it: text
    models: list[ModelRun]
