"""SANE model and losses: shapes, padding handling, windows, contrastive behaviour."""

from __future__ import annotations

import pytest
import torch

from modelzoo.errors import ZooError
from sane.config import SaneConfig
from sane.loss import masked_mse, nt_xent, sane_loss
from sane.model import Sane
from sane.run import sequence_windows

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


CFG = SaneConfig(d_model=32, n_heads=2, n_layers=1, latent_dim=8, token_size=16,
                 window_size=12, projection_dim=10)


def _inputs(b: int = 3, w: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, w, CFG.token_size, generator=g)
    pos = torch.stack([torch.arange(w), torch.zeros(w, dtype=torch.long),
                       torch.arange(w) % 5], dim=-1).expand(b, w, 3)
    return x, pos


def test_shapes_and_latent_compression() -> None:
    torch.manual_seed(0)
    model = Sane(CFG, (64, 4, 8))
    x, pos = _inputs()
    z, y, zp = model(x, pos)
    assert z.shape == (3, 12, CFG.latent_dim)
    assert y.shape == x.shape
    assert zp.shape == (3, CFG.projection_dim)
    assert torch.allclose(model.decode(z, pos), y)


def test_positions_matter() -> None:
    torch.manual_seed(0)
    model = Sane(CFG, (64, 4, 8))
    x, pos = _inputs()
    shifted = pos.clone()
    shifted[..., 0] += 20
    assert not torch.allclose(model.encode(x, pos), model.encode(x, shifted))


def test_padding_tokens_do_not_influence_valid_tokens() -> None:
    torch.manual_seed(0)
    model = Sane(CFG, (64, 4, 8)).eval()
    x, pos = _inputs(b=1)
    valid = torch.ones(1, 12, dtype=torch.bool)
    valid[:, 8:] = False
    other = x.clone()
    other[:, 8:] = 123.0  # garbage in the padding
    z1 = model.encode(x, pos, valid)
    z2 = model.encode(other, pos, valid)
    assert torch.allclose(z1[:, :8], z2[:, :8], atol=1e-5)
    assert torch.all(z1[:, 8:] == 0)


def test_masked_mse_ignores_padding() -> None:
    t = torch.randn(2, 5, 4)
    mask = torch.ones_like(t, dtype=torch.bool)
    mask[..., 3] = False
    y = t.clone()
    y[..., 3] = 100.0  # wrong only where padded
    assert float(masked_mse(y, t, mask)) == 0.0
    y[..., 0] += 1.0
    assert float(masked_mse(y, t, mask)) == pytest.approx(1.0 / 3.0)
    # batch normalisation makes the loss scale-free (MultiZoo-SANE)
    a = float(masked_mse(y, t, mask, norm="batch"))
    b = float(masked_mse(10 * y, 10 * t, mask, norm="batch"))
    assert a == pytest.approx(b, rel=1e-3)


def test_nt_xent_prefers_matching_views() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(8, 16, generator=g)
    aligned = nt_xent(z, z + 0.01 * torch.randn(8, 16, generator=g), temperature=0.1)
    shuffled = nt_xent(z, z[torch.randperm(8, generator=g)], temperature=0.1)
    assert float(aligned) < 0.1 < float(shuffled)


