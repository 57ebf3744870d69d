"""SANE augmentations: permutations keep the function; noise and erasing do what they say."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from modelzoo.architectures import ARCHITECTURES, create_model
from modelzoo.errors import ZooError
from modelzoo.storage import flatten_state_dict, layer_layout, load_flat_weights
from sane.augment import (
    add_noise,
    permutation_spec,
    permute_vector,
    random_erase,
    random_permutation,
)
from sane.data import permutation_specs

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


PERMUTABLE = [n for n in ARCHITECTURES.names() if ARCHITECTURES.get(n).permutable]
FIXED = [n for n in ARCHITECTURES.names() if not ARCHITECTURES.get(n).permutable]
#: Architectures whose skip connections carry no parameters (CNN Wild Park's: per-model
#: residual adds), so their layout alone cannot show they are not a chain.
SKIPS_WITHOUT_PARAMETERS = {"park_cnn"}


def _build(name: str, image_size: int, activation: str = "tanh") -> torch.nn.Module:
    kw = {"width": 4} if name.startswith("resnet") else {}
    return create_model(name, in_channels=1, num_classes=10, image_size=image_size,
                        activation=activation, **kw).eval()


@pytest.mark.parametrize("arch", ARCHITECTURES.names())
def test_permutable_flag_matches_the_network_structure(arch: str) -> None:
    """``register_arch(permutable=...)`` defaults to True and decides whether SANE augments an
    architecture with permutations: it must say what the network's structure allows (a chain
    of layers), so a skip-connection network left at the default, or a chain network marked
    not permutable (silently trained without permutations), fails here."""
    layout = layer_layout(_build(arch, 8))
    try:
        permutation_spec(layout)
        chain = True
    except ZooError:
        chain = False
    if arch in SKIPS_WITHOUT_PARAMETERS:  # its layout looks like a chain; its skips are not
        chain = False
    assert ARCHITECTURES.get(arch).permutable is chain
    # the flag reaches SANE's data pipeline: permutable architectures get a permutation spec
    manifest = SimpleNamespace(architectures={arch: SimpleNamespace(name=arch, layout=layout)})
    assert (permutation_specs(manifest)[arch] is not None) is chain  # type: ignore[arg-type]
    if arch in {"mlp", "cnn_s", "cnn_l", "ctc_cnn"}:
        assert chain
    if arch.startswith("resnet"):
        assert not chain


@pytest.mark.parametrize("arch", PERMUTABLE)
@pytest.mark.parametrize("image_size", [8, 28])
def test_permutation_preserves_function(arch: str, image_size: int) -> None:
    torch.manual_seed(0)
    model = _build(arch, image_size)
    layout = layer_layout(model)
    vec = flatten_state_dict(model.state_dict(), layout)
    spec = permutation_spec(layout)
    g = torch.Generator().manual_seed(1)
    idx = random_permutation(spec, generator=g)
    assert torch.equal(torch.sort(idx).values, torch.arange(vec.numel()))  # a bijection
    permuted = permute_vector(vec, idx)
    assert not torch.equal(permuted, vec)  # it really moved weights
    other = load_flat_weights(_build(arch, image_size), permuted, layout)
    x = torch.randn(16, 1, image_size, image_size, generator=g)
    with torch.no_grad():
        y0, y1 = model(x), other(x)
    assert torch.allclose(y0, y1, rtol=1e-4, atol=1e-5 * float(y0.abs().max()))
    # hidden units really are reordered: the first layer's rows are a permutation of the old
    first = layout[0]
    w0 = vec[first.offset : first.offset + first.numel].view(first.shape[0], -1)
    w1 = permuted[first.offset : first.offset + first.numel].view(first.shape[0], -1)
    assert not torch.equal(w0, w1)
    assert torch.equal(torch.sort(w0.sum(1)).values, torch.sort(w1.sum(1)).values)


def test_a_broken_permutation_changes_the_function() -> None:
    """Guard: permuting a layer's rows without its consumer's columns is detected."""
    torch.manual_seed(0)
    model = _build("cnn_s", 8)
    layout = layer_layout(model)
    vec = flatten_state_dict(model.state_dict(), layout)
    first = layout[0]
    bad = vec.clone()
    rows = bad[first.offset : first.offset + first.numel].view(first.shape[0], -1)
    bad[first.offset : first.offset + first.numel] = rows.flip(0).reshape(-1)
    other = load_flat_weights(_build("cnn_s", 8), bad, layout)
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert not torch.allclose(model(x), other(x), atol=1e-4)


@pytest.mark.parametrize("arch", sorted(set(FIXED) - SKIPS_WITHOUT_PARAMETERS))
def test_non_chain_architectures_are_refused(arch: str) -> None:
    with pytest.raises(ZooError, match="not a simple chain"):
        permutation_spec(layer_layout(_build(arch, 8)))


def test_noise_respects_padding_and_scale() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.ones(64, 32)
    mask = torch.ones_like(tokens, dtype=torch.bool)
    mask[:, 20:] = False
    tokens = tokens * mask
    noisy = add_noise(tokens, sigma=0.1, mask=mask, generator=g)
    assert torch.all(noisy[~mask] == 0)
    rel = (noisy[mask] - 1.0).std()
    assert 0.08 < float(rel) < 0.12
    additive = add_noise(tokens, sigma=0.5, multiplicative=False, generator=g)
    assert 0.45 < float((additive - tokens).std()) < 0.55


def test_random_erase_zeros_one_rectangle() -> None:
    g = torch.Generator().manual_seed(3)
    tokens = torch.randn(32, 16, generator=g) + 5.0  # no zeros before erasing
    erased = random_erase(tokens, scale=(0.1, 0.2), generator=g)
    zero = erased == 0
    frac = float(zero.float().mean())
    assert 0.05 < frac < 0.25
    rows = zero.any(1).nonzero().flatten()
    cols = zero.any(0).nonzero().flatten()
    box = zero[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    assert torch.all(box)  # a single filled rectangle
    assert torch.equal(erased[~zero], tokens[~zero])
