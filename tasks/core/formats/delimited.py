"""CSV and TSV tables, every cell read as text (so ids like '007' and reviews like 'NA' survive)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa

from tasks.core.formats.base import Chunk, Format, Layout, TableWriter, decode, id_column
from tasks.core.schema import TEXT


class Delimited(Format):
    def __init__(self, suffix: str, sep: str, compressed: bool = False) -> None:
        super().__init__(suffix, compressed)
        self.sep = sep
        self.label = f"{'TSV' if sep == chr(9) else 'CSV'} file"

    def _options(self) -> dict[str, Any]:
        # utf-8-sig drops the byte-order mark spreadsheet programs put first.
        return {
            "sep": self.sep, "dtype": str, "keep_default_na": False, "encoding": "utf-8-sig",
            "compression": "gzip" if self.compressed else None,
        }

    def _read_table(self, path: Path) -> pd.DataFrame:
        with self.open(path) as stream:
            text = decode(stream.read())
        return pd.read_csv(io.StringIO(text), sep=self.sep, dtype=str, keep_default_na=False)

    def _layout(self, path: Path, chunk_size: int) -> Layout:
        columns = list(pd.read_csv(path, nrows=0, **self._options()).columns)
        ids_column = id_column(columns)
        rows, ids_in_chunks = 0, [pd.Series(dtype=object)]
        # header=None: a row with more fields than the header is then an error, where with the
        # header pandas would quietly turn the first field into an index and shift the rest.
        for number, chunk in enumerate(pd.read_csv(path, header=None, chunksize=chunk_size, **self._options())):
            chunk = chunk.iloc[1:] if number == 0 else chunk
            rows += len(chunk)
            if ids_column:
                ids_in_chunks.append(chunk.iloc[:, columns.index(ids_column)])
        return Layout(columns, ids_column, pd.concat(ids_in_chunks), rows)

    def _chunks(self, path: Path, layout: Layout, chunk_size: int) -> Iterator[Chunk]:
        ids_column = layout.id_column
        wanted = [TEXT, ids_column] if ids_column else [TEXT]
        for chunk in pd.read_csv(path, chunksize=chunk_size, usecols=wanted, index_col=False, **self._options()):
            yield chunk[ids_column].tolist() if ids_column else None, chunk[TEXT].tolist()

    def writer(self, file: BinaryIO, columns: list[str], id_type: pa.DataType | None) -> TableWriter:
        return _DelimitedWriter(self.compress(file), self.sep, columns)


class _DelimitedWriter(TableWriter):
    def __init__(self, out: BinaryIO, sep: str, columns: list[str]) -> None:
        self.out, self.sep, self.header = out, sep, True
        self.write(pd.DataFrame(columns=columns))  # the header, even for an input without rows

    def write(self, frame: pd.DataFrame) -> None:
        self.out.write(frame.to_csv(sep=self.sep, index=False, header=self.header).encode("utf-8"))
        self.header = False

    def close(self) -> None:
        self.out.close()
