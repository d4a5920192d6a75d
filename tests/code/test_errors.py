"""One-line errors and redaction of secrets."""

import pytest

from tasks.core.errors import ReviewflowError, interrupted, one_line, redacted
from tasks.core.servers import free_port
from tasks.tracking import check_server_answers


@pytest.mark.parametrize(
    "text, expected",
    [
        ("https://user:token@example.org/data.tar.gz", "https://***@example.org/data.tar.gz"),
        ("http://token@127.0.0.1:5000", "http://***@127.0.0.1:5000"),
        ("from s3://key:secret@bucket/x and https://a:b@c/d", "from s3://***@bucket/x and https://***@c/d"),
        ("https://example.org/a@b", "https://example.org/a@b"),  # an @ in the path is no credential
        ("/data/reviews@2024.csv and mail@example.org", "/data/reviews@2024.csv and mail@example.org"),
    ],
)
def test_redacted_hides_credentials_in_urls_only(text, expected):
    assert redacted(text) == expected


def test_one_line_folds_whitespace_names_the_exception_and_cuts():
    assert one_line(ValueError("bad\n  value")) == "ValueError: bad value"
    assert one_line("x" * 20, limit=10) == "x" * 9 + "…"


def test_a_closed_tracking_port_fails_at_once_with_the_address_and_no_password():
    address = f"127.0.0.1:{free_port()}"
    with pytest.raises(ReviewflowError) as raised:
        check_server_answers(f"http://me:pw@{address}", attempts=1)
    assert str(raised.value).startswith(f"the MLflow tracking server at http://***@{address} does not answer")
    assert "pw" not in str(raised.value)


def raised_while_handling(first: BaseException, then: Exception) -> Exception:
    try:
        try:
            raise first
        except BaseException:
            raise then  # noqa: B904 (the implicit context is what is tested)
    except Exception as exc:
        return exc


def test_an_error_raised_while_an_interrupt_was_handled_counts_as_the_interrupt():
    # What Prefect does when SIGTERM lands while a task run starts: "Task run is not set".
    assert interrupted(raised_while_handling(KeyboardInterrupt("SIGTERM"), ValueError("Task run is not set")))
    assert interrupted(KeyboardInterrupt())
    assert not interrupted(raised_while_handling(OSError("disk full"), ValueError("a bug")))
    assert not interrupted(ValueError("a bug"))
    assert not interrupted(raised_while_handling(SystemExit(1), ValueError("a bug")))
