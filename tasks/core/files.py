"""Files that appear whole or not at all: one policy for every output reviewflow writes.

A file is written under a hidden temporary name beside its target that names the writing
process (`.<name>.<pid>-<random>.tmp`), flushed and fsynced, then renamed into place with
`os.replace`; on any failure the temporary file is removed. A killed run cannot remove its
temporary file, so writers clean up the stale ones of dead processes in folders they write.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

STALE_TEMPORARY_S = 24 * 3600  # this old, a temporary file is stale even if its pid runs (on another host)
_TEMPORARY = re.compile(r"^\..+\.(\d+)-[0-9a-f]{8}\.tmp$")


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name beside `path` that says which process writes it (not mkstemp: its files are private)."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """A binary file that appears at `path` complete when the block ends, and never appears if it raises.

    An OSError without a file name (a full disk mid-write) is given `path` as its file name, so
    that the one-line message built from it says where.
    """
    temporary = temporary_sibling(path)
    try:
        with open(temporary, "xb") as file:
            yield file
            # A file renamed into place must survive a crash as written, or it would look complete.
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        if exc.filename is None:
            exc.filename = str(path)
        raise
    finally:
        temporary.unlink(missing_ok=True)


def new_folder(parent: Path, name: str) -> Path:
    """`parent/name`, made now; `name-2`, `name-3`, ... when another process made it first (two runs started in one second)."""
    parent.mkdir(parents=True, exist_ok=True)
    for number in itertools.count(1):
        folder = parent / (name if number == 1 else f"{name}-{number}")
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
            return folder
    raise AssertionError("unreachable")


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write `data` as indented UTF-8 JSON, atomically (values JSON cannot hold are written as text)."""
    with atomic_write(path) as file:
        file.write((json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"))


def remove_stale_temporaries(folder: Path) -> None:
    """Delete the temporary files of killed runs in `folder`: their process is gone, or they are very old."""
    for entry in folder.glob(".*.tmp"):
        if match := _TEMPORARY.match(entry.name):
            with contextlib.suppress(OSError):
                if not _running(int(match.group(1))) or time.time() - entry.lstat().st_mtime > STALE_TEMPORARY_S:
                    remove(entry)


def remove(path: Path) -> None:
    """Delete a file, a symlink (not what it points to) or a whole folder."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process
    return True
