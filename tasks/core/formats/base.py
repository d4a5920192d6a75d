"""What every table format shares: its errors, the UTF-8 check, compression, the layout record.

A format raises `FormatError` for anything wrong with the file's content; the message is one
line without the path, so ingest ("table PATH: ...") and scoring (the quarantine reason) can
both use it. OSErrors (a missing file, a full disk) pass through: they are the caller's to word.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa

from tasks.core.errors import one_line
from tasks.core.schema import ID_COLUMNS

BLOCK = 1 << 20
MISSING = object()  # a record without a `text` field (only JSON lines can lack one)
Chunk = tuple[list[Any] | None, list[Any]]  # (ids, or None without an id column; texts)


class FormatError(Exception):
    """The file's content cannot be read as its format says; the message is one line, without the path."""


@dataclass
class Layout:
    """What the pre-pass over a scoring input learned: columns, the id column's values, the row count."""

    columns: list[str]
    id_column: str | None
    ids: pd.Series  # the id column's values (empty without one)
    rows: int
    id_type: pa.DataType | None = None  # Parquet only: kept in the output


@dataclass(frozen=True)
class Fingerprint:
    sha256: str  # of the file's bytes as stored (compressed, for a compressed file)
    content_bytes: int  # after decompression


@contextlib.contextmanager
def failures(label: str) -> Iterator[None]:
    """Turn a parser's or decompressor's exception into a FormatError; OSErrors pass through."""
    try:
        yield
    except FormatError:
        raise
    # Before OSError: BadGzipFile is one.
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise FormatError(f"not a readable gzip stream ({one_line(exc)})") from None
    except OSError:
        raise
    except (ValueError, pa.ArrowException) as exc:
        raise FormatError(f"not a readable {label} ({one_line(exc)})") from None


class Utf8Check:
    """Checks text fed block by block is UTF-8; the error names the first bad byte and its offset."""

    def __init__(self, where: str = "") -> None:
        self.decoder, self.offset, self.where = codecs.getincrementaldecoder("utf-8")(), 0, where

    def feed(self, block: bytes, final: bool = False) -> None:
        try:
            self.decoder.decode(block, final=final)
        except UnicodeDecodeError as exc:
            # exc.object is the bytes the decoder carried over, then this block.
            at = self.offset + len(block) - len(exc.object) + exc.start
            raise FormatError(f"{self.where}not UTF-8 (byte {exc.object[exc.start]:#04x} at offset {at})") from None
        self.offset += len(block)


def too_large(limit: int) -> str:
    return f"larger than the limit of {limit:,} bytes"


def utf8(raw: bytes) -> str:
    """The bytes as UTF-8 text; the FormatError names the first bad byte and its offset."""
    Utf8Check().feed(raw, final=True)
    return raw.decode("utf-8")


def decode(raw: bytes) -> str:
    """A table file's UTF-8 text without the byte-order mark spreadsheet programs put first
    (offsets in errors count the mark's bytes)."""
    return utf8(raw).removeprefix("\ufeff")


class _Hashing:
    """A reader that feeds every byte it reads to a digest."""

    def __init__(self, stream: BinaryIO, digest: Any) -> None:
        self.stream, self.digest = stream, digest

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(size)
        self.digest.update(block)
        return block


class Format:
    """One table format under one file-name suffix; subclasses read and write its content."""

    label = "file"  # in messages: "not a readable CSV file"
    text = True  # must be UTF-8 (after decompression)

    def __init__(self, suffix: str, compressed: bool = False) -> None:
        self.suffix, self.compressed = suffix, compressed

    def open(self, path: Path) -> BinaryIO:
        """The file's content as a binary stream, decompressed."""
        return gzip.open(path, "rb") if self.compressed else path.open("rb")

    def compress(self, file: BinaryIO) -> BinaryIO:
        """Where to write content meant for `file`; closing it does not close `file`."""
        # mtime 0 and no name: equal content gives equal bytes, and no temporary name leaks in.
        return gzip.GzipFile(filename="", fileobj=file, mode="wb", mtime=0) if self.compressed else _Unclosed(file)

    def fingerprint(self, path: Path, limit: int | None = None) -> Fingerprint:
        """sha256 of the stored bytes, in one pass that also decompresses and checks the content is UTF-8;
        content past `limit` bytes stops the pass (a guard against decompression bombs)."""
        digest, size = hashlib.sha256(), 0
        check = Utf8Check() if self.text else None
        with failures(self.label), path.open("rb") as raw:
            hashed = _Hashing(raw, digest)
            content = gzip.GzipFile(fileobj=hashed, mode="rb") if self.compressed else hashed
            while block := content.read(BLOCK):
                size += len(block)
                if limit is not None and size > limit:
                    raise FormatError(too_large(limit))
                if check:
                    check.feed(block)
            if check:
                check.feed(b"", final=True)
            while hashed.read(BLOCK):
                pass  # bytes the decompressor did not need are still the file's
        return Fingerprint(digest.hexdigest(), size)

    def read_table(self, path: Path) -> pd.DataFrame:
        """The whole table (for ingest)."""
        with failures(self.label):
            return self._read_table(path)

    def layout(self, path: Path, chunk_size: int) -> Layout:
        """The cheap pre-pass of scoring: columns, ids, row count; parse errors surface here."""
        with failures(self.label):
            return self._layout(path, chunk_size)

    def chunks(self, path: Path, layout: Layout, chunk_size: int) -> Iterator[Chunk]:
        """(ids, texts) per chunk of at most chunk_size rows, in file order."""
        with failures(self.label):
            yield from self._chunks(path, layout, chunk_size)

    def writer(self, file: BinaryIO, columns: list[str], id_type: pa.DataType | None) -> TableWriter:
        """A writer of scored chunks into `file` in this format."""
        raise NotImplementedError

    def _read_table(self, path: Path) -> pd.DataFrame:
        raise NotImplementedError

    def _layout(self, path: Path, chunk_size: int) -> Layout:
        raise NotImplementedError

    def _chunks(self, path: Path, layout: Layout, chunk_size: int) -> Iterator[Chunk]:
        raise NotImplementedError


class TableWriter:
    """Appends frames to one output; closing finishes the format (footer, gzip trailer), not the file."""

    def write(self, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, error_type: type | None, *_: object) -> None:
        try:
            self.close()
        except Exception:
            if error_type is None:
                raise  # otherwise the first error is the one to report


class _Unclosed:
    """A file whose close() leaves the underlying file open."""

    def __init__(self, file: BinaryIO) -> None:
        self.file = file

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def close(self) -> None:
        self.file.flush()


def id_column(columns: list[str]) -> str | None:
    """The file's id column: the first of ID_COLUMNS it has."""
    return next((name for name in ID_COLUMNS if name in columns), None)
