"""Predict a checkpoint's test accuracy from its weights (``digits-v2``, hyperparameter zoo)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-test-acc",
        description="Regress each checkpoint's test accuracy from its weights.",
        type="regression",
        zoo=DIGITS_CNN_S_HYP,
        target="test_acc",
        metrics=("kendall_tau", "r2"),
        main_score="kendall_tau",
    )
)
