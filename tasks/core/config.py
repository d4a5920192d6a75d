"""The one typed configuration of reviewflow.

Profiles are data: `PROFILES[name]` holds the values a profile changes from the field
defaults (which are the notebook's experiment, trained with the practice chosen for accuracy:
see the README's "Training practice"). `Config(profile="smoke")` and
`Config.model_validate({"profile": "smoke"})` both give the smoke profile, so a flow run
started from the Prefect API with just `{"profile": "smoke"}` is complete.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.architectures import ARCHITECTURES, NOTEBOOK_SEQ_LEN, RECURRENT, SCORING_MODELS
from models.baseline import BaselineSettings
from tasks.core.errors import ReviewflowError, redacted
from tasks.core.provenance import PROJECT_ROOT

OFFICIAL_DATASET_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
Profile = Literal["smoke", "default"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Marker:
    """A mark on a setting (`Annotated[type, MARK]`) that caching, reports and runs' params read."""

    def __init__(self, meaning: str):
        self.meaning = meaning

    def __repr__(self) -> str:
        return self.meaning


# Where things are, how fast or on which machines work runs: never what is computed (a dataset's
# content is known by its digest, not by where it lies). Left out of cache keys, of a model's params
# and of what reports call a changed setting.
WHERE_OR_HOW = Marker("where or how, not what")
# Which trainings a run makes (architectures, their lengths, the number of seeds): each training's
# own key and params name its share (its architecture, length and seed).
WHICH_TRAININGS = Marker("which trainings a run makes")


def marked(section: type[BaseModel], *markers: Marker) -> set[str]:
    """The names of the fields of `section` that carry any of `markers`."""
    return {name for name, field in section.model_fields.items() if any(m in field.metadata for m in markers)}


def where_or_how_keys() -> tuple[str, ...]:
    """The dotted keys of every WHERE_OR_HOW setting as prefixes: `data.cache_dir`, a whole section as `servers.`."""
    keys = []
    for name, field in Config.model_fields.items():
        if WHERE_OR_HOW in field.metadata:
            section = field.annotation
            keys.append(f"{name}." if isinstance(section, type) and issubclass(section, BaseModel) else name)
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            keys += [f"{name}.{key}" for key in sorted(marked(field.annotation, WHERE_OR_HOW))]
    return tuple(keys)


