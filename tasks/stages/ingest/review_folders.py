"""The aclImdb layout: labeled and unlabeled reviews streamed out of its tarball, or read from the extracted folder."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tarfile
import zlib
from pathlib import Path, PurePosixPath

import pandas as pd

from tasks.core.errors import ReviewflowError, one_line
from tasks.core.formats import FormatError
from tasks.core.formats.base import utf8
from tasks.core.schema import COLUMNS, SPLITS

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
LAYOUT = "aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt"
# Any prefix before train/ or test/, so `./aclImdb/...` and a tarball of the folder's contents both work.
REVIEW_MEMBER = re.compile(r"(?:^|/)(train|test)/(pos|neg)/([^/]+)\.txt$")
UNLABELED_LAYOUT = "aclImdb/train/unsup/<id>_0.txt"
UNLABELED_MEMBER = re.compile(r"(?:^|/)train/unsup/([^/]+)\.txt$")
UNLABELED_COLUMNS = ("review_id", "text")  # the unlabeled table: no split, label or rating

Row = tuple[str, str, str, int, int | None]


class _TooLarge(Exception):
    """The archive expands past its limit."""


def is_archive(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def read_archive(path: Path, max_bytes: int | None = None, require_labeled: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stream the labeled reviews (COLUMNS) and the unlabeled ones (UNLABELED_COLUMNS, from train/unsup/)
    out of an aclImdb tarball in one pass, without writing anything to disk.

    With `max_bytes`, the decompressed bytes are counted as they stream, and an archive that
    would expand past it is refused before it does (a guard against decompression bombs).
    """
    rows: list[Row] = []
    unlabeled: list[tuple[str, str]] = []
    try:
        # gzip.open rather than tarfile's "r|gz": tarfile ends quietly on a truncated stream.
        with gzip.open(path, "rb") as compressed:
            stream = _Counted(compressed, max_bytes)
            with tarfile.open(fileobj=stream, mode="r|") as archive:
                for member in archive:
                    _check_member(member, path)
                    if not member.isfile():
                        continue
                    where = f"member {member.name!r} in archive {path}"
                    if match := REVIEW_MEMBER.search(member.name):
                        rows.append(_review_row(*match.groups(), archive.extractfile(member).read(), where))
                    elif match := UNLABELED_MEMBER.search(member.name):
                        unlabeled.append(_unlabeled_row(match.group(1), archive.extractfile(member).read(), where))
            # tarfile stops at its end marker; reading on to the gzip trailer checks length and CRC.
            while stream.read(1 << 20):
                pass
    except _TooLarge:
        raise ReviewflowError(
            f"archive {path} expands past data.max_archive_bytes ({max_bytes:,} bytes): refusing it (a guard against decompression bombs)"
        ) from None
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ReviewflowError(f"archive {path} is truncated or corrupt ({one_line(exc)})") from None
    if not rows and require_labeled:
        raise ReviewflowError(f"archive {path} contains no labeled reviews (expected {LAYOUT})")
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(unlabeled, columns=UNLABELED_COLUMNS)


def review_root(folder: Path) -> Path:
    """The aclImdb folder itself, given either it or the folder that contains it."""
    inner = folder / "aclImdb"
    return inner if inner.is_dir() else folder


def read_folder(root: Path, require_labeled: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The labeled reviews (COLUMNS) and the unlabeled ones (UNLABELED_COLUMNS) of an extracted aclImdb folder."""
    rows = []
    for relative, file in _folder_files(root):
        split, polarity, stem = REVIEW_MEMBER.search(relative).groups()
        rows.append(_review_row(split, polarity, stem, file.read_bytes(), f"review file {file}"))
    if not rows and require_labeled:
        raise ReviewflowError(f"folder {root} contains no labeled reviews (expected {LAYOUT})")
    unlabeled = [_unlabeled_row(file.stem, file.read_bytes(), f"review file {file}") for _, file in _unlabeled_files(root)]
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(unlabeled, columns=UNLABELED_COLUMNS)


def folder_digest(root: Path) -> str:
    """sha256 of the sorted (relative path, content) pairs of the review files below `root`, unlabeled ones included."""
    digest = hashlib.sha256()
    for relative, file in _folder_files(root) + _unlabeled_files(root):
        content = file.read_bytes()
        # Lengths delimit the fields, so no two different folders hash the same byte stream.
        for field in (relative.encode("utf-8"), content):
            digest.update(len(field).to_bytes(8, "big"))
            digest.update(field)
    return digest.hexdigest()


class _Counted:
    """A reader that raises _TooLarge once more than `limit` bytes have come through it."""

    def __init__(self, stream: gzip.GzipFile, limit: int | None) -> None:
        self.stream, self.limit, self.count = stream, limit, 0

    def read(self, size: int = -1) -> bytes:
        block = self.stream.read(size if self.limit is None or size >= 0 else self.limit + 1 - self.count)
        self.count += len(block)
        if self.limit is not None and self.count > self.limit:
            raise _TooLarge
        return block


def _check_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse members that would land outside a target folder if the archive were extracted."""
    name = member.name
    parts = PurePosixPath(name.replace("\\", "/")).parts
    absolute = name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name) is not None
    if absolute or ".." in parts or member.issym() or member.islnk() or member.isdev():
        raise ReviewflowError(f"unsafe member {name!r} in archive {archive}: refusing to read it")


def _folder_files(root: Path) -> list[tuple[str, Path]]:
    """The review files below `root` as sorted (relative path, file) pairs."""
    found = []
    for split in SPLITS:
        for polarity in ("pos", "neg"):
            folder = root / split / polarity
            if folder.is_dir():
                with os.scandir(folder) as entries:
                    found += [
                        (f"{split}/{polarity}/{entry.name}", Path(entry.path))
                        for entry in entries
                        if entry.name.endswith(".txt") and entry.is_file()
                    ]
    return sorted(found)


def _unlabeled_row(stem: str, raw: bytes, where: str) -> tuple[str, str]:
    """One row from an unlabeled review file `train/unsup/<id>_0.txt`."""
    try:
        return f"train/unsup/{stem}", utf8(raw)
    except FormatError as exc:
        raise ReviewflowError(f"{where}: {exc}") from None


def _unlabeled_files(root: Path) -> list[tuple[str, Path]]:
    """The unlabeled review files below `root` (train/unsup/) as sorted (relative path, file) pairs."""
    folder = root / "train" / "unsup"
    if not folder.is_dir():
        return []
    with os.scandir(folder) as entries:
        return sorted((f"train/unsup/{e.name}", Path(e.path)) for e in entries if e.name.endswith(".txt") and e.is_file())


def _review_row(split: str, polarity: str, stem: str, raw: bytes, where: str) -> Row:
    """One row from a review file `<split>/<pos|neg>/<id>_<rating>.txt`."""
    rating = re.fullmatch(r".*_(\d+)", stem)
    try:
        text = utf8(raw)
    except FormatError as exc:
        raise ReviewflowError(f"{where}: {exc}") from None
    return (f"{split}/{polarity}/{stem}", split, text, int(polarity == "pos"), int(rating.group(1)) if rating else None)
