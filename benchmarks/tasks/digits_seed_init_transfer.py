"""Initialise CNN-s from provided weights, fine-tune on transposed digits (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import FinetuneSpec, TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_SEED

TASK = register_task(
    TaskMetadata(
        name="digits-seed-init-transfer",
        description="Fine-tune CNN-s initialised from the method's weights on a new dataset "
        "(transposed digits); area under the test-accuracy-per-epoch curve.",
        type="initialization",
        zoo=DIGITS_CNN_S_SEED,
        target="weights",
        metrics=("auc", "final_accuracy", "zero_shot_accuracy"),
        main_score="auc",
        finetune=FinetuneSpec(source="digits-transposed", epochs=5, n_models=4),
    )
)