def _names(value: Any) -> Any:
    """`rnn` or `rnn,bigru` (from --set or a form) as a list of names."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value


Architectures = Annotated[list[Literal[ARCHITECTURES]], BeforeValidator(_names)]
ScoringModels = Annotated[list[Literal[SCORING_MODELS]], BeforeValidator(_names)]
_BASELINE = BaselineSettings()


class DataConfig(Section):
    source: Annotated[str, WHERE_OR_HOW] = Field(
        default_factory=lambda: os.environ.get("REVIEWFLOW_DATA") or OFFICIAL_DATASET_URL,
        description="http(s) URL, .tar.gz, extracted aclImdb/ folder, or a CSV/Parquet/JSONL table",
    )
    cache_dir: Annotated[Path, WHERE_OR_HOW] = Field(
        Path("data/cache"), description="downloads, the Parquet cache, and the results later runs reuse"
    )
    reviews_per_split: int | None = Field(
        None, ge=2, description="keep this many reviews per split (stratified); none keeps all"
    )
    test_fraction: float = Field(
        0.5, gt=0, lt=1, description="share of a table without a split column used for test"
    )
    max_archive_bytes: int = Field(
        4 * 2**30, ge=1, description="refuse a tar archive that expands past this (a decompression-bomb guard)"
    )
    unlabeled_source: Annotated[str | None, WHERE_OR_HOW] = Field(
        default_factory=lambda: os.environ.get("REVIEWFLOW_UNLABELED") or None,
        description="unlabeled reviews for pretraining when the source has no train/unsup/ of its own: "
        "a .tar.gz or folder in the aclImdb layout, or a table with a text column; none: only the source's",
    )
    unlabeled_limit: int | None = Field(
        None, ge=1, description="keep a seeded sample of this many unlabeled reviews; none keeps all"
    )


class ValidationConfig(Section):
    min_rows_per_split: int = Field(1000, ge=1)
    max_rows_per_split: int = Field(1_000_000, ge=1)
    min_positive_fraction: float = Field(0.4, ge=0, le=1)
    max_positive_fraction: float = Field(0.6, ge=0, le=1)
    min_text_chars: int = Field(10, ge=1)
    max_text_chars: int = Field(100_000, ge=1)


class PrepareConfig(Section):
    vocab_size: int = Field(
        30_000, ge=3, description="token ids including padding (0) and unknown (1); rarer words are unknown"
    )
    keep: Literal["start", "end"] = Field(
        "end", description="which end of a review longer than seq_len is kept"
    )
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of train held out for validation during training"
    )


# Practice that differs for one architecture, each measured with 3 seeds (README's ablation table):
# the BiGRU gained from more spatial dropout, the BiLSTM from a lower learning rate and input dropout.
BY_ARCHITECTURE: dict[str, dict[str, Any]] = {
    "bigru": {"spatial_dropout": 0.4},
    "bilstm": {"learning_rate": 1e-3, "dropout": 0.25},
}
RESOLVED = "one architecture's settings"  # validation context of `TrainConfig.for_architecture`


class TrainConfig(Section):
    architectures: Annotated[Architectures, WHICH_TRAININGS] = Field(
        default_factory=lambda: list(ARCHITECTURES), min_length=1
    )
    seq_len: Annotated[dict[str, int], WHICH_TRAININGS] = Field(
        default_factory=lambda: dict(NOTEBOOK_SEQ_LEN),
        description="longest sequence fed to each architecture",
    )
    embedding_dim: int = Field(64, ge=1, description="width of the embedding, and of the pretrained word vectors")
    embedding_init: Literal["pretrained", "random"] = Field(
        "pretrained",
        description="start the embedding from the pretrain stage's word vectors (trained on as the other weights), "
        "or from Keras's random initialiser",
    )
    embedding_scale: Literal["learned", "initialiser"] = Field(
        "initialiser",
        description="with pretrained: the vectors at their own scale, or rescaled (directions kept) to the spread of "
        "Keras's initialiser (uniform in +-0.05)",
    )
    units: int = Field(64, ge=1)
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(128, ge=1)
    learning_rate: float = Field(2e-3, gt=0, description="Adam's (initial) learning rate")
    learning_rate_schedule: Literal["constant", "cosine"] = Field(
        "cosine", description="constant, or cosine decay to zero over all epochs' batches"
    )
    clipnorm: float | None = Field(1.0, gt=0, description="clip each gradient to this L2 norm; none: no clipping")
    spatial_dropout: float = Field(
        0.2, ge=0, lt=1, description="SpatialDropout1D on the embedding: share of embedding channels dropped"
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the recurrent layers' inputs")
    recurrent_dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the recurrent layers' state")
    restore_best_epoch: bool = Field(
        True, description="end with the weights of the epoch with the best validation accuracy (never test)"
    )
    patience: int | None = Field(
        None, ge=1, description="stop after this many epochs without a better validation accuracy; none: all epochs"
    )
    seed: int = Field(42, description="the first seed; seeds are seed, seed + 1, ...")
    seeds: Annotated[int, WHICH_TRAININGS] = Field(
        1, ge=1, description="train each recurrent architecture with this many seeds, each its own child run"
    )
    deterministic: bool = Field(
        True, description="deterministic TensorFlow ops: the same seed and data give the same metrics"
    )
    by_architecture: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {a: dict(v) for a, v in BY_ARCHITECTURE.items()},
        description="settings that differ for one architecture, which win over the ones above: {bilstm: {learning_rate: 0.001}}",
    )
    task_runner: Annotated[Literal["process", "dask"], WHERE_OR_HOW] = "process"
    dask_address: Annotated[str | None, WHERE_OR_HOW] = Field(None, description="an existing Dask scheduler; none starts a local cluster")
    max_workers: Annotated[int | None, WHERE_OR_HOW] = Field(
        None, ge=1, description="concurrent trainings; none: as many as cores allow"
    )

    @field_validator("seq_len", mode="before")
    @classmethod
    def _fill_missing_lengths(cls, value: Any) -> Any:
        # `--set train.seq_len.bilstm=400` changes one length and keeps the others.
        return {**NOTEBOOK_SEQ_LEN, **value} if isinstance(value, dict) else value

    @field_validator("by_architecture", mode="before")
    @classmethod
    def _fill_missing_practice(cls, value: Any) -> Any:
        # `--set train.by_architecture.bilstm.dropout=0.1` changes one setting and keeps the others.
        if not isinstance(value, dict):
            return value
        merged = {a: dict(v) for a, v in BY_ARCHITECTURE.items()}
        for architecture, settings in value.items():
            merged[architecture] = {**merged.get(architecture, {}), **settings} if isinstance(settings, dict) else settings
        return merged

    @model_validator(mode="after")
    def _check_lengths_and_practice(self, info: ValidationInfo) -> TrainConfig:
        missing = [a for a in self.architectures if a in RECURRENT and a not in self.seq_len]
        if missing:
            raise ValueError(f"train.seq_len has no length for {', '.join(missing)}")
        bad = {a: n for a, n in self.seq_len.items() if a not in RECURRENT or n < 1}
        if bad:
            raise ValueError(f"train.seq_len has bad entries {bad}")
        if (info.context or {}).get(RESOLVED):
            return self  # one architecture's settings, made by `for_architecture` from checked ones
        for architecture, settings in self.by_architecture.items():
            where = f"train.by_architecture.{architecture}"
            if architecture not in RECURRENT:
                raise ValueError(f"{where}: unknown architecture (choose from {', '.join(RECURRENT)})")
            refused = sorted(set(settings) - set(TrainConfig.model_fields) | set(settings) & NOT_BY_ARCHITECTURE)
            if refused:
                raise ValueError(f"{where}: {', '.join(refused)}: no setting that may differ by architecture")
            try:
                self.for_architecture(architecture)
            except ValidationError as exc:
                raise ValueError(f"{where}: {describe_validation_error(exc)}") from None
        return self

    def model_settings(self, mode: Literal["python", "json"] = "python") -> dict[str, Any]:
        """The settings that change a trained model: what its run's params and its cache key hold."""
        return self.model_dump(mode=mode, exclude=marked(TrainConfig, WHERE_OR_HOW, WHICH_TRAININGS) | {"by_architecture"})

    def for_architecture(self, architecture: str) -> TrainConfig:
        """The settings one architecture trains with: these, with its `by_architecture` entries on top."""
        own = self.by_architecture.get(architecture)
        if not own:
            return self
        resolved = TrainConfig.model_validate({**self.model_dump(exclude={"by_architecture"}), **own}, context={RESOLVED: True})
        return resolved.model_copy(update={"by_architecture": {}})


