"""Reading zoos: memory-mapped ``datasets`` objects and zero-copy torch tensors."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import datasets
import pyarrow as pa
import torch

from modelzoo.errors import CorruptZooError
from modelzoo.storage.manifest import read_manifest
from modelzoo.storage.schema import SPLITS
from modelzoo.storage.verify import resolve_verify, shard_path, verify_zoo

__all__ = ["iter_weight_batches", "load_zoo", "verify_zoo", "weights_tensor"]


def load_zoo(
    path: str | Path, split: str | None = None, *, verify: bool | None = None
) -> datasets.DatasetDict | datasets.Dataset:
    """Open a zoo as memory-mapped ``datasets`` objects (no copy of the weights).

    The shards read are first checked against the checksums in ``zoo.json``
    (:mod:`modelzoo.storage.verify`; unchanged shards verified before are not re-hashed).

    Args:
        path: zoo directory.
        split: one of ``train``/``validation``/``test``; ``None`` returns a DatasetDict.
        verify: check the checksums of the shards read (None: unless switched off with
            ``modelzoo.storage.verify.verification(False)``).

    Raises:
        ShardChecksumError: a shard read is missing or corrupt.
        CorruptZooError: no valid manifest, an unknown split or an unreadable shard.
    """
    root = Path(path)
    manifest = read_manifest(root)
    if split is not None and split not in SPLITS:
        raise CorruptZooError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    wanted = [split] if split else list(SPLITS)
    if resolve_verify(verify):
        verify_zoo(root, manifest, splits=wanted)
    out = {}
    for s in wanted:
        files = [shard_path(root, f.path) for f in manifest.files if f.split == s]
        try:
            parts = [datasets.Dataset.from_file(str(p)) for p in files]
        except (pa.ArrowInvalid, OSError) as e:
            raise CorruptZooError(f"cannot read a {s} shard of {root}: {e}") from None
        out[s] = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    return out[split] if split else datasets.DatasetDict(out)


def _weights_chunks(data: datasets.Dataset | pa.Table) -> list[pa.Array]:
    if isinstance(data, datasets.Dataset):
        if data._indices is not None:  # noqa: SLF001 - a select()/shuffle() view
            data = data.flatten_indices(keep_in_memory=True)
        table = data.data.table
    else:
        table = data
    return table.column("weights").chunks


def _as_tensor(arr: pa.Array) -> torch.Tensor:
    """Zero-copy view of one ``fixed_size_list<float32>`` chunk as ``[rows, P]``."""
    values = arr.values.slice(arr.offset * arr.type.list_size, len(arr) * arr.type.list_size)
    np_values = values.to_numpy(zero_copy_only=True)
    with warnings.catch_warnings():  # the mmap is read-only; torch warns about that
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(np_values)
    return t.view(len(arr), arr.type.list_size)


def iter_weight_batches(data: datasets.Dataset | pa.Table) -> Iterator[torch.Tensor]:
    """Yield ``[rows, P]`` float32 tensors that view the Arrow buffers (no copy).

    Heterogeneous zoos (variable-length lists) yield one ``[1, P_i]`` tensor per row.
    """
    for chunk in _weights_chunks(data):
        if pa.types.is_fixed_size_list(chunk.type):
            if chunk.null_count:
                raise CorruptZooError("weights column contains nulls")
            yield _as_tensor(chunk)
        else:
            offs = chunk.offsets.to_numpy()
            vals = chunk.values.to_numpy(zero_copy_only=True)
            for i in range(len(chunk)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    yield torch.from_numpy(vals[offs[i] : offs[i + 1]]).view(1, -1)


def weights_tensor(data: datasets.Dataset | pa.Table) -> torch.Tensor:
    """All weights of a homogeneous zoo split as one ``[rows, P]`` tensor.

    Zero-copy when the data is one Arrow chunk; otherwise the chunks are concatenated.
    """
    chunks = list(iter_weight_batches(data))
    if not chunks:
        return torch.zeros(0, 0)
    if len(chunks) == 1:
        return chunks[0]
    sizes = {c.shape[1] for c in chunks}
    if len(sizes) > 1:
        raise CorruptZooError(
            "weights have different lengths (heterogeneous zoo): use iter_weight_batches or "
            "filter to one architecture first"
        )
    return torch.cat(chunks)
