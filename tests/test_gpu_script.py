"""`scripts/gpu_resnet18_cifar100.sh` end to end, smoke-sized on the CPU.

The script is meant for one CUDA GPU at full size; here the same commands run with
``DEVICE=cpu``, a narrow ResNet-18 and a tiny SANE on a CIFAR-100 folder the test writes
(torchvision's pickle layout), so the plumbing (card, overrides, resumable build, SANE train,
embed, sample) is checked on every CI run. CUDA-only behaviour (bf16 autocast, nccl, memory
at full size) still needs a GPU run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from modelzoo.storage import read_manifest
from tests.source_fixtures import make_pools, write_cifar100

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_resnet18_cifar100.sh"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_gpu_script_runs_end_to_end_on_cpu(tmp_path: Path) -> None:
    write_cifar100(tmp_path / "data", make_pools("cifar100"))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "MODELZOO_DATA": str(tmp_path / "data"),
        "DEVICE": "cpu", "MODELS": "2", "EPOCHS": "2", "GROUP": "2", "SANE_EPOCHS": "1",
        "OUT": str(tmp_path / "zoo"), "RUN": str(tmp_path / "run"),
        "ZOO_ARGS": "--arch-opt width=4 --no-progress",
        "SANE_ARGS": "--token-size 16 --window-size 32 --d-model 32 --n-heads 2 --n-layers 1 "
                     "--latent-dim 8 --batch-size 4",
    }  # fmt: skip
    res = subprocess.run(["bash", str(SCRIPT)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    m = read_manifest(tmp_path / "zoo")
    assert (m.name, m.num_models) == ("resnet18-cifar100", 2)
    assert m.recipe["checkpoint_epochs"] == [0, 2]  # the card's list cut to --epochs 2
    assert m.recipe["arch_kwargs"] == {"norm": "bn", "width": 4}  # card options kept
    run = tmp_path / "run"
    assert (run / "ckpt.pt").is_file()
    assert any((run / "embeddings").iterdir())
    assert len(list((run / "samples").rglob("*.safetensors"))) == 8
    assert "zoo build:" in res.stdout and "SANE:" in res.stdout
