"""Readers for the original on-disk formats (torchvision folder layout), parsed with numpy.

Every reader takes the folder that holds the files and returns a :class:`RawSource`: uint8
images ``[N, C, H, W]`` and int64 labels per *pool* (``"train"`` and the official ``"test"``).
Nothing here needs torchvision. CIFAR pickles are read with a restricted unpickler that only
rebuilds numpy arrays, so a hostile file cannot run code.
"""

from __future__ import annotations

import codecs
import gzip
import os
import pickle
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from modelzoo.errors import SourceFormatError


@dataclass(frozen=True)
class RawSource:
    """Parsed arrays of one source dataset, before partitioning and normalisation.

    Attributes:
        pools: ``{"train": (x, y), "test": (x, y)}`` (digits has only ``"train"``); ``x`` is
            uint8 ``[N, C, H, W]``, ``y`` int64 ``[N]``; both read-only.
        origin: where the arrays came from (a path and format), for messages and provenance.
        scale: divide ``x`` by this to get values in ``[0, 1]`` (255, or 16 for digits).
    """

    pools: dict[str, tuple[np.ndarray, np.ndarray]]
    origin: str
    scale: float = 255.0


# --------------------------------------------------------------------------- helpers


def existing(path: Path, *, gz_ok: bool = False) -> Path | None:
    """``path`` if it is a file, else ``path.gz`` when ``gz_ok`` and that is a file."""
    if path.is_file():
        return path
    if gz_ok:
        gz = path.with_name(path.name + ".gz")
        if gz.is_file():
            return gz
    return None


