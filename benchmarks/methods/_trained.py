"""Shared machinery of the trained weight-space methods (``nfn-np``, ``nfn-hnp``,
``graph-metanet``): a property predictor trained per task on the train split, early-stopped
on the validation split, behind the fit / predict protocol of :mod:`benchmarks.methods.base`.

How one task is fitted (:meth:`TrainedPredictor.fit`):

1. the target is coded from the *train* rows only (:class:`TargetCoder`): regression targets
   standardised by the train mean / std (MSE loss), classification targets as indices of the
   train split's class labels (cross-entropy);
2. the rows are split into groups, one network each: ``graph-metanet`` has one group (one
   network for every architecture), the NFNs one group per architecture (an NFN's layers are
   specific to one layer layout);
3. at most ``max_train_rows`` train and ``max_val_rows`` validation checkpoints are drawn
   per task (seeded; the budget cut), shared among the groups in proportion to their rows;
   per group, normalisation statistics are taken from its drawn train rows, and the
   network is trained with AdamW on minibatches of train rows (:func:`train_step`, the only
   place a gradient is taken). After every epoch the
   validation loss is computed without gradients; the weights of the best epoch are kept
   and training stops after ``patience`` epochs without improvement.

Validation rows are only ever scored (early stopping); test and held-out rows are only
predicted. The seed drives the network's initialisation, the row draw and the batch order,
so seeds give the spread of a trained method; intervals come from the evaluator's bootstrap
over test models as for every method.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import datasets
import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from benchmarks.errors import MethodError, TaskNotApplicableError
from benchmarks.scoring import class_labels
from modelzoo.storage.manifest import Manifest


class TrainConfig(BaseModel):
    """Training budget and optimiser of one task's network (per group).

    Attributes:
        epochs: maximum passes over the drawn train rows.
        patience: epochs without a better validation loss before stopping.
        batch_size: train minibatch size.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        max_train_rows: train checkpoints drawn per task (``None``: all), shared among the
            groups in proportion to their train rows.
        max_val_rows: validation checkpoints drawn per task for early stopping, likewise.
        eval_batch_size: rows per forward pass when scoring / predicting.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(12, ge=1)
    patience: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    max_train_rows: int | None = Field(1000, ge=1)
    max_val_rows: int | None = Field(400, ge=1)
    eval_batch_size: int = Field(256, ge=1)


class TargetCoder:
    """A task's target as network outputs: standardised numbers or class indices.

    Args:
        values: the target column of the train rows.
        task_type: ``"regression"`` or ``"classification"``.
    """

    def __init__(self, values: np.ndarray | Sequence[Any], task_type: str) -> None:
        self.task_type = task_type
        if task_type == "regression":
            y = np.asarray(values, dtype=np.float64)
            if not np.isfinite(y).all():
                raise MethodError("the regression target has NaN / inf values in the train split")
            self.mean, self.std = float(y.mean()), float(y.std()) or 1.0
            self.classes: list[str] = []
        elif task_type == "classification":
            self.classes = sorted(set(class_labels(values).tolist()))
        else:
            raise MethodError(f"trained weight-space methods do regression or classification, "
                              f"not {task_type!r}")

    @property
    def n_outputs(self) -> int:
        """Network outputs: 1 for regression, one per class."""
        return 1 if self.task_type == "regression" else len(self.classes)

    def encode(self, values: np.ndarray | Sequence[Any]) -> torch.Tensor:
        """Targets as float (regression) or class-index (classification) tensors."""
        if self.task_type == "regression":
            y = (np.asarray(values, dtype=np.float64) - self.mean) / self.std
            return torch.as_tensor(y, dtype=torch.float32)
        index = {c: i for i, c in enumerate(self.classes)}
        labels = class_labels(values).tolist()
        return torch.as_tensor([index.get(v, -100) for v in labels], dtype=torch.int64)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """MSE on standardised targets, or cross-entropy (unknown classes ignored)."""
        if self.task_type == "regression":
            return nn.functional.mse_loss(out[:, 0], y)
        return nn.functional.cross_entropy(out, y, ignore_index=-100)

    def decode(self, out: torch.Tensor) -> np.ndarray:
        """Predictions: numbers in the target's units, or class labels."""
        if self.task_type == "regression":
            return out[:, 0].double().numpy() * self.std + self.mean
        return np.asarray(self.classes, dtype=object)[out.argmax(1).numpy()]


class Rows(Protocol):
    """Encoded rows of one split and group: network inputs for any subset of them."""

    keys: list[tuple[str, int]]  # (model_id, epoch) per row; empty for label-free views

    def __len__(self) -> int: ...

    def inputs(self, idx: torch.Tensor) -> Any:
        """Network input of rows ``idx``."""
        ...


