"""Source datasets: registry, fixed partitions, normalisation, fingerprint, in-process cache."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from modelzoo.errors import RecipeError, SourceNotFoundError
from modelzoo.registry import Registry
from modelzoo.sources.formats import RawSource, SourceFormatError, existing, required_present
from modelzoo.sources.hf import hf_cache_folder, is_hf_copy, read_hf_cache, read_hf_copy

PARTITION_SEED = 0
"""Seed of the validation hold-out (and, plus one, of the ``max_train`` subset)."""
VALIDATION_FRACTION = 0.1
FINGERPRINT_VERSION = "modelzoo.sources/v1"
SPLIT_NAMES = ("train", "validation", "test")


@dataclass(frozen=True)
class LocalLayout:
    """Where a source's original files go under the data directory.

    Attributes:
        folders: candidate folders relative to the data dir (``"."`` is the data dir itself).
        files: files that must all exist in the folder.
        read: parses the folder into a :class:`RawSource`.
        gz_ok: whether each file may also be present gzip'd as ``<file>.gz``.
    """

    folders: tuple[str, ...]
    files: tuple[str, ...]
    read: Callable[[Path], RawSource]
    gz_ok: bool = False


@dataclass(frozen=True)
class SourceSpec:
    """A registered source dataset.

    Attributes:
        name: registry name (``load_source(name)``).
        description: one line for listings.
        num_classes: number of classes (labels are ``0..num_classes-1``).
        in_shape: image shape ``(channels, height, width)``.
        url: official download page or archive (shown when the files are missing).
        local: the original file layout under the data dir (``None`` for bundled sources).
        hub_id: Hugging Face Hub dataset id of a copy (read offline only).
        hub_config: Hub config name, where the repo has several.
        bundled: returns the data without any files (sklearn digits).
        partition: ``"holdout"`` (official test set; a seeded 10% of train as validation) or
            ``"stratified"`` (one pool split 60/20/20, stratified, fixed random state).
    """

    name: str
    description: str
    num_classes: int
    in_shape: tuple[int, int, int]
    url: str = ""
    local: LocalLayout | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    bundled: Callable[[], RawSource] | None = field(default=None, repr=False)
    partition: str = "holdout"

    def expected_paths(self, data_dir: str | Path | None = None) -> list[Path]:
        """The original files this source reads, in its first candidate folder."""
        if self.local is None:
            return []
        root = _resolve_dir(data_dir) / self.local.folders[0]
        return [(root / f).resolve() for f in self.local.files]

    def where(self, data_dir: str | Path | None = None) -> str:
        """Human-readable description of where the files go (for listings and errors)."""
        if self.bundled is not None:
            return "bundled with scikit-learn (no files needed)"
        base = _resolve_dir(data_dir)
        parts = []
        if self.local is not None:
            root = base / self.local.folders[0]
            gz = " (each may be .gz)" if self.local.gz_ok else ""
            parts.append(f"{root}/{{{','.join(self.local.files)}}}{gz}")
        parts.append(f"or a Hugging Face save_to_disk/parquet copy in {base / self.name}")
        if self.hub_id:
            parts.append(f"or the Hugging Face datasets cache of {self.hub_id!r}")
        return " ".join(parts)


SOURCES: Registry[SourceSpec] = Registry("source dataset", group="modelzoo.sources")


@dataclass(frozen=True, eq=False)
class SourceData:
    """One source dataset with its fixed train/validation/test partition.

    Images are float32 ``[N, C, H, W]``, normalised per channel with the mean and std of the
    (full) train partition; labels are int64.

    Attributes:
        fingerprint: ``"sha256:..."`` over the raw arrays and the partition (including the
            ``max_train`` subset); identical across runs and machines for the same data.
        mean: per-channel mean of the train partition, in ``[0, 1]`` pixel units.
        std: per-channel standard deviation, same units.
        origin: where the data was read from.
        partition: ``{split: (pool, indices)}``: each split's positions in the source pool
            (``"train"``: the official training set, ``"test"``: the official test set; digits
            has a single ``"train"`` pool).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    fingerprint: str
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    origin: str = ""
    partition: dict[str, tuple[str, torch.Tensor]] = field(default_factory=dict)

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)``."""
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    @property
    def image_size(self) -> int:
        """Image height (all sources are square)."""
        return self.in_shape[1]

    @property
    def in_channels(self) -> int:
        """Number of image channels."""
        return self.in_shape[0]

    def sizes(self) -> dict[str, int]:
        """Number of examples per split."""
        return {
            "train": len(self.y_train),
            "validation": len(self.y_val),
            "test": len(self.y_test),
        }

    def __repr__(self) -> str:
        return (
            f"SourceData(name={self.name!r}, in_shape={self.in_shape}, "
            f"num_classes={self.num_classes}, sizes={self.sizes()}, "
            f"fingerprint={self.fingerprint[:19]}...)"
        )


def default_data_dir() -> Path:
    """``$MODELZOO_DATA`` if set, else ``~/.cache/modelzoo/data``."""
    env = os.environ.get("MODELZOO_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "modelzoo" / "data"


def _resolve_dir(data_dir: str | Path | None) -> Path:
    return Path(data_dir if data_dir is not None else default_data_dir()).expanduser().resolve()


def list_sources() -> list[SourceSpec]:
    """All registered source datasets, sorted by name."""
    return [SOURCES.get(n) for n in SOURCES.names()]


# --------------------------------------------------------------------------- locating


def _hf_cache_dirs(data_dir: Path) -> list[Path]:
    import datasets.config

    dirs = [data_dir, Path(datasets.config.HF_DATASETS_CACHE).expanduser().resolve()]
    return list(dict.fromkeys(dirs))


def _missing_message(spec: SourceSpec, data_dir: Path, looked: list[str]) -> str:
    lines = [f"source dataset {spec.name!r} ({spec.description}) was not found. Looked for:"]
    lines += [f"  - {item}" for item in looked]
    how = ["This toolkit never downloads data. To provide it, either:"]
    if spec.local is not None:
        first = data_dir / spec.local.folders[0] / spec.local.files[0]
        gz = " (or .gz)" if spec.local.gz_ok else ""
        how.append(f"  * download {spec.url} and put/unpack the files so that {first}{gz} exists;")
    if spec.hub_id:
        target = data_dir / spec.name
        cfg = f", {spec.hub_config!r}" if spec.hub_config else ""
        how.append(
            "  * or, on a machine with internet access, save the Hugging Face copy there: "
            f'python -c "import datasets; datasets.load_dataset({spec.hub_id!r}{cfg})'
            f'.save_to_disk({str(target)!r})"  (or copy its parquet files into {target});'
        )
    how.append(
        f"  * or point the toolkit at the folder that has the files: --data-dir DIR, or the "
        f"MODELZOO_DATA environment variable (data dir used now: {data_dir})."
    )
    return "\n".join(lines + how)


def _locate(spec: SourceSpec, data_dir: Path) -> RawSource:
    if spec.bundled is not None:
        return spec.bundled()
    looked: list[str] = []
    if spec.local is not None:
        for folder in spec.local.folders:
            root = (data_dir / folder).resolve()
            if required_present(root, spec.local.files, gz_ok=spec.local.gz_ok):
                return spec.local.read(root)
            missing = [
                str(root / f) + ("[.gz]" if spec.local.gz_ok else "")
                for f in spec.local.files
                if existing(root / f, gz_ok=spec.local.gz_ok) is None
            ]
            looked.append(f"original files in {root}: missing {', '.join(missing)}")
    copy_dir = data_dir / spec.name
    channels = spec.in_shape[0]
    if is_hf_copy(copy_dir):
        return read_hf_copy(copy_dir, channels=channels, config=spec.hub_config)
    looked.append(f"a Hugging Face save_to_disk folder or parquet files in {copy_dir}")
    if spec.hub_id:
        caches = _hf_cache_dirs(data_dir)
        for cache in caches:
            if hf_cache_folder(cache, spec.hub_id).is_dir():
                return read_hf_cache(
                    cache, hub_id=spec.hub_id, config=spec.hub_config, channels=channels
                )
        where = " and ".join(str(hf_cache_folder(c, spec.hub_id)) for c in caches)
        looked.append(f"the Hugging Face datasets cache of {spec.hub_id!r}: {where}")
    raise SourceNotFoundError(_missing_message(spec, data_dir, looked))


def _validate(raw: RawSource, spec: SourceSpec) -> None:
    for pool, (x, y) in raw.pools.items():
        where = f"{raw.origin} [{pool}]"
        if x.dtype != np.uint8 or x.ndim != 4 or tuple(x.shape[1:]) != spec.in_shape:
            raise SourceFormatError(
                f"{where}: expected uint8 images of shape [N, {', '.join(map(str, spec.in_shape))}]"
                f" for {spec.name!r}, got {x.dtype} {tuple(x.shape)}"
            )
        if len(x) == 0 or len(x) != len(y):
            raise SourceFormatError(f"{where}: {len(x)} images but {len(y)} labels")
        if y.min() < 0 or y.max() >= spec.num_classes:
            raise SourceFormatError(
                f"{where}: labels must be in 0..{spec.num_classes - 1}, "
                f"got {int(y.min())}..{int(y.max())}"
            )


def _digest(raw: RawSource) -> str:
    h = hashlib.sha256()
    h.update(f"scale={raw.scale!r}".encode())
    for pool in sorted(raw.pools):
        x, y = raw.pools[pool]
        h.update(f"|{pool}|{tuple(x.shape)}|{len(y)}|".encode())
        h.update(memoryview(np.ascontiguousarray(x)).cast("B"))
        h.update(np.ascontiguousarray(y, dtype="<i8").tobytes())
    return h.hexdigest()


class _Prepared(NamedTuple):
    raw: RawSource
    digest: str
    parts: dict[str, tuple[str, np.ndarray]]
    mean: np.ndarray
    std: np.ndarray


@functools.lru_cache(maxsize=4)
def _prepare(name: str, data_dir: str) -> _Prepared:
    """Parsed, validated, read-only arrays of a source with digest, partition and statistics.

    Cached per (name, resolved data dir): repeated loads only build the tensors.
    """
    spec = SOURCES.get(name)
    raw = _locate(spec, Path(data_dir))
    _validate(raw, spec)
    for x, y in raw.pools.values():
        x.setflags(write=False)
        y.setflags(write=False)
    parts = _partition(spec, raw)
    for _, idx in parts.values():
        idx.setflags(write=False)
    pool, train_idx = parts["train"]
    mean, std = _channel_stats(raw.pools[pool][0], train_idx, raw.scale)
    return _Prepared(raw, _digest(raw), parts, mean, std)


def clear_cache() -> None:
    """Forget the parsed arrays cached in this process."""
    _prepare.cache_clear()


# --------------------------------------------------------------------------- partition


def _partition(spec: SourceSpec, raw: RawSource) -> dict[str, tuple[str, np.ndarray]]:
    y = raw.pools["train"][1]
    n = len(y)
    if spec.partition == "stratified":
        from sklearn.model_selection import train_test_split

        rest, test = train_test_split(
            np.arange(n), test_size=0.2, stratify=y, random_state=PARTITION_SEED
        )
        train, val = train_test_split(
            rest, test_size=0.25, stratify=y[rest], random_state=PARTITION_SEED
        )
        return {
            "train": ("train", np.sort(train)),
            "validation": ("train", np.sort(val)),
            "test": ("train", np.sort(test)),
        }
    if n < 2:
        raise SourceFormatError(f"{raw.origin}: need at least 2 training images, got {n}")
    n_val = max(1, int(n * VALIDATION_FRACTION))
    perm = np.random.RandomState(PARTITION_SEED).permutation(n)
    return {
        "train": ("train", np.sort(perm[n_val:])),
        "validation": ("train", np.sort(perm[:n_val])),
        "test": ("test", np.arange(len(raw.pools["test"][1]))),
    }


def _subset(train_idx: np.ndarray, max_train: int) -> np.ndarray:
    perm = np.random.RandomState(PARTITION_SEED + 1).permutation(len(train_idx))
    return np.sort(train_idx[perm[:max_train]])


def _channel_stats(x: np.ndarray, idx: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Exact per-channel mean/std of the uint8 images ``x[idx]`` via 256-bin histograms."""
    channels = x.shape[1]
    counts = np.zeros((channels, 256), dtype=np.int64)
    for start in range(0, len(idx), 4096):  # bounded memory for large sources
        chunk = x[idx[start : start + 4096]]
        for c in range(channels):
            counts[c] += np.bincount(chunk[:, c].ravel(), minlength=256)
    values = np.arange(256, dtype=np.float64) / scale
    mean = np.empty(channels)
    std = np.empty(channels)
    for c in range(channels):
        total = counts[c].sum()
        mean[c] = (counts[c] * values).sum() / total
        var = (counts[c] * (values - mean[c]) ** 2).sum() / total
        std[c] = np.sqrt(var) if var > 0 else 1.0
    return mean, std


