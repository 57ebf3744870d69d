"""Augmentations: function-preserving neuron permutations, Gaussian noise, random erasing.

Permutations work on the flat weight vector of a zoo layout: :func:`permutation_spec` derives,
from the layout of a chain network (Conv/Linear layers in sequence, with element-wise or
per-channel ops in between, including Conv -> Flatten -> Linear), which tensors and axes each
hidden unit touches. :func:`random_permutation` then draws one permutation per hidden layer
and returns a gather index ``idx`` with ``permuted = flat[idx]``: the same permutation is applied
to the rows of a layer (weight, bias, per-channel 1-D tensors) and to the matching input
columns of the next layer (blocks of ``H*W`` columns after a Flatten), so the permuted network
computes exactly the same function. As in SANE, the permutation is an index map, so it composes
with the token gather and costs one indexing operation per sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from modelzoo.errors import ZooError
from modelzoo.storage.layout import LayerSpec, layout_size

__all__ = [
    "PermutationSpec",
    "add_noise",
    "permutation_spec",
    "permute_vector",
    "random_erase",
    "random_permutation",
]


@dataclass(frozen=True)
class _Member:
    """A tensor touched by a hidden layer's permutation, viewed as ``[outer, n, inner]``."""

    offset: int
    outer: int
    inner: int


@dataclass(frozen=True)
class _Group:
    size: int
    members: tuple[_Member, ...]


@dataclass(frozen=True)
class PermutationSpec:
    """Which parts of the flat vector each hidden layer's unit permutation moves.

    Attributes:
        n_params: flat vector length.
        groups: one group per permutable hidden layer.
    """

    n_params: int
    groups: tuple[_Group, ...]

    @property
    def sizes(self) -> tuple[int, ...]:
        """Number of units of each permutable hidden layer."""
        return tuple(g.size for g in self.groups)


def permutation_spec(layout: Sequence[LayerSpec]) -> PermutationSpec:
    """Derive the permutation structure of a chain network from its layout.

    The layout must be a chain of weight layers (``ndim >= 2``: Conv/Linear), each optionally
    with a bias and followed by per-channel 1-D tensors (e.g. BatchNorm) of its width. The last
    weight layer's outputs (the classes) are never permuted.

    Raises:
        ZooError: the layout is not such a chain (e.g. ResNets with skip connections).
    """
    specs = list(layout)
    weights = [i for i, s in enumerate(specs) if len(s.shape) >= 2]
    if not weights:
        raise ZooError("layout has no weight matrices to permute")
    groups: list[_Group] = []
    for gi, wi in enumerate(weights[:-1]):
        w = specs[wi]
        nxt = specs[weights[gi + 1]]
        n = w.shape[0]
        members = [_Member(w.offset, 1, w.numel // n)]
        for s in specs[wi + 1 : weights[gi + 1]]:  # bias, BN params/buffers of this width
            if s.numel != n:
                raise ZooError(
                    f"cannot permute {s.name!r} (shape {s.shape}) between layers of width {n}: "
                    "the architecture is not a simple chain"
                )
            members.append(_Member(s.offset, 1, 1))
        fan_in = nxt.shape[1]
        if fan_in % n:
            raise ZooError(
                f"input width {fan_in} of {nxt.name!r} is not a multiple of the {n} units of "
                f"{w.name!r}: the architecture is not a simple chain (skip connections?)"
            )
        members.append(_Member(nxt.offset, nxt.shape[0], nxt.numel // (nxt.shape[0] * n)))
        groups.append(_Group(n, tuple(members)))
    # tensors after the last weight layer must be its own (bias)
    last = specs[weights[-1]]
    for s in specs[weights[-1] + 1 :]:
        if s.numel != last.shape[0]:
            raise ZooError(f"unexpected tensor {s.name!r} after the last layer {last.name!r}")
    return PermutationSpec(layout_size(specs), tuple(groups))


def random_permutation(
    spec: PermutationSpec, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random function-preserving permutation as a gather index ``[P]`` (int64)."""
    idx = torch.arange(spec.n_params, dtype=torch.int64)
    for g in spec.groups:
        perm = torch.randperm(g.size, generator=generator)
        for m in g.members:
            numel = m.outer * g.size * m.inner
            seg = idx[m.offset : m.offset + numel].view(m.outer, g.size, m.inner)
            idx[m.offset : m.offset + numel] = seg[:, perm, :].reshape(-1)
    return idx


def permute_vector(vector: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Apply a permutation index to a flat vector (or batch ``[..., P]``)."""
    return vector[..., index]


def add_noise(
    tokens: torch.Tensor,
    *,
    sigma: float,
    multiplicative: bool = True,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian noise: ``w * (1 + sigma * eps)`` (multiplicative) or ``w + sigma * eps``.

    Padding (``mask`` False) stays zero.
    """
    eps = torch.randn(tokens.shape, generator=generator, dtype=tokens.dtype)
    out = tokens * (1.0 + sigma * eps) if multiplicative else tokens + sigma * eps
    return out * mask if mask is not None else out


def random_erase(
    tokens: torch.Tensor,
    *,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Erase one random rectangle of a ``[T, S]`` token window (random erasing, Zhong et al.).

    The area is drawn uniformly from ``scale`` (fraction of ``T*S``) and the aspect ratio
    log-uniformly from ``ratio``; after 10 failed draws the window is returned unchanged.
    """
    t, s = tokens.shape[-2:]
    area = t * s
    log_r = torch.log(torch.tensor(ratio, dtype=torch.float64))
    for _ in range(10):
        u = torch.rand(4, generator=generator, dtype=torch.float64)
        target = area * (scale[0] + (scale[1] - scale[0]) * float(u[0]))
        aspect = float(torch.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1]))
        h = round((target * aspect) ** 0.5)
        w = round((target / aspect) ** 0.5)
        if 0 < h <= t and 0 < w <= s:
            i = int(u[2] * (t - h + 1))
            j = int(u[3] * (s - w + 1))
            out = tokens.clone()
            out[..., i : i + h, j : j + w] = value
            return out
    return tokens
