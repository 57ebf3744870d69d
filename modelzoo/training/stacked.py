"""A faster stacked forward for plain ``nn.Sequential`` CNNs/MLPs (population trainer).

``vmap`` turns each model's convolution into one grouped convolution over a ``[B, M*C, H, W]``
tensor in the default (NCHW) layout, where CPU kernels for grouped convs and pooling are slow.
This module runs the same grouped operations explicitly in ``channels_last`` layout (2-3x
faster per step on CPU for the Model Zoos CNNs) and uses batched matmuls for linear layers.
Results equal the vmap path within float tolerance (the trainer tests compare both with the
per-model loop). Unlike vmap's, they are bit-identical for a model in any group and with any
thread count (tested): convolution biases are added outside oneDNN (whose bias gradient
depends on the threads) with a pairwise-summed gradient, activations come from
:mod:`modelzoo.training.invariant`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from modelzoo.training.invariant import add_channel_bias, position_independent

#: Layers applied elementwise: any layout of the activations works (also used by dense.py).
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.LeakyReLU, nn.SiLU, nn.Identity,
               nn.Dropout)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)


def plain_sequential(model: nn.Module) -> bool:
    """Whether ``model`` is an ``nn.Sequential`` without buffers (the stacked paths' guard)."""
    return isinstance(model, nn.Sequential) and not any(True for _ in model.buffers())


def supports_stacked(model: nn.Module) -> bool:
    """Whether ``model`` is a plain Sequential of layers this forward handles."""
    return plain_sequential(model) and all(
        isinstance(m, (nn.Conv2d, nn.Linear, nn.Flatten, *ELEMENTWISE, *_POOLS)) for m in model)


def _model_major(h: torch.Tensor, b: int, m: int) -> torch.Tensor:
    """``[B, M*C, H, W]`` maps -> ``[M, B, C*H*W]``, each model's features in (C, H, W) order."""
    return h.reshape(b, m, -1).transpose(0, 1).contiguous()


def stacked_forward(
    model: nn.Sequential, params: dict[str, torch.Tensor], x: torch.Tensor, m: int
) -> torch.Tensor:
    """Forward ``m`` stacked models.

    Args:
        model: the architecture (its layers' hyperparameters; its own weights are not used).
        params: stacked parameters ``{name: [m, ...]}``.
        x: ``[m, B, C, H, W]`` (one batch per model) or ``[B, C, H, W]`` (shared by all).
        m: number of models.

    Returns:
        logits ``[m, B, K]``.
    """
    if x.dim() == 4:  # the same inputs for every model
        x = x.unsqueeze(0).expand(m, *x.shape)
    b = x.shape[1]
    h = x.transpose(0, 1).reshape(b, -1, *x.shape[3:]).contiguous(
        memory_format=torch.channels_last
    )
    for name, layer in model.named_children():
        if isinstance(layer, nn.Conv2d):
            w, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), None, stride=layer.stride,
                         padding=layer.padding, dilation=layer.dilation, groups=m * layer.groups)
            if bias is not None:  # not fused: oneDNN's bias gradient depends on the threads
                h = add_channel_bias(h, bias.reshape(-1))
        elif isinstance(layer, nn.Flatten):
            h = _model_major(h, b, m)
        elif isinstance(layer, nn.Linear):
            if h.dim() == 4:  # a Linear right after pooling to 1x1 without Flatten
                h = _model_major(h, b, m)
            w, bias = params[f"{name}.weight"], params.get(f"{name}.bias")
            wt = w.transpose(1, 2)
            h = torch.bmm(h, wt) if bias is None else torch.baddbmm(bias.unsqueeze(1), h, wt)
        else:
            h = position_independent(layer)(h)
    return h  # [m, B, K]
