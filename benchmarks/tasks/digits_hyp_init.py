"""Classify a model's initialisation scheme from its weights (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-init",
        description="Classify each checkpoint's initialisation (uniform, normal, Kaiming "
        "uniform/normal) from its weights.",
        type="classification",
        zoo=DIGITS_CNN_S_HYP,
        target="init",
        metrics=("accuracy", "balanced_accuracy"),
        main_score="accuracy",
    )
)
