"""Architecture registry: every registered architecture builds, runs and round-trips weights."""

from __future__ import annotations

import pytest
import torch

from modelzoo.architectures import ARCHITECTURES, count_params, create_model
from modelzoo.errors import UnknownNameError
from modelzoo.storage import flatten_state_dict, layer_layout, load_flat_weights, unflatten_weights

SMALL = {"resnet18": {"width": 4}, "resnet34": {"width": 4}}
PUBLISHED = [
    ("cnn_s", 1, 28, 2464),
    ("cnn_l", 3, 32, 10853),
    ("ctc_cnn", 1, 28, 4970),
    ("ctc_cnn", 1, 32, 4970),
    ("resnet18", 3, 32, 11_173_962),
    ("resnet34", 3, 32, 21_282_122),
]


@pytest.mark.parametrize(("name", "cin", "size", "expected"), PUBLISHED)
def test_published_parameter_counts(name: str, cin: int, size: int, expected: int) -> None:
    assert count_params(create_model(name, in_channels=cin, image_size=size)) == expected


@pytest.mark.parametrize("name", ARCHITECTURES.names())
@pytest.mark.parametrize(("cin", "size"), [(1, 8), (1, 28), (3, 32)])
def test_forward_shape(name: str, cin: int, size: int) -> None:
    kw = SMALL.get(name, {})
    model = create_model(name, in_channels=cin, image_size=size, num_classes=7, **kw)
    out = model(torch.randn(3, cin, size, size))
    assert out.shape == (3, 7)


@pytest.mark.parametrize("name", ARCHITECTURES.names())
def test_flat_weights_round_trip(name: str) -> None:
    kw = {"in_channels": 1, "image_size": 8, **SMALL.get(name, {})}
    a, b = create_model(name, **kw), create_model(name, **kw)
    layout = layer_layout(a)
    flat = flatten_state_dict(a.state_dict(), layout)
    assert flat.numel() == sum(s.numel for s in layout)
    load_flat_weights(b, flat, layout)
    x = torch.randn(4, 1, 8, 8)
    a.eval(), b.eval()
    assert torch.equal(a(x), b(x))
    parts = unflatten_weights(flat, layout)
    assert all(torch.equal(parts[k], v) for k, v in a.state_dict().items() if k in parts)


def test_batchnorm_free_resnet_has_no_buffers() -> None:
    bn = create_model("resnet18", in_channels=3, image_size=32, width=4)
    free = create_model("resnet18", in_channels=3, image_size=32, width=4, norm="none")
    assert any(s.kind == "buffer" for s in layer_layout(bn))
    assert all(s.kind == "param" for s in layer_layout(free))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in free.modules())


def test_unknown_architecture_suggests() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'resnet18'"):
        create_model("resnet81")
