"""Run one piece of work in a process of its own, so that a crash of that process fails it alone.

The kernel's out-of-memory killer ends a process with SIGKILL. In a shared worker pool that
breaks the pool and every task in it; in a process of its own it fails only its task, with a
message that names the work and the signal, while the other models train on.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from tasks.core.errors import ReviewflowError

log = logging.getLogger("reviewflow")
Result = TypeVar("Result")
_POLL_S = 0.2
# The flow submits its trainings costliest first, but they reach their slots in whatever order their
# inputs load (the BiLSTM's, the largest, last): nothing starts until this long after the slots open, or
# until all the work expected first has asked, so that the first to start are the costliest, not the quickest to ask.
GATHER_S = 2.0
# What the work run here imports (TensorFlow, Keras, MLflow: about 8 s of CPU each time) is imported once,
# by a fork server; each process then starts as a fork of it, ready to work. Forked from that server, which
# does nothing else, never from this process: this one runs Prefect's threads, and a fork copies the locks
# they hold. A module that fails to import there is imported by the process that needs it.
PRELOADED = ["tasks.stages.train", "tasks.stages.evaluate", "tasks.stages.baseline", "tasks.stages.pretrain"]
_running: set[multiprocessing.process.BaseProcess] = set()


def available_cores() -> int:
    return os.cpu_count() or 1


def threads_per_training(concurrent: int) -> int:
    """Cores each concurrent training may use, so together they do not oversubscribe the machine."""
    return max(1, available_cores() // max(1, concurrent))


def limit_threads(threads: int) -> None:
    """TensorFlow's threads in this process; must happen before its first op (each training has its own process)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass


class Slots:
    """At most `size` pieces of work at once; when one ends, the costliest waiting piece starts next.

    Costliest first keeps the longest training from starting last and stretching the run
    (longest-processing-time-first scheduling); a task still waiting for its input holds no slot.
    """

    def __init__(self, size: int, gather_s: float = 0.0, expected: int = 0):
        self.size, self.busy, self.stopped = size, 0, False
        self._opens_at = time.monotonic() + gather_s
        self._expected = expected  # once this many have asked, the gathering ends
        self._waiting: list[tuple[float, int]] = []
        self._order = itertools.count()  # equal costs start in the order they asked
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def held(self, cost: float) -> Iterator[None]:
        with self._changed:
            ticket = (-cost, next(self._order))
            heapq.heappush(self._waiting, ticket)
            self._expected -= 1
            if self._expected == 0:
                self._opens_at = time.monotonic()
                self._changed.notify_all()
            try:
                while not (self.stopped or self._may_start(ticket)):
                    self._changed.wait(timeout=_POLL_S)  # short waits: a stopped run must not hang its threads
            finally:
                self._waiting.remove(ticket)
                heapq.heapify(self._waiting)
                self._changed.notify_all()
            if self.stopped:
                raise ReviewflowError("stopped before it started: the run is being interrupted")
            self.busy += 1
        try:
            yield
        finally:
            with self._changed:
                self.busy -= 1
                self._changed.notify_all()

    def _may_start(self, ticket: tuple[float, int]) -> bool:
        return self.busy < self.size and self._waiting[0] == ticket and time.monotonic() >= self._opens_at

    def stop(self) -> None:
        with self._changed:
            self.stopped = True
            self._changed.notify_all()


_slots: Slots | None = None


@contextlib.contextmanager
def process_slots(size: int, gather_s: float = GATHER_S, expected: int = 0) -> Iterator[Slots]:
    """While open, work run through `in_own_process` or `in_slot` here runs at most `size` at a time,
    none in the first `gather_s` seconds unless `expected` pieces of work have asked by then."""
    global _slots
    _slots = Slots(size, gather_s, expected)
    try:
        yield _slots
    finally:
        _slots = None