def _nt_xent_by_hand(a: torch.Tensor, b: torch.Tensor, temperature: float) -> float:
    """SimCLR's NT-Xent written out anchor by anchor (float64), as in the paper."""
    z = torch.cat([a, b]).double()
    z = z / z.norm(dim=1, keepdim=True)
    n = len(a)
    total = 0.0
    for k in range(2 * n):
        pos = (k + n) % (2 * n)
        sims = [float(z[k] @ z[j]) / temperature for j in range(2 * n) if j != k]
        total += -(float(z[k] @ z[pos]) / temperature) + float(torch.tensor(sims).logsumexp(0))
    return total / (2 * n)


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0])
def test_sane_loss_is_the_gamma_mixture(gamma: float) -> None:
    # Every part is checked against a reference written out here (not against the values the
    # loss returns itself): a wrong gamma side, an ignored temperature or padding mask, or a
    # wrong MSE denominator fails.
    g = torch.Generator().manual_seed(0)
    p1, p2 = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    y, t = torch.randn(8, 5, 3, generator=g), torch.randn(8, 5, 3, generator=g)
    m = torch.ones_like(t, dtype=torch.bool)
    m[:, -2:, :] = False  # padding tokens: their error must not count
    y[~m] = 1e3
    out = sane_loss(proj_i=p1, proj_j=p2, recon=y, target=t, mask=m, gamma=gamma,
                    temperature=0.5)
    recon = float(((y - t)[m].double() ** 2).mean())
    contrast = _nt_xent_by_hand(p1, p2, 0.5)
    assert float(out["recon"]) == pytest.approx(recon, rel=1e-5)
    assert float(out["contrast"]) == pytest.approx(contrast, rel=1e-5)
    assert float(out["loss"]) == pytest.approx(gamma * contrast + (1 - gamma) * recon, rel=1e-5)


@pytest.mark.parametrize("n,w,h", [(5, 8, 1), (8, 8, 1), (100, 16, 2), (37, 10, 0), (61, 9, 3)])
def test_sequence_windows_tile_the_sequence(n: int, w: int, h: int) -> None:
    wins = sequence_windows(n, w, h)
    kept = torch.zeros(n, dtype=torch.long)
    for start, a, b in wins:
        assert 0 <= start and start + min(w, n) <= n
        assert start <= a < b <= start + w
        kept[a:b] += 1
        if n > w:  # context on both sides unless at an end
            assert a - start >= h or start == 0
            assert start + w - b >= h or start + w == n
    assert torch.all(kept == 1)


def test_config_validation_and_yaml(tmp_path) -> None:
    with pytest.raises(ZooError, match="divisible by n_heads"):
        SaneConfig(d_model=30, n_heads=4)
    with pytest.raises(ZooError, match="gamma: Input should be less than or equal to 1"):
        SaneConfig(gamma=2.0)
    with pytest.raises(ZooError, match="unknown SANE config key"):
        SaneConfig.from_dict({"d_modle": 3})
    p = tmp_path / "c.yaml"
    p.write_text("d_model: 64\nn_heads: 4\nepochs_range: [2, 5]\n")
    cfg = SaneConfig.from_yaml(p)
    assert cfg.d_model == 64 and cfg.epochs_range == (2, 5)
    assert SaneConfig.from_dict(cfg.to_dict()) == cfg


def test_kde_modes() -> None:
    from sane.sample import kde_sample

    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(3, 6, 2, generator=g) * 10
    joint = kde_sample(anchors, 20, bandwidth=1e-4, mode="joint", seed=0)
    tok = kde_sample(anchors, 20, bandwidth=1e-4, mode="token", seed=0)
    assert joint.shape == tok.shape == (20, 6, 2)
    # joint: every sample is (close to) one whole anchor
    d = (joint[:, None] - anchors[None]).abs().amax(dim=(2, 3))  # [20, 3]
    assert torch.all(d.min(1).values < 1e-2)
    # token: every token comes from some anchor at that position, and anchors get mixed
    dt = (tok[:, None] - anchors[None]).abs().amax(dim=3)  # [20, 3, 6]
    src = dt.argmin(1)  # anchor chosen per (sample, token)
    assert torch.all(dt.min(1).values < 1e-2)
    assert any(len(set(s.tolist())) > 1 for s in src)
    assert torch.equal(kde_sample(anchors, 4, bandwidth=0.1, seed=3),
                       kde_sample(anchors, 4, bandwidth=0.1, seed=3))
    with pytest.raises(ZooError, match="kde mode"):
        kde_sample(anchors, 1, bandwidth=0.1, mode="nope")
