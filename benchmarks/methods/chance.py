"""Chance baseline: predicts the train mean (regression) or the train majority class.

It uses the ``fit`` / ``predict`` side of the method protocol and anchors every table: a
method that does not beat it has learned nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import datasets
import numpy as np

from benchmarks.registry import register_method
from modelzoo.storage.manifest import Manifest


@register_method("chance")
class Chance:
    """Constant prediction from the train split."""

    name = "chance"

    def __init__(self) -> None:
        self._value: Any = None

    def meta(self) -> dict[str, Any]:
        """Description stored with results."""
        return {"prediction": "train mean / majority class", "version": 1}

    def fit(
        self,
        train: datasets.Dataset,
        *,
        target: str,
        task_type: str,
        validation: datasets.Dataset,
        manifest: Manifest,
        seed: int,
    ) -> None:
        """Remember the train mean or majority label of ``target``."""
        values = train[target]
        if task_type == "regression":
            self._value = float(np.mean(values))
        else:
            self._value = sorted(Counter(values).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    def predict(self, dataset: datasets.Dataset, *, manifest: Manifest) -> np.ndarray:
        """The remembered constant for every row."""
        return np.array([self._value] * len(dataset))
