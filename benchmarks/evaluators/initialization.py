"""Initialization tasks: start training from a method's sampled weights.

Each of the ``n_models`` samples per seed is loaded into the zoo's target model and
fine-tuned ``epochs`` epochs on the task's source (the zoo's own, or a new one); scores are
the test accuracy before fine-tuning, after the last epoch, and the normalised area under the
accuracy-per-epoch curve (main score). The mean curve is kept per seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchmarks.evaluators.base import SeedContext, SeedRun
from benchmarks.evaluators.sampling import Samples, SamplingEvaluator
from benchmarks.finetune import area_under_curve, finetune_curve, model_from_weights
from benchmarks.registry import register_evaluator
from benchmarks.results import ConfidenceInterval
from benchmarks.scoring import BootstrapSpec, sample_bootstrap

if TYPE_CHECKING:
    from benchmarks.tasks.metadata import TaskMetadata


@register_evaluator
class InitializationEvaluator(SamplingEvaluator):
    """Fine-tuning curves from sampled weights."""

    type = "initialization"
    metrics = ("auc", "final_accuracy", "zero_shot_accuracy")
    order = 2

    def score_samples(self, ctx: SeedContext, samples: Samples) -> SeedRun:
        spec, target, data, weights = samples.spec, samples.target, samples.data, samples.weights
        zoo, seed, raw, items = ctx.zoo, ctx.seed, ctx.raw, ctx.items
        curves, loaded = [], []
        for i, w in enumerate(weights):
            model, n_loaded = model_from_weights(zoo.manifest, target, w, data)
            torch.manual_seed(seed * 7919 + i)
            curves.append(finetune_curve(model, data, epochs=spec.epochs, lr=spec.lr,
                                         batch_size=spec.batch_size, seed=seed * 7919 + i))
            loaded.append(n_loaded)
        curve = np.mean(np.asarray(curves), axis=0).tolist()
        scores = {"auc": area_under_curve(curve), "final_accuracy": curve[-1],
                  "zero_shot_accuracy": curve[0]}
        details = {"source": data.name, "source_fingerprint": data.fingerprint,
                   "architecture": target.architecture, "activation": target.activation,
                   "tensors_loaded": int(min(loaded)),
                   "tensors_total": len(zoo.manifest.architectures[target.architecture].layout)}
        if raw is not None:  # per-sample scores, for the bootstrap intervals
            c = np.asarray(curves, dtype=np.float64)
            raw.update(auc=np.array([area_under_curve(row) for row in c]),
                       final_accuracy=c[:, -1], zero_shot_accuracy=c[:, 0])
        if items is not None:  # per-sample weights and accuracy curves
            items.update(weights=weights, curve=curves)
        return SeedRun(scores={"test": scores}, details=details, curve=curve)

    def intervals(
        self, task: TaskMetadata, raw: list[dict[str, Any]], spec: BootstrapSpec
    ) -> dict[str, dict[str, ConfidenceInterval]]:
        return {"test": {m: sample_bootstrap(per_sample=[r[m] for r in raw], spec=spec)
                         for m in task.metrics}}
