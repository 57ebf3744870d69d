"""Metrics and the sklearn heads fitted on top of feature methods.

Conventions:

* Regression main score: **Kendall tau** (rank correlation between predicted and true values
  over the test checkpoints). It is scale-free, so it compares across targets (``epoch`` is an
  integer, ``ggap`` tiny) and zoos, it is what model selection needs (ranking models), and it is
  the score reported by Unterthiner et al. and later metanetwork work. R² is reported too.
* A correlation of a constant prediction (or a constant target) is undefined; it is recorded
  as 0.0 (no rank information) so that result files stay valid JSON. The same holds for R²
  of a constant target.
* Heads are chosen on the validation split by the task's main score: ``linear`` =
  ``StandardScaler`` + ``Ridge(alpha)`` (regression) or ``LogisticRegression(C)``
  (classification), alpha / C on a log grid; ``gbt`` = ``HistGradientBoosting*`` over a small
  grid of learning rate and minimum leaf size. The chosen head is fitted on train only.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import accuracy_score, balanced_accuracy_score, r2_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _finite(x: float) -> float:
    return float(x) if math.isfinite(float(x)) else 0.0


def kendall_tau(y: np.ndarray, p: np.ndarray) -> float:
    """Kendall tau-b; 0.0 when undefined (constant input)."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return 0.0
    return _finite(stats.kendalltau(y, p).statistic)


def spearman(y: np.ndarray, p: np.ndarray) -> float:
    """Spearman rho; 0.0 when undefined."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return 0.0
    return _finite(stats.spearmanr(y, p).statistic)


def r2(y: np.ndarray, p: np.ndarray) -> float:
    """Coefficient of determination; 0.0 when the target is constant."""
    if len(y) < 2 or np.ptp(y) == 0:
        return 0.0
    return _finite(r2_score(y, p))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Fraction of exact matches."""
    return _finite(accuracy_score(y, p))


def balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Mean per-class recall."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # predicted classes absent from y
        return _finite(balanced_accuracy_score(y, p))


#: Property-prediction metrics by name: ``fn(y_true, y_pred) -> float``.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "kendall_tau": kendall_tau,
    "spearman": spearman,
    "r2": r2,
    "accuracy": accuracy,
    "balanced_accuracy": balanced_accuracy,
}


def head_grid(head: str, task_type: str, seed: int) -> list[tuple[dict[str, Any], BaseEstimator]]:
    """Candidate heads ``(params, estimator)`` for ``head`` and ``task_type``."""
    if head == "linear" and task_type == "regression":
        return [({"alpha": a}, make_pipeline(StandardScaler(), Ridge(alpha=a)))
                for a in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)]
    if head == "linear":
        return [({"C": c}, make_pipeline(StandardScaler(),
                                         LogisticRegression(C=c, max_iter=2000)))
                for c in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)]
    cls = HistGradientBoostingRegressor if task_type == "regression" else \
        HistGradientBoostingClassifier
    return [({"learning_rate": lr, "min_samples_leaf": leaf},
             cls(learning_rate=lr, min_samples_leaf=leaf, max_iter=100, random_state=seed))
            for lr in (0.05, 0.1) for leaf in (5, 20)]


@dataclass
class HeadFit:
    """The selected head: its parameters, validation score and predictions per split."""

    params: dict[str, Any]
    validation_score: float
    predictions: dict[str, np.ndarray]


def fit_head(
    *,
    head: str,
    task_type: str,
    main_score: str,
    x: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
    seed: int,
) -> HeadFit:
    """Fit every candidate head on train, keep the best on validation by ``main_score``.

    Args:
        head: ``linear`` or ``gbt``.
        task_type: ``regression`` or ``classification``.
        main_score: metric name in :data:`METRICS` used for selection.
        x: features per split (``train``, ``validation``, ``test``).
        y: targets per split.
        seed: random state of stochastic heads.
    """
    metric = METRICS[main_score]
    best: HeadFit | None = None
    for params, est in head_grid(head, task_type, seed):
        model = clone(est)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence / constant-feature warnings
            model.fit(x["train"], y["train"])
            preds = {s: model.predict(x[s]) for s in x if s != "train"}
        score = metric(y["validation"], preds["validation"]) if len(y["validation"]) else 0.0
        if best is None or score > best.validation_score:
            best = HeadFit(params, score, preds)
    assert best is not None
    return best


def class_labels(values: np.ndarray | list) -> np.ndarray:
    """Class labels of a classification target as strings.

    Hyperparameters such as ``lr`` or ``dropout`` are numeric columns, which sklearn treats as
    continuous targets. Numbers become ``"%.6g"`` strings (``0.001`` -> ``"0.001"``, also when
    read back from float32), so labels and predictions compare exactly; strings stay as they
    are.
    """
    out = []
    for v in np.asarray(values, dtype=object).tolist():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            out.append(str(v))
        else:
            out.append(f"{float(v):.6g}")
    return np.asarray(out, dtype=object)


def score_predictions(
    metrics: tuple[str, ...], y: np.ndarray, p: np.ndarray
) -> dict[str, float]:
    """All ``metrics`` of predictions ``p`` against ``y``."""
    return {m: METRICS[m](y, p) for m in metrics}