@dataclass
class Batch:
    """One minibatch: network inputs, coded targets and the rows' ``(model_id, epoch)``."""

    inputs: Any
    targets: torch.Tensor
    keys: list[tuple[str, int]]


def train_step(net: nn.Module, opt: torch.optim.Optimizer, batch: Batch,
               coder: TargetCoder) -> float:
    """One gradient step on ``batch`` (the only place these methods take a gradient)."""
    opt.zero_grad(set_to_none=True)
    loss = coder.loss(net(batch.inputs), batch.targets)
    loss.backward()
    opt.step()
    return float(loss.detach())


@torch.no_grad()
def forward_rows(net: nn.Module, rows: Rows, batch_size: int) -> torch.Tensor:
    """Outputs ``[rows, n_out]`` of ``net`` in eval mode, without gradients."""
    net.eval()
    n = len(rows)
    outs = [net(rows.inputs(idx)) for idx in torch.arange(n).split(batch_size)] if n else []
    return torch.cat(outs) if outs else torch.zeros(0, 0)


def fit_network(net: nn.Module, train: Rows, y_train: torch.Tensor, val: Rows | None,
                y_val: torch.Tensor | None, coder: TargetCoder, cfg: TrainConfig,
                seed: int) -> dict[str, Any]:
    """Train ``net`` on ``train`` with early stopping on ``val`` (see the module doc); the
    best epoch's weights are loaded into ``net``.

    Returns:
        ``{"epochs_run", "best_epoch", "best_val_loss"}`` (no validation rows: the last
        epoch, loss ``None``).
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_epoch, best_state, waited, epoch = math.inf, 0, None, 0, 0
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        for idx in torch.randperm(len(train), generator=gen).split(cfg.batch_size):
            keys = [train.keys[i] for i in idx.tolist()] if train.keys else []
            train_step(net, opt, Batch(train.inputs(idx), y_train[idx], keys), coder)
        if val is None or y_val is None or not len(val):
            continue
        loss = float(coder.loss(forward_rows(net, val, cfg.eval_batch_size), y_val))
        if loss < best - 1e-6:
            best, best_epoch, waited = loss, epoch, 0
            best_state = copy.deepcopy(net.state_dict())
        else:
            waited += 1
            if waited >= cfg.patience:
                break
    if best_state is not None:
        net.load_state_dict(best_state)
    net.eval()
    return {"epochs_run": epoch, "best_epoch": best_epoch or epoch,
            "best_val_loss": None if best_state is None else round(best, 6)}


def _draw(n: int, total: int, limit: int | None, gen: np.random.Generator) -> np.ndarray:
    """Sorted indices of a group's share of ``limit`` rows: ``n`` of the task's ``total``
    rows are the group's (all of them if the task has at most ``limit``)."""
    if limit is None or total <= limit:
        return np.arange(n)
    share = max(1, min(n, round(limit * n / total)))
    return np.sort(gen.choice(n, size=share, replace=False))


def row_keys(dataset: datasets.Dataset) -> list[tuple[str, int]]:
    """``(model_id, epoch)`` of each row, or ``[]`` for rows without them (a label-free view)."""
    if not {"model_id", "epoch"} <= set(dataset.column_names):
        return []
    keys = dataset.select_columns(["model_id", "epoch"]).to_pandas()
    return [(str(m), int(e)) for m, e in zip(keys.model_id, keys.epoch, strict=True)]


def architectures(dataset: datasets.Dataset) -> np.ndarray:
    """The ``architecture`` column of ``dataset`` as a numpy array."""
    return np.asarray(dataset.select_columns(["architecture"]).to_pandas()["architecture"])


@dataclass
class Fitted:
    """One trained group: its network, its preprocessing state and its training facts."""

    net: nn.Module
    prep: Any
    facts: dict[str, Any] = field(default_factory=dict)


