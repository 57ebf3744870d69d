"""Streaming SANE data: zoo rows from the memory-mapped Arrow shards, tokenised on the fly.

Nothing is loaded into RAM up front: :class:`ZooRows` keeps the zoo's memory-mapped table and
reads one row's weights (a zero-copy view of the Arrow buffer) when it is asked for it;
:class:`SaneWindows` turns that row into two augmented views of one random token window.
Only the window's values are gathered and normalised, so the cost per sample does not grow
with the size of the network.

Randomness of a sample depends only on ``(seed, epoch, index)``, so results are identical for
any number of DataLoader workers and after a resume.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

from modelzoo.architectures import ARCHITECTURES
from modelzoo.errors import ZooError
from modelzoo.storage import load_zoo, open_manifest
from modelzoo.storage.manifest import Manifest
from modelzoo.storage.schema import STATUS_OK
from sane.augment import (
    PermutationSpec,
    add_noise,
    permutation_spec,
    random_erase,
    random_permutation,
)
from sane.config import SaneConfig
from sane.tokenize import Normalizer, TokenPlan, plan_tokens, token_standardize

__all__ = [
    "META_COLUMNS",
    "SaneWindows",
    "ZooRows",
    "max_positions",
    "mix_seed",
    "permutation_specs",
    "token_plans",
]

#: Row columns kept in memory (everything but the weights).
META_COLUMNS = (
    "model_id", "architecture", "source", "epoch", "activation", "dropout", "status", "split",
    "val_acc", "test_acc", "n_params",
)  # fmt: skip


def mix_seed(*parts: int) -> int:
    """Combine integers into one 63-bit seed (deterministic, order-sensitive)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class ZooRows:
    """Rows of one zoo split, memory-mapped; weights are read one row at a time.

    Args:
        zoo: zoo directory.
        split: ``train``/``validation``/``test``.
        epochs_range: inclusive ``(first, last)`` checkpoint epochs to keep (None: all).
        architectures: keep only rows of these architecture keys (None: all).
        only_ok: drop rows whose ``status`` is not ``ok`` (diverged models).
        verify: check the split's shards against ``zoo.json`` first (None: unless switched
            off with ``modelzoo.storage.verification(False)``; False where the caller did).

    Raises:
        ShardChecksumError: a shard of the split is missing or corrupt.
    """

    def __init__(
        self,
        zoo: str | Path,
        split: str,
        *,
        epochs_range: tuple[int, int] | None = None,
        architectures: Sequence[str] | None = None,
        only_ok: bool = True,
        verify: bool | None = None,
    ) -> None:
        self.zoo = Path(zoo)
        self.split = split
        self.manifest: Manifest = open_manifest(self.zoo, verify=verify, splits=[split])
        self._table: pa.Table | None = None
        self._starts: np.ndarray | None = None
        table = self.table
        cols = [c for c in META_COLUMNS if c in table.column_names]
        meta = table.select(cols).to_pylist()
        keep = []
        for i, m in enumerate(meta):
            if only_ok and m.get("status", STATUS_OK) != STATUS_OK:
                continue
            if epochs_range is not None and not epochs_range[0] <= m["epoch"] <= epochs_range[1]:
                continue
            if architectures is not None and m["architecture"] not in architectures:
                continue
            keep.append(i)
        self.rows = np.asarray(keep, dtype=np.int64)
        self.meta: list[dict[str, Any]] = [meta[i] for i in keep]
        missing = {m["architecture"] for m in self.meta} - set(self.manifest.architectures)
        if missing:
            raise ZooError(f"zoo rows use architectures missing from zoo.json: {sorted(missing)}")

    @property
    def table(self) -> pa.Table:
        """The split's memory-mapped Arrow table (opened lazily, also in worker processes)."""
        if self._table is None:
            ds = load_zoo(self.zoo, self.split, verify=False)  # checked in __init__
            if ds._indices is not None:  # noqa: SLF001 - never the case for load_zoo
                ds = ds.flatten_indices()
            self._table = ds.data.table
            lengths = [len(c) for c in self._table.column("weights").chunks]
            self._starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        return self._table

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_table"] = None  # re-opened (memory-mapped) in the worker
        state["_starts"] = None
        return state

    def __len__(self) -> int:
        return len(self.rows)

    def weights(self, i: int) -> torch.Tensor:
        """Flat float32 weights of kept row ``i`` (a read-only view of the Arrow buffer)."""
        table = self.table
        assert self._starts is not None
        r = int(self.rows[i])
        c = int(np.searchsorted(self._starts, r, side="right") - 1)
        chunk = table.column("weights").chunk(c)
        k = r - int(self._starts[c])
        if pa.types.is_fixed_size_list(chunk.type):
            n = chunk.type.list_size
            start = (chunk.offset + k) * n
            arr = chunk.values.slice(start, n).to_numpy(zero_copy_only=True)
        else:
            offs = chunk.offsets
            a, b = offs[k].as_py(), offs[k + 1].as_py()
            arr = chunk.values.slice(a, b - a).to_numpy(zero_copy_only=True)
        with warnings.catch_warnings():  # the mmap is read-only; nothing writes to it
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(arr)

    def iter_weights(self) -> Iterator[tuple[int, torch.Tensor]]:
        """Yield ``(i, weights)`` for every kept row."""
        for i in range(len(self)):
            yield i, self.weights(i)

    def architectures(self) -> list[str]:
        """Architecture keys present in the kept rows (sorted)."""
        return sorted({m["architecture"] for m in self.meta})


