"""Classify a model's activation from its weights (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-activation",
        description="Classify each checkpoint's activation (tanh, ReLU, sigmoid, GELU) "
        "from its weights.",
        type="classification",
        zoo=DIGITS_CNN_S_HYP,
        target="activation",
        metrics=("accuracy", "balanced_accuracy"),
        main_score="accuracy",
    )
)
