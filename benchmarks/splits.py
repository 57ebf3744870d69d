"""Row masks of heterogeneous-zoo tasks: one architecture / source, and leave-one-out.

A task with ``rows`` (:class:`~benchmarks.tasks.metadata.RowFilter`) sees, in every split,
only the rows of that architecture, source and/or epoch. A task with ``holdout``
(:class:`~benchmarks.tasks.metadata.HoldOut`) is a leave-one-group-out task: its train and
validation splits keep only the rows *outside* the held-out group (the head is fitted and
selected on them) and its test split only the rows *inside* it, so no checkpoint of a
held-out model, and no model of the held-out group at all, reaches the fit. The zoo's own
split assignment is kept (never re-split): held-out scores are on held-out *test* models.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from benchmarks.errors import TaskNotApplicableError
from benchmarks.tasks.metadata import TaskMetadata

#: Splits whose rows a leave-one-out task draws from the groups it did *not* hold out.
FIT_SPLITS = ("train", "validation")


class _Rows(Protocol):
    splits: Mapping[str, Any]

    def column(self, split: str, name: str) -> np.ndarray: ...


def row_masks(
    task: TaskMetadata, column: Callable[[str, str], np.ndarray], splits: tuple[str, ...]
) -> dict[str, np.ndarray] | None:
    """Boolean row mask per split of the rows ``task`` sees; ``None`` when it sees them all.

    Args:
        task: the task (its ``rows`` and ``holdout``).
        column: ``column(split, name)``: a zoo column of one split.
        splits: the split names to mask.
    """
    if task.rows is None and task.holdout is None:
        return None
    masks = {}
    for split in splits:
        keep = np.ones(len(column(split, "model_id")), dtype=bool)
        if task.rows is not None:
            for name in ("architecture", "source", "epoch"):
                value = getattr(task.rows, name)
                if value is not None:
                    keep &= column(split, name) == value
        if task.holdout is not None:
            inside = column(split, task.holdout.by) == task.holdout.value
            keep &= ~inside if split in FIT_SPLITS else inside
        masks[split] = keep
    return masks


def task_rows(task: TaskMetadata, zoo: _Rows) -> Any:
    """``zoo`` restricted to the rows ``task`` sees (``zoo`` itself when it sees them all).

    The copy shares the manifest and path; its ``splits`` are in-memory selections and its
    column cache starts empty.

    Raises:
        TaskNotApplicableError: the filter or the held-out group leaves a split empty (e.g.
            the zoo has no such architecture or source).
    """
    masks = row_masks(task, zoo.column, tuple(zoo.splits))
    if masks is None:
        return zoo
    view = copy.copy(zoo)
    view.splits = {}
    for split, keep in masks.items():
        if not keep.any() and split in ("train", "validation", "test"):
            raise TaskNotApplicableError(
                f"task {task.name}: no {split}-split rows of this zoo are left by its row filter "
                f"{task.rows} / held-out group {task.holdout}; does the zoo have that "
                "architecture / source?"
            )
        idx = np.flatnonzero(keep).tolist()
        ds = zoo.splits[split]
        view.splits[split] = ds if len(idx) == len(ds) else ds.select(idx, keep_in_memory=True)
    view._columns = {}
    return view


def view_key(task: TaskMetadata) -> str:
    """A key shared by the tasks that see the same rows (for per-view feature caches)."""
    return f"{task.rows}|{task.holdout}"
