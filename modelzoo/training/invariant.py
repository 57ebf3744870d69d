"""Ops whose result for one model does not depend on where the model sits in a population.

The population trainer keeps all models in one tensor, so an op's rounding at an element
must not depend on the element's place in it, or a model's bits would change with its
position in the group, the group size and the thread count. Two kinds of torch CPU kernels
break this (torch 2.13, measured on an AVX-512 Xeon; ``tests/test_invariant.py`` checks the
replacements):

* Elementwise kernels run a vectorised loop over each thread's chunk of a tensor and a scalar
  loop over the chunk's last ``numel % (2 * vector width)`` elements. For most ops the two
  loops round alike, but ``sigmoid``, ``gelu`` and ``silu`` (and their backward kernels)
  call other ``exp``/``erf`` code in the scalar loop: 4%, 32% and 4% of float32 inputs get
  another last bit there. The functions here compose those activations from kernels whose
  two loops agree: ``exp``, ``erf``, ``tanh`` (torch's vectorised math library also takes
  the tail) and exactly rounded arithmetic, backward passes written out the same way. They
  are as accurate as torch's own (tested against float64); ReLU, LeakyReLU and tanh are
  already position-independent and stay as they are.
* A sum over the rows of a ``[rows, columns]`` tensor (torch's "outer" reduction) adds a
  column's rows in an order that depends on how many columns there are (blocks of 64, 32 and
  16 vectorised columns, then scalar ones). oneDNN's convolution bias gradient, a sum over
  batch and positions, also splits that sum between threads. :func:`add_channel_bias` adds
  a per-channel bias whose gradient is a pairwise sum of rows, one elementwise add per level,
  the same for every column. Sums along a tensor's last (contiguous) dimension are exact
  in this sense already: each row's order depends only on its length (measured).

The per-model reference loop keeps torch's own modules.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

_SQRT1_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


#: ``exp`` of an argument below this is a float32 subnormal (slow on x86, and ~0 anyway)
_EXP_FLOOR = -87.0


def _sigmoid_values(x: torch.Tensor) -> torch.Tensor:
    return torch.neg(x).exp_().add_(1.0).reciprocal_()


class Sigmoid(torch.autograd.Function):
    """``1 / (1 + exp(-x))``; backward ``g * (1 - y) * y`` (torch's ``sigmoid_backward``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = _sigmoid_values(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (y,) = ctx.saved_tensors
        return torch.ops.aten.sigmoid_backward(g, y)


class SiLU(torch.autograd.Function):
    """``x * sigmoid(x)``; backward ``g * s * (1 + x * (1 - s))``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        s = _sigmoid_values(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, s = ctx.saved_tensors
        return torch.rsub(s, 1.0).mul_(x).add_(1.0).mul_(s).mul_(g)


class GELU(torch.autograd.Function):
    """``x * Phi(x)`` with the exact normal CDF ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``, as
    ``(x + x * erf) / 2``; backward ``g * (Phi(x) + x * phi(x))``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        e = torch.mul(x, _SQRT1_2).erf_()
        ctx.save_for_backward(x, e)
        return torch.addcmul(x, x, e).mul_(0.5)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, e = ctx.saved_tensors
        pdf = torch.mul(x, x).mul_(-0.5).clamp_(min=_EXP_FLOOR).exp_().mul_(_INV_SQRT_2PI)
        return pdf.mul_(x).add_(e, alpha=0.5).add_(0.5).mul_(g)


class GELUTanh(torch.autograd.Function):
    """``x * (1 + tanh(u)) / 2`` with ``u = sqrt(2/pi) (x + 0.044715 x^3)``
    (``nn.GELU(approximate="tanh")``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        t = torch.mul(x, x).mul_(_GELU_CUBIC).add_(1.0).mul_(x).mul_(_SQRT_2_PI).tanh_()
        ctx.save_for_backward(x, t)
        return torch.addcmul(x, x, t).mul_(0.5)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, t = ctx.saved_tensors
        du = torch.mul(x, x).mul_(3.0 * _GELU_CUBIC).add_(1.0).mul_(_SQRT_2_PI)
        inner = torch.mul(t, t).neg_().add_(1.0).mul_(du).mul_(x).add_(t).add_(1.0).mul_(0.5)
        return inner.mul_(g)


def position_independent(layer: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``layer`` (an elementwise module) as a function whose every output element depends only
    on its input element: the functions above for sigmoid/GELU/SiLU, the layer itself else."""
    if isinstance(layer, nn.Sigmoid):
        return Sigmoid.apply
    if isinstance(layer, nn.SiLU):
        return SiLU.apply
    if isinstance(layer, nn.GELU):
        return GELUTanh.apply if layer.approximate == "tanh" else GELU.apply
    return layer


def column_sums(x: torch.Tensor) -> torch.Tensor:
    """Sums over the rows of ``x [R, C]``: pairwise, one elementwise add of two row blocks
    per level, so a column's sum does not depend on ``C`` or the thread count."""
    while x.shape[0] > 1:
        half = x.shape[0] // 2
        s = x[:half] + x[half:2 * half]
        if x.shape[0] % 2:
            s[0] += x[2 * half]
        x = s
    return x[0]


class _ChannelBias(torch.autograd.Function):
    """``h + bias`` per channel of ``h [B, C, H, W]`` (any layout); backward by
    :func:`column_sums` over the ``B * H * W`` positions."""

    @staticmethod
    def forward(ctx, h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return h + bias.view(1, -1, 1, 1)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        rows = g.permute(0, 2, 3, 1).reshape(-1, g.shape[1])  # a view in channels_last
        return g, column_sums(rows)


def add_channel_bias(h: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``h [B, C, H, W] + bias [C]`` with a position-independent bias gradient."""
    return _ChannelBias.apply(h, bias)


__all__ = ["GELU", "GELUTanh", "SiLU", "Sigmoid", "add_channel_bias", "column_sums",
           "position_independent"]
