"""Seeded, stratified splits and subsets: the same rows on every run and every machine."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

log = logging.getLogger("reviewflow")

SEED = 42  # fixed, so a generated split or subset is the same on every run and every machine


def stratified_split(labels: pd.Series, test_fraction: float) -> pd.Series:
    """'train'/'test' per row: a seeded draw of `test_fraction` of each label's rows goes to test."""
    rng = np.random.default_rng(SEED)
    split = np.full(len(labels), "train", dtype=object)
    for rows in _strata(labels.reset_index(drop=True)):
        split[rng.permutation(rows)[: round(len(rows) * test_fraction)]] = "test"
    return pd.Series(split, dtype="str")


def stratified_subset(frame: pd.DataFrame, per_split: int) -> pd.DataFrame:
    """A seeded pick of `per_split` rows of each split, as even across labels as the data allows."""
    rng = np.random.default_rng(SEED)
    picked: list[int] = []
    for split, rows in sorted(frame.groupby("split").indices.items()):
        if len(rows) < per_split:
            log.warning("split %r has only %d reviews (asked for %d): keeping all", split, len(rows), per_split)
        strata = [rows[positions] for positions in _strata(frame["label"].iloc[rows])]
        for stratum, quota in zip(strata, _quotas([len(s) for s in strata], per_split)):
            picked += rng.choice(stratum, size=quota, replace=False).tolist()
    return frame.iloc[sorted(picked)].reset_index(drop=True)


def _strata(labels: pd.Series) -> list[np.ndarray]:
    """Row positions per label value (nulls form their own stratum), in label order."""
    codes, _ = pd.factorize(labels, sort=True)
    return [np.flatnonzero(codes == code) for code in np.unique(codes)]


def _quotas(sizes: list[int], total: int) -> list[int]:
    """Share `total` as evenly as possible over groups of these sizes; small groups pass on what they lack."""
    quotas = [0] * len(sizes)
    left = min(total, sum(sizes))
    for rank, group in enumerate(sorted(range(len(sizes)), key=lambda g: sizes[g])):
        quotas[group] = min(sizes[group], left // (len(sizes) - rank))
        left -= quotas[group]
    return quotas
