"""Per-model training configuration and the pieces both trainers share."""

from __future__ import annotations

import math

import torch
from torch import nn

from modelzoo.errors import RecipeError
from modelzoo.hparams import INITS, OPTIMIZERS, SCHEDULES, TrainConfig

__all__ = ["INITS", "OPTIMIZERS", "SCHEDULES", "TrainConfig"]  # declared in modelzoo.hparams

def init_weights_(model: nn.Module, scheme: str, generator: torch.Generator) -> nn.Module:
    """Re-initialise ``model`` in place with ``scheme`` drawing from ``generator``.

    Weight matrices/kernels follow the scheme, biases are zeroed; norm layers keep (1, 0).
    ``default`` keeps PyTorch's own initialisation (drawn under the model's seed).
    """
    if scheme not in INITS:
        raise RecipeError(f"unknown init {scheme!r}; choose from {', '.join(INITS)}")
    if scheme == "default":
        return model
    with torch.no_grad():
        for mod in model.modules():
            if not isinstance(mod, (nn.Linear, nn.Conv2d)):
                continue
            w = mod.weight
            fan_in = w[0].numel()
            if scheme == "uniform":
                b = 1.0 / math.sqrt(fan_in)
                nn.init.uniform_(w, -b, b, generator=generator)
            elif scheme == "normal":
                nn.init.normal_(w, 0.0, 1.0 / math.sqrt(fan_in), generator=generator)
            elif scheme == "kaiming_uniform":
                nn.init.kaiming_uniform_(w, nonlinearity="relu", generator=generator)
            elif scheme == "kaiming_normal":
                nn.init.kaiming_normal_(w, nonlinearity="relu", generator=generator)
            elif scheme == "xavier_uniform":
                nn.init.xavier_uniform_(w, generator=generator)
            elif scheme == "xavier_normal":
                nn.init.xavier_normal_(w, generator=generator)
            if mod.bias is not None:
                mod.bias.zero_()
    return model


def make_optimizer(
    params: list[torch.Tensor], cfg: TrainConfig, *, fused: bool = False
) -> torch.optim.Optimizer:
    """The torch optimizer a config asks for (SGD uses momentum 0.9).

    ``fused`` selects torch's single-kernel implementation (same update rule; the population
    trainer uses it, the per-model reference loop keeps torch's default).
    """
    kw = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, **({"fused": True} if fused else {})}
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, **kw)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, **kw)
    return torch.optim.SGD(params, momentum=0.9, **kw)


def make_scheduler(
    opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """The learning-rate schedule of a config, stepped once per optimizer step.

    ``onecycle`` is ``torch.optim.lr_scheduler.OneCycleLR`` peaking at ``cfg.lr`` (as in the
    ResNet zoos of SANE); ``constant`` keeps ``cfg.lr``.
    """
    if cfg.schedule == "constant" or total_steps < 1:
        return None
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps)


def train_subset(cfg: TrainConfig, n_train: int) -> torch.Tensor:
    """Indices of the training examples a model sees (``train_fraction`` of them)."""
    n = max(1, round(cfg.train_fraction * n_train))
    if n == n_train:
        return torch.arange(n_train)
    g = torch.Generator().manual_seed(10_007 * cfg.seed + 17)
    return torch.randperm(n_train, generator=g)[:n].sort().values


def epoch_order(cfg: TrainConfig, subset: torch.Tensor, epoch: int) -> torch.Tensor:
    """The model's own data order for ``epoch`` (1-based), from its seed."""
    g = torch.Generator().manual_seed(1_000_003 * cfg.seed + epoch)
    return subset[torch.randperm(len(subset), generator=g)]


def dropout_generator_seed(cfg: TrainConfig) -> int:
    """Seed of the model's dropout stream."""
    return 7_919 * cfg.seed + 3