def _open(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _labels(y: Any, path: Path | str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise SourceFormatError(f"{path}: labels must be a 1-D integer array, got {arr.dtype}")
    return arr.astype(np.int64)


# --------------------------------------------------------------------------- MNIST (IDX)

_IDX_UBYTE = 0x08


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (MNIST format; optionally gzip'd) of unsigned bytes.

    Args:
        path: the ``*-ubyte`` or ``*-ubyte.gz`` file.

    Returns:
        The uint8 array with the shape recorded in the header.
    """
    try:
        with _open(path) as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise SourceFormatError(f"cannot read IDX file {path}: {e}") from e
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE:
        raise SourceFormatError(
            f"{path} is not an IDX file of unsigned bytes (bad magic number {data[:4].hex()}); "
            "re-download it"
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(data) < header:
        raise SourceFormatError(f"{path}: truncated IDX header")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if len(data) - header != int(np.prod(shape)):
        raise SourceFormatError(
            f"{path}: IDX header says shape {shape} but the file holds {len(data) - header} "
            "values (truncated download?)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def read_mnist_folder(root: Path) -> RawSource:
    """Read torchvision's ``MNIST/raw`` (or ``FashionMNIST/raw``) folder."""
    pools = {}
    for pool, (img_name, lab_name) in MNIST_FILES.items():
        img_path = existing(root / img_name, gz_ok=True)
        lab_path = existing(root / lab_name, gz_ok=True)
        assert img_path is not None and lab_path is not None  # checked by the caller
        x = read_idx(img_path)
        y = read_idx(lab_path)
        if x.ndim != 3 or y.ndim != 1:
            raise SourceFormatError(f"{img_path}: expected [N,H,W] images and [N] labels")
        pools[pool] = (x[:, None, :, :], _labels(y, lab_path))
    return RawSource(pools=pools, origin=f"{root} (IDX files)")


# --------------------------------------------------------------------------- CIFAR (pickles)


def _allowed_globals() -> dict[tuple[str, str], Any]:
    reconstruct = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, whatever its module
    scalar = np.float64(0).__reduce__()[0]  # numpy's multiarray.scalar
    allowed: dict[tuple[str, str], Any] = {
        ("_codecs", "encode"): codecs.encode,  # bytes in protocol-2 pickles written by Python 3
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the numpy globals needed to rebuild arrays.

    Any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`pickle.UnpicklingError` before it can be called.
    """

    _ALLOWED = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102
        try:
            return self._ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy arrays are allowed"
            ) from None


def safe_unpickle(path: Path) -> Any:
    """Load a pickle written by the CIFAR authors without allowing arbitrary code.

    Args:
        path: the pickle file.

    Returns:
        The unpickled object (a dict of arrays / lists for CIFAR batches).

    Raises:
        SourceFormatError: the file is not a pickle or references a forbidden global.
    """
    try:
        with open(path, "rb") as f:
            return RestrictedUnpickler(f, encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise SourceFormatError(f"{path}: unsafe or invalid pickle: {e}") from e
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, OSError) as e:
        raise SourceFormatError(f"{path}: not a valid CIFAR pickle: {e}") from e


def _cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    obj = safe_unpickle(path)
    if not isinstance(obj, dict):
        raise SourceFormatError(f"{path}: expected a dict, got {type(obj).__name__}")
    batch = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    if "data" not in batch or label_key not in batch:
        raise SourceFormatError(
            f"{path}: missing keys 'data'/'{label_key}' (found {sorted(map(str, batch))})"
        )
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise SourceFormatError(f"{path}: 'data' must be uint8 [N, 3072], got {data.shape}")
    y = _labels(batch[label_key], path)
    if len(y) != len(data):
        raise SourceFormatError(f"{path}: {len(data)} images but {len(y)} labels")
    return data.reshape(-1, 3, 32, 32), y


CIFAR10_FILES = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CIFAR100_FILES = {"train": ("train",), "test": ("test",)}


def _read_cifar(root: Path, files: dict[str, tuple[str, ...]], label_key: str) -> RawSource:
    pools = {}
    for pool, names in files.items():
        parts = [_cifar_batch(root / n, label_key) for n in names]
        pools[pool] = (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
        )
    return RawSource(pools=pools, origin=f"{root} (CIFAR python pickles)")


def read_cifar10_folder(root: Path) -> RawSource:
    """Read ``cifar-10-batches-py/{data_batch_1..5,test_batch}``."""
    return _read_cifar(root, CIFAR10_FILES, "labels")


def read_cifar100_folder(root: Path) -> RawSource:
    """Read ``cifar-100-python/{train,test}`` with the 100 fine labels."""
    return _read_cifar(root, CIFAR100_FILES, "fine_labels")


# --------------------------------------------------------------------------- SVHN (.mat)

SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}


def read_svhn_folder(root: Path) -> RawSource:
    """Read SVHN cropped digits ``{train,test}_32x32.mat`` (label 10 means digit 0)."""
    import scipy.io

    pools = {}
    for pool, name in SVHN_FILES.items():
        path = root / name
        try:
            mat = scipy.io.loadmat(path)
        except (ValueError, NotImplementedError, OSError, TypeError) as e:
            raise SourceFormatError(f"{path}: not a MATLAB v5 SVHN file: {e}") from e
        if "X" not in mat or "y" not in mat:
            raise SourceFormatError(f"{path}: missing variables 'X'/'y'")
        x = np.asarray(mat["X"])
        if x.dtype != np.uint8 or x.ndim != 4 or x.shape[:3] != (32, 32, 3):
            raise SourceFormatError(f"{path}: 'X' must be uint8 [32, 32, 3, N], got {x.shape}")
        y = _labels(np.asarray(mat["y"]).reshape(-1), path)
        y = np.where(y == 10, 0, y)
        pools[pool] = (np.ascontiguousarray(x.transpose(3, 2, 0, 1)), y)
    return RawSource(pools=pools, origin=f"{root} (SVHN .mat files)")


# --------------------------------------------------------------------------- Tiny-ImageNet

TINY_FILES = ("wnids.txt", "val/val_annotations.txt")


def _read_images(paths: list[Path], size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    def one(path: Path) -> np.ndarray:
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as e:
            raise SourceFormatError(f"cannot decode image {path}: {e}") from e
        if arr.shape != (size, size, 3):
            raise SourceFormatError(f"{path}: expected a {size}x{size} image, got {arr.shape}")
        return arr

    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # PIL decodes without the GIL
        for i, arr in enumerate(pool.map(one, paths, chunksize=64)):
            out[i] = arr.transpose(2, 0, 1)
    return out


def read_tiny_imagenet_folder(root: Path, *, num_classes: int = 200) -> RawSource:
    """Read ``tiny-imagenet-200``: class ``k`` is the k-th wnid in sorted order.

    The official validation set (labelled) becomes the ``"test"`` pool; the official test set
    has no labels and is ignored.
    """
    wnids = [w.strip() for w in (root / "wnids.txt").read_text().split() if w.strip()]
    if len(wnids) != num_classes or len(set(wnids)) != num_classes:
        raise SourceFormatError(
            f"{root / 'wnids.txt'}: expected {num_classes} distinct class ids, got {len(wnids)}"
        )
    index = {w: i for i, w in enumerate(sorted(wnids))}
    train_paths: list[Path] = []
    train_y: list[int] = []
    for wnid in sorted(wnids):
        files = sorted((root / "train" / wnid / "images").glob("*.JPEG"))
        train_paths += files
        train_y += [index[wnid]] * len(files)
    if not train_paths:
        raise SourceFormatError(f"no images under {root / 'train'}/<wnid>/images/*.JPEG")
    val_paths: list[Path] = []
    val_y: list[int] = []
    ann = root / "val" / "val_annotations.txt"
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) < 2 or cols[1] not in index or "/" in cols[0] or "\\" in cols[0]:
            raise SourceFormatError(f"{ann}:{lineno}: bad annotation line {line!r}")
        val_paths.append(root / "val" / "images" / cols[0])
        val_y.append(index[cols[1]])
    order = np.argsort([p.name for p in val_paths], kind="stable")
    val_paths = [val_paths[i] for i in order]
    val_y = [val_y[i] for i in order]
    return RawSource(
        pools={
            "train": (_read_images(train_paths, 64), np.asarray(train_y, dtype=np.int64)),
            "test": (_read_images(val_paths, 64), np.asarray(val_y, dtype=np.int64)),
        },
        origin=f"{root} (Tiny-ImageNet JPEG folder; official val used as test)",
    )


def required_present(root: Path, names: Iterable[str], *, gz_ok: bool = False) -> bool:
    """Whether every file in ``names`` exists under ``root`` (or as ``.gz`` when allowed)."""
    return all(existing(root / n, gz_ok=gz_ok) is not None for n in names)
