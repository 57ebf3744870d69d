"""`sane train` under torchrun: 2 CPU processes (gloo) give the single-process checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from modelzoo.storage import read_manifest
from sane import SaneConfig, embed, train
from sane.data import SaneWindows, ZooRows, arch_data
from sane.run import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def test_torchrun_two_cpu_processes_match_single_process(tiny_zoo: Path, tmp_path: Path) -> None:
    # contrastive loss off and no dropout: then the loss of a batch is the mean of equal halves,
    # so averaging the two ranks' gradients (DDP) equals the single-process full-batch step
    rows = ZooRows(tiny_zoo, "train")
    n = len(SaneWindows(rows, arch_data(read_manifest(tiny_zoo),
                                        SaneConfig(token_size=32, window_size=16), None),
                        SaneConfig(token_size=32, window_size=16), seed=0))
    batch = next(b for b in (8, 6, 4, 2) if n % b == 0)
    cfg = SaneConfig(d_model=32, n_heads=2, n_layers=1, latent_dim=8, token_size=32,
                     window_size=16, projection_dim=8, epochs=2, batch_size=batch, lr=1e-3,
                     gamma=0.0, dropout=0.0, device="cpu")
    single = tmp_path / "single"
    train(zoo=tiny_zoo, out=single, config=cfg, progress=False)
    ddp = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sane.cli", "train", "--zoo", str(tiny_zoo), "--out", str(ddp), "--quiet"]
    proc = subprocess.run([*cmd, "--config", str(_cfg_file(tmp_path, cfg))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = load_checkpoint(single / "ckpt.pt"), load_checkpoint(ddp / "ckpt.pt")
    assert a.keys() == b.keys() and a["epoch"] == b["epoch"] == 1
    assert a["model"].keys() == b["model"].keys()
    for k in a["model"]:
        # ~1e-7 everywhere except attention key biases, whose true gradient is zero
        # (softmax is shift-invariant): Adam normalises their float noise to ~1e-5 steps
        assert torch.allclose(a["model"][k], b["model"][k], atol=5e-5, rtol=1e-4), k
    assert abs(a["history"][-1]["train_loss"] - b["history"][-1]["train_loss"]) < 1e-4
    emb = embed(run=ddp, zoo=tiny_zoo, out=tmp_path / "emb", progress=False)
    assert emb.num_rows == read_manifest(tiny_zoo).num_rows  # the single-process API reads it


def _cfg_file(tmp_path: Path, cfg: SaneConfig) -> Path:
    import yaml

    p = tmp_path / "cfg.yaml"
    d = cfg.to_dict()
    p.write_text(yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}))
    return p
