"""JSON Lines tables: one JSON object per line, blank lines skipped."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa

from tasks.core.formats.base import MISSING, Chunk, Format, FormatError, Layout, TableWriter, decode, id_column
from tasks.core.schema import ID_COLUMNS, TEXT


def records(lines: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """The objects of UTF-8 JSON lines; errors name the line (numbered from 1)."""
    # Binary lines end at b"\n" only, so U+2028 inside a string does not split a record.
    for number, raw in enumerate(lines, start=1):
        line = raw.decode("utf-8").removeprefix("\ufeff" if number == 1 else "")
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(f"line {number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(record, dict):
            raise FormatError(f"line {number}: expected a JSON object, got {type_name(record)}")
        yield record


def type_name(value: Any) -> str:
    """A JSON value's type as people say it."""
    return "null" if value is None else type(value).__name__


class JsonLines(Format):
    label = "JSON Lines file"

    def _records(self, path: Path) -> Iterator[dict[str, Any]]:
        with self.open(path) as stream:
            yield from records(stream)

    def _read_table(self, path: Path) -> pd.DataFrame:
        with self.open(path) as stream:
            raw = stream.read()
        decode(raw)  # the offset of a bad byte, before any line is parsed
        return pd.DataFrame.from_records(list(records(io.BytesIO(raw))))

    def _layout(self, path: Path, chunk_size: int) -> Layout:
        names: dict[str, None] = {}
        candidates: dict[str, list[Any]] = {name: [] for name in ID_COLUMNS}
        for record in self._records(path):
            names.update(dict.fromkeys(record))
            for name, values in candidates.items():
                values.append(record.get(name))
        ids_column = id_column(list(names))
        ids = pd.Series(candidates[ids_column] if ids_column else [], dtype=object)
        return Layout(list(names), ids_column, ids, len(candidates[ID_COLUMNS[0]]))

    def _chunks(self, path: Path, layout: Layout, chunk_size: int) -> Iterator[Chunk]:
        batch: list[dict[str, Any]] = []
        for record in self._records(path):
            batch.append(record)
            if len(batch) == chunk_size:
                yield _chunk(batch, layout.id_column)
                batch = []
        if batch:
            yield _chunk(batch, layout.id_column)

    def writer(self, file: BinaryIO, columns: list[str], id_type: pa.DataType | None) -> TableWriter:
        return _JsonLinesWriter(self.compress(file), columns)


def _chunk(batch: list[dict[str, Any]], ids_column: str | None) -> Chunk:
    return [r.get(ids_column) for r in batch] if ids_column else None, [r.get(TEXT, MISSING) for r in batch]


class _JsonLinesWriter(TableWriter):
    def __init__(self, out: BinaryIO, columns: list[str]) -> None:
        self.out, self.columns = out, columns

    def write(self, frame: pd.DataFrame) -> None:
        for row in zip(*(frame[c].tolist() for c in self.columns)):
            record = {c: None if isinstance(v, float) and v != v else v for c, v in zip(self.columns, row)}
            self.out.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")

    def close(self) -> None:
        self.out.close()
