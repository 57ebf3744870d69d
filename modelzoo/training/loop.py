"""Per-model reference trainer: a plain PyTorch loop, one model at a time.

Used to check the population trainer and for architectures that cannot be stacked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from modelzoo.sources import SourceData
from modelzoo.storage.layout import flatten_state_dict, layer_layout
from modelzoo.training.common import (
    EVAL_BATCH,
    Checkpoint,
    build_model,
    is_diverged,
    split_batches,
    splits_on,
)
from modelzoo.training.config import (
    TrainConfig,
    dropout_generator_seed,
    epoch_order,
    make_optimizer,
    make_scheduler,
    train_subset,
)


@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``(x, y)`` in eval mode."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0.0
    for sl in split_batches(len(y), EVAL_BATCH):
        logits = model(x[sl]).float()
        loss += F.cross_entropy(logits, y[sl], reduction="sum").item()
        correct += (logits.argmax(-1) == y[sl]).sum().item()
    model.train(was_training)
    return loss / len(y), correct / len(y)


def train_one(
    *,
    arch: str,
    arch_kwargs: dict[str, Any],
    cfg: TrainConfig,
    data: SourceData,
    epochs: int,
    checkpoint_epochs: Sequence[int],
    device: str | torch.device = "cpu",
) -> Iterator[Checkpoint]:
    """Train one model; yield a single-model Checkpoint at each checkpoint epoch."""
    device = torch.device(device)
    model = build_model(arch, arch_kwargs, cfg).to(device)
    layout = layer_layout(model)
    opt = make_optimizer(list(model.parameters()), cfg)
    splits = splits_on(data, device)
    subset = train_subset(cfg, len(data.y_train))
    sched = make_scheduler(opt, cfg, epochs * len(split_batches(len(subset), cfg.batch_size)))
    diverged = torch.zeros(1, dtype=torch.bool)
    torch.manual_seed(dropout_generator_seed(cfg))

    def snapshot(epoch: int) -> Checkpoint:
        nonlocal diverged
        metrics: dict[str, torch.Tensor] = {}
        for split, (x, y) in splits.items():
            loss, acc = evaluate_model(model, x, y)
            metrics[f"{split}_loss"] = torch.tensor([loss])
            metrics[f"{split}_acc"] = torch.tensor([acc])
        flat = flatten_state_dict(model.state_dict(), layout).cpu()[None]
        diverged = diverged | is_diverged(flat, metrics["train_loss"])
        return Checkpoint(epoch, [cfg], flat, metrics, diverged.clone())

    ckpts = set(checkpoint_epochs)
    if 0 in ckpts:
        yield snapshot(0)
    model.train()
    x_train, y_train = splits["train"]
    for epoch in range(1, epochs + 1):
        perm = epoch_order(cfg, subset, epoch).to(device)
        for sl in split_batches(len(perm), cfg.batch_size):
            idx = perm[sl]
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            if sched is not None:
                sched.step()
        if epoch in ckpts:
            yield snapshot(epoch)
