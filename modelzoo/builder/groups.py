"""Groups of a build: the plan (models cut into populations) and training one group into rows.

This is the part of a build that runs in a worker (this process or a Ray task): a
:class:`GroupJob` carries everything needed, :func:`group_tables` trains one group and yields
its zoo rows per checkpoint.
"""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import torch

from modelzoo.architectures import ARCHITECTURES
from modelzoo.builder.recipe import Recipe
from modelzoo.errors import RecipeError, ZooError
from modelzoo.sources import SOURCES, SourceData, load_source
from modelzoo.storage.schema import METRIC_FIELDS, STATUS_DIVERGED, STATUS_OK, zoo_schema
from modelzoo.training import Checkpoint, TrainConfig, train_one, train_population


def plan_groups(
    recipe: Recipe, group_size: int, configs: list[TrainConfig] | None = None
) -> list[list[TrainConfig]]:
    """Split the recipe's models into populations that can be trained together.

    Models sharing activation, dropout, batch size and train fraction form a population,
    cut into chunks of ``group_size``; the plan depends only on the recipe. ``configs`` are
    ``recipe.configs()`` when the caller already has them.
    """
    if group_size < 1:
        raise RecipeError("group_size must be >= 1")
    by_key: dict[tuple, list[TrainConfig]] = {}
    for cfg in recipe.configs() if configs is None else configs:
        by_key.setdefault(cfg.group_key(), []).append(cfg)
    return [
        cfgs[i : i + group_size]
        for cfgs in by_key.values()
        for i in range(0, len(cfgs), group_size)
    ]


def resume_plan(
    recipe: Recipe,
    group_size: int,
    finished: Mapping[str, int],
    configs: list[TrainConfig] | None = None,
) -> list[tuple[int, list[TrainConfig]]]:
    """The groups still to train: the recipe's plan less the models already committed.

    Groups are planned for this run's ``group_size``; a group that holds committed models
    (from a run with another group size) trains only the others. Each group gets an index no
    committed group uses, so a new marker never replaces an old one.
    """
    used = set(finished.values())
    fresh = (i for i in itertools.count() if i not in used)
    todo: list[tuple[int, list[TrainConfig]]] = []
    for gi, cfgs in enumerate(plan_groups(recipe, group_size, configs)):
        rest = [c for c in cfgs if recipe.model_id(c) not in finished]
        if rest:
            todo.append((gi if gi not in used else next(fresh), rest))
            used.add(todo[-1][0])
    return todo


def arch_kwargs_for(recipe: Recipe, data: SourceData) -> dict[str, Any]:
    """The architecture's constructor options: the source's shapes plus the recipe's options."""
    return {
        "in_channels": data.in_channels,
        "num_classes": data.num_classes,
        "image_size": data.image_size,
        **recipe.arch_kwargs,
    }


def worker_imports(recipe: Recipe, *, executor: str) -> tuple[str, ...]:
    """Modules a worker process must import so the recipe's architecture and source exist.

    Those of plugins (entry points) and of user modules that registered an architecture; a
    fresh Ray worker has imported none of them.

    Raises:
        ZooError: the architecture was registered in ``__main__``, which Ray workers cannot
            import.
    """
    module = ARCHITECTURES.get(recipe.architecture).factory.__module__
    if module == "__main__" and executor != "local":
        raise ZooError(
            f"architecture {recipe.architecture!r} is registered in the __main__ script, which "
            "Ray workers cannot import: move it into an importable module (or a plugin package "
            "with a 'modelzoo.architectures' entry point), or use --executor local"
        )
    found = {module, ARCHITECTURES.origin(recipe.architecture), SOURCES.origin(recipe.source)}
    return tuple(sorted(
        m for m in found
        if m and m != "__main__" and m != "modelzoo" and not m.startswith("modelzoo.")
    ))  # fmt: skip


@dataclass(frozen=True)
class GroupJob:
    """Everything a worker needs to train groups of a build (picklable for Ray)."""

    recipe: Recipe
    kwargs: dict[str, Any]
    checkpoints: list[int]
    device: str
    trainer: str
    stackable: bool
    n_params: int
    data_dir: str | None = None
    threads: int | None = None
    imports: tuple[str, ...] = ()

    def import_modules(self) -> None:
        """Import the modules that register the job's architecture and source (in a worker)."""
        for module in self.imports:
            importlib.import_module(module)

    def load_data(self) -> SourceData:
        """The source dataset (cached per process)."""
        return load_source(
            self.recipe.source, data_dir=self.data_dir, max_train=self.recipe.max_train
        )


def _rows(recipe: Recipe, ckpt: Checkpoint, n_params: int) -> pa.Table:
    ids = [recipe.model_id(c) for c in ckpt.configs]
    m = ckpt.metrics
    cols: dict[str, Any] = {
        "model_id": ids,
        "architecture": [recipe.architecture] * len(ids),
        "source": [recipe.source] * len(ids),
        "epoch": [ckpt.epoch] * len(ids),
    }
    for field in TrainConfig.model_fields:
        cols[field] = [getattr(c, field) for c in ckpt.configs]
    for name in METRIC_FIELDS:
        if name == "ggap":
            cols[name] = (m["train_acc"] - m["test_acc"]).tolist()
        else:
            cols[name] = m[name].tolist()
    cols["status"] = [STATUS_DIVERGED if d else STATUS_OK for d in ckpt.diverged.tolist()]
    cols["split"] = [recipe.splits.assign(i) for i in ids]
    cols["n_params"] = [n_params] * len(ids)
    flat = ckpt.weights.contiguous().numpy().reshape(-1)
    cols["weights"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), n_params)
    return pa.table(cols, schema=zoo_schema(n_params))


def group_tables(job: GroupJob, cfgs: list[TrainConfig], data: SourceData) -> Iterator[pa.Table]:
    """Train one group; yield an Arrow table of rows per checkpoint (population or loop)."""
    rec, dev = job.recipe, torch.device(job.device)
    common = {"arch": rec.architecture, "arch_kwargs": job.kwargs, "data": data,
              "epochs": rec.epochs, "checkpoint_epochs": job.checkpoints, "device": dev}
    if job.trainer == "population" and job.stackable:
        ckpts: Iterator[Checkpoint] = train_population(configs=cfgs, **common)
    else:
        ckpts = (c for cfg in cfgs for c in train_one(cfg=cfg, **common))
    for ckpt in ckpts:
        yield _rows(rec, ckpt, job.n_params)