class TrainedPredictor:
    """Base of the trained weight-space methods (fit / predict, see the module doc).

    Subclasses give :meth:`group_of` (which network a row goes to), :meth:`prepare`
    (normalisation state from train rows), :meth:`encode` (rows -> :class:`Rows`) and
    :meth:`build` (a fresh network), plus ``name`` and :meth:`settings`.

    Args:
        train: training budget and optimiser.
    """

    name: str = "trained"
    #: Whether one network serves every architecture (else: one per architecture, which
    #: cannot predict an architecture absent from the train rows).
    any_architecture: bool = False

    def __init__(self, train: TrainConfig | dict[str, Any] | None = None) -> None:
        self.train = train if isinstance(train, TrainConfig) else TrainConfig(**(train or {}))
        self._fitted: dict[str, Fitted] = {}
        self._coder: TargetCoder | None = None
        self._fits: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ subclass hooks

    def settings(self) -> dict[str, Any]:
        """The network's hyperparameters (for :meth:`meta`)."""
        raise NotImplementedError

    def group_of(self, arch: str) -> str:
        """The network (group) rows of architecture ``arch`` go to."""
        return "all" if self.any_architecture else arch

    def prepare(self, train: datasets.Dataset, manifest: Manifest) -> Any:
        """Preprocessing state (e.g. weight scales) computed from train rows of one group."""
        raise NotImplementedError

    def encode(self, dataset: datasets.Dataset, manifest: Manifest, prep: Any) -> Rows:
        """Network inputs of the rows of ``dataset`` (of one group)."""
        raise NotImplementedError

    def build(self, prep: Any, n_outputs: int) -> nn.Module:
        """A freshly initialised network (the torch seed is set by the caller)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ protocol

    def meta(self) -> dict[str, Any]:
        """Settings, training budget, and the facts of every fit of this object (target, seed,
        rows, epochs run and best epoch per group), in order."""
        return {"version": 1, "network": self.settings(), "train": self.train.model_dump(),
                "fits": list(self._fits)}

    def check_applicable(self, *, task: Any, zoo: Any) -> None:
        """Refuse a task whose rows to predict have an architecture without a network (one
        per architecture: an architecture left out of the train rows).

        Raises:
            TaskNotApplicableError: such an architecture.
        """
        if self.any_architecture:
            return
        seen = set(zoo.column("train", "architecture").tolist())
        for split in zoo.splits:
            if split == "train":
                continue
            missing = set(zoo.column(split, "architecture").tolist()) - seen
            if missing:
                raise TaskNotApplicableError(
                    f"{self.name} trains one network per architecture and the {split} rows of "
                    f"{task.name} have architecture(s) {', '.join(sorted(missing))} that no "
                    "train row has; use graph-metanet (one network for all architectures)")

    def _groups(self, dataset: datasets.Dataset) -> dict[str, np.ndarray]:
        archs = architectures(dataset)
        out: dict[str, list[np.ndarray]] = {}
        for arch in sorted(set(archs.tolist())):
            out.setdefault(self.group_of(arch), []).append(np.flatnonzero(archs == arch))
        return {g: np.sort(np.concatenate(parts)) for g, parts in out.items()}

    def fit(self, train: datasets.Dataset, *, target: str, task_type: str,
            validation: datasets.Dataset, manifest: Manifest, seed: int) -> None:
        """Train one network per group on ``train`` (early stopping on ``validation``)."""
        if not len(train):
            raise MethodError(f"{self.name}: no train rows to fit on")
        self._coder = coder = TargetCoder(train[target], task_type)
        self._fitted = {}
        val_groups = self._groups(validation) if len(validation) else {}
        gen = np.random.default_rng(seed)
        cap_t, cap_v = self.train.max_train_rows, self.train.max_val_rows
        for g, rows in self._groups(train).items():
            tr = train.select(rows[_draw(len(rows), len(train), cap_t, gen)].tolist())
            vrows = val_groups.get(g, np.zeros(0, np.int64))
            va = validation.select(vrows[_draw(len(vrows), len(validation), cap_v, gen)]
                                   .tolist()) if len(vrows) else None
            prep = self.prepare(tr, manifest)
            torch.manual_seed(seed)
            net = self.build(prep, coder.n_outputs)
            tr_rows = self.encode(tr, manifest, prep)
            va_rows = self.encode(va, manifest, prep) if va is not None else None
            facts = fit_network(net, tr_rows, coder.encode(tr[target]), va_rows,
                                coder.encode(va[target]) if va is not None else None,
                                coder, self.train, seed)
            facts.update(train_rows=len(tr), val_rows=0 if va is None else len(va))
            self._fitted[g] = Fitted(net, prep, facts)
        self._fits.append({"target": target, "seed": seed, "train_rows": len(train),
                           "groups": {g: f.facts for g, f in self._fitted.items()}})

    def predict(self, dataset: datasets.Dataset, *, manifest: Manifest) -> np.ndarray:
        """One prediction per row (numbers or class labels)."""
        if self._coder is None:
            raise MethodError(f"{self.name}: fit() must run before predict()")
        out = np.empty(len(dataset), dtype=np.float64 if self._coder.task_type == "regression"
                       else object)
        for g, rows in self._groups(dataset).items():
            if g not in self._fitted:
                raise MethodError(
                    f"{self.name} has no network for architecture {g!r} (it was not in the "
                    "train rows): it trains one network per architecture")
            fit = self._fitted[g]
            part = dataset if len(rows) == len(dataset) else dataset.select(rows.tolist())
            enc = self.encode(part, manifest, fit.prep)
            out[rows] = self._coder.decode(forward_rows(fit.net, enc, self.train.eval_batch_size))
        return out
