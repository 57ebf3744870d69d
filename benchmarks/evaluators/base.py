"""The evaluator of a task type (MTEB's ``AbsTask`` idea, one class per type).

A task declaration (:class:`~benchmarks.tasks.metadata.TaskMetadata`) is data; its ``type``
names the :class:`Evaluator` that interprets it. The evaluator holds everything a type
decides: the metrics and targets a declaration may use, what a method must implement, when
a zoo can serve the task, one seed's run (fit / sample, score), the bootstrap intervals,
where its column goes in ``bench table``, and how a run's saved per-item outputs are
scored again against labels (:mod:`benchmarks.evaluators.outputs`).
:func:`benchmarks.runner.evaluate`, :mod:`benchmarks.table` and whoever re-scores saved
outputs (the leaderboard) only dispatch through it; the evaluators import none of them.

Adding a task type is adding one module with one subclass decorated with
:func:`benchmarks.registry.register_evaluator` (in this package, or in an outside package
whose module a ``benchmarks.tasks`` entry point imports).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from benchmarks.errors import BenchmarkError
from benchmarks.results import ConfidenceInterval, ScoreStat

if TYPE_CHECKING:
    import numpy as np

    from benchmarks.evaluators.outputs import Items, ReferenceZoo, TaskOutputs
    from benchmarks.results import TaskResult
    from benchmarks.scoring import BootstrapSpec
    from benchmarks.tasks.metadata import TaskMetadata
    from benchmarks.zoo import EvalZoo


@dataclass
class SeedContext:
    """One seed of one task, as :meth:`Evaluator.run_seed` gets it.

    Attributes:
        task: the declaration.
        method: a loaded method (:func:`benchmarks.methods.base.load_method`).
        zoo: the opened zoo (a :class:`~benchmarks.zoo.EvalZoo`, possibly with the rows of a
            label-free view as split ``heldout``).
        seed: the seed.
        state: shared by the tasks of this seed (e.g. cached features).
        items: if not ``None``, to fill with per-item outputs (``--save-predictions``).
        raw: if not ``None``, to fill with what :meth:`Evaluator.intervals` needs.
    """

    task: TaskMetadata
    method: Any
    zoo: EvalZoo
    seed: int
    state: dict[str, Any] = field(default_factory=dict)
    items: dict[str, Any] | None = None
    raw: dict[str, Any] | None = None


@dataclass
class SeedRun:
    """What one seed of one task produced.

    Attributes:
        scores: ``{split: {metric: value}}``.
        details: facts of the run (recorded in ``details["per_seed"]`` of the result).
        curve: per-epoch test accuracy (initialization), else ``None``.
    """

    scores: dict[str, dict[str, float]]
    details: dict[str, Any] = field(default_factory=dict)
    curve: list[float] | None = None


class Evaluator(ABC):
    """Interprets the tasks of one ``type``; subclasses set the class attributes.

    Attributes:
        type: the task type name (``TaskMetadata.type``).
        metrics: metrics a task of this type may report (main score among them).
        needs: method capabilities (:func:`benchmarks.methods.base.capabilities`), any of
            which lets a method do the type.
        items: what a run's re-scorable outputs are per task: ``"property"`` (per-row
            predictions), ``"samples"`` (weight vectors), or ``None``: the type's outputs
            cannot be re-scored (the default of :meth:`rescorable_items` and
            :meth:`rescore`).
        order: position of the type's columns in ``bench table`` (lower first).
    """

    type: ClassVar[str]
    metrics: ClassVar[tuple[str, ...]]
    needs: ClassVar[tuple[str, ...]]
    items: ClassVar[Literal["property", "samples"] | None] = None
    order: ClassVar[int] = 100

    # ------------------------------------------------------------------ declaration

    def validate(self, task: TaskMetadata) -> None:
        """Raise ``ValueError`` if ``task`` is not a valid declaration of this type (the
        metrics are checked by :class:`~benchmarks.tasks.metadata.TaskMetadata` itself)."""
        return None

    # ------------------------------------------------------------------ running

    def check_applicable(self, task: TaskMetadata, zoo: EvalZoo) -> None:
        """Raise :class:`~benchmarks.errors.TaskNotApplicableError` if ``zoo`` cannot serve
        ``task`` (default: fine)."""
        return None

    @abstractmethod
    def run_seed(self, ctx: SeedContext) -> SeedRun:
        """Score ``ctx.method`` on ``ctx.task`` for one seed (fit / sample, then score)."""

    @abstractmethod
    def intervals(
        self, task: TaskMetadata, raw: list[dict[str, Any]], spec: BootstrapSpec
    ) -> dict[str, dict[str, ConfidenceInterval]]:
        """Bootstrap intervals ``{split: {metric: ci}}`` of the seed means, from the
        ``raw`` each seed's :meth:`run_seed` kept."""

    def aggregate(
        self,
        runs: Sequence[SeedRun],
        cis: dict[str, dict[str, ConfidenceInterval]],
    ) -> tuple[dict[str, dict[str, ScoreStat]], dict[str, list[ScoreStat]]]:
        """``(scores, curves)`` of a result: per split and metric a :class:`ScoreStat` over
        seeds with its interval; per-epoch curves where the runs have them."""
        first = runs[0].scores
        scores = {
            split: {metric: ScoreStat.of([r.scores[split][metric] for r in runs],
                                         ci=cis.get(split, {}).get(metric))
                    for metric in first[split]}
            for split in first
        }
        curves = [r.curve for r in runs if r.curve is not None]
        curve_stats = ({"test/accuracy": [ScoreStat.of(col)
                                          for col in zip(*curves, strict=True)]}
                       if curves else {})
        return scores, curve_stats

    # ------------------------------------------------------------------ re-scoring

    def rescorable_items(
        self, result: TaskResult, table: dict[str, list[Any]], groups: list[list[int]],
        *, view: bool,
    ) -> Items:
        """The re-scorable items of ``result`` from its saved outputs ``table`` (rows of each
        seed: ``groups``); ``view``: predictions of a label-free view's rows.

        Raises:
            OutputsError: the saved outputs do not fit (e.g. not for a view).
        """
        raise BenchmarkError(f"{self.type} outputs cannot be re-scored "
                             f"({type(self).__name__} defines no rescorable_items)")

    def rescore(
        self, outputs: TaskOutputs, task: TaskMetadata, ref: ReferenceZoo, *, method: str,
        tolerance: float, notes: list[str], subsets: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, dict[str, ScoreStat]]:
        """Test scores of saved ``outputs`` against ``ref``'s labels, per seed then mean ±
        std: ``{"all": {metric: stat}}`` plus one entry per named subset of the test rows
        (``subsets``: boolean masks over them in zoo order). Claimed per-item scores that
        differ from the recomputed ones by more than ``tolerance`` go to ``notes``.

        Raises:
            OutputsError: the outputs do not fit the task or the rows (MissingOutputsError:
                some row has none).
        """
        raise BenchmarkError(f"{self.type} outputs cannot be re-scored "
                             f"({type(self).__name__} defines no rescore)")
