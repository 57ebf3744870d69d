"""SANE tokenisation: exact round trips, positions, masks and per-layer normalisation."""

from __future__ import annotations

import math

import pytest
import torch

from modelzoo.architectures import ARCHITECTURES, create_model
from modelzoo.errors import ZooError
from modelzoo.storage import flatten_state_dict, layer_layout
from sane.tokenize import (
    Normalizer,
    detokenize,
    layer_groups,
    plan_tokens,
    tokenize,
    tokens_to_vector,
)

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


TINY = {"resnet18": {"width": 4}, "resnet34": {"width": 4}}


def _model(name: str, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    m = create_model(name, in_channels=1, num_classes=10, image_size=8, **TINY.get(name, {}))
    # make every float tensor (BN buffers included) distinct and non-trivial
    with torch.no_grad():
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.randn_like(t))
    return m


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
@pytest.mark.parametrize("token_size", [7, 32])
def test_round_trip_every_architecture(arch: str, token_size: int) -> None:
    model = _model(arch)
    layout = layer_layout(model)
    state = model.state_dict()
    tok = tokenize(state, layout, token_size=token_size)
    plan = plan_tokens(layout, token_size)
    assert tok.tokens.shape == (plan.num_tokens, token_size)
    assert tok.mask.shape == tok.tokens.shape and tok.positions.shape == (plan.num_tokens, 3)
    assert int(tok.mask.sum()) == sum(s.numel for s in layout)  # every weight exactly once
    assert torch.all(tok.tokens[~tok.mask] == 0)  # zero padding
    back = detokenize(tok.tokens, layout)
    assert set(back) == {s.name for s in layout}
    for s in layout:
        assert torch.equal(back[s.name], state[s.name]), s.name
    if any(s.kind == "buffer" for s in layout):  # BN running stats survive too
        rebuilt = create_model(arch, in_channels=1, num_classes=10, image_size=8,
                               **TINY.get(arch, {}))
        rebuilt.load_state_dict(back, strict=False)
        for s in layout:
            assert torch.equal(rebuilt.state_dict()[s.name], state[s.name])


def test_rows_are_neurons_with_bias_appended() -> None:
    model = _model("cnn_s")
    layout = layer_layout(model)
    state = model.state_dict()
    size = 1000  # larger than any row: one token per output channel
    tok = tokenize(state, layout, token_size=size)
    w, b = state["0.weight"], state["0.bias"]  # first conv: 8 out-channels of 1x5x5
    first = tok.tokens[: w.shape[0]]
    row_len = w[0].numel() + 1
    assert torch.equal(first[:, : row_len - 1], w.reshape(w.shape[0], -1))
    assert torch.equal(first[:, row_len - 1], b)
    assert torch.equal(tok.positions[: w.shape[0], 2], torch.arange(w.shape[0]))
    assert torch.all(tok.positions[: w.shape[0], 1] == 0)
    groups = layer_groups(layout)
    assert groups[0].names == ("0.weight", "0.bias") and groups[0].row_len == row_len


def test_chunked_rows_share_row_position_and_token_index_counts_up() -> None:
    layout = layer_layout(_model("mlp"))  # first layer rows: 64 inputs + bias = 65 values
    plan = plan_tokens(layout, 16)
    k = math.ceil(65 / 16)
    assert torch.equal(plan.positions[:, 0], torch.arange(plan.num_tokens))
    assert torch.equal(plan.positions[: 2 * k, 2], torch.tensor([0] * k + [1] * k))
    assert int(plan.mask[k - 1].sum()) == 65 - 16 * (k - 1)  # last chunk padded


def test_batchnorm_buffers_are_their_own_layers() -> None:
    layout = layer_layout(_model("resnet18"))
    names = [g.names for g in layer_groups(layout)]
    assert ("bn1.weight", "bn1.bias") in names
    assert ("bn1.running_mean",) in names and ("bn1.running_var",) in names


def test_architectures_give_different_lengths_for_one_token_size() -> None:
    lengths = {a: plan_tokens(layer_layout(_model(a)), 32).num_tokens for a in ("mlp", "cnn_s")}
    assert lengths["mlp"] != lengths["cnn_s"]


def test_tokens_to_vector_is_batched_and_checks_shape() -> None:
    layout = layer_layout(_model("cnn_s"))
    vecs = torch.stack([flatten_state_dict(_model("cnn_s", s).state_dict(), layout)
                        for s in range(3)])
    toks = torch.stack([tokenize(v, layout, token_size=32).tokens for v in vecs])
    assert torch.equal(tokens_to_vector(toks, layout), vecs)
    with pytest.raises(ZooError, match="wrong architecture or token size"):
        tokens_to_vector(toks[:, :-1], layout)
    with pytest.raises(ZooError, match="values but the layout needs"):
        tokenize(vecs[0, :-1], layout, token_size=32)


def test_normalizer_standardises_layers_and_round_trips() -> None:
    layout = layer_layout(_model("cnn_s"))
    vecs = torch.stack([flatten_state_dict(_model("cnn_s", s).state_dict(), layout)
                        for s in range(5)])
    vecs = vecs * 3.0 + 1.5
    norm = Normalizer.fit([("cnn_s", vecs[:2]), ("cnn_s", vecs[2:])], {"cnn_s": layout})
    z = norm.normalize(vecs, "cnn_s", layout)
    for g_i, g in enumerate(layer_groups(layout)):
        sel = plan_tokens(layout, 8).element_layer == g_i
        vals = z[:, sel].double()
        assert abs(float(vals.mean())) < 1e-4, g.names
        assert abs(float(vals.std(unbiased=False)) - 1.0) < 1e-3, g.names
    assert torch.allclose(norm.denormalize(z, "cnn_s", layout), vecs, atol=1e-5)
    tok = tokenize(vecs[0], layout, token_size=32, normalizer=norm, architecture="cnn_s")
    back = detokenize(tok.tokens, layout, normalizer=norm, architecture="cnn_s")
    assert torch.allclose(flatten_state_dict(back, layout), vecs[0], atol=1e-5)
    restored = Normalizer.from_state_dict(norm.state_dict())
    assert torch.equal(restored.normalize(vecs, "cnn_s", layout), z)
    with pytest.raises(ZooError, match="no statistics for architecture 'mlp'"):
        norm.normalize(vecs, "mlp", layout)
