"""Classification tasks: predict a hyperparameter of each checkpoint (``activation``,
``init``, ``optimizer``, ``lr``...).

Numeric hyperparameters are classes too, one per value (labels are ``"%.6g"`` strings,
:func:`benchmarks.scoring.class_labels`). A zoo whose train split has a single value of the
target cannot serve the task. Heads: ``linear`` = standardise + logistic regression (C on a
log grid), ``gbt`` = gradient-boosted trees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from benchmarks.errors import TaskNotApplicableError
from benchmarks.evaluators.property import PropertyEvaluator
from benchmarks.registry import register_evaluator
from benchmarks.scoring import class_labels

if TYPE_CHECKING:
    from benchmarks.tasks.metadata import TaskMetadata
    from benchmarks.zoo import EvalZoo

#: Zoo columns a classification task may predict: every hyperparameter a zoo can vary;
#: numeric ones (``lr``, ``dropout``...) are scored as class labels.
CLASSIFICATION_TARGETS = ("activation", "init", "optimizer", "lr", "weight_decay", "dropout",
                          "batch_size", "train_fraction", "schedule")


@register_evaluator
class ClassificationEvaluator(PropertyEvaluator):
    """Hyperparameter prediction, scored by accuracy."""

    type = "classification"
    metrics = ("accuracy", "balanced_accuracy")
    targets = CLASSIFICATION_TARGETS
    numeric = False
    order = 1

    def labels(self, values: np.ndarray | Sequence[Any]) -> np.ndarray:
        return class_labels(values)

    def head_grid(self, head: str, seed: int) -> list[tuple[dict[str, Any], BaseEstimator]]:
        if head == "linear":
            return [({"C": c}, make_pipeline(StandardScaler(),
                                             LogisticRegression(C=c, max_iter=2000)))
                    for c in (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)]
        return [({"learning_rate": lr, "min_samples_leaf": leaf},
                 HistGradientBoostingClassifier(learning_rate=lr, min_samples_leaf=leaf,
                                                max_iter=100, random_state=seed))
                for lr in (0.05, 0.1) for leaf in (5, 20)]

    def check_applicable(self, task: TaskMetadata, zoo: EvalZoo) -> None:
        super().check_applicable(task, zoo)
        values = sorted(set(zoo.column("train", task.target).tolist()))
        if len(values) < 2:
            raise TaskNotApplicableError(
                f"target {task.target!r} has a single value ({values[0]!r}) in the train split "
                f"of zoo {zoo.manifest.name}: the zoo does not vary it, so {task.name} cannot "
                "be scored on it"
            )
