"""Scoring a file's chunks on the workers of a Dask cluster (`scoring.dask_address`).

This process still reads the input, profiles it and writes the output, in order; only the
models' work leaves it. Each chunk goes to a worker with the exact versions this run pinned
(`PinnedModels`, never an alias: it may move mid-run), which every worker loads once, from the
registry through its own model cache, and keeps. At most a few chunks per worker thread are in
flight, so memory stays bounded however large the file; results come back in any order and are
written in the input's. A chunk whose worker dies is scored again on another one.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from models.architectures import ENSEMBLE
from tasks.core.config import ScoringConfig, TrackingConfig, tracking_settings
from tasks.core.errors import ReviewflowError, one_line
from tasks.scoring.rows import EnsembleScorer, Scorer, ShadowScorers, score_chunk, score_shadow

log = logging.getLogger("reviewflow")

CHUNKS_PER_THREAD = 2  # one being scored, one waiting: a worker never idles between chunks
CONNECT_TIMEOUT_S = 10
LOST_WORKER_RETRIES = 3  # times a chunk is sent again after the worker scoring it died

Chunk = tuple[Any, list[Any]]  # (ids or None, texts)
Scored = tuple[Any, list[Any], pd.DataFrame, pd.DataFrame | None]  # (ids, texts, score_chunk's frame, score_shadow's or None)


@dataclass(frozen=True)
class PinnedModels:
    """The exact versions a scoring run uses, as a worker needs them to load the same models: picklable and small."""

    # Every field filled (tracking_settings), local paths absolute; credentials come from the worker's environment.
    # A pydantic model is unhashable: left out of the hash, still compared.
    tracking: TrackingConfig = field(hash=False)
    model_cache: str  # absolute; on another machine, that path on it
    versions: tuple[tuple[str, str], ...]  # (model, `reviewflow-rnn/3`), the ensemble's too, in column order
    shadow_alias: str | None = None
    shadow_versions: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ScoringCluster:
    """Where a file's chunks are scored: the scheduler's address and the pinned versions."""

    address: str
    models: PinnedModels


def local_chunks(
    chunks: Iterator[Chunk], scorers: dict[str, Scorer], ensemble: EnsembleScorer | None, shadow: ShadowScorers | None,
    max_chars: int | None,
) -> Iterator[Scored]:
    """Each chunk scored in this process, in order."""
    for ids, texts in chunks:
        yield ids, texts, *_score(texts, scorers, ensemble, shadow, max_chars)


def cluster_chunks(chunks: Iterator[Chunk], cluster: ScoringCluster, max_chars: int | None) -> Iterator[Scored]:
    """Each chunk scored on the cluster's workers, yielded in input order with at most CHUNKS_PER_THREAD per
    worker thread in flight."""
    from distributed import Client
    from distributed.scheduler import KilledWorker

    client = _connect(Client, cluster.address)
    try:
        threads = _threads(client, cluster.address)
        log.info("scoring on the Dask cluster at %s: %d workers, %d threads", cluster.address, len(client.nthreads()), threads)
        in_flight: collections.deque = collections.deque()

        def submit(ids: Any, texts: list[Any], tries: int = 0) -> tuple:
            return ids, texts, client.submit(score_on_worker, cluster.models, texts, max_chars, pure=False), tries

        for ids, texts in chunks:
            in_flight.append(submit(ids, texts))
            while len(in_flight) >= CHUNKS_PER_THREAD * threads:
                yield from _oldest_scored(in_flight, submit, KilledWorker)
        while in_flight:
            yield from _oldest_scored(in_flight, submit, KilledWorker)
    finally:
        client.close()


def _oldest_scored(in_flight: collections.deque, submit: Callable[..., tuple], killed: type[Exception]) -> Iterator[Scored]:
    """The oldest chunk's scores once a worker returns them. When its worker died, it and every other chunk lost with
    that worker are sent again, each keeping its place in the queue (nothing is yielded this time)."""
    ids, texts, future, tries = in_flight[0]
    try:
        frame, shadow_frame = future.result()
    except killed as exc:
        if tries >= LOST_WORKER_RETRIES:
            raise ReviewflowError(f"a chunk's Dask worker died {tries + 1} times: {one_line(exc)}") from None
        log.warning("a Dask worker died while scoring a chunk: scoring it again (%s)", one_line(exc))
        for place, (lost_ids, lost_texts, lost, lost_tries) in enumerate(in_flight):
            if lost.status == "error" and isinstance(lost.exception(), killed):
                in_flight[place] = submit(lost_ids, lost_texts, lost_tries + 1)
        return
    in_flight.popleft()
    yield ids, texts, frame, shadow_frame


def check_cluster(address: str) -> None:
    """Fail in one line, before any work, when the scheduler at `address` cannot be reached or has no workers."""
    from distributed import Client

    with _connect(Client, address) as client:
        _threads(client, address)


def _threads(client: Any, address: str) -> int:
    threads = sum(client.nthreads().values())
    if not threads:
        raise ReviewflowError(f"the Dask scheduler at {address} has no workers: start `dask worker {address}` on the scoring machines")
    return threads


def _connect(client_type: type, address: str) -> Any:
    try:
        return client_type(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ReviewflowError(f"cannot reach the Dask scheduler at {address}: {one_line(exc)}") from None


def _score(
    texts: list[Any], scorers: dict[str, Scorer], ensemble: EnsembleScorer | None, shadow: ShadowScorers | None, max_chars: int | None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    frame = score_chunk(texts, scorers, max_chars, ensemble)
    return frame, score_shadow(texts, shadow, max_chars) if shadow is not None else None


# On a Dask worker: the pinned versions, loaded the first time a chunk needs them and kept for the next ones.
_loaded: dict[PinnedModels, tuple] = {}
_loading = threading.Lock()


def score_on_worker(models: PinnedModels, texts: list[Any], max_chars: int | None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """One chunk's scores (and shadow scores) on a Dask worker, with the models of `models`."""
    with _loading:  # a worker's threads share one copy of the models
        if models not in _loaded:
            _loaded.clear()  # another run's versions: only one set of models per worker at a time
            _loaded[models] = _load(models)
        scorers, ensemble, shadow = _loaded[models]
    return _score(texts, scorers, ensemble, shadow, max_chars)


