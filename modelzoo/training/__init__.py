"""Trainers: the vectorised population trainer and the per-model reference loop."""

from modelzoo.training.common import Checkpoint, build_model
from modelzoo.training.config import INITS, OPTIMIZERS, TrainConfig
from modelzoo.training.loop import evaluate_model, train_one
from modelzoo.training.population import train_population

__all__ = [
    "INITS",
    "OPTIMIZERS",
    "Checkpoint",
    "TrainConfig",
    "build_model",
    "evaluate_model",
    "train_one",
    "train_population",
]
