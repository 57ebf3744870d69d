"""Staging folders: write a zoo next to its destination, then rename it into place."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from modelzoo.errors import StorageError
from modelzoo.storage.atomic import ensure_dir, fsync_dir


def staging_dir(out: Path, what: str) -> Path:
    """A fresh temp folder next to ``out`` (same file system, so it can be renamed onto it)."""
    tmp = out.parent / f".{out.name}.{what}-tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    ensure_dir(out.parent)
    return tmp


def commit_dir(tmp: Path, out: Path) -> None:
    """Move a fully written staging folder onto ``out`` (absent or an empty folder)."""
    try:
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        os.replace(tmp, out)
        fsync_dir(out.parent)
    except OSError as e:
        raise StorageError(f"cannot move the finished zoo into {out}: {e}") from None

