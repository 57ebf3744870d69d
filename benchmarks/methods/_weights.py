"""Shared helpers: the weight matrix and layer layout of a split."""

from __future__ import annotations

from collections.abc import Sequence

import datasets
import numpy as np
import torch

from benchmarks.errors import MethodError
from modelzoo.storage import LayerSpec, weights_tensor
from modelzoo.storage.manifest import Manifest


def architecture_of(dataset: datasets.Dataset) -> str | None:
    """The single architecture of ``dataset`` (``None`` when empty).

    Raises:
        MethodError: rows of several architectures (heterogeneous zoo).
    """
    archs = set(dataset.unique("architecture")) if len(dataset) else set()
    if len(archs) > 1:
        raise MethodError(
            f"rows of several architectures ({', '.join(sorted(archs))}): this method needs "
            "one architecture; filter the zoo to one (e.g. its per-architecture config)"
        )
    return next(iter(archs), None)


def layout_of(dataset: datasets.Dataset, manifest: Manifest) -> list[LayerSpec]:
    """The layer layout of a one-architecture split (empty for an empty split)."""
    arch = architecture_of(dataset)
    return [] if arch is None else list(manifest.architectures[arch].layout)


def weights_and_layout(
    dataset: datasets.Dataset, manifest: Manifest
) -> tuple[torch.Tensor, list[LayerSpec]]:
    """``[rows, P]`` weights of a one-architecture split and that architecture's layout."""
    arch = architecture_of(dataset)
    if arch is None:
        return torch.zeros(0, 0), []
    layout = manifest.architectures[arch].layout
    return weights_tensor(dataset), list(layout)


def rows_weights(dataset: datasets.Dataset, rows: Sequence[int] | np.ndarray) -> torch.Tensor:
    """``[len(rows), P]`` weights of some rows of one architecture (also of a heterogeneous
    split, whose rows have different lengths)."""
    return weights_tensor(dataset.select([int(r) for r in rows]))
