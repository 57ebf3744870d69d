"""What an evaluator re-scores: a run's per-item outputs and the labelled zoo they are for.

A run with ``--save-predictions`` keeps its per-item outputs; anyone holding the labels can
score them again without re-running the method (a leaderboard does, against labels the
submitter never saw). The evaluator of a task type defines both ends of that:

* :meth:`~benchmarks.evaluators.base.Evaluator.rescorable_items` turns a result's saved
  outputs into one of the item classes below;
* :meth:`~benchmarks.evaluators.base.Evaluator.rescore` scores such items against a
  :class:`ReferenceZoo` (the zoo with the labels, plus how its test rows are keyed), on all
  test rows and on any named subsets of them.

These are plain data classes and a protocol, so whoever stores or ships outputs (the
leaderboard's submission schema) converts its own objects into them; the evaluators import
nothing from their users. Problems with the outputs raise
:class:`~benchmarks.errors.OutputsError` (missing rows:
:class:`~benchmarks.errors.MissingOutputsError`); the caller maps them to its own errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from benchmarks.results import TaskResult
    from benchmarks.tasks.metadata import TaskMetadata
    from benchmarks.zoo import EvalZoo

#: Name of the score set over every test row in :meth:`Evaluator.rescore`'s result.
ALL_ROWS = "all"


@dataclass(frozen=True)
class CheckpointPredictions:
    """Property predictions keyed by zoo checkpoint: ``predictions[seed][i]`` is for
    ``(model_id[i], epoch[i])``; numbers (regression) or class labels (classification)."""

    kind: ClassVar[str] = "property"
    model_id: Sequence[str]
    epoch: Sequence[int]
    predictions: Sequence[Sequence[Any]]


@dataclass(frozen=True)
class RowPredictions:
    """Property predictions keyed by opaque row id (rows of a label-free view of a zoo):
    ``predictions[seed][i]`` is for ``row_id[i]``."""

    kind: ClassVar[str] = "rows"
    row_id: Sequence[str]
    predictions: Sequence[Sequence[Any]]


@dataclass(frozen=True)
class WeightSamples:
    """Sampled weights ``weights[seed][sample][param]`` for a target model, with the
    per-sample scores the run computed (``item_scores[metric][seed][sample]``; ``curves
    [seed][sample][epoch]``) as claims to compare."""

    kind: ClassVar[str] = "samples"
    architecture: str
    activation: str
    weights: Sequence[Sequence[Sequence[float]]]
    item_scores: Mapping[str, Sequence[Sequence[float]]] = field(default_factory=dict)
    curves: Sequence[Sequence[Sequence[float]]] = ()


#: The items of one task.
Items = CheckpointPredictions | RowPredictions | WeightSamples


@dataclass(frozen=True)
class TaskOutputs:
    """The saved outputs of one task: its name, the seeds and their items."""

    task: str
    seeds: Sequence[int]
    items: Items


class ReferenceZoo(Protocol):
    """The labelled zoo outputs are re-scored on, as an evaluator needs it.

    Attributes:
        zoo: the zoo, opened (its healthy test split holds the labels).
        label: how messages name it (e.g. ``"the board's view"``).
    """

    zoo: EvalZoo
    label: str

    def row_ids(self) -> list[str] | None:
        """Opaque ids of the healthy test rows in zoo order, if predictions are keyed by
        them (a label-free view of the zoo); ``None``: keyed by ``(model_id, epoch)``."""
        ...

    def rerun(self, method: Any, task: TaskMetadata,
              seeds: Sequence[int]) -> tuple[TaskResult, dict[str, list[Any]]]:
        """Run ``task`` for ``method`` on the zoo as ``bench run`` does: the result and its
        saved per-item outputs (column -> values, one row per item and seed)."""
        ...
