"""Flat-weights linear probe: the raw weight vector as features, standardised, linear head."""

from __future__ import annotations

from typing import Any

import datasets
import numpy as np

from benchmarks.methods._weights import weights_and_layout
from benchmarks.registry import register_method
from modelzoo.storage.manifest import Manifest


@register_method("flat-linear")
class FlatWeights:
    """All weights, in layout order, as features (``Ridge`` / ``LogisticRegression`` head)."""

    name = "flat-linear"
    head = "linear"

    def meta(self) -> dict[str, Any]:
        """Description stored with results."""
        return {"features": "flat weight vector", "version": 1}

    def features(self, dataset: datasets.Dataset, manifest: Manifest) -> np.ndarray:
        """``[rows, P]`` weights."""
        w, _ = weights_and_layout(dataset, manifest)
        return w.numpy()
