"""``build_zoo``: train the models a recipe plans and write them as a zoo (resumable).

The steps, in order: resolve the recipe once (file, Recipe or flags), load the source and
probe the architecture (layer layout, parameter count), choose threads and check that a
resumed build repeats the options that change the numbers, prepare the output folder (keep
committed groups, discard the rest), train the groups still to do on an executor (this
process, or Ray tasks: :mod:`modelzoo.builder.ray_executor`) and commit each as it finishes,
and finally write ``zoo.json`` after checking the committed models against the plan.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import torch
from tqdm.auto import tqdm

from modelzoo._version import __version__
from modelzoo.architectures import ARCHITECTURES
from modelzoo.builder.groups import (
    GroupJob,
    arch_kwargs_for,
    group_tables,
    resume_plan,
    worker_imports,
)
from modelzoo.builder.ray_executor import run_groups_ray
from modelzoo.builder.recipe import Recipe, load_recipe, make_recipe
from modelzoo.device import resolve_device
from modelzoo.errors import RecipeError, StorageError, ZooError
from modelzoo.sources import SourceData, load_source
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.storage.layout import LayerSpec, layer_layout
from modelzoo.storage.manifest import ArchitectureEntry, Manifest, SourceEntry
from modelzoo.storage.schema import zoo_schema
from modelzoo.storage.writer import BUILD_DIR, ZooWriter, check_resumable
from modelzoo.threads import RecentThreads, limit_threads, resolve_threads
from modelzoo.training import TrainConfig, build_model
from modelzoo.training.population import population_path

#: CPUs (and intra-op threads) of one Ray task.
RAY_TASK_CPUS = 1


NUMERICS_FILE = "numerics.json"


def numerics_key(
    plan: _Plan, *, trainer: str, device: torch.device, group_size: int, threads: int,
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
    if trainer == "population" and any(c.dropout > 0 for c in plan.configs):
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


def _check_resumable(root: Path, rec: Recipe, key: str) -> Manifest | None:
    """Return the manifest of a finished identical build, or None to (re)start/resume."""

    def same(man: Manifest) -> bool:
        return json.dumps(Recipe.model_validate(man.recipe).build_key(), sort_keys=True) == key

    return check_resumable(root, key_file=root / BUILD_DIR / "recipe.json", key=key, same=same,
                           job="build", settings="recipe")


def resolve_recipe(
    recipe: Recipe | str | Path | None, overrides: dict[str, Any]
) -> Recipe:
    """The build's one Recipe: a file, a Recipe or flags alone, with ``overrides`` applied."""
    over = {k: v for k, v in overrides.items() if k != "grid" or v is not None}
    if isinstance(recipe, (str, Path)):
        return load_recipe(recipe, **over)
    if isinstance(recipe, Recipe):
        return make_recipe(recipe.model_dump(), **over)
    arch = over.get("architecture")
    if arch is None:
        raise RecipeError("give a recipe file or --arch")
    over["name"] = over.get("name") or f"{arch}-{over.get('source') or 'digits'}"
    return make_recipe({}, **over)


@dataclass(frozen=True)
class _Plan:
    """A resolved recipe with what the build derives from it, computed once."""

    recipe: Recipe
    configs: list[TrainConfig]
    planned: set[str]
    key: str  # the recipe's build key, as stored in BUILD_DIR/recipe.json

    @classmethod
    def of(cls, rec: Recipe) -> _Plan:
        configs = rec.configs()
        return cls(rec, configs, {rec.model_id(c) for c in configs},
                   json.dumps(rec.build_key(), sort_keys=True))  # fmt: skip


@dataclass(frozen=True)
class _Probe:
    """The architecture as built for the source: options, layer layout, parameter count."""

    kwargs: dict[str, Any]
    layout: list[LayerSpec]
    n_params: int
    stackable: bool
    model: torch.nn.Module


def _probe(rec: Recipe, data: SourceData) -> _Probe:
    kwargs = arch_kwargs_for(rec, data)
    try:
        model = build_model(rec.architecture, kwargs, TrainConfig())
    except (TypeError, ValueError) as e:
        raise RecipeError(f"invalid options for architecture {rec.architecture!r}: {e}") from None
    layout = layer_layout(model)
    n_params = layout[-1].offset + layout[-1].numel
    return _Probe(kwargs, layout, n_params, ARCHITECTURES.get(rec.architecture).stackable, model)


