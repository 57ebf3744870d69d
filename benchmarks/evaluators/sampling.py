"""Tasks scored on sampled weights (the shared part of initialization and generation).

The method's ``sample`` gives ``n_models`` weight vectors per seed for the zoo's target model
(most frequent train architecture; the task's activation, else that of the best train
checkpoint by ``val_acc``). Intervals resample seeds, then the samples of each drawn seed
(:func:`benchmarks.scoring.sample_bootstrap`).

Saved outputs (:mod:`benchmarks.evaluators.outputs`) hold the sampled weights per seed;
:meth:`SamplingEvaluator.rescore` replays them through the reference zoo's ``rerun`` (``bench
run`` with a method whose ``sample`` returns them: :class:`Replay`), so they are loaded,
fine-tuned and scored exactly as in a run, and compares the per-sample scores the outputs
claim with its own. The scores do not depend on which test rows are scored, so every named
subset of rows gets the same ones.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from benchmarks.data import ImageData, load_image_data
from benchmarks.errors import MethodError, OutputsError, TaskNotApplicableError
from benchmarks.evaluators.base import Evaluator, SeedContext, SeedRun
from benchmarks.evaluators.outputs import ALL_ROWS, ReferenceZoo, TaskOutputs, WeightSamples
from benchmarks.results import ScoreStat

if TYPE_CHECKING:
    from benchmarks.methods.base import TargetModel
    from benchmarks.results import TaskResult
    from benchmarks.tasks.metadata import FinetuneSpec, TaskMetadata
    from benchmarks.zoo import EvalZoo


@dataclass
class Samples:
    """One seed's samples and what they are for.

    Attributes:
        spec: the task's finetune settings.
        target: the model the weights are for.
        data: the task's source dataset.
        weights: ``[spec.n_models, target.num_params]``.
    """

    spec: FinetuneSpec
    target: TargetModel
    data: ImageData
    weights: np.ndarray


class SamplingEvaluator(Evaluator):
    """Scores a method's weight samples; subclasses give :meth:`score_samples` and
    ``intervals``.

    Attributes:
        splits_needed: zoo splits that must have healthy checkpoints.
        sample_items: per-sample score columns of the saved predictions that a submission
            claims per item (besides the weights and ``curve``).
    """

    needs = ("sample",)
    items = "samples"
    splits_needed: ClassVar[tuple[str, ...]] = ("train",)
    sample_items: ClassVar[tuple[str, ...]] = ()

    def validate(self, task: TaskMetadata) -> None:
        if task.target != "weights":
            raise ValueError(f"{self.type} tasks have target 'weights'")
        if task.finetune is None:
            raise ValueError(f"{self.type} tasks need a finetune spec")

    def check_applicable(self, task: TaskMetadata, zoo: EvalZoo) -> None:
        for s in self.splits_needed:
            if not len(zoo.splits[s]):
                raise TaskNotApplicableError(
                    f"zoo {zoo.manifest.name} has no healthy {s}-split checkpoints, which "
                    f"{task.name} needs")

    def run_seed(self, ctx: SeedContext) -> SeedRun:
        spec = ctx.task.finetune
        assert spec is not None
        target = ctx.zoo.target_model(ctx.task)
        data = source_data(ctx.task, ctx.zoo)
        weights = sample_weights(ctx.method, ctx.zoo, target, spec.n_models, ctx.seed)
        return self.score_samples(ctx, Samples(spec, target, data, weights))

    @abstractmethod
    def score_samples(self, ctx: SeedContext, samples: Samples) -> SeedRun:
        """Score one seed's samples."""

    # ------------------------------------------------------------------ re-scoring

    def rescorable_items(
        self, result: TaskResult, table: dict[str, list[Any]], groups: list[list[int]],
        *, view: bool,
    ) -> WeightSamples:
        det = result.details.get("per_seed", [{}])[0]
        item_scores = {k: [[float(table[k][i]) for i in g] for g in groups]
                       for k in self.sample_items if k in table}
        curves = ([[[float(x) for x in table["curve"][i]] for i in g] for g in groups]
                  if "curve" in table else [])
        return WeightSamples(
            architecture=str(det["architecture"]), activation=str(det["activation"]),
            weights=[[float32_list(table["weights"][i]) for i in g] for g in groups],
            item_scores={} if view else item_scores, curves=[] if view else curves)

    def rescore(
        self, outputs: TaskOutputs, task: TaskMetadata, ref: ReferenceZoo, *, method: str,
        tolerance: float, notes: list[str], subsets: Mapping[str, np.ndarray] | None = None,
    ) -> dict[str, dict[str, ScoreStat]]:
        items = outputs.items
        if not isinstance(items, WeightSamples):
            raise OutputsError(f"task {outputs.task}: a {task.type} task takes weight samples, "
                               "not property predictions")
        spec = task.finetune
        assert spec is not None
        target = ref.zoo.target_model(task)
        if (items.architecture, items.activation) != (target.architecture, target.activation):
            raise OutputsError(
                f"task {outputs.task}: samples are for {items.architecture} / "
                f"{items.activation}; the target model of {ref.label} is "
                f"{target.architecture} / {target.activation}")
        seeds = list(outputs.seeds)
        if len(items.weights) != len(seeds):
            raise OutputsError(f"task {outputs.task}: wrong lengths: {len(items.weights)} "
                               f"sample lists for {len(seeds)} seeds")
        weights = {}
        for seed, w in zip(seeds, items.weights, strict=True):
            if len(w) != spec.n_models or any(len(v) != target.num_params for v in w):
                lens = sorted({len(v) for v in w})
                raise OutputsError(
                    f"task {outputs.task}: wrong lengths: seed {seed} has {len(w)} samples of "
                    f"{lens} parameters; the task needs {spec.n_models} samples of "
                    f"{target.num_params}")
            weights[seed] = np.asarray(w, dtype=np.float32)
        if len(set(seeds)) != len(seeds):
            raise OutputsError(f"task {outputs.task}: seeds repeat: {seeds}")
        res, table = ref.rerun(Replay(method, weights), task, seeds)
        compare_items(outputs, items, table, tolerance, notes)
        stats = dict(res.scores["test"])
        return {name: stats for name in (ALL_ROWS, *(subsets or {}))}


