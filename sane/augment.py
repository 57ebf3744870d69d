"""Augmentations: function-preserving neuron permutations, Gaussian noise, random erasing.

The permutation structure (:func:`permutation_spec`, :func:`random_permutation`,
:func:`permute_vector`) lives in :mod:`modelzoo.permutation`, shared with ``zoo align``, and is
re-exported here: a random permutation is one gather index ``idx`` with ``permuted = flat[idx]``
that moves the rows of a layer and the matching input columns of the next layer together, so
the permuted network computes exactly the same function. As in SANE, the permutation is an
index map, so it composes with the token gather and costs one indexing operation per sample.
"""

from __future__ import annotations

import torch

from modelzoo.permutation import (
    PermutationSpec,
    permutation_spec,
    permute_vector,
    random_permutation,
)

__all__ = [
    "PermutationSpec",
    "add_noise",
    "permutation_spec",
    "permute_vector",
    "random_erase",
    "random_permutation",
]


def add_noise(
    tokens: torch.Tensor,
    *,
    sigma: float,
    multiplicative: bool = True,
    mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Gaussian noise: ``w * (1 + sigma * eps)`` (multiplicative) or ``w + sigma * eps``.

    Padding (``mask`` False) stays zero.
    """
    eps = torch.randn(tokens.shape, generator=generator, dtype=tokens.dtype)
    out = tokens * (1.0 + sigma * eps) if multiplicative else tokens + sigma * eps
    return out * mask if mask is not None else out


def random_erase(
    tokens: torch.Tensor,
    *,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Erase one random rectangle of a ``[T, S]`` token window (random erasing, Zhong et al.).

    The area is drawn uniformly from ``scale`` (fraction of ``T*S``) and the aspect ratio
    log-uniformly from ``ratio``; after 10 failed draws the window is returned unchanged.
    """
    t, s = tokens.shape[-2:]
    area = t * s
    log_r = torch.log(torch.tensor(ratio, dtype=torch.float64))
    for _ in range(10):
        u = torch.rand(4, generator=generator, dtype=torch.float64)
        target = area * (scale[0] + (scale[1] - scale[0]) * float(u[0]))
        aspect = float(torch.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1]))
        h = round((target * aspect) ** 0.5)
        w = round((target / aspect) ** 0.5)
        if 0 < h <= t and 0 < w <= s:
            i = int(u[2] * (t - h + 1))
            j = int(u[3] * (s - w + 1))
            out = tokens.clone()
            out[..., i : i + h, j : j + w] = value
            return out
    return tokens
