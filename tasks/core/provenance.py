"""Where a result came from: the code's git commit."""

from __future__ import annotations

import subprocess
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def git_commit(mark_dirty: bool = False) -> str:
    """The checkout's commit (`""` outside a git checkout); with `mark_dirty`, `-dirty` appended when tracked files changed."""
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        if not mark_dirty or not found.stdout.strip():
            return found.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return found.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