def _threads(
    root: Path, plan: _Plan, probe: _Probe, data: SourceData, *, trainer: str,
    dev: torch.device, group_size: int, executor: str, threads: int | None,
) -> tuple[int | None, dict[str, Any]]:
    """Threads per group (None: chosen per group) and the numerics key; refuse a mismatch."""
    # the per-model loop and the vmap path round differently with the thread count
    thread_bound = dev.type == "cpu" and (
        trainer == "loop" or not probe.stackable
        or population_path(probe.model, tuple(data.x_train.shape[1:]), dev) == "vmap"
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
    key = numerics_key(plan, trainer=trainer, device=dev, group_size=group_size,
                       threads=n_threads or 0, thread_bound=thread_bound)
    _check_numerics(root, key)
    return n_threads, key


def _prepare(
    root: Path, plan: _Plan, writer: ZooWriter, numerics: dict[str, Any]
) -> dict[str, int]:
    """Record the build's keys, drop uncommitted groups; return the committed models."""
    ensure_dir(root / BUILD_DIR)
    atomic_write_bytes(root / BUILD_DIR / "recipe.json", plan.key.encode())
    atomic_write_bytes(root / BUILD_DIR / NUMERICS_FILE,
                       json.dumps(numerics, sort_keys=True).encode())  # fmt: skip
    writer.discard_uncommitted()
    finished = writer.finished_models()
    unplanned = sorted(finished.keys() - plan.planned)
    if unplanned:
        raise ZooError(
            f"{root} holds {len(unplanned)} committed models that this recipe does not plan "
            f"(e.g. {unplanned[0]}); delete {root / BUILD_DIR} to start over"
        )
    return finished


def _commit(writer: ZooWriter, gi: int, tables: Callable[[], Any]) -> None:
    """Write the tables of group ``gi`` and commit it; abort the group on any error."""
    gw = writer.open_group(gi)
    try:
        for table in tables():
            gw.write(table)
    except BaseException:
        gw.abort()
        raise
    gw.commit()


def _run_local(
    job: GroupJob, todo: list[tuple[int, list[TrainConfig]]], data: SourceData,
    writer: ZooWriter, bar: tqdm,
) -> None:
    recent = RecentThreads()
    for n, (gi, cfgs) in enumerate(todo):

        def tables(cfgs: list[TrainConfig] = cfgs, n: int = n) -> Any:
            with limit_threads(job.threads or recent()):
                for table in group_tables(job, cfgs, data):
                    yield table
                    epoch = table["epoch"][0].as_py()
                    bar.update(table.num_rows * (epoch - _prev(job.checkpoints, epoch)))
                    bar.set_postfix(group=f"{n + 1}/{len(todo)}", epoch=epoch)

        _commit(writer, gi, tables)


def _run_ray(
    job: GroupJob, todo: list[tuple[int, list[TrainConfig]]], writer: ZooWriter, bar: tqdm,
    address: str | None,
) -> None:
    sizes = dict((gi, len(cfgs)) for gi, cfgs in todo)
    per_model = max(job.recipe.epochs, 1)

    def on_done(gi: int, table: pa.Table) -> None:
        _commit(writer, gi, lambda: [table])
        bar.update(sizes[gi] * per_model)

    run_groups_ray(job=job, todo=todo, address=address, on_done=on_done,
                   num_cpus_per_task=RAY_TASK_CPUS)


def _finalize(writer: ZooWriter, plan: _Plan, probe: _Probe, data: SourceData) -> Manifest:
    rec = plan.recipe
    entry = ArchitectureEntry(
        name=rec.architecture, kwargs=probe.kwargs, n_params=probe.n_params, layout=probe.layout
    )
    src = SourceEntry(
        name=rec.source,
        fingerprint=data.fingerprint,
        num_classes=data.num_classes,
        in_shape=data.in_shape,
        sizes=data.sizes(),
    )
    return writer.finalize(
        name=rec.name,
        version=rec.version,
        recipe=rec.model_dump(mode="json"),
        architectures={rec.architecture: entry},
        sources={rec.source: src},
        toolkit_version=__version__,
        description=rec.description,
        license=rec.license,
        planned=plan.planned,
    )


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
    if executor not in ("local", "ray"):
        raise ZooError(f"unknown executor {executor!r}; choose 'local' or 'ray'")
    plan = _Plan.of(resolve_recipe(recipe, {
        "architecture": arch, "source": source, "models": models, "epochs": epochs,
        "checkpoint_epochs": checkpoint_epochs, "max_train": max_train, "name": name,
        "arch_kwargs": arch_kwargs, "grid": grid,
    }))  # fmt: skip
    rec = plan.recipe
    dev = resolve_device(device)
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise StorageError(f"cannot write {root}: it exists and is not a directory")
    done = _check_resumable(root, rec, plan.key)
    if done is not None:
        return done
    data = load_source(rec.source, data_dir=data_dir, max_train=rec.max_train)
    probe = _probe(rec, data)
    n_threads, numerics = _threads(root, plan, probe, data, trainer=trainer, dev=dev,
                                   group_size=group_size, executor=executor, threads=threads)
    writer = ZooWriter(root, zoo_schema(probe.n_params))
    finished = _prepare(root, plan, writer, numerics)
    todo = resume_plan(rec, group_size, finished, plan.configs)
    per_model = max(rec.epochs, 1)
    job = GroupJob(
        recipe=rec, kwargs=probe.kwargs, checkpoints=rec.checkpoints(), device=str(dev),
        trainer=trainer, stackable=probe.stackable, n_params=probe.n_params,
        data_dir=None if data_dir is None else str(data_dir), threads=n_threads,
        imports=worker_imports(rec, executor=executor),
    )  # fmt: skip
    with tqdm(total=len(plan.planned) * per_model, initial=len(finished) * per_model,
              disable=not progress, unit="model-epoch", dynamic_ncols=True,
              desc=f"{rec.architecture} on {rec.source}") as bar:  # fmt: skip
        if executor == "local":
            _run_local(job, todo, data, writer, bar)
        else:
            _run_ray(job, todo, writer, bar, address)
    manifest = _finalize(writer, plan, probe, data)
    shutil.rmtree(root / BUILD_DIR, ignore_errors=True)
    return manifest


def _prev(ckpts: list[int], epoch: int) -> int:
    earlier = [e for e in ckpts if e < epoch]
    return max(earlier) if earlier else 0
