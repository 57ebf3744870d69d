"""Encode and decode the seed zoo's test models; keep their accuracy (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_SEED

TASK = register_task(
    TaskMetadata(
        name="digits-seed-reconstruction",
        description="Test accuracy of the seed zoo's test models (last checkpoints) after a "
        "round trip through the method's autoencoder, relative to the originals'.",
        type="reconstruction",
        zoo=DIGITS_CNN_S_SEED,
        target="weights",
        metrics=("accuracy_ratio", "decoded_accuracy", "original_accuracy", "weight_error"),
        main_score="accuracy_ratio",
    )
)
