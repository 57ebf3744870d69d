"""Function-preserving neuron permutations of flat weight vectors, and weight matching.

:func:`permutation_spec` derives, from the layout of a chain network (Conv/Linear layers in
sequence, with element-wise or per-channel ops in between, including Conv -> Flatten ->
Linear), which tensors and axes each hidden unit touches. A permutation of every hidden layer
then becomes one gather index ``idx`` with ``permuted = flat[idx]``: the same permutation is
applied to the rows of a layer (weight, bias, per-channel 1-D tensors such as BatchNorm) and to
the matching input columns of the next layer (blocks of ``H*W`` columns after a Flatten), so
the permuted network computes exactly the same function.

:func:`weight_matching` finds the permutation that brings one model closest to a reference
model (git re-basin weight matching, Ainsworth et al. 2023): for each hidden layer in turn it
solves a linear assignment on the similarity of the units' incoming and outgoing weights, with
the other layers' permutations fixed, until a full pass changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from modelzoo.errors import NotPermutableError, ZooError
from modelzoo.storage.layout import LayerSpec, layout_size

__all__ = [
    "PermutationSpec",
    "architecture_permutation_spec",
    "identity_permutations",
    "permutation_index",
    "permutation_spec",
    "permute_vector",
    "random_permutation",
    "weight_matching",
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
        NotPermutableError: the layout is not such a chain (e.g. ResNets with skip connections).
    """
    specs = list(layout)
    weights = [i for i, s in enumerate(specs) if len(s.shape) >= 2]
    if not weights:
        raise NotPermutableError("layout has no weight matrices to permute")
    groups: list[_Group] = []
    for gi, wi in enumerate(weights[:-1]):
        w = specs[wi]
        nxt = specs[weights[gi + 1]]
        n = w.shape[0]
        members = [_Member(w.offset, 1, w.numel // n)]
        for s in specs[wi + 1 : weights[gi + 1]]:  # bias, BN params/buffers of this width
            if s.numel != n:
                raise NotPermutableError(
                    f"cannot permute {s.name!r} (shape {s.shape}) between layers of width {n}: "
                    "the architecture is not a simple chain"
                )
            members.append(_Member(s.offset, 1, 1))
        fan_in = nxt.shape[1]
        if fan_in % n:
            raise NotPermutableError(
                f"input width {fan_in} of {nxt.name!r} is not a multiple of the {n} units of "
                f"{w.name!r}: the architecture is not a simple chain (skip connections?)"
            )
        members.append(_Member(nxt.offset, nxt.shape[0], nxt.numel // (nxt.shape[0] * n)))
        groups.append(_Group(n, tuple(members)))
    # tensors after the last weight layer must be its own (bias)
    last = specs[weights[-1]]
    for s in specs[weights[-1] + 1 :]:
        if s.numel != last.shape[0]:
            raise NotPermutableError(
                f"unexpected tensor {s.name!r} after the last layer {last.name!r}"
            )
    return PermutationSpec(layout_size(specs), tuple(groups))


def architecture_permutation_spec(name: str, layout: Sequence[LayerSpec]) -> PermutationSpec:
    """The permutation structure of registered architecture ``name`` with this layout.

    Raises:
        NotPermutableError: the registry marks the architecture as not permutable (ResNets:
            skip connections tie the permutations of several layers), or its layout is not a
            chain.
    """
    from modelzoo.architectures import ARCHITECTURES

    if name in ARCHITECTURES and not ARCHITECTURES.get(name).permutable:
        permutable = [n for n in ARCHITECTURES.names() if ARCHITECTURES.get(n).permutable]
        raise NotPermutableError(
            f"architecture {name!r} has no function-preserving neuron permutation in this "
            f"toolkit (skip connections tie its layers); permutable architectures: "
            f"{', '.join(permutable)}"
        )
    try:
        return permutation_spec(layout)
    except NotPermutableError as e:
        raise NotPermutableError(f"architecture {name!r}: {e}") from None


def identity_permutations(spec: PermutationSpec) -> list[torch.Tensor]:
    """One identity permutation (int64 ``arange``) per hidden layer."""
    return [torch.arange(n, dtype=torch.int64) for n in spec.sizes]


def permutation_index(spec: PermutationSpec, perms: Sequence[torch.Tensor]) -> torch.Tensor:
    """The gather index ``[P]`` that applies one unit permutation per hidden layer.

    ``perms[g][i] = j`` means unit ``i`` of hidden layer ``g`` in the permuted network is unit
    ``j`` of the original; ``permute_vector(flat, index)`` is the permuted network.
    """
    if len(perms) != len(spec.groups):
        raise ZooError(f"{len(perms)} permutations given for {len(spec.groups)} hidden layers")
    idx = torch.arange(spec.n_params, dtype=torch.int64)
    for g, perm in zip(spec.groups, perms, strict=True):
        perm = torch.as_tensor(perm, dtype=torch.int64)
        if perm.shape != (g.size,):
            raise ZooError(f"a permutation of {g.size} units has shape {tuple(perm.shape)}")
        for m in g.members:
            numel = m.outer * g.size * m.inner
            seg = idx[m.offset : m.offset + numel].view(m.outer, g.size, m.inner)
            idx[m.offset : m.offset + numel] = seg[:, perm, :].reshape(-1)
    return idx


def random_permutation(
    spec: PermutationSpec, *, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A random function-preserving permutation as a gather index ``[P]`` (int64)."""
    perms = [torch.randperm(g.size, generator=generator) for g in spec.groups]
    return permutation_index(spec, perms)


def permute_vector(vector: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Apply a permutation index to a flat vector (or batch ``[..., P]``)."""
    return vector[..., index]


def _unit_rows(vec: torch.Tensor, g: _Group) -> torch.Tensor:
    """All values of ``vec`` attached to each unit of group ``g``: ``[n, k]``."""
    parts = []
    for m in g.members:
        seg = vec[m.offset : m.offset + m.outer * g.size * m.inner]
        parts.append(seg.view(m.outer, g.size, m.inner).transpose(0, 1).reshape(g.size, -1))
    return torch.cat(parts, dim=1)


def weight_matching(
    spec: PermutationSpec,
    weights: torch.Tensor,
    reference: torch.Tensor,
    *,
    max_iter: int = 100,
) -> list[torch.Tensor]:
    """Permutations that make ``weights`` most similar to ``reference`` (weight matching).

    Coordinate ascent on ``<reference, permuted(weights)>``: each hidden layer's permutation
    is the linear assignment (``scipy.optimize.linear_sum_assignment``) that maximises the
    summed products of its units' incoming and outgoing weights (bias and per-channel tensors
    included) with the reference's, the other layers' current permutations fixed. Layers are
    visited in order; a layer only changes when the objective strictly improves, and the loop
    stops after a pass without change (or ``max_iter`` passes). Deterministic.

    Args:
        spec: permutation structure of the architecture.
        weights: flat weights of the model to align ``[P]``.
        reference: flat weights of the reference model ``[P]``.
        max_iter: maximum passes over the layers.

    Returns:
        One permutation per hidden layer, for :func:`permutation_index`.

    Raises:
        ZooError: the vectors do not match the spec, or are not finite.
    """
    w = torch.as_tensor(weights).detach().to(torch.float64).reshape(-1)
    r = torch.as_tensor(reference).detach().to(torch.float64).reshape(-1)
    if w.numel() != spec.n_params or r.numel() != spec.n_params:
        raise ZooError(
            f"weight vectors of {w.numel()} and {r.numel()} values do not match the "
            f"architecture's {spec.n_params} parameters"
        )
    if not (torch.isfinite(w).all() and torch.isfinite(r).all()):
        raise ZooError("cannot match weights that contain NaN or inf")
    perms = identity_permutations(spec)
    ref_rows = [_unit_rows(r, g) for g in spec.groups]
    for _ in range(max(1, max_iter)):
        changed = False
        for gi, g in enumerate(spec.groups):
            others = list(perms)
            others[gi] = torch.arange(g.size, dtype=torch.int64)
            moved = w[permutation_index(spec, others)]
            sim = (ref_rows[gi] @ _unit_rows(moved, g).T).numpy()  # sim[i, j]: ref i ~ unit j
            _, cols = linear_sum_assignment(sim, maximize=True)
            rows = np.arange(g.size)
            old = perms[gi].numpy()
            gain = sim[rows, cols].sum() - sim[rows, old].sum()
            if gain > 1e-12 * max(1.0, abs(float(sim[rows, old].sum()))):
                perms[gi] = torch.as_tensor(cols, dtype=torch.int64)
                changed = True
        if not changed:
            break
    return perms
