"""Predict the training epoch a checkpoint was taken at (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-epoch",
        description="Regress the epoch at which each checkpoint was saved.",
        type="regression",
        zoo=DIGITS_CNN_S_HYP,
        target="epoch",
        metrics=("kendall_tau", "r2"),
        main_score="kendall_tau",
    )
)
