"""Verifying a zoo's shards against the sha256 checksums in its ``zoo.json``, with a cache.

A task pin, a SANE checkpoint or a published release names a zoo by its manifest (name,
version, content hash); only the shard checksums tie the bytes on disk to that manifest. So
everything that scores, trains, embeds, samples, publishes or submits on a zoo opens it
through :func:`verify_zoo` (``modelzoo.load_zoo``, ``benchmarks.zoo.EvalZoo``, sane's
``ZooRows``, ``zoo merge/publish/align``), and a shard whose bytes differ stops it with a
:class:`~modelzoo.errors.ShardChecksumError` naming the shard, before anything is written.

Algorithm (per shard of the splits asked for, in manifest order):

1. ``stat`` the shard: its *key* is ``(size, mtime_ns, ctime_ns, inode, device)``.
2. A *record* ``(key, sha256)`` vouches for the shard only if its key equals the current key
   **and** its sha256 equals the checksum the manifest records for that path. Records come
   from an in-process memo and from the zoo's ``.verified.json`` (see below). A vouched-for
   shard is not read.
3. Any other shard is hashed (streamed sha256) and compared with the manifest; a mismatch or
   a missing shard raises. A match becomes a record only if the shard's key was the same
   before and after hashing and the shard was last changed (mtime and ctime) more than
   :data:`RACY_NS` before hashing started: file timestamps are coarse (one clock tick, up
   to 2 s on some file systems), so a same-size rewrite in the same tick as the one we
   recorded would keep the key; past that margin, any later write gets a later timestamp.
4. New records are written to ``.verified.json`` atomically (temp file, fsync, rename). A
   read-only zoo folder (not writable, or without any write bit in its mode, which counts
   even for root) is not written: its shards are hashed once per process (the memo spares
   re-hashing within one process). Processes writing the cache at once: the last rename
   wins, and a record it dropped only costs a re-hash.

What the cache protects against, and what it cannot:

* It cannot vouch for other bytes than those it hashed: a record for another checksum (an
  edited manifest, another zoo version) is ignored; a copied zoo (``cp -r``, ``cp -a``,
  ``rsync -a``, a download) has new inodes and ctimes, so the copied cache matches nothing;
  a shard replaced by a file of the same size with a forged mtime (``touch -d``,
  ``os.utime``) has a new inode (when renamed into place) or a new ctime (when rewritten in
  place: ``utime`` cannot set ctime), so it is re-hashed.
* It cannot see changes that bypass the file system's metadata: bit rot or a disk error
  after the shard was hashed, writes to the raw block device, a rewrite that keeps inode,
  size, mtime *and* ctime (setting the system clock back, which needs root), or a clock that
  jumps back by more than :data:`RACY_NS`. ``zoo validate`` ignores the cache and re-hashes
  every shard; run it where such damage is a concern.
* It is no signature: whoever can write the zoo folder can also rewrite the cache, and the
  manifest's checksums themselves (the pin covers the per-model hashes, not the shard
  checksums). It spares re-hashing unchanged files; it adds no trust beyond the folder's.
* The check and the later read are two steps: a shard replaced in between is read unchecked
  (as with any verify-then-open).

Switching it off: ``verify=False`` where a function takes it, ``--no-verify`` on the
commands, or ``with verification(False):`` around library calls (what ``bench run
--no-verify`` does, so the methods' own ``load_zoo`` calls skip it too). A result made
without verification records ``zoo.verified = false`` and does not claim its pin.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from modelzoo.errors import CorruptZooError, ShardChecksumError, StorageError
from modelzoo.storage.atomic import atomic_write_bytes, file_sha256
from modelzoo.storage.manifest import MANIFEST_NAME, FileEntry, Manifest, read_manifest

__all__ = [
    "RACY_NS",
    "VERIFIED_NAME",
    "VerifyReport",
    "check_shards",
    "clear_memo",
    "open_manifest",
    "resolve_verify",
    "shard_path",
    "verification",
    "verification_enabled",
    "verify_zoo",
]

#: The verification cache, in the zoo folder (never listed in ``zoo.json``, never published).
VERIFIED_NAME = ".verified.json"
#: A shard changed less than this before it was hashed is not recorded (timestamp granularity).
RACY_NS = 2_000_000_000
#: A larger cache file is ignored (bounded memory on hostile input).
MAX_CACHE_BYTES = 16 << 20
#: Show a progress bar when more than this many bytes must be hashed (on a terminal).
PROGRESS_BYTES = 256 << 20

_CACHE_FORMAT = "modelzoo-verified"
_ENABLED: ContextVar[bool] = ContextVar("modelzoo_verify_shards", default=True)


class _Record(BaseModel):
    """What a cache entry records of one shard: its stat key and the sha256 it hashed to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int
    device: int
    sha256: str


