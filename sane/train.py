"""nanoGPT-sized SANE training loop: one checkpoint dict, saved atomically every epoch, resumable.

``train(zoo=..., out=..., config=...)`` fits the per-layer normaliser on the zoo's train split
(streamed), then trains on random token windows with two augmented views per model
(``gamma * NT-Xent + (1 - gamma) * masked MSE``), evaluates the validation loss after every
epoch and writes ``out/ckpt.pt``. Calling it again with the same ``out`` resumes after the last
finished epoch; on CPU the result is bit-identical to an uninterrupted run with the same seed
(all randomness is derived from ``(seed, epoch, sample)``).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from modelzoo.errors import ZooError
from modelzoo.storage import read_manifest
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.storage.manifest import Manifest
from sane.config import SaneConfig
from sane.data import SaneWindows, ZooRows, arch_data, max_positions, mix_seed, token_plans
from sane.loss import sane_loss
from sane.model import Sane
from sane.run import CKPT_FORMAT, CKPT_NAME, load_checkpoint, save_checkpoint
from sane.tokenize import Normalizer

__all__ = ["fit_normalizer", "lr_at", "train"]

#: Config fields that may change between a run and its resume.
RESUMABLE_CHANGES = ("epochs", "num_workers", "device")

Callback = Callable[[str, dict[str, Any]], None]


def lr_at(step: int, total_steps: int, config: SaneConfig) -> float:
    """Learning rate at ``step``: linear warm-up, then cosine decay to ``lr * min_lr_ratio``."""
    warm = max(1, int(config.warmup_frac * total_steps))
    if step < warm:
        return config.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total_steps - warm))
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - low)


def fit_normalizer(rows: ZooRows, manifest: Manifest) -> Normalizer:
    """Per-layer mean/std of every architecture, streamed over ``rows`` (the train split)."""
    layouts = {k: e.layout for k, e in manifest.architectures.items()}
    stream = ((rows.meta[i]["architecture"], w) for i, w in rows.iter_weights())
    return Normalizer.fit(stream, layouts)


def _architectures_payload(manifest: Manifest) -> dict[str, dict[str, Any]]:
    return {
        k: {
            "name": e.name,
            "kwargs": json.loads(json.dumps(e.kwargs)),  # plain JSON types only
            "layout": [s.model_dump(mode="json") for s in e.layout],
        }
        for k, e in manifest.architectures.items()
    }


def _check_resume(ckpt: dict[str, Any], config: SaneConfig, manifest: Manifest, out: Path) -> None:
    old = dict(ckpt["config"])
    new = config.to_dict()
    diff = [k for k in new if k not in RESUMABLE_CHANGES and old.get(k) != new[k]]
    if diff:
        shown = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in diff[:5])
        raise ZooError(
            f"{out / CKPT_NAME} was trained with a different config ({shown}); resume with the "
            "same config, or choose a new --out"
        )
    if ckpt["zoo"]["content_hash"] != manifest.content_hash:
        raise ZooError(
            f"{out / CKPT_NAME} was trained on another zoo ({ckpt['zoo']['name']}, "
            f"{ckpt['zoo']['content_hash'][:19]}...); use the same --zoo or a new --out"
        )


def _autocast(device: str) -> contextlib.AbstractContextManager[Any]:
    if device.startswith("cuda"):
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _forward(model: Sane, batch: dict[str, torch.Tensor], config: SaneConfig, device: str):
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    with _autocast(device):
        _, y1, p1 = model(b["x1"], b["pos"], b["valid"])
        _, y2, p2 = model(b["x2"], b["pos"], b["valid"])
        token_mask = b["mask"] & b["valid"].unsqueeze(-1)
        return sane_loss(
            proj_i=p1,
            proj_j=p2,
            recon=torch.cat([y1, y2]),
            target=torch.cat([b["t1"], b["t2"]]),
            mask=torch.cat([token_mask, token_mask]),
            gamma=config.gamma,
            temperature=config.temperature,
            loss_norm=config.loss_norm,
        )


def _loader(ds: SaneWindows, order: list[int], config: SaneConfig) -> torch.utils.data.DataLoader:
    batches = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    return torch.utils.data.DataLoader(
        ds, batch_sampler=batches, num_workers=config.num_workers,
        persistent_workers=False, pin_memory=False,
    )


@torch.no_grad()
def _evaluate(model: Sane, ds: SaneWindows | None, config: SaneConfig, device: str) -> dict:
    if ds is None or len(ds) == 0:
        return {"loss": float("nan"), "recon": float("nan"), "contrast": float("nan")}
    model.eval()
    ds.set_epoch(-1)  # the same windows and views every epoch: comparable numbers
    tot = {"loss": 0.0, "recon": 0.0, "contrast": 0.0}
    n = 0
    for batch in _loader(ds, list(range(len(ds))), config):
        out = _forward(model, batch, config, device)
        k = batch["x1"].shape[0]
        for key in tot:
            tot[key] += float(out[key]) * k
        n += k
    return {k: v / n for k, v in tot.items()}


def train(
    *,
    zoo: str | Path,
    out: str | Path,
    config: SaneConfig | None = None,
    progress: bool = True,
    callback: Callback | None = None,
) -> Path:
    """Train (or resume) SANE on a zoo; return the path of ``out/ckpt.pt``.

    Args:
        zoo: zoo directory (homogeneous or heterogeneous).
        out: run directory; an existing ``ckpt.pt`` there is resumed.
        config: hyperparameters (default :class:`SaneConfig`).
        progress: show a tqdm progress bar.
        callback: ``callback(event, info)`` with event ``"step"`` (info: epoch, step, loss)
            after each optimizer step and ``"epoch"`` (info: the epoch's history entry) after
            each saved checkpoint.

    Raises:
        ZooError: no training rows, or ``out`` holds a run with another config/zoo.
    """
    config = config or SaneConfig()
    out = ensure_dir(Path(out))
    path = out / CKPT_NAME
    manifest = read_manifest(zoo)
    device = config.resolved_device()

    train_rows = ZooRows(zoo, "train", epochs_range=config.epochs_range)
    if len(train_rows) == 0:
        raise ZooError(
            f"zoo {zoo} has no usable training rows (status ok, epochs in "
            f"{config.epochs_range or 'any'}): check epochs_range or build a bigger zoo"
        )
    ckpt = load_checkpoint(path) if path.is_file() else None
    if ckpt is not None:
        _check_resume(ckpt, config, manifest, out)
        normalizer = Normalizer.from_state_dict(ckpt["normalizer"]) if ckpt["normalizer"] else None
        bounds = tuple(ckpt["max_positions"])
        start_epoch = int(ckpt["epoch"]) + 1
        history = list(ckpt["history"])
    else:
        normalizer = fit_normalizer(train_rows, manifest) if config.normalize == "layer" else None
        bounds = max_positions(token_plans(manifest, config.token_size))
        start_epoch = 0
        history = []

    torch.manual_seed(config.seed)
    model = Sane(config, bounds).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
    archs = arch_data(manifest, config, normalizer)
    train_ds = SaneWindows(train_rows, archs, config, seed=config.seed)
    # validate on the architectures SANE trains on (the normaliser knows only those)
    val_rows = ZooRows(zoo, "validation", epochs_range=config.epochs_range,
                       architectures=train_rows.architectures())
    val_ds = None
    if len(val_rows):
        val_ds = SaneWindows(val_rows, archs, config, seed=mix_seed(config.seed, 1))
    steps_per_epoch = math.ceil(len(train_ds) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs

    for epoch in range(start_epoch, config.epochs):
        train_ds.set_epoch(epoch)
        torch.manual_seed(mix_seed(config.seed, epoch, 2))  # dropout etc.
        g = torch.Generator().manual_seed(mix_seed(config.seed, epoch, 3))
        order = torch.randperm(len(train_ds), generator=g).tolist()
        model.train()
        sums = {"loss": 0.0, "recon": 0.0, "contrast": 0.0}
        seen = 0
        bar = tqdm(
            _loader(train_ds, order, config), total=steps_per_epoch, disable=not progress,
            desc=f"sane epoch {epoch + 1}/{config.epochs}", leave=False,
        )
        for step, batch in enumerate(bar):
            gstep = epoch * steps_per_epoch + step
            lr = lr_at(gstep, total_steps, config)
            for group in opt.param_groups:
                group["lr"] = lr
            losses = _forward(model, batch, config, device)
            losses["loss"].backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
            k = batch["x1"].shape[0]
            for key in sums:
                sums[key] += float(losses[key].detach()) * k
            seen += k
            bar.set_postfix(loss=f"{sums['loss'] / seen:.4f}", lr=f"{lr:.2e}")
            if callback is not None:
                info = {"epoch": epoch, "step": step, "loss": float(losses["loss"].detach())}
                callback("step", info)
        bar.close()
        val = _evaluate(model, val_ds, config, device)
        entry = {
            "epoch": epoch,
            **{f"train_{k}": v / max(seen, 1) for k, v in sums.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": lr_at((epoch + 1) * steps_per_epoch - 1, total_steps, config),
        }
        history.append(entry)
        ckpt_out = {
            "format": CKPT_FORMAT,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "config": config.to_dict(),
            "normalizer": normalizer.state_dict() if normalizer is not None else {},
            "max_positions": list(bounds),
            "architectures": _architectures_payload(manifest),
            "zoo": {"name": manifest.name, "content_hash": manifest.content_hash,
                    "path": str(Path(zoo).resolve())},
            "epoch": epoch,
            "step": (epoch + 1) * steps_per_epoch,
            "history": history,
            "rng": {"torch": torch.get_rng_state()},
        }
        save_checkpoint(path, ckpt_out)
        atomic_write_bytes(out / "history.json", json.dumps(history, indent=1).encode())
        if progress:
            tqdm.write(
                f"sane epoch {epoch + 1}/{config.epochs}: train loss {entry['train_loss']:.4f} "
                f"val loss {entry['val_loss']:.4f} (recon {entry['val_recon']:.4f})"
            )
        if callback is not None:
            callback("epoch", entry)
    return path
