"""nanoGPT-sized SANE training loop: one checkpoint dict, saved atomically every epoch, resumable.

``train(zoo=..., out=..., config=...)`` fits the per-layer normaliser on the zoo's train split
(streamed), then trains on random token windows with two augmented views per model
(``gamma * NT-Xent + (1 - gamma) * masked MSE``), evaluates the validation loss after every
epoch and writes ``out/ckpt.pt``. Calling it again with the same ``out`` resumes after the last
finished epoch; on CPU the result is bit-identical to an uninterrupted run with the same seed
(all randomness is derived from ``(seed, epoch, sample)``).

Threads: the digits of a float32 run depend on the intra-op thread count (reductions and
matrix products are split differently), so the default is a fixed count,
:data:`DEFAULT_THREADS`, not "the idle CPUs": the same command gives the same numbers on
machines of the same CPU kind, loaded or not. The count is recorded in the checkpoint and a
resume without ``threads`` repeats it. Other counts agree within the tolerance
``tests/test_sane_train.py`` checks (:data:`THREADS_TOLERANCE`), not bit for bit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from modelzoo.device import autocast
from modelzoo.errors import ZooError
from modelzoo.storage import open_manifest
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.storage.manifest import Manifest
from sane.config import SaneConfig
from sane.data import SaneWindows, ZooRows, arch_data, max_positions, mix_seed, token_plans
from sane.loss import recon_count, sane_loss
from sane.model import Sane
from sane.run import CKPT_FORMAT, CKPT_NAME, load_checkpoint, save_checkpoint
from sane.tokenize import Normalizer

__all__ = ["fit_normalizer", "lr_at", "param_groups", "train"]

#: Intra-op threads of a run unless ``threads`` says otherwise (see the module doc).
DEFAULT_THREADS = 1
#: How far runs with different thread counts may differ: relative difference of each
#: epoch's train and validation losses (tested on a tiny run).
THREADS_TOLERANCE = 1e-5

#: Config fields that may change between a run and its resume.
RESUMABLE_CHANGES = ("epochs", "num_workers", "device", "sample_mode", "sample_bandwidth",
                     "sample_anchors", "recon_every", "recon_models")

Callback = Callable[[str, dict[str, Any]], None]


#: SANE's OneCycleLR settings (torch defaults): start at lr / 25, peak at 30% of the steps,
#: end at lr / 25 / 1e4, cosine annealing in both phases.
ONECYCLE_PCT, ONECYCLE_DIV, ONECYCLE_FINAL_DIV = 0.3, 25.0, 1e4


def _cos(start: float, end: float, frac: float) -> float:
    return end + (start - end) / 2.0 * (1.0 + math.cos(math.pi * frac))


def lr_at(step: int, total_steps: int, config: SaneConfig) -> float:
    """Learning rate at ``step`` (0-based) of ``total_steps``.

    ``lr_schedule="cosine"``: linear warm-up, then cosine decay to ``lr * min_lr_ratio``.
    ``lr_schedule="onecycle"``: ``torch.optim.lr_scheduler.OneCycleLR`` as SANE configures it
    (``pct_start=0.3``, ``div_factor=25``, ``final_div_factor=1e4``, cosine).
    """
    if config.lr_schedule == "onecycle":
        start = config.lr / ONECYCLE_DIV
        end = start / ONECYCLE_FINAL_DIV
        peak = float(ONECYCLE_PCT * total_steps) - 1.0  # OneCycleLR's phase boundary
        if step <= peak:
            return _cos(start, config.lr, step / peak if peak > 0 else 1.0)
        last = max(total_steps - 1.0, peak + 1.0)
        return _cos(config.lr, end, min(1.0, (step - peak) / (last - peak)))
    warm = max(1, int(config.warmup_frac * total_steps))
    if step < warm:
        return config.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total_steps - warm))
    low = config.lr * config.min_lr_ratio
    return low + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.lr - low)


def param_groups(model: torch.nn.Module, config: SaneConfig) -> list[dict[str, Any]]:
    """AdamW parameter groups: all parameters decay, or with ``decay_2d_only`` only those with
    >= 2 dimensions (weight matrices, embeddings) and not biases or LayerNorm gains (SANE)."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not config.decay_2d_only:
        return [{"params": params, "weight_decay": config.weight_decay}]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


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
    # fields added since the run was saved read as their defaults (which is what it ran with)
    old = {**SaneConfig().to_dict(), **dict(ckpt["config"])}
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


