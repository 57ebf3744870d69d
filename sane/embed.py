"""Per-model SANE embeddings over whole token sequences, written as an Arrow dataset."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import datasets
import torch
from tqdm.auto import tqdm

from modelzoo.errors import ZooError
from modelzoo.storage import open_manifest
from modelzoo.storage.atomic import ensure_dir, replace_dir, storage_error
from modelzoo.storage.schema import SPLITS
from sane.data import ZooRows, gather_window
from sane.run import SaneRun, encode_sequences, load_run
from sane.tokenize import TokenPlan, token_standardize

__all__ = ["embed", "layer_tokens", "sequence_tokens"]

#: Row columns copied next to each embedding.
KEEP_COLUMNS = ("model_id", "architecture", "source", "epoch", "split", "val_acc", "test_acc")


def layer_tokens(
    run: SaneRun, arch: str, flat: torch.Tensor, layout: Sequence[Any]
) -> tuple[torch.Tensor, TokenPlan]:
    """Full token sequence ``[T, S]`` of one flat weight vector, per-layer normalised as the
    run was trained (before any per-token normalisation)."""
    plan = run.plan(layout)
    mean = std = None
    if run.normalizer is not None:
        mean, std = run.normalizer.vectors(arch, layout)
    return gather_window(flat, plan.index, plan.mask, mean, std), plan


def sequence_tokens(
    run: SaneRun, arch: str, flat: torch.Tensor, layout: Sequence[Any]
) -> tuple[torch.Tensor, TokenPlan]:
    """Normalised full token sequence ``[T, S]`` of one flat weight vector: the model's input
    (:func:`layer_tokens`, then per token standardised for runs with ``token_norm``)."""
    tokens, plan = layer_tokens(run, arch, flat, layout)
    if run.config.token_norm:
        tokens = token_standardize(tokens, plan.mask)[0]
    return tokens, plan


def _features(latent_dim: int) -> datasets.Features:
    return datasets.Features(
        {
            "model_id": datasets.Value("string"),
            "architecture": datasets.Value("string"),
            "source": datasets.Value("string"),
            "epoch": datasets.Value("int32"),
            "split": datasets.Value("string"),
            "val_acc": datasets.Value("float32"),
            "test_acc": datasets.Value("float32"),
            "embedding": datasets.Sequence(datasets.Value("float32"), length=latent_dim),
        }
    )


def _check_out(out: Path) -> None:
    """Refuse an ``out`` that holds something other than an embeddings dataset."""
    if out.exists() and (
        not out.is_dir() or (not (out / "dataset_info.json").is_file() and any(out.iterdir()))
    ):
        raise ZooError(
            f"{out} exists and is not an embeddings dataset: choose an empty or new --out"
        )


def embed(
    *,
    run: str | Path,
    zoo: str | Path,
    out: str | Path,
    split: str | None = None,
    epochs_range: tuple[int, int] | None = None,
    batch_size: int = 64,
    device: str | None = None,
    progress: bool = True,
    verify: bool | None = None,
) -> datasets.Dataset:
    """Embed every model checkpoint of a zoo with a trained SANE.

    The embedding of a checkpoint is the mean over all of its latent tokens; sequences longer
    than the window are encoded window by window with halo context (SANE).

    Args:
        run: SANE run directory (or its ``ckpt.pt``).
        zoo: zoo directory (may differ from the training zoo if its architectures are known).
        out: output directory for the Arrow dataset (``datasets.load_from_disk`` reads it).
        split: one split, or None for all.
        epochs_range: inclusive checkpoint epochs to embed (None: all).
        batch_size: windows per forward pass.
        device: torch device (default: the run's).
        progress: show a progress bar.
        verify: check every shard of ``zoo`` against its ``zoo.json`` first (None: unless
            switched off with ``modelzoo.storage.verification(False)``).

    Returns:
        The dataset (memory-mapped from ``out``), one row per checkpoint, keyed by
        ``model_id``, ``epoch`` and ``split``, with an ``embedding`` column.

    Raises:
        ShardChecksumError: a shard of ``zoo`` is missing or corrupt (nothing is written).
    """
    r = load_run(run, device=device)
    manifest = open_manifest(zoo, verify=verify)  # every split, before any work
    splits = [split] if split else list(SPLITS)
    cols: dict[str, list[Any]] = {k: [] for k in (*KEEP_COLUMNS, "embedding")}
    chunk = max(1, batch_size // 2)
    for s in splits:
        rows = ZooRows(zoo, s, epochs_range=epochs_range, verify=False)  # checked above
        bar = tqdm(total=len(rows), disable=not progress, desc=f"embed {s}", leave=False)
        for lo in range(0, len(rows), chunk):
            ids = range(lo, min(lo + chunk, len(rows)))
            seqs, plans, arch_ids = [], [], []
            for i in ids:
                arch = rows.meta[i]["architecture"]
                layout = manifest.architectures[arch].layout
                tok, plan = sequence_tokens(r, arch, rows.weights(i), layout)
                seqs.append(tok)
                plans.append(plan)
                arch_ids.append(r.arch_id(arch, layout))
            latents = encode_sequences(r, seqs, plans, batch_size=batch_size, archs=arch_ids)
            for i, z in zip(ids, latents, strict=True):
                meta = rows.meta[i]
                for k in KEEP_COLUMNS:
                    cols[k].append(meta.get(k))
                cols["embedding"].append(z.mean(0).tolist())
            bar.update(len(ids))
        bar.close()
    out = Path(out)
    _check_out(out)
    ensure_dir(out.parent)
    for stale in out.parent.glob(f".{out.name}.tmp-*"):  # left by a killed run
        shutil.rmtree(stale, ignore_errors=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    ds = datasets.Dataset.from_dict(cols, features=_features(r.config.latent_dim))
    bars_were_off = datasets.is_progress_bar_enabled() is False
    if not progress:
        datasets.disable_progress_bars()
    try:
        try:
            ds.save_to_disk(str(tmp))
        except OSError as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise storage_error(e, out) from None
        replace_dir(tmp, out)  # an old embeddings dataset stays whole until the swap
    finally:
        if not progress and not bars_were_off:
            datasets.enable_progress_bars()
    return datasets.load_from_disk(str(out))