def _load(models: PinnedModels) -> tuple[dict[str, Scorer], EnsembleScorer | None, ShadowScorers | None]:
    from distributed import get_worker

    from tasks.core.processes import limit_threads
    from tasks.scoring.registered import load_pinned
    from tasks.tracking import connect

    limit_threads(get_worker().state.nthreads)  # a worker's --nthreads is how many cores it may use
    tracking = connect(models.tracking)
    cache = Path(models.model_cache)
    scorers, ensemble = load_pinned(tracking, dict(models.versions), cache)
    shadow = None
    if models.shadow_alias is not None:
        shadow_scorers, shadow_ensemble = load_pinned(tracking, dict(models.shadow_versions), cache)
        shadow = ShadowScorers(models.shadow_alias, dict(models.shadow_versions), shadow_scorers, shadow_ensemble)
    log.info("Dask worker: scoring with %s", ", ".join(v for _, v in models.versions))
    return scorers, ensemble, shadow


def scoring_cluster(scoring: ScoringConfig, versions: dict[str, str], shadow: ShadowScorers | None, tracking: TrackingConfig) -> ScoringCluster | None:
    """Where the run's chunks are scored (None: in this process), with its versions as the workers load them:
    the ensemble last, as in the output's columns; the tracking settings filled here, SQLite paths absolute."""
    if scoring.dask_address is None:
        return None
    settings = tracking_settings(tracking)
    if settings.tracking_uri.startswith("sqlite:///"):
        settings = settings.model_copy(update={"tracking_uri": "sqlite:///" + str(Path(settings.tracking_uri.removeprefix("sqlite:///")).resolve())})

    def ordered(pinned: dict[str, str]) -> tuple[tuple[str, str], ...]:
        return tuple(sorted(pinned.items(), key=lambda item: item[0] == ENSEMBLE))

    models = PinnedModels(
        settings, str(Path(scoring.model_cache).resolve()), ordered(versions),
        shadow.alias if shadow is not None else None, ordered(shadow.versions) if shadow is not None else (),
    )
    return ScoringCluster(scoring.dask_address, models)
