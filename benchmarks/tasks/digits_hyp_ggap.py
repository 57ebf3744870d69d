"""Predict a checkpoint's generalization gap from its weights (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-ggap",
        description="Regress each checkpoint's generalization gap (train - test accuracy).",
        type="regression",
        zoo=DIGITS_CNN_S_HYP,
        target="ggap",
        metrics=("kendall_tau", "r2"),
        main_score="kendall_tau",
    )
)
