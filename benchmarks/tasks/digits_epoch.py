"""Predict the training epoch a checkpoint was taken at."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S

TASK = register_task(
    TaskMetadata(
        name="digits-epoch",
        description="Regress the epoch at which each checkpoint was saved.",
        type="regression",
        zoo=DIGITS_CNN_S,
        target="epoch",
        metrics=("kendall_tau", "r2"),
        main_score="kendall_tau",
    )
)