class _CacheFile(BaseModel):
    """Contents of ``.verified.json``."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["modelzoo-verified"] = _CACHE_FORMAT
    version: Literal[1] = 1
    files: dict[str, _Record]


@dataclass
class VerifyReport:
    """What :func:`check_shards` did.

    Attributes:
        manifest: the zoo's manifest.
        files: shards checked.
        hashed: shards read and hashed (the others were vouched for by a record).
        hashed_bytes: bytes hashed.
        cache_written: whether ``.verified.json`` was (re)written.
        seconds: wall time of the check.
    """

    manifest: Manifest
    files: int = 0
    hashed: int = 0
    hashed_bytes: int = 0
    cache_written: bool = False
    seconds: float = 0.0


#: ``(zoo folder, shard path) -> record``: shards verified by this process.
_MEMO: dict[tuple[str, str], _Record] = {}


def clear_memo() -> None:
    """Forget what this process verified (the next check trusts only ``.verified.json``)."""
    _MEMO.clear()


@contextlib.contextmanager
def verification(enabled: bool = True) -> Iterator[None]:
    """Turn shard verification on or off for the calls inside (``verify=None`` follows it)."""
    token = _ENABLED.set(bool(enabled))
    try:
        yield
    finally:
        _ENABLED.reset(token)


def verification_enabled() -> bool:
    """Whether calls that take ``verify=None`` verify shards here (default: yes)."""
    return _ENABLED.get()


def resolve_verify(verify: bool | None) -> bool:
    """``verify``, or the current :func:`verification` setting when it is ``None``."""
    return _ENABLED.get() if verify is None else bool(verify)


def shard_path(root: Path, rel: str) -> Path:
    """``root / rel`` for a shard path of a manifest; refuses paths that leave the folder.

    Raises:
        CorruptZooError: an absolute path or one with ``..`` (a damaged or hostile manifest).
    """
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or not p.parts or "\\" in rel:
        raise CorruptZooError(f"zoo.json of {root} lists shard {rel!r} outside the zoo folder; "
                              "the manifest is damaged or hostile: re-download the zoo")
    return root.joinpath(*p.parts)


def _key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def _record(st: os.stat_result, sha256: str) -> _Record:
    return _Record(size=st.st_size, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns,
                   inode=st.st_ino, device=st.st_dev, sha256=sha256)


def _vouches(rec: _Record | None, st: os.stat_result, want: str) -> bool:
    return rec is not None and rec.sha256 == want and (
        rec.size, rec.mtime_ns, rec.ctime_ns, rec.inode, rec.device) == _key(st)


def _read_cache(root: Path) -> dict[str, _Record]:
    """Records of ``.verified.json``; anything unreadable counts as no cache (it only costs
    a re-hash)."""
    path = root / VERIFIED_NAME
    try:
        if path.stat().st_size > MAX_CACHE_BYTES:
            return {}
        return _CacheFile.model_validate_json(path.read_bytes()).files
    except (OSError, ValueError, ValidationError):
        return {}


def _read_only(root: Path) -> bool:
    """Whether the zoo folder is not to be written: no write permission for this process, or
    no write bit at all in its mode (a folder marked read-only is left alone even by root)."""
    try:
        mode = root.stat().st_mode
    except OSError:
        return True
    return not os.access(root, os.W_OK) or not mode & (stat.S_IWUSR | stat.S_IWGRP
                                                        | stat.S_IWOTH)


def _write_cache(root: Path, files: dict[str, _Record]) -> bool:
    """Write ``.verified.json`` atomically; False (nothing written) where the folder is
    read-only (see :func:`_read_only`) or the disk refuses."""
    if _read_only(root):
        return False
    body = _CacheFile(files=dict(sorted(files.items()))).model_dump(mode="json")
    try:
        atomic_write_bytes(root / VERIFIED_NAME, (json.dumps(body, indent=0) + "\n").encode())
    except StorageError:
        return False
    return True


def _mismatch(root: Path, f: FileEntry, got: str) -> ShardChecksumError:
    return ShardChecksumError(
        f"shard {f.path} of zoo {root} is corrupt: sha256 {got[:12]}... != recorded "
        f"{f.sha256[:12]}... in {MANIFEST_NAME}, so its data is not the zoo its manifest (and "
        "any task pin) describes. Re-download or rebuild the zoo (`zoo validate "
        f"{root}` re-checks every shard); --no-verify skips this check, and results are then "
        "marked unverified.", shard=f.path, zoo=str(root))


def check_shards(
    path: str | Path,
    manifest: Manifest | None = None,
    *,
    splits: Iterable[str] | None = None,
    use_cache: bool = True,
    progress: bool | None = None,
) -> VerifyReport:
    """Check the shards of ``splits`` (default: all) against the manifest's checksums.

    Args:
        path: zoo folder.
        manifest: its manifest (read from ``path`` if not given).
        splits: only the shards of these splits.
        use_cache: trust records (memo, ``.verified.json``) for unchanged shards; False
            re-hashes every shard (fresh records are still written).
        progress: show a progress bar over the bytes to hash (None: on a terminal, when
            more than :data:`PROGRESS_BYTES` must be hashed).

    Returns:
        What was checked and hashed.

    Raises:
        ShardChecksumError: a shard is missing or its checksum differs (the first one, in
            manifest order).
        CorruptZooError: no valid manifest, or a shard path outside the zoo folder.
    """
    t0 = time.perf_counter()
    root = Path(path)
    manifest = manifest or read_manifest(root)
    wanted = None if splits is None else set(splits)
    entries = [f for f in manifest.files if wanted is None or f.split in wanted]
    key_root = str(root.resolve())
    stored = _read_cache(root)
    report = VerifyReport(manifest=manifest, files=len(entries))
    todo: list[tuple[FileEntry, Path, os.stat_result]] = []
    fresh: dict[str, _Record] = {}
    for f in entries:
        p = shard_path(root, f.path)
        try:
            st = p.stat()
        except OSError:
            raise ShardChecksumError(
                f"shard {f.path} listed in {MANIFEST_NAME} is missing from {root} (an "
                "incomplete copy or download?): re-download or rebuild the zoo",
                shard=f.path, zoo=str(root)) from None
        memo = _MEMO.get((key_root, f.path))
        if use_cache and (_vouches(memo, st, f.sha256) or _vouches(stored.get(f.path), st,
                                                                    f.sha256)):
            if memo is not None and not _vouches(stored.get(f.path), st, f.sha256):
                fresh[f.path] = memo  # vouched for by the memo only: persist it
            continue
        todo.append((f, p, st))
    total = sum(st.st_size for _, _, st in todo)
    show = progress if progress is not None else (None if total > PROGRESS_BYTES else False)
    bar = None
    if show is not False and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, unit="B", unit_scale=True, leave=False,
                   desc=f"verify {manifest.name}", disable=None if show is None else False)
    try:
        for f, p, st in todo:
            started = time.time_ns()
            got = file_sha256(p)
            report.hashed += 1
            report.hashed_bytes += st.st_size
            if bar is not None:
                bar.update(st.st_size)
            if got != f.sha256:
                _MEMO.pop((key_root, f.path), None)
                raise _mismatch(root, f, got)
            try:
                after = p.stat()
            except OSError:
                continue
            changed = max(after.st_mtime_ns, after.st_ctime_ns)
            if _key(after) == _key(st) and started - changed > RACY_NS:
                rec = _record(after, got)
                _MEMO[(key_root, f.path)] = rec
                fresh[f.path] = rec
    finally:
        if bar is not None:
            bar.close()
    if fresh:
        current = {f.path for f in manifest.files}
        keep = {k: v for k, v in stored.items() if k in current}  # other splits' records
        report.cache_written = _write_cache(root, {**keep, **fresh})
    report.seconds = time.perf_counter() - t0
    return report


def verify_zoo(
    path: str | Path,
    manifest: Manifest | None = None,
    *,
    splits: Iterable[str] | None = None,
    use_cache: bool = True,
) -> Manifest:
    """Check every shard (of ``splits``) against its recorded sha256; return the manifest.

    Unchanged shards verified before are not re-hashed (see the module docstring for what
    that cache can and cannot vouch for); ``use_cache=False`` re-hashes every shard.

    Raises:
        ShardChecksumError: a shard is missing or its checksum differs.
        CorruptZooError: no valid manifest.
    """
    return check_shards(path, manifest, splits=splits, use_cache=use_cache).manifest


def open_manifest(
    path: str | Path, *, verify: bool | None = None, splits: Iterable[str] | None = None
) -> Manifest:
    """The manifest of the zoo at ``path``, its shards (of ``splits``) verified first unless
    ``verify`` is False (None: the current :func:`verification` setting, on by default).

    Raises:
        ShardChecksumError: a shard is missing or its checksum differs.
        CorruptZooError: no valid manifest.
    """
    if resolve_verify(verify):
        return verify_zoo(path, splits=splits)
    return read_manifest(path)
