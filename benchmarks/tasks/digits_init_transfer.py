"""Initialise CNN-s from provided weights and fine-tune on a new source (transposed digits)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import FinetuneSpec, TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S

TASK = register_task(
    TaskMetadata(
        name="digits-init-transfer",
        description="Fine-tune models initialised from the method's weights on a new dataset "
        "(transposed digits); area under the test-accuracy-per-epoch curve.",
        type="initialization",
        zoo=DIGITS_CNN_S,
        target="weights",
        metrics=("auc", "final_accuracy", "zero_shot_accuracy"),
        main_score="auc",
        finetune=FinetuneSpec(source="digits-transposed", epochs=3, n_models=2),
    )
)
