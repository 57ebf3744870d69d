"""The population trainer's forward paths behind one interface, chosen once per network.

* :class:`DensePath` (CPU, plain Sequential nets on small images, e.g. the digits zoos): every
  layer is one batched matmul, convolutions through per-model Toeplitz matrices (``dense.py``);
* :class:`GroupedPath` (CPU, other plain Sequential nets): grouped convolutions in channels_last
  (``stacked.py``);
* :class:`VmapPath`: ``vmap(functional_call(...))`` (ResNets, BatchNorm, any device).

``dense`` and ``grouped`` give bit-identical results for any thread count and group size
(tested); ``vmap`` runs torch's own convolutions, whose results depend on the thread count.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from modelzoo.training.common import EVAL_BATCH
from modelzoo.training.dense import DenseStack
from modelzoo.training.stacked import stacked_forward, supports_stacked

PopulationPath = Literal["dense", "grouped", "vmap"]
Params = dict[str, torch.Tensor]

#: evaluation holds about this many activation floats per model at once (dense path); the
#: chunk depends on the network only, never on the number of models, so a model's metrics
#: do not depend on the group it was trained in
_EVAL_BUDGET_PER_MODEL = 1 << 16
#: models per forward/backward call on the dense path (see :attr:`DensePath.model_block`)
MODEL_BLOCK = 32


class ForwardPath(ABC):
    """How a population of stacked models (parameters ``{name: [M, ...]}``) runs forward."""

    name: PopulationPath

    @abstractmethod
    def losses(self, params: Params, buffers: Params, x: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
        """Per-model mean training loss ``[M]`` on per-model batches ``x [M, B, ...]``."""

    @abstractmethod
    def shared(self, params: Params, buffers: Params) -> Callable[[torch.Tensor], torch.Tensor]:
        """``x -> logits [M, K, n]`` of every model on the same inputs ``x [n, ...]``."""

    @property
    def eval_batch(self) -> int:
        """Examples per evaluation chunk (a function of the network only)."""
        return EVAL_BATCH

    @property
    def model_block(self) -> int | None:
        """Models per forward/backward call (None: all at once)."""
        return None


class DensePath(ForwardPath):
    """Batched matmuls of a compiled :class:`DenseStack`."""

    name: PopulationPath = "dense"

    def __init__(self, plan: DenseStack) -> None:
        self.plan = plan

    def losses(self, params: Params, buffers: Params, x: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.plan(params, x), y, reduction="none").mean(1)

    def shared(self, params: Params, buffers: Params) -> Callable[[torch.Tensor], torch.Tensor]:
        return self.plan.bind(params)  # each layer's matrix is built once for all chunks

    @property
    def eval_batch(self) -> int:
        # the widest activation is [M, widest, chunk]
        return max(32, min(EVAL_BATCH, _EVAL_BUDGET_PER_MODEL // self.plan.widest))

    @property
    def model_block(self) -> int | None:
        # the per-model Toeplitz matrices and activations of a block stay in cache: blocks of
        # 16-64 models ran conv1's forward+backward ~1.8x and evaluation ~2-4x faster than
        # 256 models at once (2-core EPYC)
        return MODEL_BLOCK


class GroupedPath(ForwardPath):
    """Explicit grouped ops in channels_last (:func:`stacked_forward`)."""

    name: PopulationPath = "grouped"

    def __init__(self, model: nn.Sequential) -> None:
        self.model = model

    def losses(self, params: Params, buffers: Params, x: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
        logits = stacked_forward(self.model, params, x, x.shape[0])  # [M, B, K]
        return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)

    def shared(self, params: Params, buffers: Params) -> Callable[[torch.Tensor], torch.Tensor]:
        m = next(iter(params.values())).shape[0]
        return lambda x: stacked_forward(self.model, params, x, m).transpose(1, 2)


class VmapPath(ForwardPath):
    """``vmap(functional_call)`` over the stacked parameters and buffers."""

    name: PopulationPath = "vmap"

    def __init__(self, model: nn.Module) -> None:
        self.model = model

        def loss_fn(p: Params, b: Params, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(functional_call(model, (p, b), (x,)), y)

        self._step = vmap(loss_fn, randomness="different")
        self._fwd = vmap(lambda p, b, x: functional_call(model, (p, b), (x,)),
                         in_dims=(0, 0, None))

    def losses(self, params: Params, buffers: Params, x: torch.Tensor,
               y: torch.Tensor) -> torch.Tensor:
        return self._step(params, buffers, x, y)

    def shared(self, params: Params, buffers: Params) -> Callable[[torch.Tensor], torch.Tensor]:
        return lambda x: self._fwd(params, buffers, x).transpose(1, 2)


def model_blocks(m: int, size: int | None) -> list[slice]:
    """``m`` models (``m >= 2``) in contiguous blocks of at most ``size`` (None: one block),
    as even as possible, so that every block holds at least two models (a batched matmul over
    one model takes other kernels, with other rounding)."""
    n = 1 if size is None else max(1, min(-(-m // size), m // 2))
    bounds = [m * i // n for i in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def forward_path(model: nn.Module, in_shape: tuple[int, ...], device: torch.device) -> ForwardPath:
    """The fastest path that runs ``model`` on inputs of ``in_shape`` on ``device``."""
    if device.type == "cpu":
        plan = DenseStack.build(model, in_shape)
        if plan is not None:
            return DensePath(plan)
        if supports_stacked(model):
            return GroupedPath(model)  # type: ignore[arg-type]
    return VmapPath(model)


__all__ = ["MODEL_BLOCK", "DensePath", "ForwardPath", "GroupedPath", "PopulationPath",
           "VmapPath", "forward_path", "model_blocks"]
