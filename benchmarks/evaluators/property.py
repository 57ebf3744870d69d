"""Property prediction (the shared part of the regression and classification evaluators).

Rows are checkpoints with ``status == "ok"`` of the zoo's own ``train`` / ``validation`` /
``test`` splits (never re-split). Feature methods get an sklearn head fitted on train and
selected on validation (:func:`benchmarks.scoring.fit_head`, candidates from the type's
:meth:`PropertyEvaluator.head_grid`); fit/predict methods do their own selection. Both are
scored on validation and test. Intervals: the split's *models* are resampled, each with all
its checkpoints (:func:`benchmarks.scoring.cluster_bootstrap`).

Saved outputs (:mod:`benchmarks.evaluators.outputs`) hold one prediction per test
checkpoint and seed, keyed by ``(model_id, epoch)``, or by the opaque row ids of a label-free
view of the zoo (the rows of split ``heldout``); :meth:`PropertyEvaluator.rescore` aligns
them to the reference zoo's healthy test rows and scores them against its labels, on all
rows and on any named subsets of them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

from benchmarks.errors import (
    MethodError,
    MissingOutputsError,
    OutputsError,
    TaskNotApplicableError,
)
from benchmarks.evaluators.base import Evaluator, SeedContext, SeedRun
from benchmarks.evaluators.outputs import (
    ALL_ROWS,
    CheckpointPredictions,
    ReferenceZoo,
    RowPredictions,
    TaskOutputs,
)
from benchmarks.methods.base import capabilities, head_of
from benchmarks.results import ConfidenceInterval, ScoreStat
from benchmarks.scoring import BootstrapSpec, cluster_bootstrap, fit_head, score_predictions
from benchmarks.zoo import HELDOUT
from modelzoo.storage import SPLITS

if TYPE_CHECKING:
    from benchmarks.results import TaskResult
    from benchmarks.tasks.metadata import TaskMetadata
    from benchmarks.zoo import EvalZoo

__all__ = ["HELDOUT", "PropertyEvaluator", "check_lengths", "property_seed"]


class PropertyEvaluator(Evaluator):
    """Predict a zoo column of each checkpoint from its weights.

    Subclasses set ``type``, ``metrics``, ``targets`` and ``numeric`` and give
    :meth:`labels` and :meth:`head_grid`.

    Attributes:
        targets: zoo columns a task of this type may predict.
        numeric: predictions are numbers (``True``) or class labels (strings).
    """

    needs = ("features", "predict")
    items = "property"
    targets: ClassVar[tuple[str, ...]]
    numeric: ClassVar[bool]

    def labels(self, values: np.ndarray | Sequence[Any]) -> np.ndarray:
        """Targets / predictions as compared by the metrics."""
        raise NotImplementedError

    def head_grid(self, head: str, seed: int) -> list[tuple[dict[str, Any], BaseEstimator]]:
        """Candidate heads ``(params, estimator)`` of a feature method asking for ``head``."""
        raise NotImplementedError

    def validate(self, task: TaskMetadata) -> None:
        if task.target not in self.targets:
            raise ValueError(f"{self.type} target must be one of {self.targets}")
        if task.finetune is not None:
            raise ValueError("only initialization / generation tasks take a finetune spec")

    def check_applicable(self, task: TaskMetadata, zoo: EvalZoo) -> None:
        for s in SPLITS:
            if not len(zoo.splits[s]):
                raise TaskNotApplicableError(
                    f"zoo {zoo.manifest.name} has no healthy {s}-split checkpoints, which "
                    f"{task.name} needs")

    def run_seed(self, ctx: SeedContext) -> SeedRun:
        scores, details = property_seed(self, ctx.task, ctx.method, ctx.zoo, ctx.seed,
                                        ctx.state.setdefault("features", {}), ctx.items,
                                        ctx.raw)
        return SeedRun(scores=scores, details=details)

    def intervals(
        self, task: TaskMetadata, raw: list[dict[str, Any]], spec: BootstrapSpec
    ) -> dict[str, dict[str, ConfidenceInterval]]:
        return {
            split: {m: cluster_bootstrap(metric=m, y=raw[0][split]["y"],
                                         predictions=[r[split]["p"] for r in raw],
                                         groups=raw[0][split]["groups"], spec=spec)
                    for m in task.metrics}
            for split in ("validation", "test")
        }

    # ------------------------------------------------------------------ re-scoring

    def rescorable_items(
        self, result: TaskResult, table: dict[str, list[Any]], groups: list[list[int]],
        *, view: bool,
    ) -> CheckpointPredictions | RowPredictions:
        def pred(i: int) -> float | str:
            v = table["prediction"][i]
            return float(v) if self.numeric else str(v)

        if view:
            if "row_id" not in table:
                raise OutputsError(f"{result.task.name}: the saved predictions are not for a "
                                   "held-out view; run `bench run --heldout VIEW` first")
            rows = [table["row_id"][i] for i in groups[0]]
            for g in groups[1:]:
                if [table["row_id"][i] for i in g] != rows:
                    raise OutputsError(f"{result.task.name}: seeds predict different rows")
            return RowPredictions(row_id=rows, predictions=[[pred(i) for i in g] for g in groups])
        first = groups[0]
        ids = [table["model_id"][i] for i in first]
        epochs = [int(table["epoch"][i]) for i in first]
        for g in groups[1:]:
            if [table["model_id"][i] for i in g] != ids:
                raise OutputsError(f"{result.task.name}: seeds predict different items")
        return CheckpointPredictions(model_id=ids, epoch=epochs,
                                     predictions=[[pred(i) for i in g] for g in groups])

    def rescore(
        self, outputs: TaskOutputs, task: TaskMetadata, ref: ReferenceZoo, *, method: str,
        tolerance: float, notes: list[str], subsets: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, dict[str, ScoreStat]]:
        items = outputs.items
        if isinstance(items, RowPredictions):
            order = self._row_order(outputs, items, ref)
        elif isinstance(items, CheckpointPredictions):
            order = self._checkpoint_order(outputs, items, ref)
        else:
            raise OutputsError(f"task {outputs.task}: a {task.type} task takes property "
                               "predictions, not weight samples")
        return self._scores_in_order(outputs, items.predictions, order, task, ref, subsets)

    def _checkpoint_order(
        self, t: TaskOutputs, items: CheckpointPredictions, ref: ReferenceZoo
    ) -> list[int]:
        """Position in ``items`` of each healthy test checkpoint of the reference zoo."""
        n = len(items.model_id)
        if len(items.epoch) != n:
            raise OutputsError(
                f"task {t.task}: wrong lengths: {n} model_id values but {len(items.epoch)} "
                "epochs")
        check_lengths(t, n, items.predictions)
        keys = list(zip(items.model_id, items.epoch, strict=True))
        dup = [k for k, c in Counter(keys).items() if c > 1]
        if dup:
            raise OutputsError(f"task {t.task}: item {dup[0]} is predicted twice")
        ids = ref.zoo.column("test", "model_id").tolist()
        epochs = ref.zoo.column("test", "epoch").tolist()
        truth = [(str(m), int(e)) for m, e in zip(ids, epochs, strict=True)]
        truth_set = set(truth)
        pos = {k: i for i, k in enumerate(keys)}
        unknown = [k for k in keys if k not in truth_set]
        if unknown:
            raise OutputsError(
                f"task {t.task}: {len(unknown)} item(s) are not healthy test checkpoints of "
                f"{ref.label}, e.g. {unknown[0]}")
        missing = [k for k in truth if k not in pos]
        if missing:
            raise MissingOutputsError(
                f"task {t.task}: {len(missing)} of {len(truth)} test items have no prediction, "
                f"e.g. (model_id={missing[0][0]!r}, epoch={missing[0][1]}); predict every test "
                "checkpoint (`bench run --save-predictions` does)")
        return [pos[k] for k in truth]

    def _row_order(self, t: TaskOutputs, items: RowPredictions, ref: ReferenceZoo) -> list[int]:
        """Position in ``items`` of each row of the reference zoo's label-free view."""
        truth = ref.row_ids()
        if truth is None:
            raise OutputsError(f"task {t.task}: row-id predictions are for a label-free view; "
                               f"{ref.label} is keyed by checkpoint (model_id, epoch)")
        n = len(items.row_id)
        check_lengths(t, n, items.predictions)
        if n != len(truth):
            raise OutputsError(
                f"task {t.task}: wrong count: {n} predicted rows, {ref.label} has "
                f"{len(truth)}; predict every row of the view (`bench run --heldout VIEW "
                "--save-predictions` does)")
        dup = [k for k, c in Counter(items.row_id).items() if c > 1]
        if dup:
            raise OutputsError(f"task {t.task}: row {dup[0]} is predicted twice")
        truth_set = set(truth)
        unknown = [k for k in items.row_id if k not in truth_set]
        if unknown:
            raise OutputsError(
                f"task {t.task}: {len(unknown)} row id(s) are not rows of {ref.label}, "
                f"e.g. {unknown[0]}; predict the rows of the view named in the submission")
        pos = {k: i for i, k in enumerate(items.row_id)}
        return [pos[k] for k in truth]

    def _scores_in_order(
        self, t: TaskOutputs, predictions: Sequence[Sequence[Any]], order: list[int],
        task: TaskMetadata, ref: ReferenceZoo, subsets: Mapping[str, np.ndarray] | None,
    ) -> dict[str, dict[str, ScoreStat]]:
        """Score per seed and row set: ``predictions[seed][order[i]]`` is the prediction of
        test row ``i``."""
        idx = np.asarray(order, dtype=np.int64)
        y = self.labels(ref.zoo.column("test", task.target))
        masks = {ALL_ROWS: None, **(subsets or {})}
        per_seed: dict[str, list[dict[str, float]]] = {name: [] for name in masks}
        for p in predictions:
            if self.numeric != all(isinstance(v, float) for v in p):
                want = "numbers" if self.numeric else "class labels (strings)"
                raise OutputsError(f"task {t.task}: {task.type} predictions must be {want}")
            arr = self.labels(np.asarray(p, dtype=np.float64 if self.numeric else object)[idx])
            for name, mask in masks.items():
                if mask is None:
                    per_seed[name].append(score_predictions(task.metrics, y, arr))
                else:
                    keep = np.asarray(mask, dtype=bool)
                    if keep.shape != y.shape:
                        raise OutputsError(f"subset {name!r} masks {keep.shape[0]} rows, the "
                                           f"test split has {len(y)}")
                    per_seed[name].append(score_predictions(task.metrics, y[keep], arr[keep]))
        return {name: {m: ScoreStat.of([s[m] for s in runs]) for m in task.metrics}
                for name, runs in per_seed.items()}


