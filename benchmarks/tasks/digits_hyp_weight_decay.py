"""Classify a model's weight decay from its weights (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-weight-decay",
        description="Classify each checkpoint's weight decay (1e-3, 1e-4) from its weights.",
        type="classification",
        zoo=DIGITS_CNN_S_HYP,
        target="weight_decay",
        metrics=("accuracy", "balanced_accuracy"),
        main_score="accuracy",
    )
)
