"""Encode and decode the hyperparameter zoo's test models (``digits-v2``)."""

from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.tasks.zoos import DIGITS_CNN_S_HYP

TASK = register_task(
    TaskMetadata(
        name="digits-hyp-reconstruction",
        description="Test accuracy of the hyperparameter zoo's test models (last checkpoints) "
        "after a round trip through the method's autoencoder, relative to the originals'.",
        type="reconstruction",
        zoo=DIGITS_CNN_S_HYP,
        target="weights",
        metrics=("accuracy_ratio", "decoded_accuracy", "original_accuracy", "weight_error"),
        main_score="accuracy_ratio",
    )
)
