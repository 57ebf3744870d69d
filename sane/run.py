"""A trained SANE run: its checkpoint dict, and whole-sequence encoding/decoding by windows."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from modelzoo.device import autocast, resolve_device
from modelzoo.errors import ZooError
from modelzoo.storage import LayerSpec
from modelzoo.storage.atomic import atomic_write_with
from modelzoo.storage.manifest import Manifest
from sane.config import SaneConfig
from sane.model import Sane
from sane.tokenize import Normalizer, TokenPlan, plan_tokens

__all__ = [
    "CKPT_FORMAT",
    "SaneRun",
    "decode_sequences",
    "encode_sequences",
    "load_checkpoint",
    "load_run",
    "save_checkpoint",
    "sequence_windows",
]

CKPT_NAME = "ckpt.pt"
CKPT_FORMAT = 1


def ckpt_path(run: str | Path) -> Path:
    """``run/ckpt.pt`` for a run directory, or ``run`` itself if it is a file."""
    p = Path(run)
    return p if p.is_file() else p / CKPT_NAME


def save_checkpoint(path: Path, ckpt: dict[str, Any]) -> None:
    """``torch.save`` to a temp file, fsync, rename: a crash never leaves a partial file."""
    atomic_write_with(path, lambda f: torch.save(ckpt, f))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a SANE checkpoint dict with ``weights_only=True`` (no pickle code execution)."""
    p = ckpt_path(path)
    if not p.is_file():
        raise ZooError(f"no SANE checkpoint at {p}: run `sane train --out {Path(path)}` first")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise ZooError(f"cannot read SANE checkpoint {p}: {e}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise ZooError(f"{p} is not a SANE checkpoint of format {CKPT_FORMAT}")
    return ckpt


@dataclass
class SaneRun:
    """A loaded SANE model with everything needed to use it.

    Attributes:
        model: the autoencoder (eval mode).
        config: its configuration.
        normalizer: per-layer normaliser (None if trained with ``normalize='none'``).
        architectures: ``{key: {"name", "kwargs", "layout"}}`` of the zoo it was trained on.
        epoch: last finished epoch.
        device: torch device string.
        path: the checkpoint file.
        zoo: the training zoo: ``{"name", "content_hash", "path"}``.
        arch_ids: architecture keys by embedding id (``config.arch_embedding``; else empty).
    """

    model: Sane
    config: SaneConfig
    normalizer: Normalizer | None
    architectures: dict[str, dict[str, Any]]
    epoch: int
    device: str
    path: Path
    zoo: dict[str, Any] = field(default_factory=dict)
    arch_ids: list[str] = field(default_factory=list)

    def layout(self, arch: str) -> list[LayerSpec]:
        """Layout of an architecture key the run knows."""
        if arch not in self.architectures:
            raise ZooError(
                f"this SANE run was not trained on architecture {arch!r}; it knows "
                f"{', '.join(sorted(self.architectures))}"
            )
        return [LayerSpec(**s) for s in self.architectures[arch]["layout"]]

    def arch_id(self, key: str, layout: Sequence[LayerSpec] | None = None) -> int:
        """Embedding id of an architecture key (0 for runs without ``arch_embedding``).

        A key the run was not trained on falls back to the training architecture with the
        same layer layout (e.g. the same network under another key in another zoo).

        Raises:
            ZooError: the run has ``arch_embedding`` and knows neither the key nor the layout.
        """
        if not self.config.arch_embedding:
            return 0
        if key in self.arch_ids:
            return self.arch_ids.index(key)
        if layout is not None:
            dumped = [s.model_dump(mode="json") for s in layout]
            same = [i for i, k in enumerate(self.arch_ids)
                    if self.architectures.get(k, {}).get("layout") == dumped]
            if same:
                return same[0]
        raise ZooError(
            f"this SANE run embeds architectures and was trained on "
            f"{', '.join(self.arch_ids)}, not on {key!r} (nor on its layer layout): use a run "
            "trained on a zoo with this architecture, or one trained without arch_embedding"
        )

    def plan(self, layout: Sequence[LayerSpec]) -> TokenPlan:
        """Token plan of a layout, checked against the model's position bounds."""
        plan = plan_tokens(layout, self.config.token_size)
        bounds = self.model.pe.max_positions
        if any(p > b for p, b in zip(plan.max_positions, bounds, strict=True)):
            raise ZooError(
                f"this architecture needs positions up to {plan.max_positions} but the SANE model "
                f"supports {bounds}: train SANE on a zoo that includes it"
            )
        return plan

    def check_zoo(self, manifest: Manifest) -> None:
        """Raise a ZooError unless this run can tokenize every architecture of a zoo.

        An architecture works if its token sequence fits the model's position bounds and,
        for runs with per-layer normalisation, the normaliser knows it (same key and layer
        count as in the training zoo).
        """
        for key, entry in sorted(manifest.architectures.items()):
            where = f"zoo {manifest.name} architecture {key!r} ({entry.name})"
            try:
                self.plan(entry.layout)
                self.arch_id(key, entry.layout)
                if self.normalizer is not None:
                    self.normalizer.vectors(key, entry.layout)
            except ZooError as e:
                raise ZooError(
                    f"SANE run {self.path} cannot tokenize {where}: {e}. It was trained on "
                    f"architectures {', '.join(sorted(self.architectures))}: use a run trained "
                    "on a zoo with this architecture, or train one without --run"
                ) from None


def load_run(run: str | Path, *, device: str | None = None) -> SaneRun:
    """Load a trained SANE run (directory with ``ckpt.pt``, or the file).

    Args:
        run: run directory or checkpoint file.
        device: override the device (default: the config's, resolved).
    """
    ckpt = load_checkpoint(run)
    config = SaneConfig.from_dict(ckpt["config"])
    dev = str(resolve_device(device)) if device else config.resolved_device()
    arch_ids = [str(k) for k in ckpt.get("arch_ids") or []]
    model = Sane(config, tuple(ckpt["max_positions"]), len(arch_ids))
    model.load_state_dict(ckpt["model"])
    model.to(dev).eval()
    norm = Normalizer.from_state_dict(ckpt["normalizer"]) if ckpt.get("normalizer") else None
    return SaneRun(model, config, norm, dict(ckpt["architectures"]), int(ckpt["epoch"]), dev,
                   ckpt_path(run), dict(ckpt.get("zoo") or {}), arch_ids)


def sequence_windows(n_tokens: int, window: int, halo: int) -> list[tuple[int, int, int]]:
    """Cover ``[0, n_tokens)`` by windows with context: ``(start, keep_from, keep_to)``.

    Each window spans ``[start, start + window)`` (clipped into the sequence); the tokens
    ``[keep_from, keep_to)`` are taken from it. Kept ranges tile the sequence without overlap,
    and every kept token has at least ``halo`` tokens of context on each side unless it is near
    a sequence end (SANE's haloing).
    """
    if n_tokens <= window:
        return [(0, 0, n_tokens)]
    core = window - 2 * halo
    out = []
    a = 0
    while a < n_tokens:
        b = min(a + core, n_tokens)
        start = min(max(a - halo, 0), n_tokens - window)
        out.append((start, a, b))
        a = b
    return out


def _batched(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def encode_sequences(
    run: SaneRun,
    tokens: Sequence[torch.Tensor],
    plans: Sequence[TokenPlan],
    *,
    batch_size: int = 64,
    archs: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Latent tokens ``[T_i, latent_dim]`` for whole token sequences ``[T_i, S]``.

    Long sequences are encoded window by window with halo context; windows of all sequences
    are batched together. ``archs``: each sequence's architecture id (:meth:`SaneRun.arch_id`;
    needed by runs with ``arch_embedding``).
    """
    return _apply_windows(run, tokens, plans, batch_size=batch_size, decode=False, archs=archs)


def decode_sequences(
    run: SaneRun,
    latents: Sequence[torch.Tensor],
    plans: Sequence[TokenPlan],
    *,
    batch_size: int = 64,
    archs: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    """Reconstructed tokens ``[T_i, S]`` from whole latent sequences ``[T_i, latent_dim]``
    (``archs`` as in :func:`encode_sequences`)."""
    return _apply_windows(run, latents, plans, batch_size=batch_size, decode=True, archs=archs)


@torch.no_grad()
def _apply_windows(
    run: SaneRun,
    seqs: Sequence[torch.Tensor],
    plans: Sequence[TokenPlan],
    *,
    batch_size: int,
    decode: bool,
    archs: Sequence[int] | None = None,
) -> list[torch.Tensor]:
    cfg = run.config
    if archs is None:
        if cfg.arch_embedding:
            raise ZooError("this SANE run has arch_embedding: pass archs= (SaneRun.arch_id)")
        archs = [0] * len(seqs)
    elif len(archs) != len(seqs):
        raise ZooError(f"{len(archs)} architecture ids for {len(seqs)} sequences")
    w, halo = cfg.window_size, cfg.halo_size
    out_dim = cfg.token_size if decode else cfg.latent_dim
    outs = [torch.zeros(s.shape[0], out_dim) for s in seqs]
    jobs = []
    for si, (seq, plan) in enumerate(zip(seqs, plans, strict=True)):
        if seq.shape[0] != plan.num_tokens:
            raise ZooError(f"sequence {si} has {seq.shape[0]} tokens, its plan {plan.num_tokens}")
        for start, a, b in sequence_windows(seq.shape[0], w, halo):
            jobs.append((si, start, a, b))
    dev = run.device
    for batch in _batched(jobs, batch_size):
        xs, ps, vs = [], [], []
        for si, start, _, _ in batch:
            seq, plan = seqs[si], plans[si]
            x = seq[start : start + w]
            p = plan.positions[start : start + w]
            v = torch.ones(w, dtype=torch.bool)
            if x.shape[0] < w:
                pad = w - x.shape[0]
                x = torch.cat([x, x.new_zeros(pad, x.shape[1])])
                p = torch.cat([p, p.new_zeros(pad, 3)])
                v[w - pad :] = False
            xs.append(x)
            ps.append(p)
            vs.append(v)
        x = torch.stack(xs).to(dev)
        p = torch.stack(ps).to(dev)
        v = torch.stack(vs).to(dev)
        a = torch.tensor([archs[si] for si, *_ in batch], dtype=torch.int64, device=dev)
        a = a if cfg.arch_embedding else None
        with autocast(dev):
            y = run.model.decode(x, p, v, a) if decode else run.model.encode(x, p, v, a)
        y = y.float().cpu()
        for k, (si, start, a, b) in enumerate(batch):
            outs[si][a:b] = y[k, a - start : b - start]
    return outs
