"""Measuring two ways of doing the same work side by side: alternated, repeated, compared by their medians.

Each side lives in a process of its own (its own TensorFlow settings and memory), is set up
once, and then measured on request, so setting up and warming up are never timed.
"""

from __future__ import annotations

import multiprocessing
import statistics
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from tasks.core.errors import ReviewflowError


@dataclass
class Figure:
    """One benchmark's result: each side's median, and ours relative to the baseline."""

    unit: str
    ours: float
    baseline: float | None
    ratio: float | None
    better: str  # "higher" or "lower": which way the ratio should go
    target: str  # e.g. ">= 8"
    samples: dict[str, list[float]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def met(self) -> bool | None:
        if not self.target:
            return None
        sign, bound = self.target.split()
        value = self.ratio if self.ratio is not None else self.ours
        return value >= float(bound) if sign == ">=" else value <= float(bound)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met}


def compared(ours: list[float], baseline: list[float], unit: str, better: str, target: str, **details: Any) -> Figure:
    """The medians of both sides and their ratio (ours / baseline)."""
    ours_median, baseline_median = statistics.median(ours), statistics.median(baseline)
    return Figure(unit, ours_median, baseline_median, ours_median / baseline_median, better, target,
                  {"ours": ours, "baseline": baseline}, details)


def alternate(ours: Callable[[], float], baseline: Callable[[], float], repeats: int) -> tuple[list[float], list[float]]:
    """`repeats` measurements of each side, in the order ours, baseline, baseline, ours, ...: a drift in
    the machine's speed then weighs on both sides alike."""
    ours_samples, baseline_samples = [], []
    for i in range(repeats):
        pair = [(ours, ours_samples), (baseline, baseline_samples)]
        for measure, samples in pair if i % 2 == 0 else reversed(pair):
            samples.append(measure())
    return ours_samples, baseline_samples


class Side:
    """`setup(*args)` run in a new process; it returns the function each `measure()` call runs there."""

    def __init__(self, name: str, setup: Callable[..., Callable[[], float]], *args: Any):
        context = multiprocessing.get_context("spawn")
        self.name = name
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(setup, args, child), name=name, daemon=False)
        self._process.start()
        self._reply()  # set up and warmed up

    def measure(self) -> float:
        self._conn.send("measure")
        return self._reply()

    def close(self) -> None:
        if self._process.is_alive():
            self._conn.send("stop")
            self._process.join(timeout=30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()

    def __enter__(self) -> Side:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _reply(self) -> Any:
        try:
            kind, value = self._conn.recv()
        except EOFError:
            raise ReviewflowError(f"bench side {self.name}: its process died (exit code {self._process.exitcode})") from None
        if kind == "error":
            raise RuntimeError(f"bench side {self.name} failed:\n{value}")
        return value


def _serve(setup: Callable[..., Callable[[], float]], args: tuple[Any, ...], conn: Any) -> None:
    try:
        measure = setup(*args)
        conn.send(("ready", None))
        while conn.recv() == "measure":
            conn.send(("value", measure()))
    except BaseException:
        conn.send(("error", traceback.format_exc()))
