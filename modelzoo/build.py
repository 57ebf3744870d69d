"""``build_zoo``: train a recipe's population and write it as a resumable Arrow zoo."""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from tqdm.auto import tqdm

import modelzoo
from modelzoo.architectures import ARCHITECTURES
from modelzoo.errors import RecipeError, StorageError, ZooError
from modelzoo.recipe import Recipe, load_recipe, make_recipe
from modelzoo.sources import SourceData, load_source
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.storage.layout import layer_layout
from modelzoo.storage.manifest import (
    ArchitectureEntry,
    Manifest,
    SourceEntry,
)
from modelzoo.storage.schema import METRIC_FIELDS, STATUS_DIVERGED, STATUS_OK, zoo_schema
from modelzoo.storage.writer import BUILD_DIR, ZooWriter, check_resumable
from modelzoo.threads import RecentThreads, limit_threads, resolve_threads
from modelzoo.training import Checkpoint, TrainConfig, build_model, train_one, train_population
from modelzoo.training.population import population_path

#: CPUs (and intra-op threads) of one Ray task.
RAY_TASK_CPUS = 1


def plan_groups(recipe: Recipe, group_size: int) -> list[list[TrainConfig]]:
    """Split the recipe's models into populations that can be trained together.

    Models sharing activation, dropout, batch size and train fraction form a population,
    cut into chunks of ``group_size``; the plan depends only on the recipe.
    """
    if group_size < 1:
        raise RecipeError("group_size must be >= 1")
    by_key: dict[tuple, list[TrainConfig]] = {}
    for cfg in recipe.configs():
        by_key.setdefault(cfg.group_key(), []).append(cfg)
    return [
        cfgs[i : i + group_size]
        for cfgs in by_key.values()
        for i in range(0, len(cfgs), group_size)
    ]


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as e:
        raise ZooError(f"invalid device {device!r}: {e}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ZooError("device 'cuda' requested but no CUDA GPU is available; use --device cpu")
    return dev


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


def _arch_kwargs(recipe: Recipe, data: SourceData) -> dict[str, Any]:
    return {
        "in_channels": data.in_channels,
        "num_classes": data.num_classes,
        "image_size": data.image_size,
        **recipe.arch_kwargs,
    }


NUMERICS_FILE = "numerics.json"


def numerics_key(
    recipe: Recipe, *, trainer: str, device: torch.device, group_size: int, threads: int,
    thread_bound: bool,
) -> dict[str, Any]:
    """The build options that change a model's numbers; a resumed build must repeat them.

    Everything else may change between runs (group size, executor, threads, progress), since
    a model's weights and metrics do not depend on it: the population trainer's dense and
    grouped paths are exact for any group size and thread count (``tests/test_resume.py``).
    Exceptions are recorded here: dropout masks are drawn per population (``group_size``),
    and the per-model loop and the vmap path run oneDNN convolutions whose rounding depends
    on the thread count (``threads``).
    """
    key: dict[str, Any] = {"trainer": trainer, "device": device.type}
    if trainer == "population" and any(c.dropout > 0 for c in recipe.configs()):
        key["group_size"] = group_size
    if thread_bound:
        key["threads"] = threads
    return key


def _check_numerics(root: Path, key: dict[str, Any]) -> None:
    """Refuse to resume a build whose numerics-changing options differ, naming the flags."""
    stored = root / BUILD_DIR / NUMERICS_FILE
    if not stored.exists():
        return
    old = json.loads(stored.read_text())
    diff = [k for k in sorted(old.keys() | key.keys()) if old.get(k) != key.get(k)]
    if diff:
        flags = ", ".join(
            f"--{k.replace('_', '-')} {old.get(k, 'unset')} (this run: {key.get(k, 'unset')})"
            for k in diff
        )
        raise ZooError(
            f"{root} holds an unfinished build made with {flags}; these options change the "
            "trained weights, so mixing them would not equal an uninterrupted build. Rerun "
            f"with the original options, or delete {root / BUILD_DIR} to start over"
        )


def _check_resumable(root: Path, recipe: Recipe) -> Manifest | None:
    """Return the manifest of a finished identical build, or None to (re)start/resume."""
    key = json.dumps(recipe.build_key(), sort_keys=True)

    def same(man: Manifest) -> bool:
        return json.dumps(Recipe.model_validate(man.recipe).build_key(), sort_keys=True) == key

    return check_resumable(root, key_file=root / BUILD_DIR / "recipe.json", key=key, same=same,
                           job="build", settings="recipe")


def build_zoo(
    *,
    out: str | Path,
    recipe: Recipe | str | Path | None = None,
    arch: str | None = None,
    source: str | None = None,
    models: int | None = None,
    epochs: int | None = None,
    checkpoint_epochs: list[int] | None = None,
    grid: dict[str, list[Any]] | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    name: str | None = None,
    max_train: int | None = None,
    data_dir: str | Path | None = None,
    group_size: int = 64,
    trainer: str = "population",
    device: str = "cpu",
    executor: str = "local",
    address: str | None = None,
    progress: bool = False,
    threads: int | None = None,
) -> Manifest:
    """Train a population of networks and write it as a zoo at ``out``; resumes if interrupted.

    An interrupted build resumes by model identity: models already committed are kept, the
    rest are trained, whatever the group size, executor or thread count of the new run; the
    result equals an uninterrupted build (same content hash). Options that change the numbers
    (see :func:`numerics_key`) must match the first run, else it is refused. Before
    ``zoo.json`` is written the committed model ids are checked against the recipe's plan.

    Args:
        out: output directory (created; an interrupted build there is resumed).
        recipe: a Recipe or the path of a YAML recipe; other arguments override its fields.
        arch: architecture registry name (see ``zoo archs``).
        source: source dataset name (default ``digits``).
        models: number of models (the grid is enumerated seed by seed, extended with new seeds).
        epochs: training epochs per model.
        checkpoint_epochs: epochs to store (0 = initialisation); default every epoch.
        grid: hyperparameter lists, e.g. ``{"lr": [1e-3, 1e-4], "activation": ["relu"]}``.
        arch_kwargs: architecture options, e.g. ``{"norm": "none"}`` for a BN-free ResNet.
        name: zoo name (default ``<arch>-<source>``).
        max_train: use only this many training examples of the source.
        data_dir: where local source datasets live.
        group_size: models trained together in one population (and one resumable unit).
        trainer: ``population`` (vectorised) or ``loop`` (per-model reference loop).
        device: ``cpu``, ``cuda`` or ``auto``.
        executor: ``local`` (this process) or ``ray`` (one Ray task per group; failed tasks,
            e.g. of a killed worker, are retried; results are written by this process).
        address: Ray cluster address (``None`` starts a local Ray instance).
        progress: show a progress bar.
        threads: intra-op threads per group (``None``: the allowed CPUs that are idle, see
            :mod:`modelzoo.threads`; Ray workers use one per CPU of their task).

    Returns:
        The manifest of the finished zoo.

    Raises:
        ZooError: a resumed build with options that change the numbers, or other bad input.
        IncompleteZooError: the committed models do not match the plan.
    """
    if trainer not in ("population", "loop"):
        raise ZooError(f"unknown trainer {trainer!r}; choose 'population' or 'loop'")
    over: dict[str, Any] = {
        "architecture": arch,
        "source": source,
        "models": models,
        "epochs": epochs,
        "checkpoint_epochs": checkpoint_epochs,
        "max_train": max_train,
        "name": name,
        "arch_kwargs": arch_kwargs,
    }
    if grid is not None:
        over["grid"] = grid
    if isinstance(recipe, (str, Path)):
        rec = load_recipe(recipe, **over)
    elif isinstance(recipe, Recipe):
        rec = make_recipe(recipe.model_dump(), **over)
    else:
        if arch is None:
            raise RecipeError("give a recipe file or --arch")
        over["name"] = name or f"{arch}-{source or 'digits'}"
        rec = make_recipe({}, **over)
    dev = resolve_device(device)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise StorageError(f"cannot write {root}: it exists and is not a directory")
    done = _check_resumable(root, rec)
    if done is not None:
        return done
    data = load_source(rec.source, data_dir=data_dir, max_train=rec.max_train)
    kwargs = _arch_kwargs(rec, data)
    try:
        probe = build_model(rec.architecture, kwargs, TrainConfig())
    except (TypeError, ValueError) as e:
        raise RecipeError(f"invalid options for architecture {rec.architecture!r}: {e}") from None
    layout = layer_layout(probe)
    n_params = layout[-1].offset + layout[-1].numel
    stackable = ARCHITECTURES.get(rec.architecture).stackable
    if executor not in ("local", "ray"):
        raise ZooError(f"unknown executor {executor!r}; choose 'local' or 'ray'")
    # the per-model loop and the vmap path round differently with the thread count
    thread_bound = dev.type == "cpu" and (
        trainer == "loop" or not stackable
        or population_path(probe, tuple(data.x_train.shape[1:]), dev) == "vmap"
    )
    stored = root / BUILD_DIR / NUMERICS_FILE
    if thread_bound and threads is None and stored.exists():
        threads = json.loads(stored.read_text()).get("threads")  # auto repeats the first run
    # None: chosen at each group from the CPUs idle then, measured at most every 10 s (the
    # results do not depend on it)
    n_threads: int | None = None
    if executor == "ray":
        n_threads = RAY_TASK_CPUS
    elif thread_bound or threads is not None:
        n_threads = resolve_threads(threads)
    key = numerics_key(rec, trainer=trainer, device=dev, group_size=group_size,
                       threads=n_threads or 0, thread_bound=thread_bound)
    _check_numerics(root, key)
    writer = ZooWriter(root, zoo_schema(n_params))
    ensure_dir(root / BUILD_DIR)
    atomic_write_bytes(
        root / BUILD_DIR / "recipe.json", json.dumps(rec.build_key(), sort_keys=True).encode()
    )
    atomic_write_bytes(stored, json.dumps(key, sort_keys=True).encode())
    writer.discard_uncommitted()
    finished = writer.finished_models()
    planned = {rec.model_id(c) for c in rec.configs()}
    unplanned = sorted(finished.keys() - planned)
    if unplanned:
        raise ZooError(
            f"{root} holds {len(unplanned)} committed models that this recipe does not plan "
            f"(e.g. {unplanned[0]}); delete {root / BUILD_DIR} to start over"
        )
    ckpts = rec.checkpoints()
    todo = resume_plan(rec, group_size, finished)
    per_model = max(rec.epochs, 1)
    bar = tqdm(
        total=len(planned) * per_model,
        initial=len(finished) * per_model,
        disable=not progress,
        unit="model-epoch",
        desc=f"{rec.architecture} on {rec.source}",
        dynamic_ncols=True,
    )
    job = GroupJob(
        recipe=rec, kwargs=kwargs, checkpoints=ckpts, device=str(dev), trainer=trainer,
        stackable=stackable, n_params=n_params,
        data_dir=None if data_dir is None else str(data_dir),
        threads=n_threads,
    )  # fmt: skip
    if executor == "local":
        recent = RecentThreads()
        for n, (gi, cfgs) in enumerate(todo):
            gw = writer.open_group(gi)
            try:
                with limit_threads(job.threads or recent()):
                    for table in group_tables(job, cfgs, data):
                        gw.write(table)
                        epoch = table["epoch"][0].as_py()
                        bar.update(table.num_rows * (epoch - _prev(ckpts, epoch)))
                        bar.set_postfix(group=f"{n + 1}/{len(todo)}", epoch=epoch)
            except BaseException:
                gw.abort()
                raise
            gw.commit()
    else:
        from modelzoo.executors.ray_executor import run_groups_ray

        sizes = dict((gi, len(cfgs)) for gi, cfgs in todo)

        def on_done(gi: int, table: pa.Table) -> None:
            gw = writer.open_group(gi)
            try:
                gw.write(table)
            except BaseException:
                gw.abort()
                raise
            gw.commit()
            bar.update(sizes[gi] * per_model)

        run_groups_ray(job=job, todo=todo, address=address, on_done=on_done,
                       num_cpus_per_task=RAY_TASK_CPUS)
    bar.close()
    entry = ArchitectureEntry(
        name=rec.architecture, kwargs=kwargs, n_params=n_params, layout=layout
    )
    src = SourceEntry(
        name=rec.source,
        fingerprint=data.fingerprint,
        num_classes=data.num_classes,
        in_shape=data.in_shape,
        sizes=data.sizes(),
    )
    manifest = writer.finalize(
        name=rec.name,
        version=rec.version,
        recipe=rec.model_dump(mode="json"),
        architectures={rec.architecture: entry},
        sources={rec.source: src},
        toolkit_version=modelzoo.__version__,
        description=rec.description,
        license=rec.license,
        planned=planned,
    )
    shutil.rmtree(root / BUILD_DIR, ignore_errors=True)
    return manifest


def resume_plan(
    recipe: Recipe, group_size: int, finished: Mapping[str, int]
) -> list[tuple[int, list[TrainConfig]]]:
    """The groups still to train: the recipe's plan less the models already committed.

    Groups are planned for this run's ``group_size``; a group that holds committed models
    (from a run with another group size) trains only the others. Each group gets an index no
    committed group uses, so a new marker never replaces an old one.
    """
    used = set(finished.values())
    fresh = (i for i in itertools.count() if i not in used)
    todo: list[tuple[int, list[TrainConfig]]] = []
    for gi, cfgs in enumerate(plan_groups(recipe, group_size)):
        rest = [c for c in cfgs if recipe.model_id(c) not in finished]
        if rest:
            todo.append((gi if gi not in used else next(fresh), rest))
            used.add(todo[-1][0])
    return todo


def _prev(ckpts: list[int], epoch: int) -> int:
    earlier = [e for e in ckpts if e < epoch]
    return max(earlier) if earlier else 0


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

    def load_data(self) -> SourceData:
        """The source dataset (cached per process)."""
        return load_source(
            self.recipe.source, data_dir=self.data_dir, max_train=self.recipe.max_train
        )


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
