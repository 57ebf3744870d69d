"""MultiZoo-SANE options of the trainer: per-token normalisation, the masked reconstruction
loss over padded tokens, and architecture embeddings (``sane/configs/multizoo.yaml``)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from modelzoo.architectures import create_model
from modelzoo.errors import ZooError
from modelzoo.storage import layer_layout, read_manifest
from sane import SaneConfig, embed, load_run, load_sample, sample, train
from sane.data import SaneWindows, ZooRows, arch_data
from sane.loss import masked_mse
from sane.model import Sane
from sane.run import encode_sequences
from sane.tokenize import token_destandardize, token_standardize
from sane.train import _forward
from tests.sane_fixtures import DIGITS_KW, digits_tensors, single_thread

ROOT = Path(__file__).resolve().parents[1]
CFG = SaneConfig(d_model=32, n_heads=2, n_layers=1, latent_dim=8, token_size=32,
                 window_size=16, projection_dim=8, epochs=1, batch_size=4, lr=1e-3,
                 device="cpu")
MULTI = CFG.replace(normalize="none", token_norm=True, loss_norm="batch", recon_norm="real",
                    arch_embedding=True)

pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def multi_run(hetero_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with all three MultiZoo options on the cnn_s + mlp zoo (run directory)."""
    with single_thread():
        ckpt = train(zoo=hetero_zoo, out=tmp_path_factory.mktemp("mz") / "run", config=MULTI,
                     progress=False)
    return ckpt.parent


def test_multizoo_yaml_turns_on_the_three_options() -> None:
    cfg = SaneConfig.from_yaml(ROOT / "sane" / "configs" / "multizoo.yaml")
    assert (cfg.token_norm, cfg.arch_embedding, cfg.normalize) == (True, True, "none")
    assert (cfg.loss_norm, cfg.recon_norm) == ("batch", "real")
    default = SaneConfig()
    assert not default.token_norm and not default.arch_embedding
    with pytest.raises(ZooError, match="token_norm"):
        SaneConfig(token_norm="yes")  # type: ignore[arg-type]


def test_token_standardize_is_exactly_invertible_on_real_entries() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 7, generator=g, dtype=torch.float64) * 0.01 + 0.3
    mask = torch.rand(3, 5, 7, generator=g) < 0.7
    mask[0, 0] = False
    mask[0, 0, 2] = True  # a one-value token: std 1, the value becomes 0
    mask[0, 1] = False  # an all-padding token
    x = x * mask
    y, mean, std = token_standardize(x, mask)
    assert y.shape == x.shape and mean.shape == std.shape == (3, 5)
    assert torch.all(y[~mask] == 0)
    m = mask.to(y.dtype)
    n = m.sum(-1)
    many = n > 1
    assert ((y * m).sum(-1) / n.clamp(min=1))[many].abs().max() < 1e-12
    var = ((y * m) ** 2).sum(-1) / n.clamp(min=1)
    assert (var[many] - 1).abs().max() < 1e-12
    assert std[0, 0] == 1 and y[0, 0, 2] == 0
    back = token_destandardize(y, mask, mean, std)
    assert torch.allclose(back, x, rtol=0, atol=1e-15)
    assert torch.all(back[~mask] == 0)


def test_windows_are_standardised_per_token(hetero_zoo: Path) -> None:
    rows = ZooRows(hetero_zoo, "train")
    manifest = read_manifest(hetero_zoo)
    cfg = MULTI.replace(noise_prob=0.0)
    archs = arch_data(manifest, cfg, None, sorted(manifest.architectures))
    ds = SaneWindows(rows, archs, cfg, seed=0)
    ids = sorted(manifest.architectures)
    for i in range(len(ds)):
        item = ds[i]
        assert int(item["arch"]) == ids.index(rows.meta[i]["architecture"])
        t, m = item["t1"], item["mask"]
        n = m.sum(-1)
        keep = n > 1
        mean = (t * m).sum(-1) / n.clamp(min=1)
        assert mean[keep].abs().max() < 1e-5
        assert torch.all(t[~m] == 0)
    plain = SaneWindows(rows, arch_data(manifest, CFG, None), CFG, seed=0)[0]
    assert "arch" not in plain  # off by default: items as before