# What `by_architecture` may not set: how and which trainings run, and the seed (each training has its own).
NOT_BY_ARCHITECTURE = marked(TrainConfig, WHERE_OR_HOW, WHICH_TRAININGS) | {"seed", "by_architecture"}


class PretrainConfig(Section):
    """Word vectors (gensim) learned from the training split's text and the unlabeled reviews; their width is train.embedding_dim."""

    method: Literal["word2vec", "fasttext"] = Field("word2vec", description="gensim's Word2Vec, or FastText (subword n-grams)")
    window: int = Field(5, ge=1, description="words either side of a word that count as its context")
    epochs: int = Field(5, ge=1, description="passes over the corpus")
    min_count: int = Field(2, ge=1, description="learn vectors only for words seen this often")
    seed: int = Field(42, description="seeds gensim's initial vectors and sampling, and the rows of words it does not cover")


class BaselineConfig(Section):
    """The `baseline` model: TF-IDF over word n-grams, then logistic regression (scikit-learn)."""

    ngram_range: tuple[int, int] = Field(_BASELINE.ngram_range, description="shortest and longest word n-gram, e.g. [1, 3]")
    min_df: int = Field(_BASELINE.min_df, ge=1, description="keep n-grams found in at least this many training reviews")
    max_features: int | None = Field(
        _BASELINE.max_features, ge=1, description="keep only the most frequent n-grams; none keeps all"
    )
    sublinear_tf: bool = Field(_BASELINE.sublinear_tf, description="1 + log(count) instead of the raw count")
    nb_weighting: bool = Field(
        _BASELINE.nb_weighting, description="scale each n-gram by its naive-Bayes log-count ratio first (NBSVM)"
    )
    C: float = Field(_BASELINE.C, gt=0, description="inverse regularisation strength of the logistic regression")
    max_iter: int = Field(_BASELINE.max_iter, ge=1, description="iterations of the logistic regression solver")

    @field_validator("ngram_range")
    @classmethod
    def _ordered_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not 1 <= value[0] <= value[1]:
            raise ValueError(f"expected 1 <= shortest <= longest, got {list(value)}")
        return value

    def settings(self) -> BaselineSettings:
        return BaselineSettings(**self.model_dump())


