"""SANE: Sequential Autoencoder for Neural Embeddings (Schürholt et al., ICML 2024), with the
heterogeneous-zoo changes of MultiZoo-SANE (Falk et al., 2025).

Public API (keyword-only)::

    from sane import SaneConfig, train, embed, sample
    ckpt = train(zoo="zoos/digits", out="runs/sane", config=SaneConfig(epochs=20))
    ds = embed(run="runs/sane", zoo="zoos/digits", out="runs/sane/embeddings")
    index = sample(run="runs/sane", zoo="zoos/digits", out="runs/sane/samples", n=8)
"""

from __future__ import annotations

from sane.augment import (
    PermutationSpec,
    add_noise,
    permutation_spec,
    permute_vector,
    random_erase,
    random_permutation,
)
from sane.config import SaneConfig
from sane.embed import embed
from sane.loss import masked_mse, nt_xent, sane_loss
from sane.model import Sane
from sane.run import SaneRun, load_run
from sane.sample import kde_sample, load_sample, sample
from sane.tokenize import (
    LayerGroup,
    Normalizer,
    TokenPlan,
    Tokens,
    detokenize,
    layer_groups,
    plan_tokens,
    tokenize,
    tokens_to_vector,
)
from sane.train import train

__all__ = [
    "LayerGroup",
    "Normalizer",
    "PermutationSpec",
    "Sane",
    "SaneConfig",
    "SaneRun",
    "TokenPlan",
    "Tokens",
    "add_noise",
    "detokenize",
    "embed",
    "kde_sample",
    "layer_groups",
    "load_run",
    "load_sample",
    "masked_mse",
    "nt_xent",
    "permutation_spec",
    "permute_vector",
    "plan_tokens",
    "random_erase",
    "random_permutation",
    "sample",
    "sane_loss",
    "tokenize",
    "tokens_to_vector",
    "train",
]
