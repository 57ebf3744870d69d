"""Image datasets the initialization and generation tasks train and evaluate on.

``load_image_data(name)`` returns fixed train/test tensors. Base sources come from
``modelzoo.sources.load_source`` when that module is available; until then ``digits`` is read
from scikit-learn directly (the small adapter :func:`_sklearn_digits`, to be swapped out).
*Derived* sources are transforms of a base source that keep its shape and classes, so that a
zoo's architecture can be fine-tuned on them as a "new" dataset without any download:
``digits-transposed`` (images transposed: same pixels statistics, new spatial structure).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from benchmarks.errors import BenchmarkError


@dataclass(frozen=True)
class ImageData:
    """Train/test image tensors of one source.

    Attributes:
        name: source name.
        x_train: ``[N, C, H, W]`` float32.
        y_train: ``[N]`` int64.
        x_test: ``[M, C, H, W]`` float32.
        y_test: ``[M]`` int64.
        num_classes: number of classes.
        fingerprint: hash of the data (records exactly what was used).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    fingerprint: str

    @property
    def in_shape(self) -> tuple[int, ...]:
        """``(C, H, W)``."""
        return tuple(self.x_train.shape[1:])


def _fingerprint(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return "sha256:" + h.hexdigest()[:16]


def _sklearn_digits() -> ImageData:
    """sklearn digits, 8x8 grey in [0, 1], a fixed 80/20 train/test partition (seed 0)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32).view(-1, 1, 8, 8)
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    n_train = int(0.8 * len(x))
    tr, te = perm[:n_train], perm[n_train:]
    return ImageData("digits", x[tr], y[tr], x[te], y[te], 10, _fingerprint(x[tr], x[te]))


def _from_modelzoo_sources(name: str) -> ImageData | None:
    """Load ``name`` through ``modelzoo.sources`` if that module exists (else ``None``)."""
    try:
        from modelzoo.sources import load_source  # type: ignore[import-not-found]
    except ImportError:
        return None
    src = load_source(name)
    parts = {}
    for split in ("train", "test"):
        x, y = _split_arrays(src, split)
        parts[split] = (
            torch.as_tensor(np.asarray(x), dtype=torch.float32),
            torch.as_tensor(np.asarray(y), dtype=torch.long),
        )
    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    if xtr.dim() == 3:
        xtr, xte = xtr.unsqueeze(1), xte.unsqueeze(1)
    n_cls = int(getattr(src, "num_classes", int(max(ytr.max(), yte.max())) + 1))
    fp = str(getattr(src, "fingerprint", "") or _fingerprint(xtr, xte))
    return ImageData(name, xtr, ytr, xte, yte, n_cls, fp)


def _split_arrays(src: object, split: str) -> tuple[object, object]:
    """Get (x, y) of one split from a ``modelzoo.sources`` object, tolerating a few shapes."""
    for attr in ("arrays", "tensors"):
        fn = getattr(src, attr, None)
        if callable(fn):
            return fn(split)
    part = src[split] if hasattr(src, "__getitem__") else getattr(src, split)
    if isinstance(part, tuple):
        return part
    return part.x, part.y


def _base(name: str) -> ImageData:
    loaded = _from_modelzoo_sources(name)
    if loaded is not None:
        return loaded
    if name == "digits":
        return _sklearn_digits()
    raise BenchmarkError(
        f"source {name!r} is not available: only 'digits' (and its derived sources "
        f"{', '.join(sorted(DERIVED))}) can be used until modelzoo.sources is installed"
    )


def _transposed(d: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    return d.x_train.transpose(-1, -2).contiguous(), d.x_test.transpose(-1, -2).contiguous()


#: Derived sources: name -> (base source, transform of (x_train, x_test)).
DERIVED: dict[str, tuple[str, Callable[[ImageData], tuple[torch.Tensor, torch.Tensor]]]] = {
    "digits-transposed": ("digits", _transposed),
}


@functools.lru_cache(maxsize=8)
def load_image_data(name: str) -> ImageData:
    """Load a source (or a derived source) as train/test tensors (cached per process).

    Raises:
        BenchmarkError: unknown or unavailable source.
    """
    if name in DERIVED:
        base_name, fn = DERIVED[name]
        base = load_image_data(base_name)
        xtr, xte = fn(base)
        return ImageData(name, xtr, base.y_train, xte, base.y_test, base.num_classes,
                         _fingerprint(xtr, xte))
    return _base(name)
