"""Classify a model's learning rate from its weights (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-lr",
        description="Classify each checkpoint's learning rate (1e-2, 1e-3) from its weights.",
        type="classification",
        zoo=DIGITS_CNN_S_HYP,
        target="lr",
        metrics=("accuracy", "balanced_accuracy"),
        main_score="accuracy",
    )
)