@contextlib.contextmanager
def in_slot(cost: float = 0.0) -> Iterator[None]:
    """Hold one of the open `process_slots` (costliest first) while the block runs; no limit when none are open."""
    slots = _slots
    if slots is None:
        yield
        return
    with slots.held(cost):
        yield


def in_own_process(work: Callable[..., Result], name: str, *args: Any, cost: float = 0.0) -> Result:
    """`work(*args)` in a new process (no state shared: see PRELOADED), its `reviewflow` log lines
    re-logged here, its result returned and its error raised here. With `process_slots` open,
    it first waits for a slot (`cost` orders the waiting: costliest first).

    Inside a daemonic process (a Dask worker), which may not have children, it runs here.
    """
    if multiprocessing.current_process().daemon:
        return work(*args)
    with in_slot(cost):
        return _run_in_process(work, name, args)


def start_process_server() -> None:
    """Start the fork server now, so that its imports (PRELOADED) run beside the work before the first
    process, not in front of it. Returns at once; without it, the first process starts the server."""
    _context()
    multiprocessing.forkserver.ensure_running()


def _context() -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOADED)  # read when the server starts
    return context


def _run_in_process(work: Callable[..., Result], name: str, args: tuple[Any, ...]) -> Result:
    context = _context()
    messages = context.Queue()
    # The server's environment and folder are those of its start; the work gets this process's own, as now.
    process = context.Process(target=_child, args=(work, args, messages, dict(os.environ), os.getcwd()), name=name)
    process.start()
    _running.add(process)
    try:
        outcome = _relay_until_done(process, messages)
    finally:
        if process.is_alive():  # interrupted here: the child goes too
            process.terminate()
        process.join()
        _running.discard(process)
    if outcome is None:
        raise ReviewflowError(f"{name}: {_death(process.exitcode)}")
    kind, value = outcome
    if kind == "result":
        return value
    if kind == "expected":
        raise ReviewflowError(value)
    raise RuntimeError(f"{name} failed in its own process:\n{value}")


def stop_running() -> None:
    """End every process `in_own_process` started here and still running, and start no more (the run is being interrupted)."""
    if _slots is not None:
        _slots.stop()
    for process in list(_running):
        if process.is_alive():
            process.terminate()


def _relay_until_done(process: multiprocessing.process.BaseProcess, messages: Any) -> tuple[str, Any] | None:
    """Re-log the child's records until it reports its outcome; None if it died without one."""
    while True:
        try:
            kind, value = messages.get(timeout=_POLL_S)
        except queue.Empty:
            if not process.is_alive():
                return _drained(messages)
            continue
        if kind == "log":
            log.handle(value)
        else:
            return kind, value


def _drained(messages: Any) -> tuple[str, Any] | None:
    """What a finished child left in the queue after its last poll."""
    while True:
        try:
            kind, value = messages.get(timeout=_POLL_S)
        except queue.Empty:
            return None
        if kind == "log":
            log.handle(value)
        else:
            return kind, value


def _death(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        name = signal.Signals(-exitcode).name
        why = " (the kernel's out-of-memory killer sends it: the machine may lack memory)" if name == "SIGKILL" else ""
        return f"its process was killed by {name}{why}"
    return f"its process exited with code {exitcode} before reporting a result"


class _ToParent(logging.Handler):
    def __init__(self, messages: Any) -> None:
        super().__init__()
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        record.msg, record.args, record.exc_info = record.getMessage(), None, None  # picklable whatever the args
        self.messages.put(("log", record))


def _child(work: Callable[..., Any], args: tuple[Any, ...], messages: Any, environment: dict[str, str], folder: str) -> None:
    os.environ.clear()
    os.environ.update(environment)
    os.chdir(folder)
    logger = logging.getLogger("reviewflow")
    logger.handlers, logger.propagate = [_ToParent(messages)], False
    logger.setLevel(logging.INFO)
    try:
        messages.put(("result", work(*args)))
    except ReviewflowError as exc:
        messages.put(("expected", str(exc)))
    except BaseException:
        messages.put(("error", traceback.format_exc()))