def test_padding_never_adds_loss_or_gradient() -> None:
    g = torch.Generator().manual_seed(1)
    target = torch.randn(2, 4, 6, generator=g)
    mask = torch.rand(2, 4, 6, generator=g) < 0.6
    valid = torch.tensor([[True, True, True, False], [True, True, False, False]])
    mask &= valid.unsqueeze(-1)
    target = target * mask
    out = torch.randn(2, 4, 6, generator=g, requires_grad=True)
    for norm in ("none", "batch"):
        loss = masked_mse(out, target, mask, norm=norm, over="real", valid=valid)
        (grad,) = torch.autograd.grad(loss, out)
        assert torch.all(grad[~mask] == 0) and grad[mask].abs().sum() > 0
        junk_out = torch.where(mask, out, torch.full_like(out, 1e3))
        junk_target = torch.where(mask, target, torch.full_like(target, -7.0))
        again = masked_mse(junk_out, junk_target, mask, norm=norm, over="real", valid=valid)
        assert float(again.detach()) == float(loss.detach())


def test_padding_tokens_do_not_change_the_model_loss_or_its_gradients() -> None:
    """Garbage in the padding tokens of a window (valid False) changes neither the training
    loss nor any parameter gradient (attention masks them, the latent zeroes them, the loss
    masks them)."""
    cfg = MULTI.replace(window_size=6, token_size=5)
    g = torch.Generator().manual_seed(2)
    b, w, s = 3, cfg.window_size, cfg.token_size
    valid = torch.ones(b, w, dtype=torch.bool)
    valid[0, 4:] = False
    valid[2, 2:] = False
    mask = (torch.rand(b, w, s, generator=g) < 0.8) & valid.unsqueeze(-1)
    x = torch.randn(b, w, s, generator=g) * mask
    pos = torch.randint(0, 4, (b, w, 3), generator=g) * valid.unsqueeze(-1)
    batch = {"x1": x, "x2": x * 1.1, "t1": x, "t2": x * 1.1, "mask": mask, "pos": pos,
             "valid": valid, "arch": torch.tensor([0, 1, 0])}
    torch.manual_seed(0)
    model = Sane(cfg, (4, 4, 4), n_architectures=2).train()

    def loss_and_grads(bt: dict[str, torch.Tensor]) -> tuple[float, list[torch.Tensor]]:
        model.zero_grad()
        loss = _forward(model, bt, cfg, "cpu")["loss"]
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]
        return float(loss.detach()), grads

    ref, ref_g = loss_and_grads(batch)
    junk = dict(batch)
    pad = ~valid.unsqueeze(-1)
    for k in ("x1", "x2", "t1", "t2"):
        junk[k] = torch.where(pad, torch.full_like(x, 5.0), batch[k])
    got, got_g = loss_and_grads(junk)
    assert got == pytest.approx(ref, rel=1e-6)
    assert len(got_g) == len(ref_g)
    for a, c in zip(ref_g, got_g, strict=True):
        assert torch.allclose(a, c, atol=1e-6)


def test_arch_embedding_changes_outputs_per_architecture() -> None:
    bounds = (8, 4, 8)
    torch.manual_seed(0)
    plain = Sane(CFG, bounds)
    torch.manual_seed(0)
    with_arch = Sane(CFG.replace(arch_embedding=True), bounds, n_architectures=3).eval()
    # off by default; on, every other parameter is initialised exactly as without it
    assert not any(k.startswith("arch.") for k in plain.state_dict())
    extra = set(with_arch.state_dict()) - set(plain.state_dict())
    assert extra == {"arch.weight"}
    for k, v in plain.state_dict().items():
        assert torch.equal(v, with_arch.state_dict()[k])
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, CFG.window_size, CFG.token_size, generator=g)
    pos = torch.zeros(1, CFG.window_size, 3, dtype=torch.int64)
    with torch.no_grad():
        z0, y0, _ = with_arch(x, pos, arch=torch.tensor([0]))
        z1, y1, _ = with_arch(x, pos, arch=torch.tensor([1]))
    assert z0.shape == z1.shape == (1, CFG.window_size, CFG.latent_dim)
    assert y0.shape == x.shape
    assert not torch.allclose(z0, z1) and not torch.allclose(y0, y1)
    with pytest.raises(ValueError, match="arch ids"):
        with_arch(x, pos)