def token_plans(manifest: Manifest, token_size: int) -> dict[str, TokenPlan]:
    """One :class:`TokenPlan` per architecture key of the zoo."""
    return {k: plan_tokens(e.layout, token_size) for k, e in manifest.architectures.items()}


def max_positions(plans: Mapping[str, TokenPlan]) -> tuple[int, int, int]:
    """Exclusive bounds of the 3-part positions over all plans."""
    bounds = [p.max_positions for p in plans.values()] or [(1, 1, 1)]
    return tuple(max(max(b[i] for b in bounds), 1) for i in range(3))  # type: ignore[return-value]


def permutation_specs(manifest: Manifest) -> dict[str, PermutationSpec | None]:
    """Permutation structure per architecture key (None where the architecture is not
    permutable, e.g. ResNets, or unknown to this installation)."""
    out: dict[str, PermutationSpec | None] = {}
    for key, entry in manifest.architectures.items():
        spec = None
        if entry.name in ARCHITECTURES and ARCHITECTURES.get(entry.name).permutable:
            try:
                spec = permutation_spec(entry.layout)
            except ZooError:
                spec = None
        out[key] = spec
    return out


@dataclass(frozen=True)
class _ArchData:
    plan: TokenPlan
    mean: torch.Tensor | None  # per-element normalisation, None: no normalisation
    std: torch.Tensor | None
    perm: PermutationSpec | None
    arch_id: int = 0  # row of the architecture embedding (config.arch_embedding)


def arch_data(
    manifest: Manifest,
    config: SaneConfig,
    normalizer: Normalizer | None,
    arch_ids: Sequence[str] = (),
) -> dict[str, _ArchData]:
    """Per-architecture plan, normalisation vectors, permutation spec and id (its index in
    ``arch_ids``; 0 when absent)."""
    plans = token_plans(manifest, config.token_size)
    perms = permutation_specs(manifest)
    out = {}
    for key, entry in manifest.architectures.items():
        mean = std = None
        if normalizer is not None and key in normalizer.stats:
            mean, std = normalizer.vectors(key, entry.layout)
        aid = list(arch_ids).index(key) if key in arch_ids else 0
        out[key] = _ArchData(plans[key], mean, std, perms[key], aid)
    return out


def gather_window(
    flat: torch.Tensor,
    index: torch.Tensor,
    mask: torch.Tensor,
    mean: torch.Tensor | None,
    std: torch.Tensor | None,
) -> torch.Tensor:
    """Normalised token values at ``index`` (padding zero); reads only those elements.

    One ``index_select`` per vector over the flattened index (several times faster than
    advanced indexing with a 2-D index; the same values).
    """
    safe = index.clamp(max=flat.numel() - 1).reshape(-1)
    x = flat.index_select(0, safe)
    if mean is not None and std is not None:
        x = (x - mean.index_select(0, safe)) / std.index_select(0, safe)
    return x.view(index.shape) * mask