class EnsembleConfig(Section):
    """The `ensemble`: a logistic-regression stacker over the trained models, fitted on the validation split."""

    enabled: bool = Field(True, description="fit, evaluate and register the ensemble (needs two trained models or more)")
    C: float = Field(1.0, gt=0, description="inverse regularisation strength of the stacker")


class EvaluationConfig(Section):
    """Checks of every trained model beyond its test metrics (not of the ensemble: it has no text-in model to check)."""

    behaviour: bool = Field(
        True, description="run the behavioural suite (models/behaviour.py): minimum functionality, invariance, direction"
    )
    robustness: bool = Field(
        True, description="accuracy on altered copies of the test reviews (models/robustness.py): each copy is scored again"
    )
    robustness_reviews: int | None = Field(
        5000, ge=2,
        description="alter a stratified, seeded sample of this many test reviews (each alteration is scored again); "
        "none alters them all",
    )


class ScoringConfig(Section):
    """Batch scoring: which registered models score the files of which folders."""

    inbox: Path = Field(Path("data/inbox"), description="review files dropped here are scored by the scheduled flow")
    output_dir: Path = Field(Path("data/outbox"), description="scored files and manifests; quarantine/ for unreadable files")
    archive_dir: Path = Field(Path("data/archive"), description="inbox files move here once their output is complete")
    alias: str = Field("champion", min_length=1, description="registry alias of the model versions to use")
    architectures: ScoringModels = Field(
        default_factory=lambda: list(SCORING_MODELS),
        min_length=1,
        description="models to score with; `ensemble` makes prob_ensemble the registered ensemble's "
        "(the mean of the others when none holds the alias)",
    )
    chunk_size: int = Field(2000, ge=1, description="rows read, scored and written at a time")
    model_cache: Path = Field(
        Path("data/cache/models"),
        description="registered model versions downloaded once and loaded from here by later runs "
        "(a version's files never change; which version holds the alias is asked every run)",
    )
    max_file_bytes: int = Field(
        2 * 2**30, ge=1, description="a larger input (decompressed, for gzip) is quarantined; the others go on"
    )
    max_review_chars: int = Field(
        1_000_000, ge=1, description="a longer review keeps its row with an error and no probabilities"
    )
    interval_minutes: float = Field(15, gt=0, description="how often the `score` deployment scans the inbox")
    drift_threshold: float = Field(
        0.2, gt=0,
        description="a file whose token-length or probability histogram has a PSI over this against a model's reference "
        "profile is flagged as drifted (and still scored); 0.2 is the usual rule of thumb for a significant shift",
    )
    drift_min_rows: int = Field(
        200, ge=1,
        description="a file with fewer scored rows has its drift figures recorded but is never flagged: over fewer rows a PSI "
        "is mostly sampling noise (held-out reviews: a 40-row file goes over 0.2 nine times in ten, a 200-row file not once in 300)",
    )
    dask_address: str | None = Field(
        None, min_length=1,
        description="score each file's chunks on the workers of this Dask scheduler (tcp://host:8786), which load the run's "
        "versions through their own model cache; the output's bytes are the same as in this process. None: in this process",
    )
    shadow_alias: str | None = Field(
        None, min_length=1,
        description="also score with the versions holding this alias (e.g. challenger) into shadow_prob_<model> columns, "
        "and record how often they agree; none: no shadow",
    )


