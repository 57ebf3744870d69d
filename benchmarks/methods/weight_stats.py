"""Weight-statistics baseline (Unterthiner et al., "Predicting Neural Network Accuracy from
Weights", 2020): for every tensor of the layer layout (each weight and each bias), its mean,
variance and quantiles 0/25/50/75/100, concatenated. Two variants differ by the head the
runner fits: ``weight-stats-linear`` (Ridge / LogisticRegression) and ``weight-stats-gbt``
(gradient-boosted trees, the paper's strongest baseline).

Mixed layouts (heterogeneous zoos, ``weight-stats-padded-*``): the per-tensor statistics of
each row's own architecture are right-aligned into ``T`` slots, ``T`` the largest number of
tensors over the zoo's architectures (the last tensor, the classifier bias, always lands in the
last slot; a shallower architecture leaves its first slots zero), followed by one
layer-present flag per slot and by the same 7 statistics over all of the row's weights. Slot
``i`` thus means "the ``T - i``-th tensor from the output" in every architecture, which gives a
head one feature space across architectures (and a zero-shot one for an architecture it was
not fitted on).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import datasets
import numpy as np
import torch

from benchmarks.methods._weights import layout_of
from benchmarks.registry import register_method
from modelzoo.storage import LayerSpec, iter_weight_batches
from modelzoo.storage.manifest import Manifest

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
STATS = ("mean", "var", *(f"q{int(q * 100)}" for q in QUANTILES))


def layer_statistics(weights: torch.Tensor, layout: list[LayerSpec]) -> torch.Tensor:
    """``[rows, 7 * len(layout)]`` per-tensor statistics of a ``[rows, P]`` weight matrix."""
    q = torch.tensor(QUANTILES, dtype=torch.float64)
    cols = []
    for spec in layout:
        w = weights[:, spec.offset : spec.offset + spec.numel].to(torch.float64)
        cols += [w.mean(1, keepdim=True), w.var(1, unbiased=False, keepdim=True)]
        cols.append(torch.quantile(w, q, dim=1).T)
    return torch.cat(cols, dim=1)


def feature_names(layout: list[LayerSpec]) -> list[str]:
    """Column names of :func:`layer_statistics`."""
    return [f"{s.name}.{stat}" for s in layout for stat in STATS]


class WeightStats:
    """Per-layer weight statistics as features.

    Args:
        head: ``"linear"`` or ``"gbt"``.
    """

    def __init__(self, head: str = "linear") -> None:
        self.head = head
        self.name = f"weight-stats-{head}"

    def meta(self) -> dict[str, Any]:
        """Description stored with results."""
        return {"features": "per-tensor mean, var, quantiles 0/25/50/75/100",
                "reference": "Unterthiner et al. 2020", "version": 1}

    def features(self, dataset: datasets.Dataset, manifest: Manifest) -> np.ndarray:
        """``[rows, 7 * tensors]`` statistics, computed batch by batch (no full copy)."""
        layout = layout_of(dataset, manifest)
        if not layout:
            return np.zeros((0, 0))
        parts = [layer_statistics(b, layout) for b in iter_weight_batches(dataset)]
        return torch.cat(parts).numpy()


def padded_statistics(
    dataset: datasets.Dataset, manifest: Manifest
) -> np.ndarray:
    """``[rows, 8 * T + 7]`` features of rows of any architectures (see the module doc)."""
    slots = max((len(e.layout) for e in manifest.architectures.values()), default=0)
    out = np.zeros((len(dataset), 8 * slots + len(STATS)))
    if not len(dataset):
        return out
    archs = np.asarray(dataset.select_columns(["architecture"]).to_pandas()["architecture"])
    for arch in np.unique(archs):
        rows = np.flatnonzero(archs == arch)
        layout = list(manifest.architectures[str(arch)].layout)
        part = dataset.select(rows.tolist()) if len(rows) < len(dataset) else dataset
        w = torch.cat(list(iter_weight_batches(part)))
        start = slots - len(layout)
        stats = layer_statistics(w, layout).numpy()
        out[rows, 7 * start : 7 * slots] = stats
        out[rows, 7 * slots + start : 8 * slots] = 1.0
        whole = [LayerSpec(name="all", shape=(w.shape[1],))]
        out[rows, 8 * slots :] = layer_statistics(w, whole).numpy()
    return out


class PaddedWeightStats(WeightStats):
    """Per-layer weight statistics for zoos of several architectures (padded layout).

    Args:
        head: ``"linear"`` or ``"gbt"``.
    """

    def __init__(self, head: str = "linear") -> None:
        super().__init__(head)
        self.name = f"weight-stats-padded-{head}"

    def meta(self) -> dict[str, Any]:
        """Description stored with results."""
        return {**super().meta(), "layout": "right-aligned tensor slots + present flags + "
                "whole-vector statistics (benchmarks.methods.weight_stats)"}

    def features(self, dataset: datasets.Dataset, manifest: Manifest) -> np.ndarray:
        """:func:`padded_statistics` of every row."""
        return padded_statistics(dataset, manifest)


@register_method("weight-stats-linear")
def _weight_stats_linear() -> WeightStats:
    return WeightStats("linear")


@register_method("weight-stats-gbt")
def _weight_stats_gbt() -> WeightStats:
    return WeightStats("gbt")


for _head in ("linear", "gbt"):  # weight-stats-padded-linear, weight-stats-padded-gbt
    register_method(f"weight-stats-padded-{_head}")(partial(PaddedWeightStats, _head))