@dataclass
class _Dist:
    """Process-group facts; ``world == 1`` outside ``torchrun``."""

    rank: int = 0
    world: int = 1
    owned: bool = False  # this call initialised the process group (and tears it down)

    @property
    def main(self) -> bool:
        return self.rank == 0


def _dist_setup(device: str) -> tuple[_Dist, str]:
    """Join the ``torchrun`` process group when ``WORLD_SIZE > 1`` (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist(), device
    import torch.distributed as dist

    owned = False
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
        owned = True
    rank = dist.get_rank()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    return _Dist(rank=rank, world=dist.get_world_size(), owned=owned), device


def _all_mean(values: dict[str, float], weight: int, d: _Dist) -> tuple[dict[str, float], int]:
    """Sum ``values * weight`` and ``weight`` over ranks (for logging the global loss)."""
    if d.world == 1:
        return values, weight
    import torch.distributed as dist

    t = torch.tensor([*(v for v in values.values()), float(weight)], dtype=torch.float64)
    dist.all_reduce(t)
    return dict(zip(values, t[:-1].tolist())), int(t[-1])


def _autocast(device: str, config: SaneConfig) -> contextlib.AbstractContextManager[Any]:
    """The forward pass's autocast: ``config.precision == "bf16"`` on any device, else the
    device default (bf16 on CUDA, none on the CPU)."""
    if config.precision == "bf16":
        return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return autocast(device)


def _forward(model: torch.nn.Module, batch: dict[str, torch.Tensor], config: SaneConfig,
             device: str, d: _Dist | None = None):
    """Both augmented views in one forward pass (one call per step, as DDP expects).

    Under DDP the reconstruction term is rescaled by this rank's share of the global count of
    real (unpadded) weights, so the averaged gradient equals the single-process masked mean.
    The contrastive term uses the rank's own negatives (as in SANE's multi-GPU training).
    """
    b = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    n = b["x1"].shape[0]
    with _autocast(device, config):
        arch = torch.cat([b["arch"], b["arch"]]) if "arch" in b else None
        _, y, p = model(
            torch.cat([b["x1"], b["x2"]]), torch.cat([b["pos"], b["pos"]]),
            torch.cat([b["valid"], b["valid"]]), arch,
        )  # fmt: skip
        token_mask = b["mask"] & b["valid"].unsqueeze(-1)
        mask = torch.cat([token_mask, token_mask])
        valid = torch.cat([b["valid"], b["valid"]])
        out = sane_loss(
            proj_i=p[:n],
            proj_j=p[n:],
            recon=y,
            target=torch.cat([b["t1"], b["t2"]]),
            mask=mask,
            gamma=config.gamma,
            temperature=config.temperature,
            loss_norm=config.loss_norm,
            recon_norm=config.recon_norm,
            valid=valid,
        )
    if d is not None and d.world > 1 and model.training:
        import torch.distributed as dist

        n_local = recon_count(mask, over=config.recon_norm, valid=valid)
        n_global = n_local.clone()
        dist.all_reduce(n_global)
        scale = float(n_local * d.world / n_global.clamp(min=1))
        out["loss"] = config.gamma * out["contrast"] + (1.0 - config.gamma) * out["recon"] * scale
    return out


def _loader(
    ds: SaneWindows, order: list[int], config: SaneConfig, batch_size: int | None = None,
    drop_last: bool = False,
) -> torch.utils.data.DataLoader:
    bs = batch_size or config.batch_size
    batches = [order[i : i + bs] for i in range(0, len(order), bs)]
    if drop_last and batches and len(batches[-1]) < bs:
        batches.pop()
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


def _warn_lossy_tokens(manifest: Manifest, config: SaneConfig) -> None:
    """Warn when some token holds more real weights than ``d_model``: the per-token input
    projection (``token_size -> d_model``, before any attention) then has a null space in
    which those weights are lost for good, and decoded networks lose accuracy (digits CNN-s,
    token 201 / d_model 128: the best such projection keeps ~78% of the accuracy)."""
    plans = token_plans(manifest, config.token_size)
    real = max((int(p.mask.sum(1).max()) for p in plans.values() if p.num_tokens), default=0)
    if real > config.d_model:
        warnings.warn(
            f"tokens hold up to {real} weights but d_model is {config.d_model}: the input "
            f"projection cannot keep them all and reconstructions lose function; use "
            f"token_size <= d_model (e.g. --token-size {config.d_model // 2} with a window "
            "covering the model) or a wider d_model", UserWarning, stacklevel=3)


def _recon_due(epoch: int, config: SaneConfig) -> bool:
    """Whether epoch ``epoch`` (0-based) ends with the validation reconstruction check."""
    every = config.recon_every
    return every > 0 and ((epoch + 1) % every == 0 or epoch + 1 == config.epochs)


def _recon_check(model: Sane, config: SaneConfig, normalizer: Normalizer | None,
                 manifest: Manifest, zoo: str | Path, device: str, epoch: int, path: Path,
                 arch_ids: list[str]) -> dict[str, float]:
    """Decoded / original accuracy of a few validation models (:mod:`sane.reconstruct`)."""
    from sane.reconstruct import validation_reconstruction
    from sane.run import SaneRun

    model.eval()
    run = SaneRun(model, config, normalizer, _architectures_payload(manifest), epoch, device,
                  path, {"name": manifest.name}, list(arch_ids))
    return validation_reconstruction(run, zoo, models=config.recon_models,
                                     epochs_range=config.epochs_range)


def train(
    *,
    zoo: str | Path,
    out: str | Path,
    config: SaneConfig | None = None,
    progress: bool = True,
    callback: Callback | None = None,
    threads: int | None = None,
    verify: bool | None = None,
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
        threads: intra-op threads (default: the count recorded in a run being resumed, else
            :data:`DEFAULT_THREADS`); recorded in the checkpoint.
        verify: check every shard of ``zoo`` against its ``zoo.json`` first, before
            ``out`` is touched (None: unless switched off with
            ``modelzoo.storage.verification(False)``).

    Raises:
        ZooError: no training rows, or ``out`` holds a run with another config/zoo.
        ShardChecksumError: a shard of ``zoo`` is missing or corrupt (nothing is written).
    """
    from modelzoo.threads import limit_threads

    config = config or SaneConfig()
    manifest = open_manifest(zoo, verify=verify)  # the run records this zoo: check its data
    out = ensure_dir(Path(out))
    path = out / CKPT_NAME
    device = config.resolved_device()
    if threads is None:
        threads = DEFAULT_THREADS
        if path.is_file():
            threads = int(load_checkpoint(path).get("threads") or DEFAULT_THREADS)
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    dist_info, device = _dist_setup(device)
    try:
        with limit_threads(threads):
            return _train(zoo, out, path, manifest, config, device, dist_info, progress,
                          callback)
    finally:
        if dist_info.owned:
            import torch.distributed as dist

            dist.destroy_process_group()


