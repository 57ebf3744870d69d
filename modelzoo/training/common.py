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

    def head(self, n: int) -> Checkpoint:
        """The first ``n`` models of the checkpoint."""
        return Checkpoint(self.epoch, list(self.configs)[:n], self.weights[:n],
                          {k: v[:n] for k, v in self.metrics.items()}, self.diverged[:n])


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


def initial_states(
    arch: str, arch_kwargs: dict[str, Any], configs: Sequence[TrainConfig]
) -> tuple[nn.Module, list[dict[str, torch.Tensor]]]:
    """A template model and each config's initial state, equal to ``build_model``'s.

    Schemes other than ``default`` redraw every Linear/Conv2d weight from the config's own
    generator and zero the biases, so for nets whose other parameters start at constants
    (norm layers) one template is re-initialised per config instead of building each model.
    """
    template = build_model(arch, arch_kwargs, configs[0])
    redraws_all = all(
        isinstance(mod, (nn.Linear, nn.Conv2d, nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm))
        or not any(True for _ in mod.parameters(recurse=False))
        for mod in template.modules()
    )
    states = []
    for cfg in configs:
        if cfg.init == "default" or not redraws_all:
            model = build_model(arch, arch_kwargs, cfg)
        else:
            model = init_weights_(template, cfg.init, torch.Generator().manual_seed(cfg.seed))
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    return template, states


def is_diverged(weights: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """Per-model divergence flags from ``[M, P]`` weights and ``[M]`` losses."""
    bad_w = ~torch.isfinite(weights).all(dim=1) | (weights.abs().amax(dim=1) > DIVERGENCE_THRESHOLD)
    return bad_w | ~torch.isfinite(losses)


def split_batches(n: int, batch_size: int) -> list[slice]:
    """Consecutive batch slices over ``n`` examples (last one may be short)."""
    return [slice(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]


EVAL_BATCH = 1024