def test_checkpoint_round_trip_embed_and_sample(
    multi_run: Path, hetero_zoo: Path, tmp_path: Path
) -> None:
    ckpt = torch.load(multi_run / "ckpt.pt", weights_only=True)
    assert ckpt["arch_ids"] == ["cnn_s", "mlp-16"] and ckpt["normalizer"] == {}
    assert ckpt["config"]["token_norm"] and ckpt["config"]["arch_embedding"]
    run = load_run(multi_run)
    assert run.arch_ids == ["cnn_s", "mlp-16"] and run.model.arch is not None
    assert torch.equal(run.model.arch.weight, ckpt["model"]["arch.weight"])
    manifest = read_manifest(hetero_zoo)
    run.check_zoo(manifest)

    ds = embed(run=multi_run, zoo=hetero_zoo, out=tmp_path / "emb", split="test",
               progress=False)
    assert len(ds) == len(ZooRows(hetero_zoo, "test"))
    emb = np.asarray(ds["embedding"])
    assert np.isfinite(emb).all()
    # the embedding is the mean latent of the per-token-normalised sequence, with its arch id
    from sane.embed import sequence_tokens

    rows = ZooRows(hetero_zoo, "test")
    arch = rows.meta[0]["architecture"]
    layout = manifest.architectures[arch].layout
    tok, plan = sequence_tokens(run, arch, rows.weights(0), layout)
    z = encode_sequences(run, [tok], [plan], archs=[run.arch_id(arch)])[0]
    assert np.allclose(ds[0]["embedding"], z.mean(0).numpy(), atol=1e-5)
    other = encode_sequences(run, [tok], [plan], archs=[1 - run.arch_id(arch)])[0]
    assert not torch.allclose(z, other)
    with pytest.raises(ZooError, match="archs="):
        encode_sequences(run, [tok], [plan])
    assert datasets.load_from_disk(str(tmp_path / "emb"))["model_id"] == ds["model_id"]

    index = sample(run=multi_run, zoo=hetero_zoo, out=tmp_path / "s", n=2,
                   architecture="mlp-16", anchor_top_k=3)
    assert json.loads(index.read_text())["architecture"] == "mlp-16"
    x = digits_tensors()["test"][0][:4]
    with torch.no_grad():
        assert torch.isfinite(load_sample(index, 0)(x)).all()


def test_unknown_architecture_falls_back_to_the_same_layout_or_errors(multi_run: Path) -> None:
    run = load_run(multi_run)
    kw = {**DIGITS_KW, "activation": "relu", "dropout": 0.0}
    cnn = layer_layout(create_model("cnn_s", **kw))
    assert run.arch_id("cnn_s-elsewhere", cnn) == run.arch_ids.index("cnn_s")
    big = layer_layout(create_model("mlp", **kw, hidden=[32]))
    with pytest.raises(ZooError, match="trained on cnn_s, mlp-16, not on 'mlp-32'"):
        run.arch_id("mlp-32", big)
    with pytest.raises(ZooError, match="not on 'x'"):
        run.arch_id("x")


def test_resume_keeps_the_arch_table(multi_run: Path, hetero_zoo: Path, tmp_path: Path) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(multi_run, out)
    train(zoo=hetero_zoo, out=out, config=MULTI.replace(epochs=2), progress=False)
    ckpt = torch.load(out / "ckpt.pt", weights_only=True)
    assert ckpt["epoch"] == 1 and ckpt["arch_ids"] == ["cnn_s", "mlp-16"]
