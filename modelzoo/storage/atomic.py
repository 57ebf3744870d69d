"""Crash-safe file writes: temp file, fsync, rename, fsync the directory."""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from modelzoo.errors import StorageError

_HINTS = {
    errno.ENOSPC: "the disk is full: free space or choose another --out",
    errno.EDQUOT: "the disk quota is exceeded: free space or choose another --out",
    errno.EACCES: "permission denied: choose a writable --out",
    errno.EPERM: "permission denied: choose a writable --out",
    errno.EROFS: "the file system is read-only: choose a writable --out",
    errno.ENOTDIR: "a parent of the path is a file, not a directory",
}


def storage_error(e: OSError, path: Path | str) -> StorageError:
    """Turn an OSError into a StorageError with a hint on what to do."""
    hint = _HINTS.get(e.errno or -1, e.strerror or str(e))
    err = StorageError(f"cannot write {path}: {hint} ({e.__class__.__name__}: {e})")
    err.errno = e.errno
    return err


def ensure_dir(path: Path) -> Path:
    """Create ``path`` (and parents) or raise a StorageError with a clear message."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-probe-{os.getpid()}-{threading.get_ident()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise storage_error(e, path) from None
    return path


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_open(path: Path) -> Iterator[BinaryIO]:
    """Open a temp file next to ``path``; on success it is fsynced and renamed onto ``path``.

    On any error the temp file is removed and ``path`` is left as it was.
    """
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise storage_error(e, path) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_with(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` atomically with a callback that writes to a binary file object."""
    with atomic_open(path) as f:
        write(f)


def file_sha256(path: Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


#: ``renameat2`` flag: swap two paths in one step (Linux >= 3.15, most local file systems).
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap the paths ``a`` and ``b``; False where the OS or file system can't."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(tmp: Path, out: Path) -> None:
    """Move the fully written folder ``tmp`` onto ``out``, replacing what ``out`` held.

    Readers see either the old folder or the new one, never a mix or nothing: a new ``out``
    is one ``rename``; an existing one is swapped with ``tmp`` in one ``renameat2``
    (``RENAME_EXCHANGE``) and the old content, now at ``tmp``, is deleted afterwards. Where the
    file system cannot swap, the old folder is renamed aside first (a crash in between leaves
    it at ``.<out>.old``, never deleted before the new one is in place).

    Raises:
        StorageError: the move failed (``out`` is left as it was).
    """
    try:
        if not out.exists():
            os.replace(tmp, out)
        elif _exchange(tmp, out):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        fsync_dir(out.parent)
    except OSError as e:
        raise storage_error(e, out) from None