class RegistryConfig(Section):
    """The champion gate: the current champion is scored again beside each candidate, on the same test reviews."""

    gate_margin: float = Field(
        0.002, ge=0, lt=1,
        description="promote a candidate whose test accuracy beats the champion's by at least this; within it, hold "
        "(challenger); worse by this or more, reject",
    )
    slice_margin: float = Field(
        0.02, ge=0, lt=1, description="reject a candidate below the champion by more than this on any slice (length, rating)"
    )


class ServersConfig(Section):
    """Where `reviewflow up` starts the MLflow and Prefect servers, on which stores, and who runs the flows."""

    host: str = "127.0.0.1"
    mlflow_port: int = Field(5000, ge=1, le=65535)
    prefect_port: int = Field(4200, ge=1, le=65535)
    mlflow_backend_store_uri: str = Field(
        "", description="a postgresql://user@host:port/db URL for MLflow's runs and registry; empty: the embedded SQLite "
        "store (mlflow.yaml). The password comes from PGPASSWORD or ~/.pgpass, never from here",
    )
    prefect_database_url: str = Field(
        "", description="a postgresql://user@host:port/db URL for the Prefect server's database; empty: SQLite in "
        "data/prefect. The password comes from PGPASSWORD or ~/.pgpass",
    )
    work_pool: str = Field(
        "", description="a Prefect work pool (type process): `reviewflow up` and `reviewflow deploy` put the deployments "
        "on it and `reviewflow worker` runs them, on any machine; empty: `reviewflow up` serves them itself",
    )
    heartbeat_s: int = Field(
        30, ge=30, description="how often a flow run started by a worker reports that it is alive; one silent for four "
        "heartbeats (its worker or machine gone) is marked Crashed",
    )

    @field_validator("mlflow_backend_store_uri", "prefect_database_url")
    @classmethod
    def _postgresql_without_password(cls, url: str) -> str:
        if not url:
            return url
        scheme, sep, rest = url.partition("://")
        if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
            raise ValueError("expected a postgresql://user@host:port/database URL, or empty for SQLite")
        if ":" in rest.partition("@")[0] and "@" in rest:
            raise ValueError("the URL holds a password: put it in PGPASSWORD or ~/.pgpass, where no run, log or form shows it")
        return url


class TrackingConfig(Section):
    """Blank fields are filled from MLFLOW_TRACKING_URI and mlflow.yaml (see `tracking_settings`)."""

    experiment: str | None = None
    tracking_uri: str | None = None
    artifact_location: str | None = None
    registered_model_prefix: str | None = None