class Replay:
    """A method whose ``sample`` returns submitted weights (one ``[n, P]`` array per seed)."""

    def __init__(self, name: str, weights: dict[int, np.ndarray]) -> None:
        self.name = name
        self._weights = weights

    def meta(self) -> dict[str, Any]:
        """Marks the result as a replay."""
        return {"replay": True}

    def sample(self, *, zoo: Path, manifest: Any, target: Any, n: int, seed: int) -> np.ndarray:
        """The submitted weights of ``seed``."""
        return self._weights[seed]


def compare_items(t: TaskOutputs, items: WeightSamples, ours: dict[str, list[Any]],
                  tolerance: float, notes: list[str]) -> None:
    """Note per-sample claims that differ from the board's per-sample scores."""
    claims: dict[str, list[list[Any]]] = dict(items.item_scores)
    if items.curves:
        claims["curve"] = items.curves
    for key, claimed in claims.items():
        if key not in ours or key == "weights":
            notes.append(f"{t.task}: per-sample score {key!r} is not one the task computes")
            continue
        theirs = [v for per_seed in claimed for v in per_seed]
        mine = ours[key]
        if len(theirs) != len(mine):
            notes.append(f"{t.task}: {len(theirs)} per-sample {key} claims for {len(mine)} "
                         "samples")
            continue
        a = np.asarray(mine, dtype=np.float64).ravel()
        try:
            b = np.asarray(theirs, dtype=np.float64).ravel()
        except ValueError:
            b = np.array([])
        if a.shape != b.shape:
            notes.append(f"{t.task}: per-sample {key} claims have the wrong shape")
            continue
        diff = np.abs(a - b)
        bad = int((diff > tolerance).sum())
        if bad:
            notes.append(f"{t.task}: {bad} of {a.size} per-sample {key} values differ from the "
                         f"board's (max |diff| {diff.max():.4g})")


def float32_list(values: Any) -> list[float]:
    """Weights as the shortest decimals that round-trip through float32 (small JSON)."""
    return [float(str(v)) for v in np.asarray(values, dtype=np.float32)]


def sample_weights(
    method: Any, zoo: EvalZoo, target: TargetModel, n: int, seed: int
) -> np.ndarray:
    """``n`` weight vectors of ``method`` for ``target``, shape-checked."""
    w = np.asarray(method.sample(zoo=zoo.path, manifest=zoo.manifest, target=target, n=n,
                                 seed=seed), dtype=np.float32)
    if w.shape != (n, target.num_params):
        raise MethodError(f"method {method.name!r}: sample() returned shape {w.shape}, "
                          f"expected ({n}, {target.num_params})")
    return w


def source_data(task: TaskMetadata, zoo: EvalZoo) -> ImageData:
    """The task's fine-tuning / evaluation dataset (the zoo's own source by default)."""
    name = task.finetune.source if task.finetune and task.finetune.source else \
        zoo.most_common("source")
    return load_image_data(name, zoo.data_dir)
