"""Keeping scoring runs out of each other's way: inbox locks, quarantine, names that never overwrite."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tasks.core.files import remove, remove_stale_temporaries, temporary_sibling
from tasks.core.formats import format_of, split_name

log = logging.getLogger("reviewflow")

QUARANTINE = "quarantine"
REASON = ".reason.txt"


def quarantine(path: Path, output_dir: Path, reason: str, move: bool) -> Path:
    """Put a copy of the input (or, with `move`, the input itself) in quarantine/ with its one-line reason beside it."""
    folder = output_dir / QUARANTINE
    folder.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(folder)
    target = free_name(folder / path.name, REASON)
    # The reason first: a reason without its file is clearer than a file without its reason.
    (folder / f"{target.name}{REASON}").write_text(reason + "\n", encoding="utf-8")
    temporary = temporary_sibling(target)
    try:
        if move:
            shutil.move(path, target)  # a symlink moves as itself, not followed
        else:
            if path.is_dir():
                shutil.copytree(path, temporary, symlinks=True)
            else:
                shutil.copy2(path, temporary)
            os.replace(temporary, target)
    except FileNotFoundError:
        log.warning("%s vanished before it reached quarantine", path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            remove(temporary)
    log.warning("%s: quarantined: %s", path, reason)
    return target


def free_name(target: Path, *companions: str) -> Path:
    """`target`, or `name-1.ext`, `name-2.ext`, ... when it (or a companion file `<name><companion>`) exists.

    A format's compound suffix stays whole: `r.csv.gz` becomes `r-1.csv.gz`.
    """
    fmt = format_of(target.name)
    stem, suffix = split_name(target.name, fmt) if fmt else (target.stem, target.suffix)
    candidate, number = target, 0
    while os.path.lexists(candidate) or any(os.path.lexists(f"{candidate}{c}") for c in companions):
        number += 1
        candidate = target.with_name(f"{stem}-{number}{suffix}")
    return candidate


@contextlib.contextmanager
def lock(path: Path) -> Iterator[bool]:
    """Hold an exclusive lock on `path` without waiting; False when another run holds it.

    The OS releases the lock of a killed run. The file is removed while still held, so a run
    that locked a file already removed checks that it still is the file at `path`.
    """
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = os.stat(path).st_ino == os.fstat(descriptor).st_ino
        except (BlockingIOError, FileNotFoundError):
            held = False
        try:
            yield held
        finally:
            if held:
                path.unlink(missing_ok=True)
    finally:
        os.close(descriptor)
