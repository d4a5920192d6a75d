"""The error users see: one line saying what is wrong and where, and never a secret."""

import re

# user:password@ (or token@) in a URL: what must not reach logs, MLflow or Prefect artifacts.
_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")


class ReviewflowError(Exception):
    """A problem with the user's input or environment (not a bug); its message is one line."""


def one_line(detail: object, limit: int = 500) -> str:
    """An exception or reason as one line (exceptions prefixed with their type), at most `limit` characters."""
    text = " ".join(str(detail).split())
    if isinstance(detail, BaseException):
        text = f"{type(detail).__name__}: {text}" if text else type(detail).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redacted(text: str) -> str:
    """`text` with the credentials of any URL in it replaced: `https://user:token@host` -> `https://***@host`."""
    return _CREDENTIALS.sub("***@", text)


def interrupted(exc: BaseException | None) -> bool:
    """Whether `exc` is an interrupt (Ctrl-C, SIGTERM) or arose while one was being handled. An interrupt
    that lands while Prefect starts a task run can come out as an error of Prefect's own."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if not isinstance(exc, (Exception, SystemExit)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
