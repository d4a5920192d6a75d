"""Work in a process of its own: results, log lines, errors and deaths come back to the caller."""

import logging
import multiprocessing.forkserver
import os
import signal
import threading
import time

import pytest

from tasks.core.errors import ReviewflowError
from tasks.core.processes import Slots, in_own_process, start_process_server


def double_and_log(value: int) -> int:
    logging.getLogger("reviewflow").info("doubling %d in process %d", value, os.getpid())
    return 2 * value


def refuse(reason: str) -> None:
    raise ReviewflowError(reason)


def crash() -> None:
    raise ZeroDivisionError("a bug")


def die(sig: int) -> None:
    os.kill(os.getpid(), sig)


def test_the_process_server_started_early_is_the_one_the_work_forks_from():
    start_process_server()
    server = multiprocessing.forkserver._forkserver._forkserver_pid
    os.kill(server, 0)  # running before any work asked for it
    assert in_own_process(os.getppid, "parent") == server


def test_the_result_and_the_log_lines_come_back(caplog):
    with caplog.at_level(logging.INFO, logger="reviewflow"):
        assert in_own_process(double_and_log, "doubling", 21) == 42
    (record,) = [r for r in caplog.records if r.name == "reviewflow"]
    assert record.getMessage().startswith("doubling 21 in process ")
    assert not record.getMessage().endswith(f" {os.getpid()}")  # it ran elsewhere


def where_and_what(name: str) -> tuple[str, str | None]:
    return os.getcwd(), os.environ.get(name)


def test_the_work_sees_the_callers_environment_and_folder_of_the_moment_it_starts(tmp_path, monkeypatch):
    in_own_process(double_and_log, "first", 1)  # the fork server is running by now
    monkeypatch.setenv("REVIEWFLOW_TEST_SETTING", "set after the first process")
    monkeypatch.chdir(tmp_path)
    assert in_own_process(where_and_what, "second", "REVIEWFLOW_TEST_SETTING") == (str(tmp_path), "set after the first process")


def test_an_expected_error_stays_one_line_and_a_bug_keeps_its_traceback():
    with pytest.raises(ReviewflowError, match="^bad input here$"):
        in_own_process(refuse, "refusing", "bad input here")
    with pytest.raises(RuntimeError, match="(?s)crashing failed in its own process:.*ZeroDivisionError: a bug"):
        in_own_process(crash, "crashing")


@pytest.mark.parametrize(
    "sig, reason",
    [
        (signal.SIGKILL, "bilstm-2494: its process was killed by SIGKILL (the kernel's out-of-memory killer"),
        (signal.SIGTERM, "bilstm-2494: its process was killed by SIGTERM"),
    ],
)
def test_a_killed_process_fails_its_work_naming_it_and_the_signal(sig, reason):
    with pytest.raises(ReviewflowError) as raised:
        in_own_process(die, "bilstm-2494", sig)
    assert str(raised.value).startswith(reason)


def test_slots_run_at_most_their_size_at_once_and_the_costliest_waiting_first():
    slots = Slots(1)
    started, running, most = [], [0], [0]
    lock = threading.Lock()

    release_first = threading.Event()

    def work(name, cost):
        with slots.held(cost):
            with lock:
                started.append(name)
                running[0] += 1
                most[0] = max(most[0], running[0])
            if name == "first":
                release_first.wait(timeout=10)
            time.sleep(0.02)
            with lock:
                running[0] -= 1

    first = threading.Thread(target=work, args=("first", 0))
    first.start()
    while not started:
        time.sleep(0.01)
    waiting = [threading.Thread(target=work, args=(name, cost)) for name, cost in [("cheap", 1), ("dear", 9), ("middling", 5)]]
    for thread in waiting:
        thread.start()
    while len(slots._waiting) < 3:  # all three queue behind "first", which holds the one slot
        time.sleep(0.01)
    release_first.set()
    for thread in [first, *waiting]:
        thread.join()
    assert started == ["first", "dear", "middling", "cheap"]
    assert most[0] == 1


def test_work_that_asks_while_the_slots_gather_starts_costliest_first_whoever_asked_first():
    slots = Slots(1, gather_s=0.5)
    started = []

    def work(name, cost):
        with slots.held(cost):
            started.append(name)

    threads = []
    for name, cost in [("cheap", 1), ("middling", 5), ("dear", 9)]:  # the cheapest asks first
        threads.append(threading.Thread(target=work, args=(name, cost)))
        threads[-1].start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=10)
    assert started == ["dear", "middling", "cheap"]


def test_the_gathering_ends_once_the_expected_work_has_asked():
    slots = Slots(1, gather_s=600, expected=3)
    started = []

    def work(name, cost):
        with slots.held(cost):
            started.append(name)

    threads = [threading.Thread(target=work, args=(name, cost), daemon=True) for name, cost in [("cheap", 1), ("dear", 9), ("middling", 5)]]
    for thread in threads:
        thread.start()
        time.sleep(0.05)
    for thread in threads:
        thread.join(timeout=30)
    assert started == ["dear", "middling", "cheap"]  # all three asked: none waited out the 600 s


def test_stopped_slots_start_nothing_more():
    slots = Slots(1)
    errors = []

    def wait_for_a_slot():
        try:
            with slots.held(1):
                pass
        except ReviewflowError as exc:
            errors.append(str(exc))

    with slots.held(0):
        waiter = threading.Thread(target=wait_for_a_slot)
        waiter.start()
        time.sleep(0.1)
        slots.stop()
        waiter.join(timeout=5)
    assert errors == ["stopped before it started: the run is being interrupted"]
