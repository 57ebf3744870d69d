"""Predict a checkpoint's generalization gap (train_acc - test_acc) from its weights."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S

TASK = register_task(
    TaskMetadata(
        name="digits-ggap",
        description="Regress each checkpoint's generalization gap (train - test accuracy).",
        type="regression",
        zoo=DIGITS_CNN_S,
        target="ggap",
        metrics=("kendall_tau", "r2"),
        main_score="kendall_tau",
    )
)
