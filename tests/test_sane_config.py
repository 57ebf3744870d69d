"""SaneConfig as a pydantic model, the `sane train` options generated from its fields, and the
shared device helpers of modelzoo/device.py."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from modelzoo.device import autocast, resolve_device
from modelzoo.errors import ZooError
from sane import SaneConfig
from sane.cli import _NOT_GENERATED
from sane.cli import main as sane_cli

ROOT = Path(__file__).resolve().parents[1]

#: ``SaneConfig(epochs_range=(2, 5), grad_clip=None, lr=3e-4).to_dict()`` as the dataclass
#: version wrote it into checkpoints (before token_norm / arch_embedding existed).
OLD_CKPT_CONFIG = {
    "d_model": 128, "n_heads": 4, "n_layers": 2, "latent_dim": 16, "token_size": 64,
    "window_size": 64, "projection_dim": 30, "dropout": 0.0, "gamma": 0.05,
    "temperature": 0.1, "lr": 0.0003, "lr_schedule": "cosine", "min_lr_ratio": 0.1,
    "warmup_frac": 0.05, "weight_decay": 3e-09, "decay_2d_only": False, "grad_clip": None,
    "drop_last": False, "epochs": 30, "batch_size": 32, "seed": 0, "device": "auto",
    "num_workers": 0, "epochs_range": [2, 5], "normalize": "layer", "loss_norm": "none",
    "recon_norm": "real", "permutation_prob": 1.0, "view1_canonical": True, "noise_prob": 1.0,
    "noise_sigma": 0.1, "noise_multiplicative": True, "erase_prob": 0.0,
    "erase_scale": [0.02, 0.33], "erase_ratio": [0.3, 3.3], "denoise": False, "halo": -1,
    "sample_mode": "joint", "sample_bandwidth": 0.05,
}  # fmt: skip


@pytest.mark.parametrize("path", sorted((ROOT / "sane" / "configs").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_yaml_configs_load_and_round_trip(path: Path) -> None:
    cfg = SaneConfig.from_yaml(path)
    assert SaneConfig.from_dict(cfg.to_dict()) == cfg


def test_old_checkpoint_configs_load_with_defaults_for_new_fields() -> None:
    cfg = SaneConfig.from_dict(OLD_CKPT_CONFIG)
    assert cfg.epochs_range == (2, 5) and cfg.grad_clip is None and cfg.lr == 3e-4
    assert cfg.erase_scale == (0.02, 0.33) and isinstance(cfg.erase_scale, tuple)
    assert not cfg.token_norm and not cfg.arch_embedding
    d = cfg.to_dict()
    assert {k: d[k] for k in OLD_CKPT_CONFIG} == OLD_CKPT_CONFIG  # same plain-type dict
    assert all(type(d[k]) is type(v) for k, v in OLD_CKPT_CONFIG.items())


def test_yaml_numbers_written_as_strings_and_ints_for_floats(tmp_path: Path) -> None:
    p = tmp_path / "c.yaml"
    p.write_text("lr: 1e-3\nweight_decay: 0\ngrad_clip: null\n")  # YAML 1.1: "1e-3" is a str
    cfg = SaneConfig.from_yaml(p)
    assert cfg.lr == 1e-3 and cfg.weight_decay == 0.0 and isinstance(cfg.weight_decay, float)
    assert cfg.grad_clip is None


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"d_model": 30, "n_heads": 4}, "divisible by n_heads"),
        ({"d_model": 9, "n_heads": 3}, "even"),
        ({"gamma": 2.0}, "gamma: Input should be less than or equal to 1"),
        ({"lr": 0}, "lr: Input should be greater than 0"),
        ({"epochs": 0}, "epochs"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"d_model": True}, "d_model"),
        ({"denoise": "yes"}, "denoise"),
        ({"recon_norm": "tokens"}, "recon_norm: Input should be 'real' or 'all'"),
        ({"epochs_range": [5, 2]}, "epochs_range: .*first <= last"),
        ({"grad_clip": -1.0}, "grad_clip"),
        ({"num_workers": -1}, "num_workers"),
        ({"lr": "fast"}, "lr"),
        ({"d_modle": 3}, "unknown SANE config key.*d_modle; known: .*d_model"),
    ],
)
def test_invalid_values_are_zoo_errors_naming_the_field(bad: dict, match: str) -> None:
    with pytest.raises(ZooError, match=match):
        SaneConfig.from_dict(bad)
    with pytest.raises(ZooError, match=match):
        SaneConfig(**bad)
    with pytest.raises(ZooError, match=match):
        SaneConfig().replace(**bad)


def test_train_help_shows_every_field_with_its_description() -> None:
    res = CliRunner().invoke(sane_cli, ["train", "--help"], terminal_width=400)
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    for name, field in SaneConfig.model_fields.items():
        if name in _NOT_GENERATED:
            continue
        assert f"--{name.replace('_', '-')}" in text
        first = " ".join(field.description.split()[:4]).replace("``", "")
        assert first in text, name
    assert "--recon-norm [real|all]" in text and "--gamma FLOAT RANGE" in text
    assert "0.0<=x<=1.0" in text  # ranges come from the fields


def test_train_options_reach_the_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    sane_train = importlib.import_module("sane.train")  # the module; `sane.train` is the function
    seen: list[SaneConfig] = []

    def fake_train(*, zoo: Path, out: Path, config: SaneConfig, progress: bool,
                   verify: bool = True) -> Path:
        seen.append(config)
        return out / "ckpt.pt"

    monkeypatch.setattr(sane_train, "train", fake_train)
    (tmp_path / "zoo").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text("d_model: 64\nrecon_norm: all\n")
    args = ["train", "--zoo", str(tmp_path / "zoo"), "--out", str(tmp_path / "run"),
            "--config", str(cfg), "--permutation-prob", "0", "--grad-clip", "none",
            "--token-norm", "--epochs-range", "1", "3", "--quiet"]
    res = CliRunner().invoke(sane_cli, args)
    assert res.exit_code == 0, res.output
    (c,) = seen
    assert (c.d_model, c.recon_norm, c.permutation_prob) == (64, "all", 0.0)
    assert c.grad_clip is None and c.token_norm and c.epochs_range == (1, 3)
    bad = CliRunner().invoke(sane_cli, [*args[:6], "--gamma", "3"])
    assert bad.exit_code == 2 and "--gamma" in bad.output


def test_resolve_device_and_autocast() -> None:
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto") == torch.device(want)
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ZooError, match="invalid device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ZooError, match="CUDA is not available"):
            resolve_device("cuda:0")
        assert SaneConfig(device="auto").resolved_device() == "cpu"
    assert isinstance(autocast("cpu"), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
    if torch.cuda.is_available():
        ctx = autocast("cuda")
        assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
