"""Classify the activation hyperparameter a model was trained with from its weights."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S

TASK = register_task(
    TaskMetadata(
        name="digits-hp-activation",
        description="Classify each checkpoint's activation hyperparameter from its weights.",
        type="classification",
        zoo=DIGITS_CNN_S,
        target="activation",
        metrics=("accuracy", "balanced_accuracy"),
        main_score="accuracy",
    )
)
