"""Unpacking a published zoo archive (``.zip``, ``.tar``, ``.tar.gz``, ``.tar.xz``) safely.

The field ships its zoos as archives (the CTC zoos as ``cifar10.tar.xz``, Model Zoos as zip
files on Zenodo). ``zoo import FORMAT ARCHIVE`` unpacks them next to the output first, then
imports the folder: the same rows and content hash as importing the unpacked folder.

No member may leave the destination: absolute names, ``..`` components and links are
refused (tar: Python's ``data`` extraction filter, which also drops device files and unsafe
modes; zip: the same checks by hand, and a zip symlink is refused), and the unpacked size is
bounded. A tar archive is read in one streaming pass.
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from modelzoo.errors import ImportFormatError, UnsafeFileError
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir, file_sha256

#: Largest total unpacked size (bytes).
MAX_UNPACKED_BYTES = 64 << 30
MARKER = ".unpacked-from"


def is_archive(path: Path) -> bool:
    """Whether ``path`` is a zip or tar archive (by content, not name)."""
    return path.is_file() and (zipfile.is_zipfile(path) or tarfile.is_tarfile(path))


def _check_name(name: str, archive: Path) -> None:
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or (p.parts and ":" in p.parts[0]):
        raise UnsafeFileError(f"{archive}: member {name!r} would be written outside the folder "
                              "it unpacks into; refusing the archive")


def _unzip(archive: Path, dest: Path, limit: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            _check_name(info.filename, archive)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise UnsafeFileError(f"{archive}: member {info.filename!r} is a symbolic link; "
                                      "refusing the archive")
            total += info.file_size
        if total > limit:
            raise ImportFormatError(f"{archive} unpacks to {total:,} bytes, more than {limit:,}")
        zf.extractall(dest)


def _untar(archive: Path, dest: Path, limit: int) -> None:
    total = 0

    def safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        nonlocal total
        _check_name(member.name, archive)
        try:
            member = tarfile.data_filter(member, path)
        except tarfile.FilterError as e:
            raise UnsafeFileError(f"{archive}: {e}; refusing the archive") from None
        total += member.size
        if total > limit:
            raise ImportFormatError(f"{archive} unpacks to more than {limit:,} bytes")
        return member

    with tarfile.open(archive) as tf:
        tf.extractall(dest, filter=safe)


def unpack(archive: Path, dest: Path, *, limit: int = MAX_UNPACKED_BYTES) -> Path:
    """Unpack ``archive`` into ``dest`` (reused if already unpacked from the same bytes).

    Returns:
        The zoo folder: the archive's single top-level folder, else ``dest``.

    Raises:
        UnsafeFileError: a member would leave ``dest`` or is a link (``dest`` is removed).
        ImportFormatError: not an archive (checked before ``dest`` is created), or larger
            than ``limit`` unpacked.
    """
    if not is_archive(archive):  # checked before anything is written next to the output
        raise ImportFormatError(f"{archive} is neither a folder nor a zip / tar archive")
    digest = file_sha256(archive)
    marker = dest / MARKER
    if not (marker.is_file() and marker.read_text() == digest):
        shutil.rmtree(dest, ignore_errors=True)
        ensure_dir(dest)
        try:
            if zipfile.is_zipfile(archive):
                _unzip(archive, dest, limit)
            else:
                _untar(archive, dest, limit)
        except BaseException:  # a refused (or interrupted) archive leaves nothing behind
            shutil.rmtree(dest, ignore_errors=True)
            raise
        atomic_write_bytes(marker, digest.encode())
    entries = [p for p in dest.iterdir() if p.name != MARKER]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest
