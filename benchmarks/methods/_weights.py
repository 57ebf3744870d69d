"""Shared helpers: the weight matrix and layer layout of a split, and the layers of a chain
network (what the weight-space metanetworks read)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import datasets
import numpy as np
import torch

from benchmarks.errors import MethodError
from modelzoo.storage import LayerSpec, iter_weight_batches, weights_tensor
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


def weights_by_architecture(
    dataset: datasets.Dataset,
) -> dict[str, tuple[np.ndarray, torch.Tensor]]:
    """Rows of each architecture of ``dataset`` (of one or several architectures):
    ``{architecture: (row indices in dataset, [rows, P] weights)}``, architectures sorted."""
    if not len(dataset):
        return {}
    archs = np.asarray(dataset.select_columns(["architecture"]).to_pandas()["architecture"])
    out = {}
    for arch in sorted(np.unique(archs).tolist()):
        rows = np.flatnonzero(archs == arch)
        part = dataset if len(rows) == len(dataset) else dataset.select(rows.tolist())
        chunks = list(iter_weight_batches(part))
        w = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        out[str(arch)] = (rows, w.to(torch.float32))
    return out


@dataclass(frozen=True)
class ChainLayer:
    """One Conv / Linear layer of a chain network, read from its layout.

    A Linear layer right after a Flatten of a convolution's ``[C, H, W]`` output is a layer
    of kind ``"flatten"``: its ``[out, C * H * W]`` matrix is read as ``[out, C, H, W]``, one
    ``H x W`` "kernel" per (output unit, input channel) pair, so that permuting the
    convolution's channels permutes whole ``H x W`` blocks (as :mod:`modelzoo.permutation`
    does).

    Attributes:
        kind: ``"linear"``, ``"conv"`` or ``"flatten"``.
        n_out: output units (rows).
        n_in: input units (channels for conv / flatten).
        kernel: spatial size ``(h, w)``; ``(1, 1)`` for a plain linear layer.
        weight: offset of the weight in the flat vector.
        bias: offset of the bias in the flat vector.
    """

    kind: str
    n_out: int
    n_in: int
    kernel: tuple[int, int]
    weight: int
    bias: int

    @property
    def shape(self) -> tuple[int, ...]:
        """The weight as a ``[out, in, h, w]`` (conv / flatten) or ``[out, in]`` tensor."""
        return (self.n_out, self.n_in) if self.kind == "linear" else \
            (self.n_out, self.n_in, *self.kernel)


def chain_layers(layout: Sequence[LayerSpec], architecture: str = "") -> list[ChainLayer]:
    """The layers of a chain of Conv2d / Linear layers, each with a bias (MLP, CNN-s, CNN-l,
    the CTC CNN: activations, pooling, global average pooling and Flatten in between).

    Raises:
        MethodError: anything else (ResNets: skip connections and BatchNorm; layers without
            a bias; 1-D or 3-D convolutions), with what is supported.
    """
    def refuse(why: str) -> MethodError:
        return MethodError(
            f"architecture {architecture or '?'}: {why}; weight-space metanetworks here read "
            "chains of Conv2d / Linear layers with biases (MLP, CNN-s, CNN-l, CTC CNN); "
            "ResNets (skip connections, BatchNorm) are out of scope")

    from modelzoo.architectures import ARCHITECTURES

    if architecture in ARCHITECTURES and not ARCHITECTURES.get(architecture).permutable:
        raise refuse("its layers are not a chain")
    specs = list(layout)
    if len(specs) % 2 or not specs:
        raise refuse("the layout is not (weight, bias) pairs")
    layers: list[ChainLayer] = []
    for w, b in zip(specs[::2], specs[1::2], strict=True):
        if len(w.shape) not in (2, 4) or b.shape != (w.shape[0],):
            raise refuse(f"{w.name!r} {w.shape} / {b.name!r} {b.shape} is not a weight "
                         "followed by its bias")
        n_out, n_in = w.shape[0], w.shape[1]
        kind, kernel = ("conv", (w.shape[2], w.shape[3])) if len(w.shape) == 4 else \
            ("linear", (1, 1))
        prev = layers[-1] if layers else None
        if prev is not None and n_in != prev.n_out:
            spatial = n_in // prev.n_out
            side = math.isqrt(spatial)
            if kind != "linear" or prev.kind != "conv" or n_in % prev.n_out or side**2 != spatial:
                raise refuse(f"{w.name!r} takes {n_in} inputs but the layer before has "
                             f"{prev.n_out} units")
            kind, kernel, n_in = "flatten", (side, side), prev.n_out
        layers.append(ChainLayer(kind, n_out, n_in, kernel, w.offset, b.offset))
    return layers
