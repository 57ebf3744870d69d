"""Typed SANE configuration (one dataclass; YAML in, plain dict out)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from modelzoo.errors import ZooError

__all__ = ["SaneConfig", "config_for_zoo", "resolve_device"]

Normalize = Literal["layer", "none"]
LossNorm = Literal["none", "batch"]
ReconNorm = Literal["real", "all"]
LrSchedule = Literal["cosine", "onecycle"]
KdeMode = Literal["joint", "token", "individual"]


@dataclass
class SaneConfig:
    """Hyperparameters of a SANE model, its training and its augmentations.

    Defaults follow SANE / MultiZoo-SANE where they apply (gamma 0.05, temperature 0.1,
    multiplicative noise 0.1, a canonical first view and a permuted second view, AdamW) at a
    size that trains on a CPU; scale ``d_model``/``n_layers``/``window_size`` up for big zoos.
    :func:`config_for_zoo` fits token and window sizes to a zoo (one token per neuron).

    Where our defaults differ from the reference code (HSG-AIML/SANE), a field gives the
    reference behaviour: ``recon_norm="all"``, ``lr_schedule="onecycle"``,
    ``decay_2d_only=True``, ``grad_clip=None``, ``drop_last=True``, ``permutation_prob=0`` on
    an aligned zoo (``zoo align``; SANE's shipped configs train on canonical views),
    ``sample_mode="individual"`` with ``sample_bandwidth=0.2``.

    Attributes:
        d_model: transformer width (even, divisible by ``n_heads``).
        n_heads: attention heads.
        n_layers: transformer layers of the encoder and of the decoder each.
        latent_dim: size of each latent token (compression of ``d_model``).
        token_size: weights per token (fixed per SANE model, shared by all architectures).
        window_size: tokens per training window (SANE trains on random windows).
        projection_dim: output size of the contrastive projection head.
        dropout: dropout in the transformers.
        gamma: loss = gamma * NT-Xent + (1 - gamma) * masked reconstruction MSE.
        temperature: NT-Xent temperature.
        lr: peak learning rate.
        lr_schedule: ``"cosine"``: linear warm-up over ``warmup_frac`` of the steps, then cosine
            decay to ``lr * min_lr_ratio``; ``"onecycle"``: SANE's ``OneCycleLR`` (start at
            ``lr / 25``, cosine up to ``lr`` at 30% of the steps, cosine down to
            ``lr / 25 / 1e4``; ``min_lr_ratio`` and ``warmup_frac`` are not used).
        min_lr_ratio: final learning rate as a fraction of ``lr`` (``cosine``).
        warmup_frac: fraction of all steps spent warming up (``cosine``).
        weight_decay: AdamW weight decay.
        decay_2d_only: apply ``weight_decay`` to parameters with >= 2 dimensions only (matrices
            and embeddings; not biases, LayerNorm gains), as SANE / nanoGPT do.
        grad_clip: gradient-norm clip (None or 0: no clipping, as in SANE).
        drop_last: drop the last, partial training batch of an epoch (SANE), so that every
            contrastive step sees ``batch_size`` models.
        epochs: training epochs.
        batch_size: models (windows) per step.
        seed: seed of everything random (data order, windows, augmentations, init).
        device: ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:i]"``.
        num_workers: DataLoader worker processes (results do not depend on it).
        epochs_range: inclusive ``[first, last]`` checkpoint epochs to train on (None: all).
        normalize: ``"layer"``: per-layer standardisation fitted on the train split (SANE);
            ``"none"``: raw weights (use with ``loss_norm="batch"`` for heterogeneous zoos).
        loss_norm: ``"batch"``: standardise target and reconstruction by the target's masked
            mean/std before the MSE (MultiZoo-SANE masked loss normalisation); ``"none"``.
        recon_norm: what the reconstruction MSE averages over: ``"real"``: the real weights only
            (padding ignored); ``"all"``: every token entry of the valid tokens, padding
            included (SANE; padding targets are zero, so the MSE is the real weights' squared
            error divided by all entries, and the same ``gamma`` weighs the contrastive term
            more when tokens carry much padding).
        permutation_prob: probability that a view is a random neuron permutation.
        view1_canonical: keep the first view un-permuted (SANE ``view_1_canon``).
        noise_prob: probability of adding Gaussian noise to a view.
        noise_sigma: noise scale.
        noise_multiplicative: ``w * (1 + sigma*eps)`` instead of ``w + sigma*eps``.
        erase_prob: probability of random erasing on a view.
        erase_scale: erased area range (fraction of the window).
        erase_ratio: erased rectangle aspect ratio range.
        denoise: reconstruct the clean (permuted) window instead of the augmented input (SANE
            reconstructs its augmented input: False).
        halo: context tokens on each side of a window when embedding/decoding whole sequences
            (-1: ``window_size // 8``).
        sample_mode: default KDE mode of :func:`sane.sample`: ``"joint"`` (one KDE over whole
            latent sequences), ``"token"`` (one per token position) or ``"individual"`` (one
            per latent scalar); SANE's sampler defaults to ``individual``.
        sample_bandwidth: default KDE bandwidth of :func:`sane.sample` (SANE: 0.2).
        token_norm: standardise every token by the mean/std of its own real entries (after
            ``normalize``; padding stays 0) so tokens of differently scaled architectures
            share one scale (MultiZoo-SANE). Sampling de-normalises decoded tokens with the
            anchors' mean per-token statistics.
        arch_embedding: add a learned embedding of the architecture (its key in the training
            zoo; the id table is saved with the checkpoint) to every token in the encoder and
            the decoder (architecture-aware positions for heterogeneous zoos).
    """

    d_model: int = 128
    n_heads: int = 4
    n_layers: int = 2
    latent_dim: int = 16
    token_size: int = 64
    window_size: int = 64
    projection_dim: int = 30
    dropout: float = 0.0
    gamma: float = 0.05
    temperature: float = 0.1
    lr: float = 1e-4
    lr_schedule: LrSchedule = "cosine"
    min_lr_ratio: float = 0.1
    warmup_frac: float = 0.05
    weight_decay: float = 3e-9
    decay_2d_only: bool = False
    grad_clip: float | None = 1.0
    drop_last: bool = False
    epochs: int = 30
    batch_size: int = 32
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    epochs_range: tuple[int, int] | None = None
    normalize: Normalize = "layer"
    loss_norm: LossNorm = "none"
    recon_norm: ReconNorm = "real"
    permutation_prob: float = 1.0
    view1_canonical: bool = True
    noise_prob: float = 1.0
    noise_sigma: float = 0.1
    noise_multiplicative: bool = True
    erase_prob: float = 0.0
    erase_scale: tuple[float, float] = (0.02, 0.33)
    erase_ratio: tuple[float, float] = (0.3, 3.3)
    denoise: bool = False
    halo: int = -1
    sample_mode: KdeMode = "joint"
    sample_bandwidth: float = 0.05
    token_norm: bool = False
    arch_embedding: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs_range", "erase_scale", "erase_ratio"):
            v = getattr(self, name)
            if isinstance(v, list):
                setattr(self, name, tuple(v))
        self.validate()

    def validate(self) -> None:
        """Raise a ZooError naming the first invalid field."""
        positive = ("d_model", "n_heads", "n_layers", "latent_dim", "token_size",
                    "window_size", "projection_dim", "epochs", "batch_size")
        for name in positive:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ZooError(f"config: {name} must be a positive integer, not {v!r}")
        if self.d_model % self.n_heads or self.d_model % 2:
            raise ZooError(
                f"config: d_model ({self.d_model}) must be even and divisible by n_heads "
                f"({self.n_heads})"
            )
        for name in ("gamma", "dropout", "permutation_prob", "noise_prob", "erase_prob",
                     "warmup_frac", "min_lr_ratio"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ZooError(f"config: {name} must be in [0, 1], not {v!r}")
        if self.temperature <= 0 or self.lr <= 0 or self.weight_decay < 0 or self.noise_sigma < 0:
            raise ZooError("config: temperature and lr must be > 0; weight_decay, noise_sigma >= 0")
        if self.normalize not in ("layer", "none"):
            raise ZooError(f"config: normalize must be 'layer' or 'none', not {self.normalize!r}")
        if self.loss_norm not in ("none", "batch"):
            raise ZooError(f"config: loss_norm must be 'none' or 'batch', not {self.loss_norm!r}")
        if self.recon_norm not in ("real", "all"):
            raise ZooError(f"config: recon_norm must be 'real' or 'all', not {self.recon_norm!r}")
        if self.lr_schedule not in ("cosine", "onecycle"):
            raise ZooError(
                f"config: lr_schedule must be 'cosine' or 'onecycle', not {self.lr_schedule!r}"
            )
        if self.grad_clip is not None and (
            isinstance(self.grad_clip, bool) or not self.grad_clip >= 0
        ):
            raise ZooError(
                f"config: grad_clip must be a number >= 0, or None for no clipping, "
                f"not {self.grad_clip!r}"
            )
        for name in ("decay_2d_only", "drop_last", "view1_canonical", "noise_multiplicative",
                     "denoise", "token_norm", "arch_embedding"):
            if not isinstance(getattr(self, name), bool):
                raise ZooError(f"config: {name} must be true or false, not "
                               f"{getattr(self, name)!r}")
        if self.epochs_range is not None:
            if len(self.epochs_range) != 2 or self.epochs_range[0] > self.epochs_range[1]:
                raise ZooError(
                    f"config: epochs_range must be [first, last] with first <= last, "
                    f"not {self.epochs_range!r}"
                )
        if self.sample_mode not in ("joint", "token", "individual"):
            raise ZooError(f"config: sample_mode must be 'joint', 'token' or 'individual', "
                           f"not {self.sample_mode!r}")
        if not self.sample_bandwidth > 0:
            raise ZooError(f"config: sample_bandwidth must be > 0, not {self.sample_bandwidth!r}")
        if self.num_workers < 0:
            raise ZooError("config: num_workers must be >= 0")

    @property
    def halo_size(self) -> int:
        """Effective halo (context tokens per side) for whole-sequence windows."""
        h = self.window_size // 8 if self.halo < 0 else self.halo
        return max(0, min(h, (self.window_size - 1) // 2))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of primitives (safe for ``torch.load(weights_only=True)`` and YAML)."""
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SaneConfig:
        """Build from a dict; unknown keys are an error (with the known ones listed)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ZooError(
                f"unknown SANE config key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        hints = typing.get_type_hints(cls)
        fixed = dict(data)
        for k, v in data.items():
            # YAML 1.1 reads "1e-3" as a string: accept numbers written that way
            num = hints[k] is float or (hints[k] == float | None and v is not None)
            if num and isinstance(v, str | int) and not isinstance(v, bool):
                try:
                    fixed[k] = float(v)
                except ValueError:
                    raise ZooError(f"config: {k} must be a number, not {v!r}") from None
        try:
            return cls(**fixed)
        except TypeError as e:
            raise ZooError(f"invalid SANE config: {e}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> SaneConfig:
        """Read a YAML mapping of config fields."""
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ZooError(f"cannot read SANE config {p}: {e}") from None
        if not isinstance(data, dict):
            raise ZooError(f"SANE config {p} must be a YAML mapping of field: value")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> SaneConfig:
        """A copy with some fields changed (validated)."""
        return dataclasses.replace(self, **changes)

    def resolved_device(self) -> str:
        """The torch device string this config runs on."""
        return resolve_device(self.device)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; checks that CUDA exists if asked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ZooError(f"device {device!r} requested but CUDA is not available: use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ZooError(f"unknown device {device!r}: use auto, cpu or cuda[:i]")
    return device


#: Settings of :func:`config_for_zoo` (chosen on validation models only; the numbers are in
#: ``sane/configs/digits-cnn_s.yaml``).
ZOO_DEFAULTS: dict[str, Any] = {
    "d_model": 128,
    "n_heads": 4,
    "n_layers": 2,
    "latent_dim": 128,
    "epochs": 30,
    "batch_size": 32,
    "recon_norm": "all",
}
#: Largest token (values) and window (tokens) for one-token-per-neuron tokenisation.
MAX_NEURON_TOKEN, MAX_WINDOW = 512, 256


def config_for_zoo(manifest: Any, **changes: Any) -> SaneConfig:
    """A SANE configuration that fits a zoo: :data:`ZOO_DEFAULTS`, one token per neuron
    (token size = the largest fan-in + bias over the zoo's architectures) with a window that
    covers the longest model, as SANE's CNN runs do. Where that would exceed
    :data:`MAX_NEURON_TOKEN` values per token or :data:`MAX_WINDOW` tokens (e.g. ResNets) the
    :class:`SaneConfig` token and window sizes are kept.

    Args:
        manifest: the zoo's manifest (``modelzoo.storage.read_manifest``).
        changes: config fields that override the result.
    """
    from sane.tokenize import neuron_token_size, plan_tokens

    layouts = [e.layout for e in manifest.architectures.values()]
    if not layouts:
        raise ZooError(f"zoo {manifest.name} has no architectures to configure SANE for")
    data: dict[str, Any] = dict(ZOO_DEFAULTS)
    size = neuron_token_size(layouts)
    tokens = max(plan_tokens(layout, size).num_tokens for layout in layouts)
    if size <= MAX_NEURON_TOKEN and tokens <= MAX_WINDOW:
        data.update(token_size=size, window_size=tokens)
    return SaneConfig.from_dict({**data, **changes})