class Config(Section):
    """Everything one run of reviewflow needs; the training flow's parameter."""

    profile: Annotated[Profile, WHERE_OR_HOW] = "default"  # a run's params hold every value the profile set
    output_dir: Annotated[Path, WHERE_OR_HOW] = Field(Path("data/runs"), description="per-run outputs (validation reports, models)")
    reuse: Annotated[bool, WHERE_OR_HOW] = Field(
        True,
        description="reuse completed work of earlier runs (same data, settings and code) kept under "
        "data.cache_dir/results; false computes everything again",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    prepare: PrepareConfig = Field(default_factory=PrepareConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)
    baseline: BaselineConfig = Field(default_factory=BaselineConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    # Decides which version is promoted, never what a model computes (nor any kept result).
    registry: Annotated[RegistryConfig, WHERE_OR_HOW] = Field(default_factory=RegistryConfig)
    scoring: Annotated[ScoringConfig, WHERE_OR_HOW] = Field(default_factory=ScoringConfig)
    servers: Annotated[ServersConfig, WHERE_OR_HOW] = Field(default_factory=ServersConfig)
    tracking: Annotated[TrackingConfig, WHERE_OR_HOW] = Field(default_factory=TrackingConfig)

    @model_validator(mode="before")
    @classmethod
    def _apply_profile(cls, values: Any) -> Any:
        if isinstance(values, dict):
            profile = values.get("profile", "default")
            if profile in PROFILES:
                return _deep_merge(PROFILES[profile], values)
        return values


PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    "smoke": {
        "data": {"reviews_per_split": 2000, "unlabeled_limit": 2000},
        "validation": {"min_rows_per_split": 100},
        "prepare": {"vocab_size": 5000},
        "train": {"epochs": 1},
        "pretrain": {"epochs": 1},
    },
}


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_config(profile: str = "default", overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Build the config from a profile and `key=value` overrides (dotted keys).

    Raises ReviewflowError with one line naming the key for unknown keys and bad values.
    """
    if profile not in PROFILES:
        raise ReviewflowError(f"unknown profile {profile!r} (choose from {', '.join(PROFILES)})")
    values: dict[str, Any] = {"profile": profile}
    for item in overrides:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ReviewflowError(f"--set {item!r}: expected key=value, e.g. train.epochs=2")
        _check_key(key)
        _set_path(values, key.split("."), _parse_value(raw))
    try:
        return Config.model_validate(values)
    except ValidationError as exc:
        raise ReviewflowError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, naming the dotted key."""
    parts = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-")) or "config"
        given = err.get("input")
        shown = f" (got {redacted(given) if isinstance(given, str) else given!r})" if isinstance(given, (str, int, float, bool)) else ""
        parts.append(f"bad value for {key}: {err['msg']}{shown}")
    return "; ".join(parts)


def _check_key(key: str) -> None:
    model: type[BaseModel] | None = Config
    parts = key.split(".")
    for i, part in enumerate(parts):
        if model is None:
            # Inside a dict-valued field (train.seq_len.<arch>): the value check names it.
            return
        field = model.model_fields.get(part)
        if field is None:
            known = ", ".join(model.model_fields)
            where = ".".join(parts[:i]) or "the config"
            raise ReviewflowError(f"unknown setting {key!r}: {where} has {known}")
        annotation = field.annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _set_path(values: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        values = values.setdefault(part, {})
    values[parts[-1]] = value


def _parse_value(raw: str) -> Any:
    """YAML scalars and lists (`3`, `0.5`, `[rnn, bigru]`, `null`)."""
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        return raw
    return value


def flatten(values: dict, prefix: str = "") -> dict[str, object]:
    """Nested config as dotted MLflow params (`train.epochs`)."""
    flat: dict[str, object] = {}
    for key, value in values.items():
        if isinstance(value, dict) and key != "seq_len":
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def tracking_settings(tracking: TrackingConfig, settings_file: Path | None = None) -> TrackingConfig:
    """The tracking section with its blanks filled: MLFLOW_TRACKING_URI, then mlflow.yaml."""
    merged = {**_read_mlflow_yaml(settings_file), **tracking.model_dump(exclude_none=True)}
    env_uri = os.environ.get("MLFLOW_TRACKING_URI")
    if env_uri and tracking.tracking_uri is None:
        merged["tracking_uri"] = env_uri
    try:
        settings = TrackingConfig.model_validate(merged)
    except ValidationError as exc:
        raise ReviewflowError(f"mlflow.yaml: {describe_validation_error(exc)}") from None
    for key in ("experiment", "tracking_uri", "registered_model_prefix"):
        if not getattr(settings, key):
            raise ReviewflowError(f"mlflow.yaml: no value for {key!r} (and no tracking.{key} set)")
    return settings


def _read_mlflow_yaml(path: Path | None) -> dict[str, Any]:
    candidates = [path] if path else [Path.cwd() / "mlflow.yaml", PROJECT_ROOT / "mlflow.yaml"]
    for candidate in candidates:
        if candidate.is_file():
            try:
                loaded = yaml.safe_load(candidate.read_text(encoding="utf-8")) or {}
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise ReviewflowError(f"{candidate}: not valid YAML ({exc.__class__.__name__})") from None
            if not isinstance(loaded, dict):
                raise ReviewflowError(f"{candidate}: expected a mapping of settings")
            return loaded
    return {}
