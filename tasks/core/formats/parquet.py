"""Parquet tables: read by column, written with the input's id type kept."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tasks.core.formats.base import Chunk, Format, Layout, TableWriter, id_column
from tasks.core.schema import TEXT


class Parquet(Format):
    label = "Parquet file"
    text = False

    def _read_table(self, path: Path) -> pd.DataFrame:
        return pd.read_parquet(path)

    def _layout(self, path: Path, chunk_size: int) -> Layout:
        parquet = pq.ParquetFile(path)
        columns = parquet.schema_arrow.names
        if not (ids_column := id_column(columns)):
            return Layout(columns, None, pd.Series(dtype=object), parquet.metadata.num_rows)
        ids = parquet.read(columns=[ids_column]).column(0)
        return Layout(columns, ids_column, ids.to_pandas(), len(ids), ids.type)

    def _chunks(self, path: Path, layout: Layout, chunk_size: int) -> Iterator[Chunk]:
        ids_column = layout.id_column
        wanted = [TEXT, ids_column] if ids_column else [TEXT]
        for part in pq.ParquetFile(path).iter_batches(batch_size=chunk_size, columns=wanted):
            yield part.column(ids_column).to_pylist() if ids_column else None, part.column(TEXT).to_pylist()

    def writer(self, file: BinaryIO, columns: list[str], id_type: pa.DataType | None) -> TableWriter:
        return _ParquetWriter(file, columns, id_type)


_TEXT_COLUMNS = ("sentiment", "error")  # the scoring output's string columns; the others after the id are probabilities


class _ParquetWriter(TableWriter):
    """The scoring output: the id, float probabilities, the sentiment and error strings (then any shadow probabilities)."""

    def __init__(self, file: BinaryIO, columns: list[str], id_type: pa.DataType | None) -> None:
        fields = [(columns[0], id_type or pa.int64())]
        self.schema = pa.schema(fields + [(c, pa.string() if c in _TEXT_COLUMNS else pa.float64()) for c in columns[1:]])
        self.parquet = pq.ParquetWriter(file, self.schema)

    def write(self, frame: pd.DataFrame) -> None:
        self.parquet.write_table(pa.Table.from_pandas(frame, schema=self.schema, preserve_index=False))

    def close(self) -> None:
        self.parquet.close()
