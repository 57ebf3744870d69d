"""A zoo opened once for an evaluation: manifest, healthy rows per split, column caches.

Shared by the runner and the evaluators, so neither imports the other to reach it. It is
also the interface through which the runner takes zoos that others open: a subclass may add
a split :data:`HELDOUT` of rows to predict but not score (a label-free view's: a ``row_id``
column instead of labels; the leaderboard's ``ViewedZoo``), choose the target model of
samples (:meth:`EvalZoo.target_model`) and record facts in every result
(:attr:`EvalZoo.result_details`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np

from benchmarks.errors import BenchmarkError, ZooMismatchError
from benchmarks.methods.base import TargetModel
from benchmarks.registry import evaluator_for
from modelzoo.storage import SPLITS, load_zoo, open_manifest
from modelzoo.storage.manifest import Manifest
from modelzoo.storage.schema import STATUS_OK
from modelzoo.storage.verify import resolve_verify

if TYPE_CHECKING:
    from benchmarks.tasks.metadata import TaskMetadata, ZooFacts

__all__ = ["HELDOUT", "EvalZoo", "check_applicable", "check_pin", "column_array",
           "fact_problems", "healthy", "tasks_for_zoo"]

#: Split of rows a method predicts but nobody scores locally (a label-free view's rows: a
#: ``row_id`` column and the weights, no labels).
HELDOUT = "heldout"


class EvalZoo:
    """A zoo opened once per evaluation: manifest, healthy rows per split, caches.

    Every shard is checked against ``zoo.json`` first (:func:`modelzoo.storage.open_manifest`;
    ``verify=None`` follows :func:`modelzoo.storage.verification`); ``verified`` records
    whether it was, and results made on an unverified zoo do not claim their pin.

    Attributes:
        path: the zoo folder (methods' ``setup`` gets it).
        data_dir: where non-bundled source datasets live.
        manifest: the zoo's ``zoo.json``.
        splits: healthy rows per split (``train`` / ``validation`` / ``test``; subclasses may
            add :data:`HELDOUT`).
        result_details: recorded in ``details`` of every result of a run on this zoo.
        verified: whether the shards were checked.

    Raises:
        ShardChecksumError: a shard is missing or corrupt.
    """

    def __init__(self, path: Path, data_dir: str | None = None, *,
                 verify: bool | None = None) -> None:
        self.path = Path(path)
        self.data_dir = data_dir
        self.verified = resolve_verify(verify)
        self.manifest = open_manifest(self.path, verify=self.verified)
        raw = load_zoo(self.path, verify=False)  # just verified
        self.splits: dict[str, datasets.Dataset] = {s: healthy(raw[s]) for s in SPLITS}
        self.result_details: dict[str, Any] = {}
        self._columns: dict[tuple[str, str], np.ndarray] = {}

    def column(self, split: str, name: str) -> np.ndarray:
        """Column ``name`` of a split's healthy rows (cached)."""
        key = (split, name)
        if key not in self._columns:
            self._columns[key] = column_array(self.splits[split], name)
        return self._columns[key]

    def most_common(self, name: str) -> str:
        values = self.column("train", name)
        if not len(values):
            raise BenchmarkError(f"zoo {self.path} has no healthy train-split rows")
        counts = Counter(values.tolist())
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    def target_model(self, task: TaskMetadata) -> TargetModel:
        """Most frequent train architecture; the task's activation, else that of the best
        train checkpoint by ``val_acc`` (ties: smallest model id), as SANE's anchors use."""
        arch = self.most_common("architecture")
        activation = task.finetune.activation if task.finetune else None
        if not activation:
            rows = np.flatnonzero(self.column("train", "architecture") == arch)
            acc = np.nan_to_num(self.column("train", "val_acc")[rows].astype(np.float64),
                                nan=-np.inf)
            ids = self.column("train", "model_id")[rows]
            best = min(range(len(rows)), key=lambda i: (-acc[i], ids[i]))
            activation = str(self.column("train", "activation")[rows[best]])
        return TargetModel(arch, activation, self.manifest.architectures[arch].n_params)


def column_array(ds: datasets.Dataset, name: str) -> np.ndarray:
    """One column of ``ds`` (its selection applied) as numpy, converted as ``to_pandas``
    converts it, straight from the Arrow table: ``select_columns`` would copy the dataset's
    metadata first (about 13 ms a call, most of a leaderboard add on a small zoo)."""
    col = ds.data.column(name)
    if ds._indices is not None:  # noqa: SLF001 - a select() view: take its rows
        col = col.take(ds._indices.column(0))  # noqa: SLF001
    return col.to_pandas().to_numpy()


def healthy(ds: datasets.Dataset) -> datasets.Dataset:
    """Rows with status ok; an in-memory selection only if some rows are not ok (so that
    nothing is written into the zoo directory)."""
    status = column_array(ds, "status")
    ok = np.flatnonzero(status == STATUS_OK)
    if len(ok) == len(ds):
        return ds
    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return ds.select(ok.tolist(), keep_in_memory=True).flatten_indices(keep_in_memory=True)
    finally:
        if was:
            datasets.enable_progress_bars()


def fact_problems(facts: ZooFacts | None, manifest: Manifest) -> list[str]:
    """How ``manifest`` differs from the pinned ``facts`` (empty: it shows all of them)."""
    if facts is None:
        return []
    recipe = manifest.recipe or {}
    origin = recipe.get("origin") or {}
    seen = {
        "format": recipe.get("format"),
        "split_protocol": (origin.get("splits") or {}).get("protocol"),
        "split_file_sha256": (origin.get("split_file") or {}).get("sha256"),
        "num_rows": manifest.num_rows,
        "num_models": manifest.num_models,
        "n_params": {k: a.n_params for k, a in manifest.architectures.items()},
    }
    problems = []
    for name, want in facts.model_dump(exclude_none=True).items():
        got = seen[name]
        if name == "n_params":
            got = {k: v for k, v in got.items() if k in want}
        if got != want:
            problems.append(f"{name} {got!r} (pinned: {want!r})")
    return problems


def check_pin(task: TaskMetadata, manifest: Manifest, *, allow_unpinned: bool) -> bool:
    """Whether the zoo is the one ``task`` is pinned to; raise if not and not allowed."""
    pin = task.zoo
    problems = []
    if manifest.name != pin.name:
        problems.append(f"name {manifest.name!r} (pinned: {pin.name!r})")
    if manifest.version != pin.version:
        problems.append(f"version {manifest.version!r} (pinned: {pin.version!r})")
    if pin.content_hash and manifest.content_hash != pin.content_hash:
        problems.append(
            f"content hash {manifest.content_hash[:19]}... (pinned: {pin.content_hash[:19]}...)"
        )
    problems += fact_problems(pin.expect, manifest)
    if problems and not allow_unpinned:
        raise ZooMismatchError(
            f"task {task.name!r} is pinned to zoo {pin.name} v{pin.version}, but the zoo given "
            f"has {'; '.join(problems)}. Pass the pinned zoo, or allow scoring another zoo with "
            "--allow-unpinned (results then record the zoo actually used)."
        )
    return not problems


def check_applicable(task: TaskMetadata, zoo: EvalZoo) -> None:
    """Raise :class:`TaskNotApplicableError` if ``task`` cannot be scored on ``zoo`` (its
    evaluator decides)."""
    evaluator_for(task.type).check_applicable(task, zoo)


def tasks_for_zoo(
    tasks: list[TaskMetadata], suite_zoos: set[str], zoo_name: str,
    say: Callable[[str], None] | None = None,
) -> list[TaskMetadata]:
    """Those of a suite's ``tasks`` that are pinned to ``zoo_name``, if the suite spans
    several zoos (``suite_zoos``, the names its tasks are pinned to).

    A suite may pin its tasks to more than one zoo (``digits-v2``: properties on the
    hyperparameter zoo, initialization and generation on the seed zoo); given one of them,
    only that zoo's tasks run and the others are skipped with a note naming their zoo. A zoo
    named like none of the suite's zoos keeps every task (the pin check then decides).
    """
    if zoo_name not in suite_zoos or len(suite_zoos) == 1:
        return tasks
    keep = []
    for t in tasks:
        if t.zoo.name == zoo_name:
            keep.append(t)
        elif say is not None:
            say(f"skip {t.name}: pinned to zoo {t.zoo.name} v{t.zoo.version}; run the suite "
                f"on that zoo too")
    return keep
