"""SANE's reference-faithful options: each does what its config field says."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from modelzoo.architectures import create_model
from modelzoo.errors import ZooError
from modelzoo.storage import layer_layout, read_manifest
from sane import SaneConfig, sample, train
from sane.cli import main as sane_cli
from sane.config import config_for_zoo
from sane.data import ZooRows
from sane.loss import masked_mse, recon_count, sane_loss
from sane.model import Sane
from sane.sample import kde_sample
from sane.tokenize import neuron_token_size, plan_tokens
from sane.train import lr_at, param_groups

ROOT = Path(__file__).resolve().parents[1]
CFG = SaneConfig(d_model=32, n_heads=2, n_layers=1, latent_dim=8, token_size=32,
                 window_size=16, projection_dim=8, epochs=1, batch_size=4, lr=1e-3,
                 device="cpu")


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


def test_recon_norm_all_divides_by_every_entry_of_the_valid_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    t = torch.randn(2, 4, 5, generator=g)
    mask = torch.zeros_like(t, dtype=torch.bool)
    mask[..., :2] = True  # 2 real values per token of 5
    valid = torch.ones(2, 4, dtype=torch.bool)
    valid[1, 3] = False  # one padding token
    mask &= valid.unsqueeze(-1)
    y = t + 1.0  # error 1 everywhere, also in the padding
    real = float(masked_mse(y, t, mask, over="real"))
    every = float(masked_mse(y, t, mask, over="all", valid=valid))
    assert real == pytest.approx(1.0)
    n_real, n_all = 2 * 2 * 4 - 2, 7 * 5  # padding values add no error, only entries
    assert every == pytest.approx(n_real / n_all)
    assert float(recon_count(mask, over="all", valid=valid)) == n_all
    assert float(recon_count(mask, over="all")) == mask.numel()
    out = sane_loss(proj_i=torch.randn(2, 3), proj_j=torch.randn(2, 3), recon=y, target=t,
                    mask=mask, gamma=0.0, temperature=0.1, recon_norm="all", valid=valid)
    assert float(out["recon"]) == pytest.approx(every)
    with pytest.raises(ZooError, match="recon_norm"):
        SaneConfig(recon_norm="tokens")


def test_onecycle_matches_torch_one_cycle_lr() -> None:
    cfg = SaneConfig(lr=1e-3, lr_schedule="onecycle")
    total = 50
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total,
                                                pct_start=0.3, div_factor=25.0,
                                                final_div_factor=1e4)
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [lr_at(s, total, cfg) for s in range(total)]
    assert ours == pytest.approx(expected, rel=1e-9)
    assert ours[0] == pytest.approx(cfg.lr / 25) and max(ours) == pytest.approx(cfg.lr)
    cosine = [lr_at(s, total, cfg.replace(lr_schedule="cosine")) for s in range(total)]
    assert cosine != pytest.approx(ours)


def test_decay_2d_only_leaves_biases_and_norms_alone() -> None:
    model = Sane(CFG, (16, 4, 8))
    everything = param_groups(model, CFG)
    assert len(everything) == 1 and everything[0]["weight_decay"] == CFG.weight_decay
    groups = param_groups(model, CFG.replace(decay_2d_only=True, weight_decay=0.1))
    decay, keep = groups
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in keep["params"])
    assert len(decay["params"]) + len(keep["params"]) == len(list(model.parameters()))
    # a step without gradient signal shrinks matrices only
    opt = torch.optim.AdamW(groups, lr=0.5)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in model.named_parameters():
        changed = not torch.equal(before[n], p.detach())
        assert changed == (p.dim() >= 2 and bool(before[n].abs().sum() > 0)), n


def test_attention_input_projection_gets_the_gpt2_init() -> None:
    torch.manual_seed(0)
    model = Sane(SaneConfig(d_model=64, n_heads=4, n_layers=2), (16, 4, 8))
    attn = [m for m in model.modules() if isinstance(m, torch.nn.MultiheadAttention)]
    assert len(attn) == 4  # 2 encoder + 2 decoder layers
    for m in attn:
        # torch's own init (xavier uniform over [3*64, 64]) has std ~0.09
        assert float(m.in_proj_weight.detach().std()) == pytest.approx(0.02, rel=0.1)
        assert torch.all(m.in_proj_bias == 0)


def test_grad_clip_none_and_drop_last_in_training(tiny_zoo: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    n_train = len(ZooRows(tiny_zoo, "train"))
    bs = 5
    assert n_train % bs  # a partial last batch exists
    clips: list[float] = []
    real_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, max_norm, **kw: clips.append(max_norm)
                        or real_clip(params, max_norm, **kw))
    runs = {}
    for name, changes in {"default": {}, "ref": {"grad_clip": None, "drop_last": True}}.items():
        events: list[str] = []
        clips.clear()
        train(zoo=tiny_zoo, out=tmp_path / name, config=CFG.replace(batch_size=bs, **changes),
              progress=False, callback=lambda ev, info, seen=events: seen.append(ev))
        runs[name] = (events.count("step"), list(clips))
    assert runs["default"] == (math.ceil(n_train / bs), [1.0] * math.ceil(n_train / bs))
    assert runs["ref"] == (n_train // bs, [])
    with pytest.raises(ZooError, match="drop_last .* leaves no training step"):
        train(zoo=tiny_zoo, out=tmp_path / "big", progress=False,
              config=CFG.replace(batch_size=n_train + 1, drop_last=True))
    with pytest.raises(ZooError, match="grad_clip"):
        SaneConfig(grad_clip=-1.0)


def test_individual_kde_mixes_anchors_within_tokens() -> None:
    g = torch.Generator().manual_seed(0)
    anchors = torch.randn(3, 4, 5, generator=g) * 10
    z = kde_sample(anchors, 30, bandwidth=1e-4, mode="individual", seed=0)
    assert z.shape == (30, 4, 5)
    d = (z[:, None] - anchors[None]).abs()  # [30, 3, 4, 5]
    assert torch.all(d.min(1).values < 1e-2)  # each scalar is one anchor's scalar
    src = d.argmin(1)  # anchor per (sample, token, dim)
    assert any(len(set(tok.tolist())) > 1 for s in src for tok in s)  # mixed within a token
    assert torch.equal(z, kde_sample(anchors, 30, bandwidth=1e-4, mode="individual", seed=0))


def test_sample_defaults_come_from_the_run_config(tiny_zoo: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cfg = CFG.replace(sample_mode="individual", sample_bandwidth=0.3)
    train(zoo=tiny_zoo, out=run, config=cfg, progress=False)
    index = json.loads(sample(run=run, zoo=tiny_zoo, out=tmp_path / "s", n=1,
                              anchor_top_k=2).read_text())
    assert (index["kde_mode"], index["bandwidth"]) == ("individual", 0.3)
    index = json.loads(sample(run=run, zoo=tiny_zoo, out=tmp_path / "t", n=1, anchor_top_k=2,
                              kde_mode="joint", bandwidth=0.01).read_text())
    assert (index["kde_mode"], index["bandwidth"]) == ("joint", 0.01)


def test_sane_train_exposes_every_config_field(tiny_zoo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    helptext = runner.invoke(sane_cli, ["train", "--help"], terminal_width=200).output
    for flag in ("--recon-norm", "--lr-schedule", "--decay-2d-only", "--grad-clip",
                 "--drop-last", "--sample-mode", "--sample-bandwidth", "--view1-canonical"):
        assert flag in helptext
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(json.dumps(CFG.to_dict()))
    res = runner.invoke(sane_cli, [
        "train", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "run"), "--config",
        str(cfg_file), "--quiet", "--recon-norm", "all", "--lr-schedule", "onecycle",
        "--decay-2d-only", "--grad-clip", "none", "--drop-last", "--sample-mode", "token",
        "--no-view1-canonical",
    ])
    assert res.exit_code == 0, res.output
    got = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)["config"]
    want = {"recon_norm": "all", "lr_schedule": "onecycle", "decay_2d_only": True,
            "grad_clip": None, "drop_last": True, "sample_mode": "token",
            "view1_canonical": False, "d_model": CFG.d_model}
    assert {k: got[k] for k in want} == want
    bad = runner.invoke(sane_cli, ["train", "--zoo", str(tiny_zoo), "--out", str(tmp_path / "x"),
                                   "--recon-norm", "tokens"])
    assert bad.exit_code == 2 and "tokens" in bad.output


def test_config_for_zoo_uses_one_token_per_neuron(tiny_zoo: Path) -> None:
    manifest = read_manifest(tiny_zoo)
    layout = manifest.architectures["cnn_s"].layout
    assert neuron_token_size([layout]) == 8 * 5 * 5 + 1  # conv2: 8 channels x 5x5 + bias
    cfg = config_for_zoo(manifest)
    plan = plan_tokens(layout, cfg.token_size)
    assert (cfg.token_size, cfg.window_size) == (201, plan.num_tokens)
    assert plan.num_tokens <= cfg.window_size  # the window covers the whole model
    # chosen on validation (sane/configs/digits-cnn_s.yaml)
    assert cfg.latent_dim == 128 and cfg.permutation_prob == 1.0 and cfg.recon_norm == "all"
    assert config_for_zoo(manifest, latent_dim=8).latent_dim == 8
    # a ResNet-18 has 4,609 values per neuron: keep the SaneConfig token and window sizes
    big = layer_layout(create_model("resnet18", in_channels=1, image_size=8, width=64))
    assert neuron_token_size([big]) > 512
    entry = manifest.architectures["cnn_s"].model_copy(update={"layout": big})
    other = manifest.model_copy(update={"architectures": {"resnet18": entry}})
    cfg = config_for_zoo(other)
    assert (cfg.token_size, cfg.window_size) == (SaneConfig().token_size,
                                                 SaneConfig().window_size)


def test_shipped_digits_config_is_what_the_bench_default_trains(tiny_zoo: Path) -> None:
    shipped = SaneConfig.from_yaml(ROOT / "sane" / "configs" / "digits-cnn_s.yaml")
    default = config_for_zoo(read_manifest(tiny_zoo))
    assert shipped == default


def test_a_run_saved_before_the_new_fields_resumes(tiny_zoo: Path, tmp_path: Path) -> None:
    from sane.run import save_checkpoint

    train(zoo=tiny_zoo, out=tmp_path, config=CFG, progress=False)
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    new = ("recon_norm", "lr_schedule", "decay_2d_only", "drop_last", "sample_mode",
           "sample_bandwidth")
    ckpt["config"] = {k: v for k, v in ckpt["config"].items() if k not in new}
    save_checkpoint(tmp_path / "ckpt.pt", ckpt)
    train(zoo=tiny_zoo, out=tmp_path, config=CFG.replace(epochs=2), progress=False)
    assert torch.load(tmp_path / "ckpt.pt", weights_only=True)["epoch"] == 1
    with pytest.raises(ZooError, match="different config .*recon_norm"):
        train(zoo=tiny_zoo, out=tmp_path, config=CFG.replace(epochs=3, recon_norm="all"),
              progress=False)


def test_precision_bf16_trains_close_to_float32(tiny_zoo: Path, tmp_path: Path) -> None:
    hist = {}
    for precision in ("default", "bf16"):
        train(zoo=tiny_zoo, out=tmp_path / precision, progress=False,
              config=CFG.replace(epochs=2, precision=precision))
        ckpt = torch.load(tmp_path / precision / "ckpt.pt", weights_only=True)
        assert ckpt["config"]["precision"] == precision
        hist[precision] = [(h["train_loss"], h["val_loss"]) for h in ckpt["history"]]
    for fp32, bf16 in zip(hist["default"], hist["bf16"], strict=True):
        for a, b in zip(fp32, bf16, strict=True):
            assert math.isfinite(b) and b != a  # bfloat16 really ran, and trains alike
            assert abs(b - a) < 0.1 * abs(a)
    with pytest.raises(ZooError, match="precision"):
        SaneConfig(precision="fp16")
