"""Predict a checkpoint's test accuracy from its weights (Unterthiner et al. 2020)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S

TASK = register_task(
    TaskMetadata(
        name="digits-test-acc",
        description="Regress each checkpoint's test accuracy from its weights.",
        type="regression",
        zoo=DIGITS_CNN_S,
        target="test_acc",
        metrics=("kendall_tau", "r2"),
        main_score="kendall_tau",
    )
)
