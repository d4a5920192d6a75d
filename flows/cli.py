"""The `reviewflow` command line."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import flows  # noqa: F401  (sets logging and TensorFlow environment before Prefect loads)
from tasks.config import PROFILES, load_config
from tasks.errors import ReviewflowError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reviewflow", description="Train, compare, register and apply IMDB sentiment models.")
    commands = parser.add_subparsers(dest="command", required=True)
    train_cmd = commands.add_parser("train", help="run the training flow")
    train_cmd.add_argument("--profile", default="default", choices=list(PROFILES), help="settings profile (default: default)")
    train_cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                           help="override one setting, e.g. --set train.epochs=2 (repeatable)")
    train_cmd.set_defaults(run=run_train)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except ReviewflowError as exc:
        print(f"reviewflow: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("reviewflow: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: the log above has the traceback
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        print(f"reviewflow: error: {type(exc).__name__}: {first} (see the log above)", file=sys.stderr)
        return 1


def run_train(args: argparse.Namespace) -> int:
    config = load_config(args.profile, args.overrides)
    from flows.training import train

    with prefect_api():
        rows = train(config=config)
    print(format_table(rows))
    return 0


@contextmanager
def prefect_api() -> Iterator[None]:
    """The configured Prefect API, or one temporary local server for the whole command.

    Prefect's own fallback starts a temporary server per process, so task runs in the
    process pool would land in servers of their own; one shared server keeps them together.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    server = SubprocessASGIServer()
    server.start()
    os.environ["PREFECT_API_URL"] = server.api_url  # inherited by task worker processes
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield
    finally:
        del os.environ["PREFECT_API_URL"]
        server.stop()


def format_table(rows: list[dict]) -> str:
    """A plain-text table with a header and right-aligned numbers."""
    headers = list(rows[0]) if rows else []
    cells = [[_cell(row[h]) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[h], (int, float)) for row in rows) for h in headers]
    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric))
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def _cell(value: object) -> str:
    return f"{value:.4f}" if isinstance(value, float) and value < 1 else str(value)


if __name__ == "__main__":
    sys.exit(main())
