"""Building target models from flat weights, fine-tuning them, and measuring novelty.

Used by the initialization task (accuracy per fine-tuning epoch and the area under that curve)
and the generation task (zero-shot accuracy, percentiles, distance to training checkpoints).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from benchmarks.data import ImageData
from benchmarks.methods.base import TargetModel
from benchmarks.methods.providers import build_target
from modelzoo.storage import unflatten_weights
from modelzoo.storage.manifest import Manifest


def model_from_weights(
    manifest: Manifest, target: TargetModel, weights: np.ndarray, data: ImageData
) -> tuple[nn.Module, int]:
    """Build the target architecture for ``data``'s shape and classes and load ``weights``.

    Tensors whose shape differs from the zoo's layout (e.g. the classifier of a dataset with
    another number of classes) keep their fresh initialisation.

    Returns:
        The model and the number of tensors loaded from ``weights``.
    """
    c, h, _ = data.in_shape
    model = build_target(manifest, target, in_channels=c, image_size=h,
                         num_classes=data.num_classes)
    layout = manifest.architectures[target.architecture].layout
    state = unflatten_weights(torch.as_tensor(np.asarray(weights, dtype=np.float32)), layout)
    own = model.state_dict()
    compatible = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(compatible, strict=False)
    return model, len(compatible)


@torch.no_grad()
def accuracy_of(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 2048) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)`` in eval mode."""
    was = model.training
    model.eval()
    correct = 0
    for xb, yb in zip(x.split(batch), y.split(batch), strict=True):
        out = model(xb)
        correct += int((out.argmax(1) == yb).sum()) if torch.isfinite(out).all() else 0
    model.train(was)
    return correct / max(len(y), 1)


def finetune_curve(
    model: nn.Module, data: ImageData, *, epochs: int, lr: float, batch_size: int, seed: int
) -> list[float]:
    """Train with Adam for ``epochs``; test accuracy before training and after each epoch."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    curve = [accuracy_of(model, data.x_test, data.y_test)]
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(data.y_train), generator=g)
        for idx in perm.split(batch_size):
            opt.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            if not torch.isfinite(loss):
                break
            loss.backward()
            opt.step()
        curve.append(accuracy_of(model, data.x_test, data.y_test))
    return curve


def area_under_curve(curve: Sequence[float]) -> float:
    """Normalised area under an accuracy-per-epoch curve (trapezoids / epochs), in [0, 1].

    A curve with a single point (no fine-tuning) has that point as its area.
    """
    c = np.asarray(curve, dtype=np.float64)
    if len(c) == 1:
        return float(c[0])
    return float(np.trapezoid(c, dx=1.0) / (len(c) - 1))


def nearest_distance(
    samples: torch.Tensor, reference: torch.Tensor, chunk: int = 4096
) -> torch.Tensor:
    """L2 distance of each sample ``[n, P]`` to its nearest reference row ``[R, P]``."""
    s = samples.to(torch.float64)
    best = torch.full((len(s),), float("inf"), dtype=torch.float64)
    for part in reference.split(chunk):
        best = torch.minimum(best, torch.cdist(s, part.to(torch.float64)).min(1).values)
    return best


def distinct_model_scale(
    weights: torch.Tensor, model_ids: Sequence[str], last_rows: Sequence[int],
    chunk: int = 2048,
) -> float:
    """Median over models of the L2 distance from a model's last checkpoint to the nearest
    checkpoint of a *different* model: the typical gap between distinct training models.

    All last checkpoints are compared with one chunk of rows at a time (same-model pairs
    masked out), so a zoo of thousands of checkpoints takes one pass over its weights.
    """
    rows = torch.as_tensor(np.asarray(last_rows, dtype=np.int64))
    if not len(rows):
        return 1.0
    codes = torch.as_tensor(np.unique(np.asarray(model_ids), return_inverse=True)[1])
    query, query_codes = weights[rows].to(torch.float64), codes[rows]
    best = torch.full((len(rows),), float("inf"), dtype=torch.float64)
    for start in range(0, len(weights), chunk):
        part = weights[start : start + chunk].to(torch.float64)
        d = torch.cdist(query, part)
        d[query_codes[:, None] == codes[start : start + chunk][None, :]] = float("inf")
        best = torch.minimum(best, d.min(1).values)
    found = best[torch.isfinite(best)]
    return float(np.median(found.numpy())) if len(found) else 1.0
