"""Generation tasks: are a method's samples good *new* models?

``n_models`` samples per seed are scored zero-shot on the zoo's source test data and placed
as percentiles of the zoo's test-split models (last checkpoints of the target architecture).
A sample counts as *novel* when its L2 distance to the nearest training checkpoint is above
``novelty_threshold`` x the median gap between distinct training models; the main score
``novel_percentile`` is the mean percentile with non-novel samples counted as 0, so a method
that returns (near-)copies of training models scores nothing. The percentile scores'
intervals also resample the reference test models (:func:`benchmarks.scoring.
percentile_bootstrap`); ``novelty`` is a median.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from benchmarks.errors import BenchmarkError
from benchmarks.evaluators.base import SeedContext, SeedRun
from benchmarks.evaluators.sampling import Samples, SamplingEvaluator
from benchmarks.finetune import (
    accuracy_of,
    distinct_model_scale,
    model_from_weights,
    nearest_distance,
)
from benchmarks.registry import register_evaluator
from benchmarks.results import ConfidenceInterval
from benchmarks.scoring import BootstrapSpec, percentile_bootstrap, sample_bootstrap
from modelzoo.storage import weights_tensor

if TYPE_CHECKING:
    from benchmarks.tasks.metadata import TaskMetadata


@register_evaluator
class GenerationEvaluator(SamplingEvaluator):
    """Zero-shot accuracy percentiles of novel samples."""

    type = "generation"
    metrics = ("novel_percentile", "zero_shot_accuracy", "percentile", "novelty",
               "novel_fraction")
    order = 3
    splits_needed = ("train", "test")
    sample_items = ("zero_shot_accuracy", "percentile", "novelty", "novel")

    def score_samples(self, ctx: SeedContext, samples: Samples) -> SeedRun:
        target, data, weights = samples.target, samples.data, samples.weights
        zoo, raw, items = ctx.zoo, ctx.raw, ctx.items
        acc = np.array([accuracy_of(model_from_weights(zoo.manifest, target, w, data)[0],
                                    data.x_test, data.y_test) for w in weights])
        # reference distribution: last checkpoints of the test-split models of that architecture
        arch = zoo.column("test", "architecture")
        epochs, ids = zoo.column("test", "epoch"), zoo.column("test", "model_id")
        ref = last_rows(ids, epochs, arch == target.architecture)
        if not len(ref):
            raise BenchmarkError(f"zoo has no healthy test-split {target.architecture} models")
        ref_acc = zoo.column("test", "test_acc")[ref].astype(np.float64)
        percentile = np.array([(ref_acc <= a).mean() for a in acc])
        # novelty: distance to the nearest training checkpoint, in units of the typical gap
        tr_arch = zoo.column("train", "architecture") == target.architecture
        tr_rows = np.flatnonzero(tr_arch)
        tr_w = weights_tensor(zoo.splits["train"])[torch.as_tensor(tr_rows)]
        tr_ids = zoo.column("train", "model_id")[tr_rows]
        last = last_rows(tr_ids, zoo.column("train", "epoch")[tr_rows],
                         np.ones(len(tr_rows), bool))
        scale = distinct_model_scale(tr_w, tr_ids.tolist(), last.tolist())
        dist = nearest_distance(torch.as_tensor(weights), tr_w).numpy() / max(scale, 1e-12)
        novel = dist > samples.spec.novelty_threshold
        scores = {
            "zero_shot_accuracy": float(acc.mean()),
            "percentile": float(percentile.mean()),
            "novelty": float(np.median(dist)),
            "novel_fraction": float(novel.mean()),
            "novel_percentile": float((percentile * novel).mean()),
        }
        details = {"source": data.name, "source_fingerprint": data.fingerprint,
                   "architecture": target.architecture, "activation": target.activation,
                   "reference_models": len(ref), "novelty_scale_l2": scale}
        if raw is not None:  # per-sample scores and the reference, for the bootstrap intervals
            raw.update(zero_shot_accuracy=acc, novel=novel.astype(np.float64), novelty=dist,
                       reference=ref_acc)
        if items is not None:  # per-sample weights and scores
            items.update(weights=weights, zero_shot_accuracy=acc.tolist(),
                         percentile=percentile.tolist(), novelty=dist.tolist(),
                         novel=novel.tolist())
        return SeedRun(scores={"test": scores}, details=details)

    def intervals(
        self, task: TaskMetadata, raw: list[dict[str, Any]], spec: BootstrapSpec
    ) -> dict[str, dict[str, ConfidenceInterval]]:
        out: dict[str, ConfidenceInterval] = {}
        for m in task.metrics:
            if m in ("percentile", "novel_percentile"):
                weights = [np.ones_like(r["novel"]) if m == "percentile" else r["novel"]
                           for r in raw]
                out[m] = percentile_bootstrap(
                    accuracies=[r["zero_shot_accuracy"] for r in raw], weights=weights,
                    reference=raw[0]["reference"], spec=spec)
            elif m == "novelty":
                out[m] = sample_bootstrap(per_sample=[r["novelty"] for r in raw], spec=spec,
                                          reduce=lambda v: np.median(v, axis=1))
            else:
                key = "novel" if m == "novel_fraction" else m
                out[m] = sample_bootstrap(per_sample=[r[key] for r in raw], spec=spec)
        return {"test": out}


def last_rows(ids: np.ndarray, epochs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Index of each model's last checkpoint among rows where ``mask``."""
    best: dict[str, int] = {}
    for i in np.flatnonzero(mask):
        if ids[i] not in best or epochs[i] > epochs[best[ids[i]]]:
            best[ids[i]] = int(i)
    return np.array(sorted(best.values()), dtype=np.int64)
