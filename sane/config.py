"""Typed SANE configuration: one pydantic model (YAML in, plain dict out), whose fields are
also the ``sane train`` options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from modelzoo.device import resolve_device
from modelzoo.errors import ZooError

__all__ = ["SaneConfig", "config_for_zoo", "resolve_device"]

Normalize = Literal["layer", "none"]
LossNorm = Literal["none", "batch"]
ReconNorm = Literal["real", "all"]
LrSchedule = Literal["cosine", "onecycle"]
KdeMode = Literal["joint", "token", "individual"]
Precision = Literal["default", "bf16"]
PosInt = Annotated[StrictInt, Field(ge=1)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
PosFloat = Annotated[float, Field(gt=0.0)]
NonNegFloat = Annotated[float, Field(ge=0.0)]


def _explain(e: ValidationError) -> str:
    """One line per invalid field, unknown keys listed with the known ones."""
    unknown = sorted(str(err["loc"][0]) for err in e.errors() if err["type"] == "extra_forbidden")
    if unknown:
        return (f"unknown SANE config key(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(SaneConfig.model_fields))}")
    parts = []
    for err in e.errors():
        msg = err["msg"].removeprefix("Value error, ")
        where = ".".join(str(x) for x in err["loc"])
        parts.append(f"{where}: {msg} (got {err['input']!r})" if where else msg)
    return "invalid SANE config: " + "; ".join(parts)


class SaneConfig(BaseModel):
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

    Each field is documented where it is declared; ``sane train --help`` shows the same text
    (one option per field). Invalid values raise a :class:`~modelzoo.errors.ZooError` naming
    the field.
    """

    d_model: PosInt = 128
    """Transformer width (even, divisible by ``n_heads``)."""
    n_heads: PosInt = 4
    """Attention heads."""
    n_layers: PosInt = 2
    """Transformer layers of the encoder and of the decoder each."""
    latent_dim: PosInt = 16
    """Size of each latent token (compression of ``d_model``)."""
    token_size: PosInt = 64
    """Weights per token (fixed per SANE model, shared by all architectures)."""
    window_size: PosInt = 64
    """Tokens per training window (SANE trains on random windows)."""
    projection_dim: PosInt = 30
    """Output size of the contrastive projection head."""
    dropout: Fraction = 0.0
    """Dropout in the transformers."""
    gamma: Fraction = 0.05
    """Loss = gamma * NT-Xent + (1 - gamma) * masked reconstruction MSE."""
    temperature: PosFloat = 0.1
    """NT-Xent temperature."""
    lr: PosFloat = 1e-4
    """Peak learning rate."""
    lr_schedule: LrSchedule = "cosine"
    """``"cosine"``: linear warm-up over ``warmup_frac`` of the steps, then cosine decay to ``lr *
    min_lr_ratio``; ``"onecycle"``: SANE's ``OneCycleLR`` (start at ``lr / 25``, cosine up to
    ``lr`` at 30% of the steps, cosine down to ``lr / 25 / 1e4``; ``min_lr_ratio`` and
    ``warmup_frac`` are not used).
    """
    min_lr_ratio: Fraction = 0.1
    """Final learning rate as a fraction of ``lr`` (``cosine``)."""
    warmup_frac: Fraction = 0.05
    """Fraction of all steps spent warming up (``cosine``)."""
    weight_decay: NonNegFloat = 3e-9
    """AdamW weight decay."""
    decay_2d_only: StrictBool = False
    """Apply ``weight_decay`` to parameters with >= 2 dimensions only (matrices and embeddings; not
    biases, LayerNorm gains), as SANE / nanoGPT do.
    """
    grad_clip: NonNegFloat | None = 1.0
    """Gradient-norm clip (None or 0: no clipping, as in SANE)."""
    precision: Precision = "default"
    """Matmul precision of the forward/backward pass: ``"default"`` runs float32 on the CPU (bf16
    autocast on CUDA, as before); ``"bf16"`` runs bfloat16 autocast on every device (parameters,
    optimizer and losses stay float32). On CPUs with avx512_bf16/AMX bf16 matmuls are several
    times faster; the results differ from float32 by bfloat16 rounding (~3 significant digits).
    """
    drop_last: StrictBool = False
    """Drop the last, partial training batch of an epoch (SANE), so that every contrastive step sees
    ``batch_size`` models.
    """
    epochs: PosInt = 30
    """Training epochs."""
    batch_size: PosInt = 32
    """Models (windows) per step."""
    seed: StrictInt = 0
    """Seed of everything random (data order, windows, augmentations, init)."""
    device: str = "auto"
    """``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda[:i]"``."""
    num_workers: Annotated[StrictInt, Field(ge=0)] = 0
    """DataLoader worker processes (results do not depend on it)."""
    epochs_range: tuple[StrictInt, StrictInt] | None = None
    """Inclusive ``[first, last]`` checkpoint epochs to train on (None: all)."""
    normalize: Normalize = "layer"
    """``"layer"``: per-layer standardisation fitted on the train split (SANE); ``"none"``: raw
    weights (use with ``loss_norm="batch"`` for heterogeneous zoos).
    """
    loss_norm: LossNorm = "none"
    """``"batch"``: standardise target and reconstruction by the target's masked mean/std before the
    MSE (MultiZoo-SANE masked loss normalisation); ``"none"``.
    """
    recon_norm: ReconNorm = "real"
    """What the reconstruction MSE averages over: ``"real"``: the real weights only (padding
    ignored); ``"all"``: every token entry of the valid tokens, padding included (SANE; padding
    targets are zero, so the MSE is the real weights' squared error divided by all entries, and
    the same ``gamma`` weighs the contrastive term more when tokens carry much padding).
    """
    permutation_prob: Fraction = 1.0
    """Probability that a view is a random neuron permutation."""
    view1_canonical: StrictBool = True
    """Keep the first view un-permuted (SANE ``view_1_canon``)."""
    noise_prob: Fraction = 1.0
    """Probability of adding Gaussian noise to a view."""
    noise_sigma: NonNegFloat = 0.1
    """Noise scale."""
    noise_multiplicative: StrictBool = True
    """``w * (1 + sigma*eps)`` instead of ``w + sigma*eps``."""
    erase_prob: Fraction = 0.0
    """Probability of random erasing on a view."""
    erase_scale: tuple[float, float] = (0.02, 0.33)
    """Erased area range (fraction of the window)."""
    erase_ratio: tuple[float, float] = (0.3, 3.3)
    """Erased rectangle aspect ratio range."""
    denoise: StrictBool = False
    """Reconstruct the clean (permuted) window instead of the augmented input (SANE reconstructs its
    augmented input: False).
    """
    halo: Annotated[StrictInt, Field(ge=-1)] = -1
    """Context tokens on each side of a window when embedding/decoding whole sequences (-1:
    ``window_size // 8``).
    """
    sample_mode: KdeMode = "joint"
    """Default KDE mode of :func:`sane.sample`: ``"joint"`` (one KDE over whole latent sequences),
    ``"token"`` (one per token position) or ``"individual"`` (one per latent scalar); SANE's
    sampler defaults to ``individual``.
    """
    sample_bandwidth: PosFloat = 0.05
    """Default KDE bandwidth of :func:`sane.sample` (SANE: 0.2)."""
    sample_anchors: PosInt = 5
    """Default number of anchor models of :func:`sane.sample` (the best train-split models by
    ``val_acc``; SANE anchors on all training models).
    """
    recon_every: Annotated[StrictInt, Field(ge=0)] = 5
    """Every this many epochs (and after the last one) decode ``recon_models`` validation models
    and log their accuracy on the source's validation images relative to the originals'
    (``val_recon_ratio`` in the history; :mod:`sane.reconstruct`); 0: never.
    """
    recon_models: PosInt = 8
    """Validation models of that reconstruction check (the first by model id, each at its last
    checkpoint in ``epochs_range``).
    """
    token_norm: StrictBool = False
    """Standardise every token by the mean/std of its own real entries (after ``normalize``;
    padding stays 0) so tokens of differently scaled architectures share one scale. Our reading
    of MultiZoo-SANE's per-token normalisation (its code standardises the loss with masked batch
    statistics: ``loss_norm="batch"``). Sampling de-normalises decoded tokens with the anchors'
    mean per-token statistics.
    """
    arch_embedding: StrictBool = False
    """Add a learned embedding of the architecture (its key in the training zoo; the id table is
    saved with the checkpoint) to every token in the encoder and the decoder (architecture-aware
    positions for heterogeneous zoos).
    """

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise ZooError(_explain(e)) from None

    @field_validator("epochs_range")
    @classmethod
    def _ordered(cls, v: tuple[int, int] | None) -> tuple[int, int] | None:
        if v is not None and v[0] > v[1]:
            raise ValueError("must be [first, last] with first <= last")
        return v

    @model_validator(mode="after")
    def _heads_divide_width(self) -> SaneConfig:
        if self.d_model % self.n_heads or self.d_model % 2:
            raise ValueError(
                f"d_model ({self.d_model}) must be even and divisible by n_heads "
                f"({self.n_heads})"
            )
        return self

    @property
    def halo_size(self) -> int:
        """Effective halo (context tokens per side) for whole-sequence windows."""
        h = self.window_size // 8 if self.halo < 0 else self.halo
        return max(0, min(h, (self.window_size - 1) // 2))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of primitives (safe for ``torch.load(weights_only=True)`` and YAML)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SaneConfig:
        """Build from a dict (a YAML file's, a checkpoint's); unknown keys are an error, missing
        ones take their defaults, numbers written as strings (YAML 1.1 ``1e-3``) are read."""
        return cls(**data)

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
        return type(self)(**{**self.model_dump(), **changes})

    def resolved_device(self) -> str:
        """The torch device string this config runs on."""
        return str(resolve_device(self.device))


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
