"""Validation-only scores of a SANE run: what its settings (``sane/configs/*.yaml``) are chosen
by. Nothing here reads a zoo's test split or a source's test images.

* :func:`reconstruction`: validation models (each at its last checkpoint in the run's
  ``epochs_range``) encoded and decoded, scored on the source's **validation images**: mean
  decoded / original accuracy ratio (:func:`sane.reconstruct.validation_reconstruction`).
* :func:`sampling`: SANE samples (the run's sampler settings unless given) scored on the
  validation images. The validation images are cut in two fixed halves: SANE_SUB selects its
  candidates on the first half and every sample is scored on the second, so selection is not
  scored on the images it was chosen by. Reports plain KDE draws and SANE_SUB side by side,
  and their novelty: the L2 distance to the nearest train-split checkpoint divided by the
  median gap between distinct train-split models (in a seed zoo: two models that differ only
  by seed), the generation task's measure.
* :func:`probes`: the benchmark's property protocol on train and validation only: SANE
  embeddings (mean latent token) and, for reference, per-layer weight statistics s(W) of the
  train / validation checkpoints; standardise + Ridge fitted on train, alpha chosen on
  validation by Kendall tau (as :mod:`benchmarks.evaluators.regression` does), and the
  validation R2 and tau of the chosen head.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.evaluators.regression import RegressionEvaluator
from benchmarks.finetune import distinct_model_scale, nearest_distance
from benchmarks.scoring import METRICS, fit_head
from modelzoo.storage import load_zoo, read_manifest, weights_tensor

__all__ = ["probes", "reconstruction", "sampling"]


def reconstruction(run: str | Path, zoo: str | Path, *, models: int = 10_000,
                   data_dir: str | Path | None = None) -> dict[str, float]:
    """Decoded / original accuracy of (up to ``models``) validation models of ``zoo``."""
    from sane import load_run
    from sane.reconstruct import validation_reconstruction

    r = load_run(run, device="cpu")
    return validation_reconstruction(r, zoo, models=models, epochs_range=r.config.epochs_range,
                                     data_dir=data_dir)


def _halves(source: str, data_dir: str | Path | None) -> tuple[tuple[torch.Tensor, ...], ...]:
    from modelzoo.sources import load_source

    src = load_source(source, data_dir=data_dir)
    x, y = src.x_val, src.y_val  # the only images read
    h = len(y) // 2
    return (x[:h], y[:h]), (x[h:], y[h:])


@torch.no_grad()
def _acc(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    out = model(x)
    return float((out.argmax(1) == y).float().mean()) if torch.isfinite(out).all() else 0.0


def sampling(
    run: str | Path, zoo: str | Path, *, n: int = 16, candidates: int = 5,
    seeds: Sequence[int] = (0, 1), bandwidth: float | None = None, kde_mode: str | None = None,
    anchors: int | None = None, data_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Plain KDE draws and SANE_SUB samples of ``zoo``'s architecture, scored on validation
    images (see the module docstring); sampler settings default to the run's.

    Returns:
        ``{"kde": {...}, "subsampled": {...}, "settings": {...}}``; each of the first two holds
        ``accuracy`` (mean over seeds and samples, second half of the validation images),
        ``novelty`` (median) and ``novel_fraction`` (novelty above 0.1).
    """
    from safetensors.torch import load_file

    from modelzoo.storage import flatten_state_dict
    from sane import load_run, load_sample, sample

    manifest = read_manifest(zoo)
    (arch,) = sorted(manifest.architectures)
    layout = manifest.architectures[arch].layout
    train = load_zoo(zoo, "train")
    meta = train.select_columns(["model_id", "epoch", "source"]).to_pandas()
    ref = weights_tensor(train)
    ids = meta.model_id.to_numpy()
    last = [int(np.flatnonzero(ids == m)[np.argmax(meta.epoch.to_numpy()[ids == m])])
            for m in sorted(set(ids))]
    scale = max(distinct_model_scale(ref, ids.tolist(), last), 1e-12)
    select, score = _halves(str(meta.source.mode()[0]), data_dir)
    r = load_run(run, device="cpu")
    out: dict[str, Any] = {"settings": {
        "bandwidth": r.config.sample_bandwidth if bandwidth is None else bandwidth,
        "kde_mode": kde_mode or r.config.sample_mode,
        "anchors": r.config.sample_anchors if anchors is None else anchors,
        "n": n, "candidates": candidates * n, "seeds": list(seeds)}}
    for method in ("kde", "subsampled"):
        acc, dist = [], []
        for seed in seeds:
            with tempfile.TemporaryDirectory(prefix="sane-val-") as tmp:
                extra = ({"candidates": candidates * n,
                          "score_fn": lambda m: _acc(m, *select)}
                         if method == "subsampled" else {})
                index = sample(run=run, zoo=zoo, out=tmp, n=n, architecture=arch,
                               method=method, seed=seed, bandwidth=bandwidth,
                               kde_mode=kde_mode, anchor_top_k=anchors, device="cpu", **extra)
                for i in range(n):
                    acc.append(_acc(load_sample(index, i), *score))
                out["settings"]["anchor_latent_std"] = json.loads(
                    Path(index).read_text())["anchor_latent_std"]
                w = torch.stack([flatten_state_dict(load_file(str(f)), layout)
                                 for f in sorted(Path(tmp).glob("sample_*.safetensors"))])
            dist += (nearest_distance(w, ref).numpy() / scale).tolist()
        d = np.asarray(dist)
        out[method] = {"accuracy": float(np.mean(acc)), "novelty": float(np.median(d)),
                       "novel_fraction": float((d > 0.1).mean())}
    return out


