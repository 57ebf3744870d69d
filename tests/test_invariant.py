"""Position-independent activations of the population trainer (modelzoo.training.invariant)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from modelzoo.training.invariant import position_independent

MODULES = [nn.Sigmoid(), nn.SiLU(), nn.GELU(), nn.GELU(approximate="tanh"), nn.Tanh(),
           nn.ReLU(), nn.LeakyReLU()]


def _value_and_grad(f, x: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    y = f(x)
    return y.detach(), torch.autograd.grad(y, x, g)[0]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: f"{type(m).__name__}{m.extra_repr()}")
def test_activation_bits_do_not_depend_on_position(module: nn.Module) -> None:
    """torch runs a strided input through the scalar loop of its CPU kernels and a contiguous
    one through the vector loop (the scalar loop also takes each chunk's tail): forward and
    backward must give the same bits both ways, and for every prefix of a tensor."""
    f = position_independent(module)
    gen = torch.Generator().manual_seed(0)
    t, gt = torch.randn(2, 2 * 100_003, generator=gen) * 4
    with torch.no_grad():
        t[:8] = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 30.0, -30.0, 90.0, -90.0])
    scalar = _value_and_grad(f, t[::2], gt[::2])
    vector = _value_and_grad(f, t[::2].contiguous(), gt[::2].contiguous())
    for a, b in zip(scalar, vector):
        assert torch.equal(a, b)
    x, g = t[::2].contiguous(), gt[::2].contiguous()
    for n in (1, 17, 31, 33, 1000, 65_537, 100_003):
        for a, b in zip(_value_and_grad(f, x[:n], g[:n]), vector):
            assert torch.equal(a, b[:n])
    # the same function as torch's module, as accurate as torch's float32 kernels
    truth = _value_and_grad(module, x.double(), g.double())
    ours, torchs = vector, _value_and_grad(module, x, g)
    for a, b, ref in zip(ours, torchs, truth):
        err_a, err_b = (a.double() - ref).abs(), (b.double() - ref).abs()
        assert err_a.max() <= 1.5 * err_b.max() + 1e-7
        assert err_a.mean() <= 1.5 * err_b.mean() + 1e-9


def test_column_sums_do_not_depend_on_the_number_of_columns() -> None:
    """torch's sum over rows rounds a column by where it falls in blocks of 64/32/16
    vectorised columns; column_sums gives each column the same bits for any width."""
    from modelzoo.training.invariant import column_sums

    x = torch.randn(64 * 7 * 7 + 3, 72, generator=torch.Generator().manual_seed(1))
    full = column_sums(x)
    assert torch.allclose(full, x.double().sum(0).float(), rtol=1e-5, atol=1e-4)
    for c in (1, 8, 24, 56, 64):
        assert torch.equal(column_sums(x[:, :c].contiguous()), full[:c])
        assert torch.equal(column_sums(x[:, -c:]), full[-c:])


def test_channel_bias_gradient_equals_torch_and_ignores_the_other_channels() -> None:
    from modelzoo.training.invariant import add_channel_bias

    gen = torch.Generator().manual_seed(2)
    h = torch.randn(5, 24, 6, 6, generator=gen).contiguous(memory_format=torch.channels_last)
    g = torch.randn(5, 24, 6, 6, generator=gen)
    bias = torch.randn(24, generator=gen, requires_grad=True)
    out = add_channel_bias(h, bias)
    assert torch.equal(out, h + bias.view(1, -1, 1, 1))
    (gb,) = torch.autograd.grad(out, bias, g)
    assert torch.allclose(gb, g.sum((0, 2, 3)), rtol=1e-5, atol=1e-5)
    part = bias[:8].detach().requires_grad_(True)
    (gp,) = torch.autograd.grad(add_channel_bias(h[:, :8], part), part, g[:, :8])
    assert torch.equal(gp, gb[:8])
