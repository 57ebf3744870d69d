"""Weight providers for the initialization and generation tasks (no learning involved).

* ``random-init``: PyTorch's default initialisation of the target architecture (the usual
  baseline a generative model must beat when fine-tuning).
* ``zoo-init``: last checkpoints of randomly chosen *train-split* zoo models with the target
  activation (pretrained initialisation; in the generation task these are copies of training
  models, so the novelty criterion rejects them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pandas as pd
import torch

from benchmarks.errors import BenchmarkError
from benchmarks.methods._weights import rows_weights
from benchmarks.methods.base import TargetModel
from benchmarks.registry import register_method
from modelzoo import create_model, load_zoo
from modelzoo.storage import flatten_state_dict
from modelzoo.storage.manifest import Manifest
from modelzoo.storage.schema import STATUS_OK


def build_target(manifest: Manifest, target: TargetModel, **overrides: Any) -> torch.nn.Module:
    """Instantiate the target architecture with the target activation (dropout 0)."""
    entry = manifest.architectures[target.architecture]
    kwargs = {**entry.kwargs, "activation": target.activation, "dropout": 0.0, **overrides}
    return create_model(entry.name, **kwargs)


def last_checkpoints(ds: datasets.Dataset, target: TargetModel) -> pd.DataFrame:
    """The last checkpoint of every healthy model of ``ds`` with the target architecture and
    activation, sorted by ``model_id``: columns ``row`` (index in ``ds``), ``model_id``,
    ``epoch``, ``val_acc``, ``source``."""
    cols = ["model_id", "epoch", "architecture", "activation", "status", "val_acc", "source"]
    meta = ds.select_columns(cols).to_pandas()
    meta["row"] = np.arange(len(meta))
    ok = meta[(meta.status == STATUS_OK) & (meta.architecture == target.architecture)
              & (meta.activation == target.activation)]
    last = ok.sort_values(["epoch", "row"]).groupby("model_id").tail(1).sort_values("model_id")
    return last[["row", "model_id", "epoch", "val_acc", "source"]].reset_index(drop=True)


@register_method("random-init")
class RandomInit:
    """Default PyTorch initialisation of the target architecture."""

    name = "random-init"

    def meta(self) -> dict[str, Any]:
        """Description stored with results."""
        return {"weights": "torch default init", "version": 1}

    def sample(
        self, *, zoo: Path, manifest: Manifest, target: TargetModel, n: int, seed: int
    ) -> np.ndarray:
        """``n`` freshly initialised weight vectors (seeded)."""
        layout = manifest.architectures[target.architecture].layout
        out = np.empty((n, target.num_params), dtype=np.float32)
        for i in range(n):
            torch.manual_seed(seed * 100_003 + i)
            model = build_target(manifest, target)
            out[i] = flatten_state_dict(model.state_dict(), layout).numpy()
        return out


@register_method("zoo-init")
class ZooInit:
    """Last checkpoints of train-split zoo models with the target activation."""

    name = "zoo-init"

    def meta(self) -> dict[str, Any]:
        """Description stored with results."""
        return {"weights": "last checkpoint of random train-split zoo models", "version": 1}

    def sample(
        self, *, zoo: Path, manifest: Manifest, target: TargetModel, n: int, seed: int
    ) -> np.ndarray:
        """``n`` weight vectors drawn (without replacement while possible) from the zoo."""
        ds = load_zoo(zoo, "train")
        last = last_checkpoints(ds, target)
        if last.empty:
            raise BenchmarkError(
                f"the zoo's train split has no healthy {target.architecture} models with "
                f"activation {target.activation!r} to initialise from"
            )
        rng = np.random.default_rng(seed)
        rows = last.row.to_numpy()
        pick = rng.choice(rows, size=n, replace=n > len(rows))
        return rows_weights(ds, pick).numpy().copy()
