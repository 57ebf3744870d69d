"""Initialise CNN-s from provided weights and fine-tune on digits (``digits-v2``, seed zoo)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import FinetuneSpec, TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_SEED

TASK = register_task(
    TaskMetadata(
        name="digits-seed-init-same",
        description="Fine-tune CNN-s initialised from the method's weights on digits (the seed "
        "zoo's own source); area under the test-accuracy-per-epoch curve.",
        type="initialization",
        zoo=DIGITS_CNN_S_SEED,
        target="weights",
        metrics=("auc", "final_accuracy", "zero_shot_accuracy"),
        main_score="auc",
        finetune=FinetuneSpec(source=None, epochs=5, n_models=4),
    )
)
