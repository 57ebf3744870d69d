"""Layer layout: how a flat weight vector maps onto a module's state_dict."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from pydantic import BaseModel, ConfigDict

from modelzoo.errors import ZooError


class LayerSpec(BaseModel):
    """One float tensor of a state_dict, in flat-vector order.

    Attributes:
        name: state_dict key.
        shape: tensor shape.
        kind: ``"param"`` for learnable tensors, ``"buffer"`` for float buffers (BN stats).
        offset: start index in the flat vector.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    shape: tuple[int, ...]
    kind: str = "param"
    offset: int = 0

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


def layer_layout(module: torch.nn.Module) -> list[LayerSpec]:
    """Return the layout of ``module``'s floating-point state (params and float buffers)."""
    params = {n for n, _ in module.named_parameters()}
    specs: list[LayerSpec] = []
    offset = 0
    for name, t in module.state_dict().items():
        if not t.is_floating_point():
            continue  # e.g. BatchNorm num_batches_tracked
        spec = LayerSpec(
            name=name,
            shape=tuple(t.shape),
            kind="param" if name in params else "buffer",
            offset=offset,
        )
        specs.append(spec)
        offset += spec.numel
    return specs


def layout_size(layout: Sequence[LayerSpec]) -> int:
    """Total number of elements covered by ``layout``."""
    return sum(s.numel for s in layout)


def flatten_state_dict(
    state: Mapping[str, torch.Tensor], layout: Sequence[LayerSpec], *, batch: int | None = None
) -> torch.Tensor:
    """Concatenate the tensors of ``state`` named in ``layout`` into one float32 vector.

    With ``batch``, every tensor has a leading dimension of that size (stacked models) and the
    result is ``[batch, P]``, one flat vector per model.
    """
    lead = (-1,) if batch is None else (batch, -1)
    try:
        parts = [state[s.name].detach().reshape(*lead).to(torch.float32) for s in layout]
    except KeyError as e:
        raise ZooError(f"state_dict has no entry {e.args[0]!r} required by the layout") from None
    if not parts:
        return torch.zeros(0) if batch is None else torch.zeros(batch, 0)
    return torch.cat(parts, dim=-1)


def unflatten_weights(
    vector: torch.Tensor, layout: Sequence[LayerSpec]
) -> dict[str, torch.Tensor]:
    """Split a flat vector (or a batch ``[N, P]``) back into named tensors (views)."""
    n = layout_size(layout)
    if vector.shape[-1] != n:
        raise ZooError(
            f"weight vector has {vector.shape[-1]} values but the layout needs {n}"
        )
    lead = tuple(vector.shape[:-1])
    return {
        s.name: vector[..., s.offset : s.offset + s.numel].reshape(*lead, *s.shape)
        for s in layout
    }


def load_flat_weights(
    module: torch.nn.Module, vector: torch.Tensor, layout: Sequence[LayerSpec]
) -> torch.nn.Module:
    """Load a flat vector into ``module`` in place and return it.

    Raises:
        ZooError: if the vector length or the module's tensors do not match the layout.
    """
    state = unflatten_weights(torch.as_tensor(vector), layout)
    missing, unexpected = module.load_state_dict(state, strict=False)
    float_missing = [k for k in missing if module.state_dict()[k].is_floating_point()]
    if float_missing or unexpected:
        raise ZooError(
            f"layout does not match the module: missing {float_missing}, unexpected {unexpected}"
        )
    return module
