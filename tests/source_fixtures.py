"""Tiny files of every file-based source in its real on-disk format (test helpers).

``make_pools`` draws random images and labels of a source's shape; ``WRITERS[name]`` writes
them where ``modelzoo.sources`` looks for that source.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np

from modelzoo.sources import SOURCES

N_TRAIN, N_TEST = 20, 10

Pools = dict[str, tuple[np.ndarray, np.ndarray]]


def make_pools(name: str, seed: int = 0) -> Pools:
    """Random uint8 images and labels of the source's shape (smooth for JPEG sources)."""
    spec = SOURCES.get(name)
    rng = np.random.default_rng(seed)
    c, h, w = spec.in_shape
    pools = {}
    for pool, n in (("train", N_TRAIN), ("test", N_TEST)):
        y = rng.integers(0, spec.num_classes, n).astype(np.int64)
        y[:2] = [0, spec.num_classes - 1]  # both ends of the label range
        if name == "tiny_imagenet":  # flat colours survive JPEG almost exactly
            colours = rng.integers(20, 235, (n, c, 1, 1), dtype=np.uint8)
            x = np.broadcast_to(colours, (n, c, h, w)).copy()
        else:
            x = rng.integers(0, 256, (n, c, h, w), dtype=np.uint8)
        pools[pool] = (x, y)
    return pools


def _write_idx(path: Path, arr: np.ndarray, gz: bool) -> None:
    data = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data += arr.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def write_mnist_like(folder: str) -> Callable[[Path, Pools, bool], None]:
    def write(root: Path, pools: Pools, gz: bool = True) -> None:
        raw = root / folder / "raw"
        for pool, prefix in (("train", "train"), ("test", "t10k")):
            x, y = pools[pool]
            _write_idx(raw / f"{prefix}-images-idx3-ubyte", x[:, 0], gz)
            _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8), gz)

    return write


def _cifar_pickle(path: Path, x: np.ndarray, y: np.ndarray, label_key: bytes) -> None:
    batch = {
        b"batch_label": b"testing batch 1 of 1",
        label_key: [int(v) for v in y],
        b"data": x.reshape(len(x), -1),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(x))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_cifar10(root: Path, pools: Pools, gz: bool = False) -> None:
    x, y = pools["train"]
    for i, (xs, ys) in enumerate(zip(np.array_split(x, 5), np.array_split(y, 5), strict=True), 1):
        _cifar_pickle(root / "cifar-10-batches-py" / f"data_batch_{i}", xs, ys, b"labels")
    _cifar_pickle(root / "cifar-10-batches-py" / "test_batch", *pools["test"], b"labels")


def write_cifar100(root: Path, pools: Pools, gz: bool = False) -> None:
    for pool in ("train", "test"):
        _cifar_pickle(root / "cifar-100-python" / pool, *pools[pool], b"fine_labels")


def write_svhn(root: Path, pools: Pools, gz: bool = False) -> None:
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    for pool in ("train", "test"):
        x, y = pools[pool]
        y_mat = np.where(y == 0, 10, y).astype(np.uint8)[:, None]  # SVHN stores 0 as 10
        scipy.io.savemat(root / f"{pool}_32x32.mat", {"X": x.transpose(2, 3, 1, 0), "y": y_mat})


def write_tiny_imagenet(root: Path, pools: Pools, gz: bool = False) -> None:
    """Writes the tree and reorders ``pools`` in place to the reader's (sorted) order."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    wnids = [f"n{1000 + 7 * i:08d}" for i in range(200)]
    (base / "val" / "images").mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")  # file order != class
    x, y = pools["train"]
    order = np.argsort(y, kind="stable")
    pools["train"] = (x[order], y[order])
    for j, (img, label) in enumerate(zip(*pools["train"], strict=True)):
        folder = base / "train" / wnids[label] / "images"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{wnids[label]}_{j:03d}.JPEG")
    lines = []
    for j, (img, label) in enumerate(zip(*pools["test"], strict=True)):
        Image.fromarray(img.transpose(1, 2, 0)).save(base / "val" / "images" / f"val_{j:03d}.JPEG")
        lines.append(f"val_{j:03d}.JPEG\t{wnids[label]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


WRITERS: dict[str, Callable[..., None]] = {
    "mnist": write_mnist_like("MNIST"),
    "fashion_mnist": write_mnist_like("FashionMNIST"),
    "svhn": write_svhn,
    "cifar10": write_cifar10,
    "cifar100": write_cifar100,
    "tiny_imagenet": write_tiny_imagenet,
}
