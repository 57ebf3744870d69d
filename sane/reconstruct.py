"""Reconstruction through SANE, judged by function: encode a checkpoint, decode it, and compare
the decoded network's accuracy with the original's.

A low reconstruction MSE does not say whether a decoder keeps a network working: small errors
in a few sensitive weights (a first-layer kernel, a bias) can cost most of the accuracy,
while large errors elsewhere cost nothing. So reconstruction is measured the way samples are
judged, by the accuracy of the decoded model.

:func:`reconstruct_weights` is the round trip: the per-layer normalised token sequence of each
flat weight vector (:func:`sane.embed.sequence_tokens`) is encoded and decoded window by
window with halo context (:func:`sane.run.encode_sequences` / :func:`~sane.run.decode_sequences`,
as ``sane embed`` and ``sane sample`` do), then scattered back into the layout and
de-normalised. Runs with ``token_norm`` de-normalise each decoded token with the statistics of
the original's own token (known at encoding time; a sample has none and uses its anchors').

:func:`validation_reconstruction` is what ``sane train`` logs every ``recon_every`` epochs: a
handful of *validation-split* models (the first ``recon_models`` by model id, each at its last
checkpoint in the run's ``epochs_range``), decoded and scored on the **validation images** of
their source; the test split and test images are never read. It reports the decoded and
original accuracies and the mean per-model ratio decoded / original.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelzoo.architectures import create_model
from modelzoo.errors import ZooError
from modelzoo.storage import LayerSpec, load_flat_weights
from modelzoo.storage.manifest import Manifest
from sane.data import ZooRows
from sane.embed import layer_tokens
from sane.run import SaneRun, decode_sequences, encode_sequences
from sane.tokenize import token_destandardize, token_standardize, tokens_to_vector

__all__ = ["model_of_row", "reconstruct_weights", "validation_reconstruction"]

log = logging.getLogger(__name__)


def reconstruct_weights(
    run: SaneRun, architecture: str, layout: Sequence[LayerSpec], weights: torch.Tensor,
    *, batch_size: int = 64,
) -> torch.Tensor:
    """Encode and decode flat weight vectors ``[n, P]`` of one architecture; returns ``[n, P]``.

    Args:
        run: the SANE run (a loaded one, or the model being trained).
        architecture: the architecture key (its normaliser statistics and embedding id).
        layout: its layer layout.
        weights: flat vectors in the layout's order.
        batch_size: windows per forward pass.
    """
    w = torch.as_tensor(weights, dtype=torch.float32)
    if w.dim() != 2:
        raise ZooError(f"reconstruct_weights needs [n, P] weights, not shape {tuple(w.shape)}")
    plan = run.plan(layout)
    arch_id = run.arch_id(architecture, layout)
    seqs, stats = [], []
    for row in w:
        tok = layer_tokens(run, architecture, row, layout)[0]
        if run.config.token_norm:
            tok, mean, std = token_standardize(tok, plan.mask)
            stats.append((mean, std))
        seqs.append(tok)
    latents = encode_sequences(run, seqs, [plan] * len(seqs), batch_size=batch_size,
                               archs=[arch_id] * len(seqs))
    decoded = decode_sequences(run, latents, [plan] * len(seqs), batch_size=batch_size,
                               archs=[arch_id] * len(seqs))
    out = torch.empty_like(w)
    for i, tok in enumerate(decoded):
        if stats:
            tok = token_destandardize(tok, plan.mask, *stats[i])
        vec = tokens_to_vector(tok, layout)
        if run.normalizer is not None:
            vec = run.normalizer.denormalize(vec, architecture, layout)
        out[i] = vec
    return out


def model_of_row(manifest: Manifest, meta: dict[str, Any], weights: torch.Tensor) -> nn.Module:
    """The zoo row's network (its architecture with the row's activation) holding ``weights``,
    in eval mode."""
    entry = manifest.architectures[meta["architecture"]]
    kwargs = dict(entry.kwargs)
    if meta.get("activation") is not None:
        kwargs["activation"] = meta["activation"]
    model = create_model(entry.name, **kwargs)
    load_flat_weights(model, weights, entry.layout)
    return model.eval()


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    out = model(x)
    if not torch.isfinite(out).all():
        return 0.0
    return float((out.argmax(1) == y).float().mean())


def _last_rows(rows: ZooRows, k: int) -> list[int]:
    """Kept-row positions of the last checkpoint of the first ``k`` models by model id."""
    last: dict[str, int] = {}
    for i, m in enumerate(rows.meta):
        j = last.get(m["model_id"])
        if j is None or m["epoch"] > rows.meta[j]["epoch"]:
            last[m["model_id"]] = i
    return [last[mid] for mid in sorted(last)[:k]]


def validation_reconstruction(
    run: SaneRun, zoo: str | Path, *, models: int,
    epochs_range: tuple[int, int] | None = None, data_dir: str | Path | None = None,
) -> dict[str, float]:
    """Decoded vs original accuracy of ``models`` validation-split models on their source's
    validation images (see the module docstring).

    Returns:
        ``{"val_recon_acc", "val_orig_acc", "val_recon_ratio", "val_recon_models"}``; NaNs
        (and a logged warning) where no validation model or source data is available.
    """
    from modelzoo.sources import load_source

    nan = {"val_recon_acc": math.nan, "val_orig_acc": math.nan, "val_recon_ratio": math.nan,
           "val_recon_models": 0.0}
    rows = ZooRows(zoo, "validation", epochs_range=epochs_range,
                   architectures=sorted(run.architectures))
    picked = _last_rows(rows, models)
    if not picked:
        return nan
    manifest = rows.manifest
    data: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    decoded_acc, orig_acc = [], []
    for arch in sorted({rows.meta[i]["architecture"] for i in picked}):
        mine = [i for i in picked if rows.meta[i]["architecture"] == arch]
        layout = manifest.architectures[arch].layout
        original = torch.stack([rows.weights(i).clone() for i in mine])
        decoded = reconstruct_weights(run, arch, layout, original)
        for i, w0, w1 in zip(mine, original, decoded, strict=True):
            src = rows.meta[i]["source"]
            if src not in data:
                try:
                    s = load_source(manifest.sources[src].name if src in manifest.sources
                                    else src, data_dir=data_dir)
                except ZooError as e:
                    log.warning("sane: no validation images of source %r for the "
                                "reconstruction check (%s)", src, e)
                    return nan
                data[src] = (s.x_val, s.y_val)
            x, y = data[src]
            orig_acc.append(_accuracy(model_of_row(manifest, rows.meta[i], w0), x, y))
            decoded_acc.append(_accuracy(model_of_row(manifest, rows.meta[i], w1), x, y))
    ratios = [d / o if o > 0 else 0.0 for d, o in zip(decoded_acc, orig_acc, strict=True)]
    return {"val_recon_acc": sum(decoded_acc) / len(decoded_acc),
            "val_orig_acc": sum(orig_acc) / len(orig_acc),
            "val_recon_ratio": sum(ratios) / len(ratios),
            "val_recon_models": float(len(ratios))}
