"""The table formats reviewflow reads (ingest, scoring) and writes (scored outputs): one entry per suffix.

Each entry knows how to read its table whole (ingest), how to read its layout and chunks
(scoring), and how to write scored chunks (scoring outputs). Adding a format is one entry in
FORMATS; a compressed variant is an existing format with `compressed=True`.
"""

from __future__ import annotations

from tasks.core.formats.base import MISSING, Fingerprint, Format, FormatError, Layout, TableWriter, Utf8Check
from tasks.core.formats.delimited import Delimited
from tasks.core.formats.jsonlines import JsonLines
from tasks.core.formats.parquet import Parquet

FORMATS: tuple[Format, ...] = (
    Delimited(".csv", ","),
    Delimited(".tsv", "\t"),
    JsonLines(".jsonl"),
    Parquet(".parquet"),
    Delimited(".csv.gz", ",", compressed=True),
    JsonLines(".jsonl.gz", compressed=True),
)
SUFFIXES = tuple(f.suffix for f in FORMATS)


def format_of(name: str) -> Format | None:
    """The format a file name announces by its whole suffix (`r.csv.gz` is gzip CSV, not `.gz`), or None."""
    lower = name.lower()
    # Longest first, so a compound suffix wins over its last part.
    matches = [f for f in FORMATS if lower.endswith(f.suffix) and len(lower) > len(f.suffix)]
    return max(matches, key=lambda f: len(f.suffix), default=None)


def split_name(name: str, fmt: Format) -> tuple[str, str]:
    """(stem, suffix as written) of a file name in format `fmt`: `R.CSV.GZ` -> (`R`, `.CSV.GZ`)."""
    return name[: -len(fmt.suffix)], name[-len(fmt.suffix) :]


__all__ = [
    "FORMATS", "MISSING", "SUFFIXES", "Fingerprint", "Format", "FormatError", "Layout", "TableWriter", "Utf8Check",
    "format_of", "split_name",
]
