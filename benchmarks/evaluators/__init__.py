"""Evaluators: one class per task type (regression, classification, initialization,
generation, reconstruction), registered in :data:`benchmarks.registry.EVALUATORS` by type.

See :mod:`benchmarks.evaluators.base` for what an evaluator decides. Importing this package
registers the built-in ones (``EVALUATORS`` lookups do that by themselves).
"""

from benchmarks.evaluators import (  # noqa: F401  (each module registers its evaluator)
    classification,
    generation,
    initialization,
    reconstruction,
    regression,
)
from benchmarks.evaluators.base import Evaluator, SeedContext, SeedRun
from benchmarks.evaluators.property import PropertyEvaluator
from benchmarks.evaluators.sampling import SamplingEvaluator
from benchmarks.registry import EVALUATORS, evaluator_for, register_evaluator

__all__ = [
    "EVALUATORS",
    "Evaluator",
    "PropertyEvaluator",
    "SamplingEvaluator",
    "SeedContext",
    "SeedRun",
    "evaluator_for",
    "register_evaluator",
]