def _fingerprint(name: str, digest: str, parts: dict[str, tuple[str, np.ndarray]]) -> str:
    h = hashlib.sha256()
    h.update(f"{FINGERPRINT_VERSION}|{name}|{digest}".encode())
    for split in SPLIT_NAMES:
        pool, idx = parts[split]
        h.update(f"|{split}:{pool}:{len(idx)}|".encode())
        h.update(np.ascontiguousarray(idx, dtype="<i8").tobytes())
    return "sha256:" + h.hexdigest()


# --------------------------------------------------------------------------- public loader


def load_source(
    name: str, *, data_dir: str | Path | None = None, max_train: int | None = None
) -> SourceData:
    """Load a source dataset with its fixed train/validation/test partition.

    Looks, in order, for the original files under ``data_dir`` (torchvision layout), a Hugging
    Face ``save_to_disk``/parquet copy in ``data_dir/<name>``, and the Hugging Face datasets
    cache (offline). Never downloads. Parsed arrays are cached in-process.

    Args:
        name: registry name (``digits``, ``mnist``, ``cifar10``, ...; see ``list_sources()``).
        data_dir: folder holding the data; default :func:`default_data_dir`.
        max_train: keep only this many training examples (a fixed seeded subset).

    Returns:
        The normalised tensors, labels, class count and fingerprint.

    Raises:
        UnknownNameError: ``name`` is not registered (the message suggests close names).
        SourceNotFoundError: no copy of the data was found (the message says where to put it).
        SourceFormatError: a file was found but is malformed or unsafe.
        RecipeError: ``max_train`` is not a positive integer.
    """
    spec = SOURCES.get(name)
    if max_train is not None and (not isinstance(max_train, int) or max_train < 1):
        raise RecipeError(f"max_train must be a positive integer or None, got {max_train!r}")
    key_dir = "" if spec.bundled is not None else str(_resolve_dir(data_dir))
    raw, digest, cached_parts, mean, std = _prepare(spec.name, key_dir)
    parts = dict(cached_parts)
    pool, train_idx = parts["train"]
    if max_train is not None and max_train < len(train_idx):
        parts["train"] = (pool, _subset(train_idx, max_train))

    mean_t = torch.from_numpy(mean).to(torch.float32).view(1, -1, 1, 1)
    std_t = torch.from_numpy(std).to(torch.float32).view(1, -1, 1, 1)

    def tensors(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        pool_name, idx = parts[split]
        x, y = raw.pools[pool_name]
        # a fresh tensor has the canonical NCHW strides; a numpy view with C == 1 may carry
        # strides that torch reads as channels_last, which changes conv kernels and rounding
        xt = torch.empty((len(idx), *x.shape[1:]), dtype=torch.float32)
        xt.copy_(torch.from_numpy(x[idx]))
        xt.div_(raw.scale).sub_(mean_t).div_(std_t)
        return xt, torch.from_numpy(y[idx].astype(np.int64))

    x_train, y_train = tensors("train")
    x_val, y_val = tensors("validation")
    x_test, y_test = tensors("test")
    return SourceData(
        name=spec.name,
        x_train=x_train,
        y_train=y_train,
        x_val=x_val,
        y_val=y_val,
        x_test=x_test,
        y_test=y_test,
        num_classes=spec.num_classes,
        fingerprint=_fingerprint(spec.name, digest, parts),
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
        origin=raw.origin,
        partition={s: (p, torch.from_numpy(i.astype(np.int64))) for s, (p, i) in parts.items()},
    )
