"""Generate new weights with SANE: KDE around anchor embeddings, decoded window by window.

Anchors are the best models (by ``val_acc``) of one architecture in the zoo. Their full latent
token sequences ``[T, latent_dim]`` are the anchor embeddings; new latent sequences are drawn
from a Gaussian kernel density over them, decoded to tokens with halo windows, de-normalised,
loaded into the architecture and saved as safetensors.

KDE modes: ``"joint"`` (our default) fits one KDE over whole latent sequences, so every sample
stays close to one anchor as a whole; ``"token"`` fits one KDE per token position (MultiZoo-
SANE), which mixes neurons of different anchors and only gives working models when the zoo's
models are aligned (e.g. fine-tuned from one parent, or aligned with ``zoo align``);
``"individual"`` (the SANE sampler's default) fits one KDE per latent scalar, mixing anchors
even within a token. A run's ``sample_mode`` / ``sample_bandwidth`` config fields are the
defaults. On a digits CNN-s zoo of independently
initialised models (SANE d_model 128, 150 epochs, val recon MSE 0.006) anchors scored
0.94-0.96 test accuracy, reconstructions 0.93-0.95, ``joint`` samples 0.91-0.94 at bandwidth
0.05 (0.47-0.63 at SANE's 0.2) and ``token`` samples chance level.

Runs trained with ``token_norm`` decode standardised tokens; a new model has no per-token
statistics of its own, so they are de-normalised with the anchors' mean per-token mean/std.
Runs with ``arch_embedding`` encode and decode with the target architecture's id.

Methods (SANE / MultiZoo-SANE):

- ``kde``: ``n`` draws.
- ``subsampled``: draw ``candidates`` models, score each (``score_fn``, default: accuracy on the
  zoo's source validation data), keep the best ``n``.
- ``bootstrapped``: ``bootstrap_iterations`` rounds of: draw ``candidates``, score, refit the KDE
  on the latents of the best ``anchor_top_k``; the best ``n`` of the last round are kept.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.neighbors import KernelDensity
from torch import nn

from modelzoo.architectures import create_model
from modelzoo.errors import ZooError
from modelzoo.storage import LayerSpec, load_flat_weights, open_manifest
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.storage.manifest import Manifest
from sane.data import ZooRows
from sane.embed import layer_tokens
from sane.run import SaneRun, decode_sequences, encode_sequences, load_run
from sane.tokenize import TokenPlan, token_destandardize, token_standardize, tokens_to_vector

__all__ = ["METHODS", "ScoreFn", "kde_sample", "load_sample", "sample"]

METHODS = ("kde", "subsampled", "bootstrapped")
KDE_MODES = ("joint", "token", "individual")
INDEX_NAME = "index.json"

#: Scores a sampled model (higher is better), e.g. validation accuracy.
ScoreFn = Callable[[nn.Module], float]


def kde_sample(
    anchors: torch.Tensor,
    n: int,
    *,
    bandwidth: float,
    mode: str = "joint",
    seed: int = 0,
) -> torch.Tensor:
    """Draw ``n`` latent sequences from a Gaussian KDE over ``anchors`` ``[K, T, D]``.

    Args:
        anchors: anchor latent sequences.
        n: samples to draw.
        bandwidth: kernel bandwidth.
        mode: ``"joint"`` (one KDE over whole sequences), ``"token"`` (independent KDE per
            token position) or ``"individual"`` (independent 1-D KDE per latent scalar).
        seed: random seed.
    """
    if mode not in KDE_MODES:
        raise ZooError(f"kde mode must be one of {', '.join(KDE_MODES)}, not {mode!r}")
    k, t, d = anchors.shape
    a = anchors.double().numpy()
    rng = np.random.RandomState(seed)
    if mode == "joint":
        kde = KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(a.reshape(k, t * d))
        out = kde.sample(n, random_state=rng).reshape(n, t, d)
    elif mode == "individual":  # a 1-D Gaussian KDE per scalar: own anchor + noise per entry
        flat = a.reshape(k, t * d)
        pick = rng.randint(k, size=(n, t * d))
        out = flat[pick, np.arange(t * d)] + rng.normal(scale=bandwidth, size=(n, t * d))
        out = out.reshape(n, t, d)
    else:
        out = np.empty((n, t, d))
        for j in range(t):
            kde = KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(a[:, j, :])
            out[:, j, :] = kde.sample(n, random_state=rng)
    return torch.from_numpy(out).float()


@dataclass
class _Target:
    key: str
    name: str
    kwargs: dict[str, Any]
    layout: list[LayerSpec]
    plan: TokenPlan
    arch_id: int = 0
    #: per-token mean/std ``[T]`` that de-normalise decoded tokens (runs with token_norm)
    token_mean: torch.Tensor | None = None
    token_std: torch.Tensor | None = None


def _choose_arch(manifest: Manifest, run: SaneRun, architecture: str | None) -> str:
    keys = sorted(manifest.architectures)
    if architecture is None:
        if len(keys) > 1:
            raise ZooError(
                f"the zoo has several architectures ({', '.join(keys)}): choose one with "
                "--architecture"
            )
        return keys[0]
    if architecture in manifest.architectures:
        return architecture
    by_name = [k for k, e in manifest.architectures.items() if e.name == architecture]
    if len(by_name) == 1:
        return by_name[0]
    raise ZooError(
        f"architecture {architecture!r} is not in the zoo; it has {', '.join(keys)}"
    )


def _anchors(rows: ZooRows, top_k: int) -> list[int]:
    """Row positions of the best checkpoint of each of the ``top_k`` best models."""
    best: dict[str, tuple[float, int]] = {}
    for i, m in enumerate(rows.meta):
        acc = m.get("val_acc")
        score = -math.inf if acc is None or math.isnan(acc) else float(acc)
        if m["model_id"] not in best or score > best[m["model_id"]][0]:
            best[m["model_id"]] = (score, i)
    ranked = sorted(best.values(), key=lambda t: (-t[0], rows.meta[t[1]]["model_id"]))
    if not ranked:
        return []
    act = rows.meta[ranked[0][1]].get("activation")  # one function family for all anchors
    same = [i for _, i in ranked if rows.meta[i].get("activation") == act]
    return same[:top_k]


def _decode_models(
    run: SaneRun, target: _Target, latents: torch.Tensor, batch_size: int
) -> list[nn.Module]:
    toks = decode_sequences(run, list(latents), [target.plan] * len(latents),
                            batch_size=batch_size, archs=[target.arch_id] * len(latents))
    models = []
    for tok in toks:
        if target.token_mean is not None and target.token_std is not None:
            tok = token_destandardize(tok, target.plan.mask, target.token_mean, target.token_std)
        vec = tokens_to_vector(tok, target.layout)
        if run.normalizer is not None:
            vec = run.normalizer.denormalize(vec, target.key, target.layout)
        model = create_model(target.name, **target.kwargs)
        load_flat_weights(model, vec, target.layout)
        model.eval()
        models.append(model)
    return models


def _source_scorer(manifest: Manifest, data_dir: str | Path | None) -> ScoreFn:
    """Default scorer: accuracy on the validation split of the zoo's source dataset."""
    from modelzoo.sources import load_source

    sources = sorted(manifest.sources)
    if len(sources) != 1:
        raise ZooError(
            f"the zoo has several sources ({', '.join(sources)}): pass score_fn= to choose how "
            "sampled models are scored"
        )
    try:
        data = load_source(manifest.sources[sources[0]].name, data_dir=data_dir)
    except ZooError as e:
        raise ZooError(f"cannot score sampled models: {e} (or pass score_fn=)") from None
    x, y = data.x_val, data.y_val

    @torch.no_grad()
    def score(model: nn.Module) -> float:
        model.eval()
        return float((model(x).argmax(1) == y).float().mean())

    return score