def _train(
    zoo: str | Path,
    out: Path,
    path: Path,
    manifest: Manifest,
    config: SaneConfig,
    device: str,
    d: _Dist,
    progress: bool,
    callback: Callback | None,
) -> Path:

    train_rows = ZooRows(zoo, "train", epochs_range=config.epochs_range,
                         verify=False)  # train() checked (or was told to skip) every shard
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
        arch_ids = list(ckpt.get("arch_ids") or [])
        start_epoch = int(ckpt["epoch"]) + 1
        history = list(ckpt["history"])
    else:
        normalizer = fit_normalizer(train_rows, manifest) if config.normalize == "layer" else None
        bounds = max_positions(token_plans(manifest, config.token_size))
        arch_ids = sorted(manifest.architectures) if config.arch_embedding else []
        start_epoch = 0
        history = []

    _warn_lossy_tokens(manifest, config)
    torch.manual_seed(config.seed)
    model = Sane(config, bounds, len(arch_ids)).to(device)
    net: torch.nn.Module = model
    if d.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        ids = [torch.device(device).index] if device.startswith("cuda") else None
        net = DistributedDataParallel(model, device_ids=ids)
    opt = torch.optim.AdamW(param_groups(model, config), lr=config.lr,
                            weight_decay=config.weight_decay)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
    archs = arch_data(manifest, config, normalizer, arch_ids)
    train_ds = SaneWindows(train_rows, archs, config, seed=config.seed)
    # validate on the architectures SANE trains on (the normaliser knows only those)
    val_rows = ZooRows(zoo, "validation", epochs_range=config.epochs_range, verify=False,
                       architectures=train_rows.architectures())
    val_ds = None
    if len(val_rows):
        val_ds = SaneWindows(val_rows, archs, config, seed=mix_seed(config.seed, 1))
    # under torchrun each rank takes every world-th window of the epoch's order, in batches of
    # batch_size // world: the global batch stays config.batch_size
    local_bs = max(1, config.batch_size // d.world)
    per_rank = math.ceil(len(train_ds) / d.world)
    steps_per_epoch = per_rank // local_bs if config.drop_last else math.ceil(per_rank / local_bs)
    if steps_per_epoch == 0:
        raise ZooError(
            f"drop_last with batch_size {config.batch_size} leaves no training step: the zoo "
            f"has {len(train_ds)} training rows; lower --batch-size or set drop_last false"
        )
    total_steps = steps_per_epoch * config.epochs

    for epoch in range(start_epoch, config.epochs):
        train_ds.set_epoch(epoch)
        torch.manual_seed(mix_seed(config.seed, epoch, 2))  # dropout etc.
        g = torch.Generator().manual_seed(mix_seed(config.seed, epoch, 3))
        order = torch.randperm(len(train_ds), generator=g).tolist()
        if d.world > 1:  # pad by wrapping so every rank runs the same number of steps
            order = (order * d.world)[: per_rank * d.world][d.rank :: d.world]
        model.train()
        sums = {"loss": 0.0, "recon": 0.0, "contrast": 0.0}
        seen = 0
        bar = tqdm(
            _loader(train_ds, order, config, local_bs, drop_last=config.drop_last),
            total=steps_per_epoch,
            disable=not progress or not d.main,
            desc=f"sane epoch {epoch + 1}/{config.epochs}", leave=False,
        )
        for step, batch in enumerate(bar):
            gstep = epoch * steps_per_epoch + step
            lr = lr_at(gstep, total_steps, config)
            for group in opt.param_groups:
                group["lr"] = lr
            losses = _forward(net, batch, config, device, d)
            losses["loss"].backward()
            if config.grad_clip:  # None or 0: no clipping
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
        sums, seen = _all_mean(sums, seen, d)
        val = _evaluate(model, val_ds, config, device)
        entry = {
            "epoch": epoch,
            **{f"train_{k}": v / max(seen, 1) for k, v in sums.items()},
            **{f"val_{k}": v for k, v in val.items()},
            "lr": lr_at((epoch + 1) * steps_per_epoch - 1, total_steps, config),
        }
        if d.main and _recon_due(epoch, config):
            entry.update(_recon_check(model, config, normalizer, manifest, zoo, device, epoch,
                                      path, arch_ids))
        history.append(entry)
        ckpt_out = {
            "format": CKPT_FORMAT,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "config": config.to_dict(),
            "normalizer": normalizer.state_dict() if normalizer is not None else {},
            "max_positions": list(bounds),
            "arch_ids": list(arch_ids),
            "architectures": _architectures_payload(manifest),
            "zoo": {"name": manifest.name, "content_hash": manifest.content_hash,
                    "path": str(Path(zoo).resolve())},
            "epoch": epoch,
            "step": (epoch + 1) * steps_per_epoch,
            "history": history,
            "rng": {"torch": torch.get_rng_state()},
            "threads": torch.get_num_threads(),
        }
        if d.main:  # one writer; the others wait so nobody races ahead of the checkpoint
            save_checkpoint(path, ckpt_out)
            atomic_write_bytes(out / "history.json", json.dumps(history, indent=1).encode())
        if d.world > 1:
            import torch.distributed as dist

            dist.barrier()
        if progress and d.main:
            val = (f"val loss {entry['val_loss']:.4f} (recon {entry['val_recon']:.4f})"
                   if not math.isnan(entry["val_loss"]) else "no validation models")
            if "val_recon_ratio" in entry:
                val += (f"; {int(entry['val_recon_models'])} validation models decoded to "
                        f"{entry['val_recon_acc']:.3f} accuracy vs {entry['val_orig_acc']:.3f} "
                        f"(ratio {entry['val_recon_ratio']:.3f})")
            tqdm.write(
                f"sane epoch {epoch + 1}/{config.epochs}: train loss {entry['train_loss']:.4f} "
                + val
            )
        if callback is not None:
            callback("epoch", entry)
    return path