def _embed(run: Any, zoo: Path, split: str) -> tuple[np.ndarray, Any]:
    """Mean latent token of every checkpoint of ``split`` and the rows' columns."""
    from sane.embed import sequence_tokens
    from sane.run import encode_sequences

    ds = load_zoo(zoo, split)
    manifest = read_manifest(zoo)
    cols = ds.select_columns(["model_id", "architecture", "test_acc", "ggap", "epoch",
                              "status"]).to_pandas()
    w = weights_tensor(ds)
    seqs, plans = [], []
    for i, a in enumerate(cols.architecture):
        tok, plan = sequence_tokens(run, a, w[i], manifest.architectures[a].layout)
        seqs.append(tok)
        plans.append(plan)
    z = encode_sequences(run, seqs, plans, archs=[run.arch_id(a) for a in cols.architecture])
    return torch.stack([t.mean(0) for t in z]).numpy(), cols


def probes(run: str | Path, zoo: str | Path, *,
           targets: Sequence[str] = ("test_acc", "ggap", "epoch")) -> dict[str, dict[str, float]]:
    """Validation R2 / Kendall tau of linear probes on SANE embeddings and on s(W)
    (train and validation checkpoints only; see the module docstring)."""
    from benchmarks.methods.weight_stats import WeightStats
    from sane import load_run

    r = load_run(run, device="cpu")
    zoo = Path(zoo)
    manifest = read_manifest(zoo)
    feats: dict[str, dict[str, np.ndarray]] = {"sane": {}, "s(W)": {}}
    cols: dict[str, Any] = {}
    for split in ("train", "validation"):
        z, c = _embed(r, zoo, split)
        ok = (c.status == "ok").to_numpy()
        feats["sane"][split], cols[split] = z[ok], c[ok]
        feats["s(W)"][split] = np.asarray(
            WeightStats().features(load_zoo(zoo, split), manifest))[ok]
    grid = RegressionEvaluator().head_grid("linear", 0)
    out: dict[str, dict[str, float]] = {}
    for target in targets:
        y = {s: cols[s][target].to_numpy(np.float64) for s in cols}
        for name, x in feats.items():
            fit = fit_head(candidates=grid, main_score="kendall_tau", x=x, y=y)
            p = fit.predictions["validation"]
            out[f"{name}/{target}"] = {"r2": METRICS["r2"](y["validation"], p),
                                       "kendall_tau": fit.validation_score,
                                       "alpha": float(fit.params["alpha"])}
    return out