def sample(
    *,
    run: str | Path,
    zoo: str | Path,
    out: str | Path,
    n: int,
    architecture: str | None = None,
    method: str = "kde",
    anchor_top_k: int | None = None,
    seed: int = 0,
    bandwidth: float | None = None,
    kde_mode: str | None = None,
    candidates: int | None = None,
    bootstrap_iterations: int = 2,
    score_fn: ScoreFn | None = None,
    data_dir: str | Path | None = None,
    split: str = "train",
    batch_size: int = 64,
    device: str | None = None,
    verify: bool | None = None,
) -> Path:
    """Sample ``n`` new models of one architecture of the zoo and save them.

    Args:
        run: SANE run directory (or its ``ckpt.pt``).
        zoo: zoo whose best models are the anchors.
        out: output directory: ``sample_0000.safetensors``... and ``index.json``.
        n: number of models.
        architecture: architecture key (or registry name) in the zoo; required if the zoo has
            several.
        method: ``kde``, ``subsampled`` or ``bootstrapped``.
        anchor_top_k: number of anchor models (best by ``val_acc``, one checkpoint each;
            None: the run's ``sample_anchors``).
        seed: random seed.
        bandwidth: KDE bandwidth in latent space (None: the run's ``sample_bandwidth``, 0.05
            by default; SANE used 0.2).
        kde_mode: ``joint`` (one KDE over whole sequences), ``token`` (one per position) or
            ``individual`` (one per latent scalar); None: the run's ``sample_mode``.
        candidates: models drawn per round for subsampled/bootstrapped (default ``4 * n``).
        bootstrap_iterations: rounds for ``bootstrapped``.
        score_fn: scores a model (higher is better); default: accuracy on the source's
            validation data.
        data_dir: where the default scorer finds the source dataset (see
            ``modelzoo.sources.load_source``).
        split: zoo split the anchors come from.
        batch_size: windows per forward pass.
        device: torch device (default: the run's).
        verify: check every shard of ``zoo`` against its ``zoo.json`` first (None: unless
            switched off with ``modelzoo.storage.verification(False)``).

    Returns:
        Path of ``out/index.json``.

    Raises:
        ShardChecksumError: a shard of ``zoo`` is missing or corrupt (nothing is written).
    """
    if method not in METHODS:
        raise ZooError(f"unknown sampling method {method!r}; choose from {', '.join(METHODS)}")
    if n < 1:
        raise ZooError(f"n must be >= 1, not {n}")
    r = load_run(run, device=device)
    bandwidth = r.config.sample_bandwidth if bandwidth is None else float(bandwidth)
    kde_mode = r.config.sample_mode if kde_mode is None else kde_mode
    anchor_top_k = r.config.sample_anchors if anchor_top_k is None else int(anchor_top_k)
    if kde_mode not in KDE_MODES:
        raise ZooError(f"kde mode must be one of {', '.join(KDE_MODES)}, not {kde_mode!r}")
    if not bandwidth > 0:
        raise ZooError(f"bandwidth must be > 0, not {bandwidth}")
    zoo = Path(zoo)
    manifest = open_manifest(zoo, verify=verify)  # the index records this zoo: check it
    key = _choose_arch(manifest, r, architecture)
    entry = manifest.architectures[key]
    rows = ZooRows(zoo, split, architectures=[key], verify=False)  # checked above
    idx = _anchors(rows, anchor_top_k)
    if not idx:
        raise ZooError(f"no usable {key!r} models in the {split} split of {zoo} to anchor on")
    kwargs = {**entry.kwargs}
    for col in ("activation", "dropout"):  # per-row hyperparameters of the best anchor
        if rows.meta[idx[0]].get(col) is not None:
            kwargs[col] = rows.meta[idx[0]][col]
    target = _Target(key, entry.name, kwargs, list(entry.layout), r.plan(entry.layout),
                     r.arch_id(key, entry.layout))
    seqs = [layer_tokens(r, key, rows.weights(i), entry.layout)[0] for i in idx]
    if r.config.token_norm:
        # new models have no per-token statistics of their own: use the anchors' mean ones
        normed = [token_standardize(t, target.plan.mask) for t in seqs]
        seqs = [y for y, _, _ in normed]
        target.token_mean = torch.stack([m for _, m, _ in normed]).mean(0)
        target.token_std = torch.stack([sd for _, _, sd in normed]).mean(0)
    anchors = torch.stack(encode_sequences(r, seqs, [target.plan] * len(seqs),
                                           batch_size=batch_size,
                                           archs=[target.arch_id] * len(seqs)))

    scores: list[float | None]
    if method == "kde":
        z = kde_sample(anchors, n, bandwidth=bandwidth, mode=kde_mode, seed=seed)
        models = _decode_models(r, target, z, batch_size)
        scores = [None] * n
    else:
        scorer = score_fn or _source_scorer(manifest, data_dir)
        m = candidates or max(4 * n, n + 1)
        if m < n:
            raise ZooError(f"candidates ({m}) must be >= n ({n})")
        rounds = bootstrap_iterations if method == "bootstrapped" else 1
        cur = anchors
        for it in range(rounds):
            z = kde_sample(cur, m, bandwidth=bandwidth, mode=kde_mode, seed=seed + 7919 * it)
            cand = _decode_models(r, target, z, batch_size)
            cand_scores = [float(scorer(c)) for c in cand]
            order = sorted(range(m), key=lambda j: -cand_scores[j])
            cur = z[order[: max(1, anchor_top_k)]]
        models = [cand[j] for j in order[:n]]
        scores = [cand_scores[j] for j in order[:n]]

    out = ensure_dir(Path(out))
    files = []
    for j, (model, sc) in enumerate(zip(models, scores, strict=True)):
        name = f"sample_{j:04d}.safetensors"
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        tmp = out / f".{name}.tmp"
        save_file(state, str(tmp), metadata={"architecture": entry.name, "format": "pt"})
        tmp.replace(out / name)
        files.append({"file": name, "score": sc})
    index = {
        "format": 1,
        "architecture": key,
        "name": entry.name,
        "kwargs": kwargs,
        "method": method,
        "kde_mode": kde_mode,
        "bandwidth": bandwidth,
        # the latent scale the bandwidth compares to: per-entry std over the anchors
        "anchor_latent_std": float(anchors.std(0).mean()) if len(anchors) > 1 else None,
        "seed": seed,
        "n": n,
        "anchors": [rows.meta[i]["model_id"] for i in idx],
        "anchor_val_acc": [rows.meta[i].get("val_acc") for i in idx],
        "run": str(r.path),
        "zoo": {"name": manifest.name, "content_hash": manifest.content_hash},
        "samples": files,
    }
    path = out / INDEX_NAME
    atomic_write_bytes(path, json.dumps(index, indent=1).encode())
    return path


def load_sample(index: str | Path, i: int = 0) -> nn.Module:
    """Rebuild sampled model ``i`` from a sample directory (or its ``index.json``)."""
    p = Path(index)
    p = p / INDEX_NAME if p.is_dir() else p
    try:
        meta = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ZooError(f"cannot read sample index {p}: {e}") from None
    files: Sequence[dict[str, Any]] = meta["samples"]
    if not 0 <= i < len(files):
        raise ZooError(f"{p} has {len(files)} samples; index {i} is out of range")
    name = Path(files[i]["file"]).name  # no path traversal out of the sample dir
    model = create_model(meta["name"], **meta["kwargs"])
    model.load_state_dict(load_file(str(p.parent / name)))
    return model.eval()
