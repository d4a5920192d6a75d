"""Finding the inputs to score: given files and folders, or what waits in the inbox.

An input is a table file in one of the formats (`tasks.core.formats`), or a folder of .txt files
scored as one file. Files still being copied in are never inputs: writers copy under a hidden
name (starting with `.`) or with a `.part` suffix and rename the file in when it is complete,
so both are ignored here, as are the inbox's own hidden files (locks, temporaries).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tasks.core.errors import ReviewflowError
from tasks.core.formats import SUFFIXES, format_of

log = logging.getLogger("reviewflow")

PARTIAL = ".part"  # the suffix of a file still being copied in


def find_review_files(paths: list[Path]) -> list[Path]:
    """Inputs from files and folders: a folder of .txt files (and no tables) is one input; other folders are searched one level."""
    found: list[Path] = []
    for path in map(Path, paths):
        if not path.exists():
            raise ReviewflowError(f"review file or folder not found: {path}")
        if path.is_dir():
            has_tables = any(is_table(p) for p in visible(path))
            found += [path] if txt_files(path) and not has_tables else inputs_in(path)
        elif is_table(path):
            found.append(path)
        else:
            expected = ", ".join(SUFFIXES)
            raise ReviewflowError(f"unsupported review file {path}: expected {expected} or a folder of .txt files")
    return list(dict.fromkeys(found))


def inbox_inputs(inbox: Path) -> list[Path]:
    """The inputs waiting in the inbox (none when it does not exist)."""
    inbox = Path(inbox)
    return inputs_in(inbox, root=inbox) if inbox.is_dir() else []


def inputs_in(folder: Path, root: Path | None = None) -> list[Path]:
    """Table files and .txt folders one level down (sorted names); with `root`, also symlinks leaving it."""
    found = []
    for entry in visible(folder):
        if root is not None and leaves(entry, root):
            found.append(entry)  # refused later, whatever it holds: not looked into
        elif is_table(entry) or (entry.is_dir() and txt_files(entry)):
            found.append(entry)
        elif entry.suffix.lower() == ".txt":
            log.warning("ignoring %s: put .txt reviews in a folder, which is scored as one file", entry)
    return found


def visible(folder: Path) -> list[Path]:
    """Entries by name, without hidden ones (temporary files, locks) and files still being copied in."""
    entries = (p for p in folder.iterdir() if not p.name.startswith(".") and not p.name.lower().endswith(PARTIAL))
    return sorted(entries, key=lambda p: p.name)


def txt_files(folder: Path) -> list[Path]:
    """The .txt files directly in `folder`, by name."""
    return [p for p in visible(folder) if p.suffix.lower() == ".txt" and p.is_file()]


def is_table(path: Path) -> bool:
    return not path.is_dir() and format_of(path.name) is not None


def leaves(path: Path, root: Path) -> bool:
    """Whether `path`, or a .txt file directly in it, is a symlink to outside `root`."""
    def outside(p: Path) -> bool:
        return p.is_symlink() and not Path(os.path.realpath(p)).is_relative_to(root.resolve())

    return outside(path) or (path.is_dir() and any(outside(p) for p in path.iterdir() if p.suffix.lower() == ".txt"))
