"""A folder of .txt files scored as one input: one review per file, the file-name stem as its id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from tasks.core.formats import Fingerprint, FormatError, Layout, Utf8Check
from tasks.core.formats.base import BLOCK, Chunk, too_large
from tasks.core.schema import TEXT
from tasks.scoring.discovery import txt_files

TXT_ID = "review_id"  # the id column of a .txt folder's output: the file-name stems


class TextFolder:
    """Reads a .txt folder the way a `tasks.core.formats.Format` reads a table file."""

    label = "text folder"

    def fingerprint(self, folder: Path, limit: int | None = None) -> Fingerprint:
        """sha256 over the sorted (name, content) pairs; every file must be UTF-8 (the reason names it),
        and all together no larger than `limit` bytes."""
        if not (files := txt_files(folder)):
            raise FormatError("no .txt files in the folder")
        digest, size = hashlib.sha256(), 0
        for file in files:
            file_digest, check = hashlib.sha256(), Utf8Check(f"{file.name}: ")
            with file.open("rb") as stream:
                while block := stream.read(BLOCK):
                    file_digest.update(block)
                    check.feed(block)
                    size += len(block)
                    if limit is not None and size > limit:
                        raise FormatError(too_large(limit))
            check.feed(b"", final=True)
            digest.update(file.name.encode() + b"\0" + file_digest.digest() + b"\0")
        return Fingerprint(digest.hexdigest(), size)

    def layout(self, folder: Path, chunk_size: int) -> Layout:
        stems = pd.Series([f.stem for f in txt_files(folder)], dtype=object)
        return Layout([TXT_ID, TEXT], TXT_ID, stems, len(stems))

    def chunks(self, folder: Path, layout: Layout, chunk_size: int) -> Iterator[Chunk]:
        files = txt_files(folder)
        for i in range(0, len(files), chunk_size):
            batch = files[i : i + chunk_size]
            yield [f.stem for f in batch], [f.read_bytes().decode("utf-8").removeprefix("\ufeff") for f in batch]
