"""Regression tasks: predict a numeric zoo column (``test_acc``, ``ggap``, ``epoch``...).

Main score Kendall tau (scale-free across targets and zoos; ranks models, which is what model
selection needs), R² and Spearman also reported. Heads: ``linear`` = standardise + Ridge
(alpha on a log grid), ``gbt`` = gradient-boosted trees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.evaluators.property import PropertyEvaluator
from benchmarks.registry import register_evaluator

#: Numeric zoo columns a regression task may predict.
REGRESSION_TARGETS = ("test_acc", "ggap", "epoch", "test_loss", "train_acc", "val_acc")


@register_evaluator
class RegressionEvaluator(PropertyEvaluator):
    """Numeric property prediction, scored by rank correlation."""

    type = "regression"
    metrics = ("kendall_tau", "r2", "spearman")
    targets = REGRESSION_TARGETS
    numeric = True
    order = 0

    def labels(self, values: np.ndarray | Sequence[Any]) -> np.ndarray:
        return np.asarray(values).astype(np.float64)

    def head_grid(self, head: str, seed: int) -> list[tuple[dict[str, Any], BaseEstimator]]:
        if head == "linear":
            return [({"alpha": a}, make_pipeline(StandardScaler(), Ridge(alpha=a)))
                    for a in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)]
        return [({"learning_rate": lr, "min_samples_leaf": leaf},
                 HistGradientBoostingRegressor(learning_rate=lr, min_samples_leaf=leaf,
                                               max_iter=100, random_state=seed))
                for lr in (0.05, 0.1) for leaf in (5, 20)]
