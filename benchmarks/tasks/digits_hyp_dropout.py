"""Classify a model's dropout rate from its weights (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-dropout",
        description="Classify each checkpoint's dropout rate (0, 0.5) from its weights.",
        type="classification",
        zoo=DIGITS_CNN_S_HYP,
        target="dropout",
        metrics=("accuracy", "balanced_accuracy"),
        main_score="accuracy",
    )
)
