"""Dense-matmul forward for populations of small CNNs/MLPs (population trainer, CPU).

On small images (the 8x8 ``digits`` zoos) a convolution is a small linear map: its Toeplitz
matrix ``T`` (``out_features x in_features``) has only a few thousand entries per model. This
module runs every layer of a plain ``nn.Sequential`` as one batched matmul over all models:

* activations are kept "feature-major", ``[models, features, batch]`` with features in
  ``(channel, row, column)`` order, so ``nn.Flatten`` is free and linear layers are ``W @ h``;
* each model's ``T`` is built from its kernel by indexing (every entry of ``T`` is one kernel
  element or zero), and the backward sums each kernel element's entries of ``dL/dT``;
* a ``MaxPool2d``/``AvgPool2d`` with ``kernel == stride`` that follows a convolution is fused:
  the convolution's output positions are ordered window-slot-major, so pooling is a reduction
  over one tensor dimension (positions the pool drops are never computed). The bias is added
  after the pool when the pool follows the convolution directly (a per-channel constant
  commutes with max and mean).

Matmuls run at several times the speed of CPU grouped convolutions on these shapes, which is
what makes a population of tiny models fast. Results equal ``vmap(functional_call)`` within
float tolerance (``tests/test_training.py``); max pooling routes the gradient of tied maxima
to the first one, as ``nn.MaxPool2d`` does. :meth:`DenseStack.build` returns ``None`` when a
network has layers this path does not cover or a Toeplitz matrix would be too large; the
trainer then uses the grouped channels_last path (``stacked.py``) or ``vmap``.

A model's numbers are bit-identical in any group and with any thread count (tested), because
every op computes a model's elements the same way whatever else is in the tensor: batched
matmuls over at least two models (MKL gives each matrix the same bits for any batch size
and thread count, measured up to 4,096-long reductions; a batch of one takes other kernels,
so singleton groups and blocks are avoided), Toeplitz matrices by indexing rather than a
matmul whose long reduction BLAS may split between threads, reductions only along a
dimension within one model, and activations from :mod:`modelzoo.training.invariant`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from modelzoo.training.invariant import position_independent
from modelzoo.training.stacked import ELEMENTWISE, plain_sequential

#: A convolution runs as a dense matmul only if its Toeplitz matrix has at most this many
#: entries per model (a 5x5 convolution from 1 to 8 channels on 8x8 inputs has 32,768).
DENSE_MAX_ENTRIES = 1 << 16


class _MaxOverSlots(torch.autograd.Function):
    """``amax`` over dim 2 of ``[M, C, Q, R]``; backward routes the gradient to the first max.

    With ``inplace`` the backward reuses the input's storage for the gradient: only valid when
    no other autograd node saved the input (it is the private output of the convolution) and
    the graph is backpropagated once (the trainer never retains it).
    """

    @staticmethod
    def forward(ctx, v: torch.Tensor, inplace: bool) -> torch.Tensor:  # type: ignore[override]
        out = v.amax(2)
        ctx.save_for_backward(v, out)
        ctx.inplace = inplace
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        v, out = ctx.saved_tensors
        mask = v.eq_(out.unsqueeze(2)) if ctx.inplace else (v == out.unsqueeze(2)).to(v.dtype)
        # tied maxima (constant background patches give equal outputs): keep the first slot,
        # clearing each slot where an earlier one already holds the max (0/1 floats, in place)
        taken = mask[:, :, 0]
        for q in range(1, mask.shape[2]):
            slot = mask[:, :, q]
            slot.addcmul_(slot, taken, value=-1.0)
            if q + 1 < mask.shape[2]:
                taken = taken + slot if q == 1 else taken.add_(slot)
        return mask.mul_(g.unsqueeze(2)), None


def _conv_out_size(
    size: tuple[int, int], k: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int],
    dil: tuple[int, int],
) -> tuple[int, int]:
    """Output height and width of a convolution (``nn.Conv2d``'s formula)."""
    return tuple(  # type: ignore[return-value]
        (size[a] + 2 * pad[a] - dil[a] * (k[a] - 1) - 1) // stride[a] + 1 for a in (0, 1))


def _shift_tensor(
    k: tuple[int, int], stride: tuple[int, int], pad: tuple[int, int], dil: tuple[int, int],
    size: tuple[int, int], window: tuple[int, int],
) -> tuple[torch.Tensor, tuple[int, int]]:
    """0/1 tensor ``D[tap, out_pos, in_pos]`` of a convolution, and the pooled output size.

    Output positions are ordered ``(slot_row, slot_col, pooled_row, pooled_col)`` for pooling
    windows of ``window`` (``(1, 1)``: plain row-major positions).
    """
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (h, w), (qh, qw) = k, stride, pad, dil, size, window
    ho, wo = _conv_out_size((h, w), k, stride, pad, dil)
    hp, wp = ho // qh, wo // qw
    qi, qj, pi, pj, ki, kj = torch.meshgrid(
        *(torch.arange(n) for n in (qh, qw, hp, wp, kh, kw)), indexing="ij")
    oh, ow = pi * qh + qi, pj * qw + qj
    ih, iw = oh * sh - ph + ki * dh, ow * sw - pw + kj * dw
    valid = (ih >= 0) & (ih < h) & (iw >= 0) & (iw < w)
    out_pos = ((qi * qw + qj) * hp + pi) * wp + pj
    d = torch.zeros(kh * kw, qh * qw * hp * wp, h * w)
    d[(ki * kw + kj)[valid], out_pos[valid], (ih * w + iw)[valid]] = 1.0
    return d, (hp, wp)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _pool_window(layer: nn.Module, size: tuple[int, int]) -> tuple[str, tuple[int, int]] | None:
    """(``"max"``/``"mean"``, window) of a pool this path can fuse, else None."""
    if isinstance(layer, nn.AdaptiveAvgPool2d) and _pair(layer.output_size) == (1, 1):
        return "mean", size
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        k = _pair(layer.kernel_size)
        stride = _pair(layer.stride if layer.stride is not None else layer.kernel_size)
        if k != stride or _pair(layer.padding) != (0, 0) or layer.ceil_mode:
            return None
        if isinstance(layer, nn.MaxPool2d):
            return ("max", k) if _pair(layer.dilation) == (1, 1) else None
        return ("mean", k) if layer.divisor_override is None else None
    return None


#: ``step(params)`` binds a layer to the stacked parameters and returns ``h -> h``; the bound
#: function may be applied to several input chunks (evaluation builds each matrix once).
Step = Callable[[dict[str, torch.Tensor]], Callable[[torch.Tensor], torch.Tensor]]


@dataclass
class DenseStack:
    """A plain ``nn.Sequential`` compiled into batched matmuls over stacked models.

    Attributes:
        steps: per layer, ``params -> (h -> h)`` on feature-major activations.
        widest: the largest number of features of any activation (sizes evaluation chunks).
    """

    steps: list[Step]
    widest: int

    @classmethod
    def build(cls, model: nn.Module, in_shape: tuple[int, ...]) -> DenseStack | None:
        """Plan ``model`` for inputs of shape ``in_shape`` (``(C, H, W)``), or None."""
        if not plain_sequential(model) or len(in_shape) != 3:
            return None
        layers = list(model.named_children())
        c, h, w = in_shape
        shape: tuple[int, ...] = (c, h, w)  # (C, H, W) map or (F,) flat
        steps: list[Step] = []
        widest = c * h * w
        pending: tuple[int, Step] | None = None  # a conv's fused pool: (layer index, step)
        i = 0
        while i < len(layers):
            name, layer = layers[i]
            if isinstance(layer, nn.Conv2d):
                if (len(shape) != 3 or layer.groups != 1 or layer.padding_mode != "zeros"
                        or isinstance(layer.padding, str) or shape[0] != layer.in_channels):
                    return None
                # look past elementwise layers for a pool to fuse
                j = i + 1
                while j < len(layers) and isinstance(layers[j][1], ELEMENTWISE):
                    j += 1
                k, st = _pair(layer.kernel_size), _pair(layer.stride)
                pd, dl = _pair(layer.padding), _pair(layer.dilation)
                ho, wo = _conv_out_size(shape[1:], k, st, pd, dl)  # type: ignore[arg-type]
                pool = _pool_window(layers[j][1], (ho, wo)) if j < len(layers) else None
                window = pool[1] if pool else (1, 1)
                d, (hp, wp) = _shift_tensor(k, st, pd, dl, shape[1:], window)  # type: ignore[arg-type]
                o, cin = layer.out_channels, layer.in_channels
                if o * d.shape[1] * cin * d.shape[2] > DENSE_MAX_ENTRIES or hp * wp == 0:
                    return None
                q = window[0] * window[1]
                bias_now = layer.bias is not None and not (pool and j == i + 1)
                steps.append(_conv_step(name, d, o, cin, bias_now))
                widest = max(widest, o * d.shape[1])
                if pool:
                    # right after the conv the pool's input is the matmul's private output,
                    # so its backward may reuse that storage
                    bias_after = None if bias_now or layer.bias is None else name
                    pending = (j, _pool_step(pool[0], q, o, bias_after, inplace=j == i + 1))
                    shape = (o, hp, wp)
                else:
                    shape = (o, ho, wo)
            elif pending is not None and i == pending[0]:
                steps.append(pending[1])
                pending = None
            elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
                return None  # a pool not right after a convolution
            elif isinstance(layer, nn.AdaptiveAvgPool2d):
                if len(shape) != 3 or _pair(layer.output_size) != (1, 1):
                    return None
                steps.append(_mean_positions_step(shape[0]))
                shape = (shape[0], 1, 1)
            elif isinstance(layer, nn.Flatten):
                if layer.start_dim != 1 or layer.end_dim != -1:
                    return None
                shape = (math.prod(shape),)
            elif isinstance(layer, nn.Linear):
                if math.prod(shape) != layer.in_features:
                    return None
                steps.append(_linear_step(name, layer.bias is not None))
                shape = (layer.out_features,)
                widest = max(widest, layer.out_features)
            elif isinstance(layer, ELEMENTWISE):
                steps.append(_elementwise_step(layer))
            else:
                return None
            i += 1
        if len(shape) != 1:
            return None
        return cls(steps, widest)

    def __call__(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Logits ``[M, K, B]`` of the stacked models.

        Args:
            params: stacked parameters ``{name: [M, ...]}``.
            x: ``[M, B, C, H, W]`` (one batch per model) or ``[B, C, H, W]`` (shared).
        """
        return self.bind(params)(x)

    def bind(self, params: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        """The forward for fixed ``params``: per-layer matrices are built once, on first use."""
        layers = [step(params) for step in self.steps]

        def forward(x: torch.Tensor) -> torch.Tensor:
            if x.dim() == 5:
                h = x.reshape(x.shape[0], x.shape[1], -1).transpose(1, 2)  # [M, F, B]
            else:
                h = x.reshape(x.shape[0], -1).T  # [F, B], shared by all models
            for layer in layers:
                h = layer(h)
            return h

        return forward


def _toeplitz_index(d: torch.Tensor, cin: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index tensors that build a convolution's Toeplitz matrix from its kernel, and back.

    Returns ``(taps, entries, valid)``: ``taps[out_pos * C * P_in + c * P_in + in_pos]`` is
    the kernel element ``c * KK + tap`` a row of the matrix holds there, or ``C * KK`` (a zero
    appended to the kernel) where the convolution has no tap; ``entries[c * KK + tap, out_pos]``
    is where kernel element ``c * KK + tap`` sits in a row (any entry where ``valid`` is 0).
    """
    kk, p_out, p_in = d.shape
    tap, out_pos, in_pos = d.nonzero(as_tuple=True)  # one tap at most per (out_pos, in_pos)
    taps = torch.full((p_out, cin, p_in), cin * kk, dtype=torch.long)
    entries = torch.zeros(cin, kk, p_out, dtype=torch.long)
    valid = torch.zeros(cin, kk, p_out)
    for c in range(cin):
        taps[out_pos, c, in_pos] = c * kk + tap
        entries[c, tap, out_pos] = (out_pos * cin + c) * p_in + in_pos
        valid[c, tap, out_pos] = 1.0
    return taps.flatten(), entries.reshape(cin * kk, p_out), valid.reshape(cin * kk, p_out)


class _Toeplitz(torch.autograd.Function):
    """Toeplitz rows ``[R, P_out * C * P_in]`` of kernels ``[R, C * KK]`` (one row per model
    and output channel), by indexing; the backward sums each kernel element's ``P_out`` entries.

    A matmul against the 0/1 shift tensor computes the same matrix, but its backward is a
    reduction over all ``P_out * C * P_in`` entries of a row, and BLAS may split such a long
    reduction between threads (MKL's AVX-512 sgemm does, for 4,096 entries): the kernel's
    gradient then depends on the thread count. Here each gradient entry is a sum over one
    contiguous row of ``P_out`` entries (torch's reductions give each output a fixed
    order), so it is the same for any number of models and threads.
    """

    @staticmethod
    def forward(ctx, w: torch.Tensor, taps: torch.Tensor, entries: torch.Tensor,  # type: ignore[override]
                valid: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(entries, valid)
        return torch.nn.functional.pad(w, (0, 1)).index_select(1, taps)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:  # type: ignore[override]
        entries, valid = ctx.saved_tensors
        r, (n, p_out) = g.shape[0], entries.shape
        per_entry = g.reshape(r, -1).index_select(1, entries.flatten()).view(r, n, p_out)
        return per_entry.mul_(valid).sum(2), None, None, None


def _conv_step(name: str, d: torch.Tensor, o: int, cin: int, bias: bool) -> Step:
    kk, p_out, p_in = d.shape
    index = _toeplitz_index(d, cin)

    def bind(params: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        wt = params[f"{name}.weight"]
        m = wt.shape[0]
        b = params[f"{name}.bias"].unsqueeze(-1) if bias else None
        toeplitz: list[torch.Tensor] = []

        def matrix() -> torch.Tensor:  # [M, O*P_out, C*P_in], built on first use
            if not toeplitz:
                taps, entries, valid = (t.to(wt.device) for t in index)
                t = _Toeplitz.apply(wt.reshape(m * o, cin * kk), taps, entries, valid)
                toeplitz.append(t.view(m, o * p_out, cin * p_in))
            return toeplitz[0]

        def apply(h: torch.Tensor) -> torch.Tensor:
            n = h.shape[-1]
            if h.dim() == 2:  # shared inputs: im2col once for all models, then one matmul
                cols = torch.matmul(d.to(h.device), h.reshape(cin, 1, p_in, n))
                y = torch.mm(wt.reshape(m * o, cin * kk), cols.reshape(cin * kk, p_out * n))
                y = y.view(m, o * p_out, n)
            else:
                y = torch.bmm(matrix(), h)  # [M, O*P_out, B]
            if b is not None:
                y = (y.view(m, o, -1) + b).view(m, o * p_out, n)
            return y

        return apply

    return bind


def _pool_step(kind: str, q: int, o: int, bias: str | None, *, inplace: bool) -> Step:
    """Reduce ``q`` window slots of ``o`` channels (``bias``: the conv whose bias comes after)."""

    def bind(params: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        b = params[f"{bias}.bias"].unsqueeze(-1) if bias is not None else None

        def apply(h: torch.Tensor) -> torch.Tensor:
            m, n = h.shape[0], h.shape[-1]
            v = h.reshape(m, o, q, -1)  # [M, O, Q, P_pooled * B]
            if kind == "max" and q > 1:
                out = _MaxOverSlots.apply(v, inplace)
            else:
                out = v.amax(2) if kind == "max" else v.mean(2)
            if b is not None:
                out = out + b
            return out.reshape(m, -1, n)

        return apply

    return bind


def _mean_positions_step(channels: int) -> Step:
    def bind(params: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def apply(h: torch.Tensor) -> torch.Tensor:
            m, n = h.shape[0], h.shape[-1]
            return h.reshape(m, channels, -1, n).mean(2)

        return apply

    return bind


def _linear_step(name: str, bias: bool) -> Step:
    def bind(params: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        w = params[f"{name}.weight"]  # [M, out, in]
        b = params[f"{name}.bias"].unsqueeze(-1) if bias else None

        def apply(h: torch.Tensor) -> torch.Tensor:
            if b is None:
                return torch.matmul(w, h)
            return torch.baddbmm(b, w, h) if h.dim() == 3 else torch.matmul(w, h) + b

        return apply

    return bind


def _elementwise_step(layer: nn.Module) -> Step:
    fn = position_independent(layer)  # the same bits wherever a model sits in the tensor

    def bind(params: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        return fn

    return bind


__all__ = ["DENSE_MAX_ENTRIES", "DenseStack"]
