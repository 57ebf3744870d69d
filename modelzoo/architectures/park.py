"""``park_cnn``: the CNNs of CNN Wild Park (Kofinas et al. 2024, "Graph Neural Networks for
Learning Equivariant Representations of Neural Networks").

Each model draws its own depth, widths, kernel sizes, per-layer activations and skip
connections: ``n`` convolutions (``channels[i] -> channels[i+1]``, kernel ``kernel_size[i]``,
``stride[i]``, ``padding[i]``), each followed by its activation; ``residual[i] = j >= 0`` adds
the (activated) output of layer ``j`` to the pre-activation of layer ``i`` on the channels
they share. Then global average pooling and one dense layer. The parameter names
(``layers.i.weight``, ``fc.weight``) are those of the published checkpoints, so a state dict
loads as is. ``zoo import wildpark`` records each model's options in its architecture entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from modelzoo.architectures.registry import register_arch

#: Activation names of CNN Wild Park (``none``: identity).
PARK_ACTIVATIONS = {
    "relu": F.relu, "gelu": F.gelu, "tanh": torch.tanh, "sigmoid": torch.sigmoid,
    "leaky_relu": F.leaky_relu, "leakyrelu": F.leaky_relu, "none": lambda x: x,
}  # fmt: skip


class ParkCNN(nn.Module):
    """A CNN Wild Park network (see the module docstring)."""

    def __init__(
        self, *, channels: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int],
        padding: Sequence[int], residual: Sequence[int], activations: Sequence[str],
        num_classes: int,
    ) -> None:
        super().__init__()
        n = len(channels) - 1
        if not n or not (len(kernel_size) == len(stride) == len(padding) == len(residual)
                         == len(activations) == n):
            raise ValueError("park_cnn needs one kernel_size, stride, padding, residual and "
                             f"activation per layer ({n} layers)")
        bad = [a for a in activations if a not in PARK_ACTIVATIONS]
        if bad:
            raise ValueError(f"unknown activations {bad}; known: {', '.join(PARK_ACTIVATIONS)}")
        for i, r in enumerate(residual):
            if r >= 0 and not r < i - 1:
                raise ValueError(f"layer {i}: a residual must come from a layer before {i - 1}")
        self.channels, self.residual, self.activations = list(channels), list(residual), \
            list(activations)
        self.layers = nn.ModuleList(
            nn.Conv2d(channels[i], channels[i + 1], kernel_size[i], stride=stride[i],
                      padding=padding[i]) for i in range(n))  # fmt: skip
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        saved: dict[int, torch.Tensor] = {}
        for i, layer in enumerate(self.layers):
            x = layer(x)
            j = self.residual[i]
            if j >= 0:
                ch = min(self.channels[j + 1], self.channels[i + 1])
                x = torch.cat([x[:, :ch] + saved[j][:, :ch], x[:, ch:]], dim=1)
            x = PARK_ACTIVATIONS[self.activations[i]](x)
            if i in self.residual:
                saved[i] = x
        return self.fc(self.flatten(self.global_pool(x)))


@register_arch(description="CNN Wild Park CNN: per-model depth, widths, kernels, activations "
               "and skips", stackable=False, permutable=False)
def park_cnn(
    *, in_channels: int, num_classes: int, image_size: int, activation: str, dropout: float,
    channels: Sequence[int] = (16, 16), kernel_size: Sequence[int] = (3, 3),
    stride: Sequence[int] | None = None, padding: Sequence[int] | None = None,
    residual: Sequence[int] | None = None, activations: Sequence[str] | None = None,
) -> nn.Module:
    """A CNN Wild Park network; ``channels`` are the hidden widths (after ``in_channels``).

    ``activations`` default to ``activation`` (a comma-separated list is split per layer);
    strides to 1, paddings to ``kernel // 2``, residuals to none.
    """
    n = len(channels)
    if activations is None:
        names = activation.split(",")
        activations = names if len(names) == n else [names[0]] * n
    return ParkCNN(
        channels=[in_channels, *channels], kernel_size=list(kernel_size),
        stride=list(stride) if stride is not None else [1] * n,
        padding=list(padding) if padding is not None else [k // 2 for k in kernel_size],
        residual=list(residual) if residual is not None else [-1] * n,
        activations=list(activations), num_classes=num_classes)  # fmt: skip
