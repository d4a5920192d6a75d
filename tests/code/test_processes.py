"""Work in a process of its own: results, log lines, errors and deaths come back to the caller."""

import logging
import os
import signal

import pytest

from tasks.errors import ReviewflowError
from tasks.processes import in_own_process


def double_and_log(value: int) -> int:
    logging.getLogger("reviewflow").info("doubling %d in process %d", value, os.getpid())
    return 2 * value


def refuse(reason: str) -> None:
    raise ReviewflowError(reason)


def crash() -> None:
    raise ZeroDivisionError("a bug")


def die(sig: int) -> None:
    os.kill(os.getpid(), sig)


def test_the_result_and_the_log_lines_come_back(caplog):
    with caplog.at_level(logging.INFO, logger="reviewflow"):
        assert in_own_process(double_and_log, "doubling", 21) == 42
    (record,) = [r for r in caplog.records if r.name == "reviewflow"]
    assert record.getMessage().startswith("doubling 21 in process ")
    assert not record.getMessage().endswith(f" {os.getpid()}")  # it ran elsewhere


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
