"""Benchmark methods; importing this package registers the built-in ones.

See :mod:`benchmarks.methods.base` for the protocol a (user) method follows.
"""

from benchmarks.methods import (  # noqa: F401  (each module registers its methods)
    chance,
    flat,
    graph_metanet,
    kde,
    nfn,
    providers,
    sane_method,
    weight_stats,
)
from benchmarks.methods.base import (
    FeatureMethod,
    Method,
    PredictorMethod,
    TargetModel,
    WeightGenerator,
    capabilities,
    load_method,
)

__all__ = [
    "FeatureMethod",
    "Method",
    "PredictorMethod",
    "TargetModel",
    "WeightGenerator",
    "capabilities",
    "load_method",
]
