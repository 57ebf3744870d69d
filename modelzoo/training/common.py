"""Pieces shared by the population trainer and the per-model reference loop."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from modelzoo.architectures import create_model
from modelzoo.sources import SourceData
from modelzoo.training.config import TrainConfig, init_weights_

#: A weight with a larger magnitude than this marks a model as diverged.
DIVERGENCE_THRESHOLD = 1e6
METRIC_NAMES = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


@dataclass
class Checkpoint:
    """Weights and metrics of a population of models at one epoch.

    Attributes:
        epoch: 0 for the initialisation, then 1..epochs.
        configs: the models, in row order.
        weights: ``[M, P]`` float32 on CPU, in layer-layout order.
        metrics: name -> ``[M]`` float tensor (see METRIC_NAMES).
        diverged: ``[M]`` bool: NaN/inf loss or weights, or exploding weights, at or before now.
    """

    epoch: int
    configs: Sequence[TrainConfig]
    weights: torch.Tensor
    metrics: dict[str, torch.Tensor]
    diverged: torch.Tensor


def splits_on(data: SourceData, device: torch.device) -> dict[str, tuple[torch.Tensor, ...]]:
    """The source's (inputs, labels) per partition on ``device``, keyed by metric prefix."""
    return {
        "train": (data.x_train.to(device), data.y_train.to(device)),
        "val": (data.x_val.to(device), data.y_val.to(device)),
        "test": (data.x_test.to(device), data.y_test.to(device)),
    }


def build_model(arch: str, arch_kwargs: dict[str, Any], cfg: TrainConfig) -> nn.Module:
    """Instantiate and initialise one model deterministically from its seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = create_model(arch, **arch_kwargs, activation=cfg.activation, dropout=cfg.dropout)
    return init_weights_(model, cfg.init, torch.Generator().manual_seed(cfg.seed))


def is_diverged(weights: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """Per-model divergence flags from ``[M, P]`` weights and ``[M]`` losses."""
    bad_w = ~torch.isfinite(weights).all(dim=1) | (weights.abs().amax(dim=1) > DIVERGENCE_THRESHOLD)
    return bad_w | ~torch.isfinite(losses)


def split_batches(n: int, batch_size: int) -> list[slice]:
    """Consecutive batch slices over ``n`` examples (last one may be short)."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


EVAL_BATCH = 1024
