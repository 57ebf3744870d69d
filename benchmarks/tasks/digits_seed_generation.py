"""Zero-shot quality and novelty of generated CNN-s weights (``digits-v2``, seed zoo)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import FinetuneSpec, TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_SEED

TASK = register_task(
    TaskMetadata(
        name="digits-seed-generation",
        description="Zero-shot accuracy of generated models as percentiles of the seed zoo's "
        "test-split models, counting only samples that are not copies of training models.",
        type="generation",
        zoo=DIGITS_CNN_S_SEED,
        target="weights",
        metrics=("novel_percentile", "zero_shot_accuracy", "percentile", "novelty",
                 "novel_fraction"),
        main_score="novel_percentile",
        finetune=FinetuneSpec(source=None, epochs=0, n_models=16, novelty_threshold=0.1),
    )
)
