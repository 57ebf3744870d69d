"""Image datasets the initialization and generation tasks train and evaluate on.

``load_image_data(name)`` returns fixed train/test tensors. Base sources come from
``modelzoo.sources.load_source`` (same partitions and normalisation as the zoos were trained
with, so zoo-recorded accuracies and benchmark accuracies are comparable).
*Derived* sources are transforms of a base source that keep its shape and classes, so that a
zoo's architecture can be fine-tuned on them as a "new" dataset without any download:
``digits-transposed`` (images transposed: same pixels statistics, new spatial structure).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from modelzoo.sources import load_source


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


def _base(name: str, data_dir: str | None) -> ImageData:
    """A registered source of :mod:`modelzoo.sources` (its fixed train / test partitions)."""
    src = load_source(name, data_dir=data_dir)
    return ImageData(src.name, src.x_train, src.y_train, src.x_test, src.y_test,
                     src.num_classes, src.fingerprint)


def _transposed(d: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    return d.x_train.transpose(-1, -2).contiguous(), d.x_test.transpose(-1, -2).contiguous()


#: Derived sources: name -> (base source, transform of (x_train, x_test)).
DERIVED: dict[str, tuple[str, Callable[[ImageData], tuple[torch.Tensor, torch.Tensor]]]] = {
    "digits-transposed": ("digits", _transposed),
}


@functools.lru_cache(maxsize=8)
def load_image_data(name: str, data_dir: str | None = None) -> ImageData:
    """Load a source (or a derived source) as train/test tensors (cached per process).

    Args:
        name: a ``modelzoo.sources`` name or a key of :data:`DERIVED`.
        data_dir: where non-bundled sources live (see ``modelzoo.sources.load_source``).

    Raises:
        UnknownNameError, SourceNotFoundError: from ``modelzoo.sources``.
    """
    if name in DERIVED:
        base_name, fn = DERIVED[name]
        base = load_image_data(base_name, data_dir)
        xtr, xte = fn(base)
        return ImageData(name, xtr, base.y_train, xte, base.y_test, base.num_classes,
                         _fingerprint(xtr, xte))
    return _base(name, data_dir)