def check_lengths(t: TaskOutputs, n: int, predictions: Sequence[Sequence[Any]]) -> None:
    """One prediction list per seed, each with ``n`` items.

    Raises:
        OutputsError: another number of lists or of items.
    """
    if len(predictions) != len(t.seeds):
        raise OutputsError(
            f"task {t.task}: wrong lengths: {len(predictions)} prediction lists for "
            f"{len(t.seeds)} seeds (one list per seed)")
    for i, p in enumerate(predictions):
        if len(p) != n:
            raise OutputsError(
                f"task {t.task}: wrong lengths: seed {t.seeds[i]} has {len(p)} predictions for "
                f"{n} items")


def _features(method: Any, zoo: EvalZoo, cache: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    for split in zoo.splits:  # SPLITS, plus the rows of a held-out view if there is one
        if split not in cache:
            f = np.asarray(method.features(zoo.splits[split], zoo.manifest))
            if f.ndim != 2 or len(f) != len(zoo.splits[split]):
                raise MethodError(
                    f"method {method.name!r}: features() returned shape {f.shape} for "
                    f"{len(zoo.splits[split])} {split} rows; expected [rows, d]"
                )
            cache[split] = f
    return cache


def property_seed(
    evaluator: PropertyEvaluator,
    task: TaskMetadata,
    method: Any,
    zoo: EvalZoo,
    seed: int,
    feature_cache: dict[str, np.ndarray],
    items: dict[str, Any] | None = None,
    raw: dict[str, Any] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    """One seed of a property task: targets and predictions per split, then scores.

    This is where the rows a method is fitted on (train), selected on (validation) and
    scored on (test) are taken from the zoo: the one place to change how they are chosen.

    Returns:
        ``({split: {metric: value}}, details)`` for the validation and test splits.
    """
    y = {s: evaluator.labels(zoo.column(s, task.target)) for s in SPLITS}
    details: dict[str, Any] = {}
    if "features" in capabilities(method):
        x = _features(method, zoo, feature_cache)
        fit = fit_head(candidates=evaluator.head_grid(head_of(method), seed),
                       main_score=task.main_score, x=x, y=y)
        preds = fit.predictions
        details = {"head": head_of(method), "head_params": fit.params}
    else:
        method.fit(zoo.splits["train"], target=task.target, task_type=task.type,
                   validation=zoo.splits["validation"], manifest=zoo.manifest, seed=seed)
        preds = {s: np.asarray(method.predict(zoo.splits[s], manifest=zoo.manifest))
                 for s in zoo.splits if s != "train"}
        for s, p in preds.items():
            if len(p) != len(zoo.splits[s]):
                raise MethodError(f"method {method.name!r}: predict() returned {len(p)} values "
                                  f"for {len(zoo.splits[s])} {s} rows")
    preds = {s: evaluator.labels(p) for s, p in preds.items()}
    scores = {s: score_predictions(task.metrics, y[s], preds[s]) for s in ("validation", "test")}
    if raw is not None:  # for the bootstrap intervals
        raw.update({s: {"y": y[s], "p": np.asarray(preds[s]),
                        "groups": zoo.column(s, "model_id")} for s in ("validation", "test")})
    if items is not None and HELDOUT in preds:  # a held-out view's rows (bench run --heldout)
        items.update(row_id=[str(r) for r in zoo.column(HELDOUT, "row_id").tolist()],
                     prediction=np.asarray(preds[HELDOUT]).tolist())
    elif items is not None:  # per-item test predictions (bench run --save-predictions)
        items.update(model_id=zoo.column("test", "model_id").tolist(),
                     epoch=zoo.column("test", "epoch").tolist(),
                     prediction=np.asarray(preds["test"]).tolist())
    return scores, details