def window_slice(plan: TokenPlan, start: int, size: int) -> dict[str, torch.Tensor]:
    """Index/mask/positions/valid of tokens ``[start, start+size)``, padded to ``size``."""
    idx = plan.index[start : start + size]
    mask = plan.mask[start : start + size]
    pos = plan.positions[start : start + size]
    n = idx.shape[0]
    valid = torch.ones(size, dtype=torch.bool)
    if n < size:
        pad = size - n
        idx = torch.cat([idx, torch.full((pad, idx.shape[1]), plan.n_params, dtype=idx.dtype)])
        mask = torch.cat([mask, torch.zeros(pad, mask.shape[1], dtype=torch.bool)])
        pos = torch.cat([pos, torch.zeros(pad, 3, dtype=pos.dtype)])
        valid[n:] = False
    return {"index": idx, "mask": mask, "pos": pos, "valid": valid}


class SaneWindows(torch.utils.data.Dataset):
    """Two augmented views of one random token window per zoo row.

    Items are dicts of tensors: ``x1``/``x2`` (inputs ``[W, S]``), ``t1``/``t2`` (reconstruction
    targets), ``mask`` ``[W, S]``, ``pos`` ``[W, 3]``, ``valid`` ``[W]``, and with
    ``config.arch_embedding`` ``arch`` (the architecture id, a 0-d int64 tensor).

    Args:
        rows: the zoo rows.
        archs: per-architecture data from :func:`arch_data`.
        config: SANE configuration (window size and augmentation probabilities).
        seed: base seed; combine with :meth:`set_epoch`.
        augment: apply noise/erasing/permutations (windows are random either way).
    """

    def __init__(
        self,
        rows: ZooRows,
        archs: Mapping[str, _ArchData],
        config: SaneConfig,
        *,
        seed: int,
        augment: bool = True,
    ) -> None:
        self.rows = rows
        self.archs = dict(archs)
        self.config = config
        self.seed = seed
        self.augment = augment
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose windows and augmentations are drawn."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        cfg = self.config
        g = torch.Generator().manual_seed(mix_seed(self.seed, self.epoch, i))
        arch = self.rows.meta[i]["architecture"]
        ad = self.archs[arch]
        plan = ad.plan
        flat = self.rows.weights(i)
        if flat.numel() != plan.n_params:
            raise ZooError(
                f"row {i} of {self.rows.zoo} has {flat.numel()} weights but architecture "
                f"{arch!r} needs {plan.n_params}: the zoo is corrupt"
            )
        t, w = plan.num_tokens, cfg.window_size
        start = int(torch.randint(0, t - w + 1, (1,), generator=g)) if t > w else 0
        win = window_slice(plan, start, w)
        out: dict[str, torch.Tensor] = {
            "mask": win["mask"], "pos": win["pos"], "valid": win["valid"]
        }
        if cfg.arch_embedding:
            out["arch"] = torch.tensor(ad.arch_id, dtype=torch.int64)
        pad_ext = torch.tensor([plan.n_params])
        for v in (1, 2):
            index = win["index"]
            if (
                self.augment
                and ad.perm is not None
                and not (v == 1 and cfg.view1_canonical)
                and float(torch.rand(1, generator=g)) < cfg.permutation_prob
            ):
                perm = random_permutation(ad.perm, generator=g)
                # index_select on the flat index: the values of ``[...][index]``, ~2x faster
                index = torch.cat([perm, pad_ext]).index_select(0, index.reshape(-1)).view(
                    index.shape)
            clean = gather_window(flat, index, win["mask"], ad.mean, ad.std)
            if cfg.token_norm:
                clean = token_standardize(clean, win["mask"])[0]
            x = clean
            if self.augment:
                if cfg.noise_sigma > 0 and float(torch.rand(1, generator=g)) < cfg.noise_prob:
                    x = add_noise(x, sigma=cfg.noise_sigma, multiplicative=cfg.noise_multiplicative,
                                  mask=win["mask"], generator=g)
                if float(torch.rand(1, generator=g)) < cfg.erase_prob:
                    x = random_erase(x, scale=cfg.erase_scale, ratio=cfg.erase_ratio, generator=g)
            out[f"x{v}"] = x
            out[f"t{v}"] = clean if cfg.denoise else x
        return out

