"""Source datasets (temporary digits-only version; replaced by the full package)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class SourceData:
    """A source dataset with fixed partitions."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    fingerprint: str

    @property
    def in_shape(self) -> tuple[int, int, int]:
        """(C, H, W)."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]

    @property
    def in_channels(self) -> int:
        """Channels."""
        return self.in_shape[0]

    @property
    def image_size(self) -> int:
        """Height (= width)."""
        return self.in_shape[1]

    def sizes(self) -> dict[str, int]:
        """Examples per partition."""
        return {"train": len(self.y_train), "validation": len(self.y_val), "test": len(self.y_test)}


def load_source(
    name: str, *, data_dir: str | Path | None = None, max_train: int | None = None
) -> SourceData:
    """Load a source dataset."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=0.2, random_state=0, stratify=y)
    tr, va = train_test_split(tr, test_size=0.25, random_state=0, stratify=y[tr])
    mean, std = x[tr].mean(), x[tr].std()
    x = (x - mean) / std
    fp = hashlib.sha256(x.tobytes() + y.tobytes() + tr.tobytes() + va.tobytes()).hexdigest()
    t = torch.from_numpy
    return SourceData(name, t(x[tr]), t(y[tr]), t(x[va]), t(y[va]), t(x[te]), t(y[te]), 10,
                      "sha256:" + fp)
