"""Classify a model's optimizer from its weights (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-optimizer",
        description="Classify each checkpoint's optimizer (Adam, SGD) from its weights.",
        type="classification",
        zoo=DIGITS_CNN_S_HYP,
        target="optimizer",
        metrics=("accuracy", "balanced_accuracy"),
        main_score="accuracy",
    )
)
