"""Streaming the rows of a zoo: shard batches (memory-mapped) and per-model content hashes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import pyarrow as pa

from modelzoo.errors import CorruptZooError
from modelzoo.storage.manifest import FileEntry, Manifest
from modelzoo.storage.schema import zoo_schema
from modelzoo.storage.verify import shard_path
from modelzoo.storage.writer import row_hash

_COLUMNS = tuple(zoo_schema(None).names)


def check_batch_schema(schema: pa.Schema, where: str) -> None:
    """Raise CorruptZooError unless ``schema`` is a zoo row schema."""
    if tuple(schema.names) != _COLUMNS:
        raise CorruptZooError(
            f"{where} does not have the zoo row schema (columns {schema.names}); it was written "
            "by another tool or a newer toolkit version"
        )
    w = schema.field("weights").type
    is_list = pa.types.is_list(w) or pa.types.is_fixed_size_list(w)
    if not is_list or w.value_type != pa.float32():
        raise CorruptZooError(f"{where}: weights column has type {w}, expected list<float32>")


def iter_zoo_batches(
    root: str | Path, manifest: Manifest, *, columns: Sequence[str] | None = None
) -> Iterator[tuple[FileEntry, pa.RecordBatch]]:
    """Stream the record batches of every shard of a zoo (memory-mapped, one batch at a time).

    Args:
        root: zoo directory.
        manifest: its manifest.
        columns: keep only these columns (e.g. everything but ``weights`` for statistics).

    Raises:
        CorruptZooError: a shard is missing, unreadable or has the wrong schema.
    """
    root = Path(root)
    for f in manifest.files:
        path = shard_path(root, f.path)
        try:
            source = pa.memory_map(str(path))
        except OSError as e:
            raise CorruptZooError(f"cannot open shard {f.path} of {root}: {e}") from None
        try:
            reader = pa.ipc.open_stream(source)
            check_batch_schema(reader.schema, f"shard {f.path} of {root}")
            for batch in reader:
                yield f, (batch.select(list(columns)) if columns is not None else batch)
        except (pa.ArrowInvalid, OSError) as e:
            raise CorruptZooError(f"cannot read shard {f.path} of {root}: {e}") from None
        finally:
            source.close()



def model_hashes_where(
    root: str | Path,
    manifest: Manifest,
    ids: Iterable[str],
    *,
    drop: Sequence[str] = (),
    replace: dict[str, dict[str, str]] | None = None,
) -> dict[str, str]:
    """Per-model content hashes of some models, computed from their rows (streamed).

    Like the manifest's per-model ``sha256`` but with columns in ``drop`` left out and column
    values mapped by ``replace`` (``{"architecture": {"cnn_s": "cnn_s@digits"}}``), to compare
    models across zoos that label them differently or put them in other splits.
    """

    wanted = set(ids)
    replace = replace or {}
    rows: dict[str, list[tuple[int, str]]] = {}
    for _f, batch in iter_zoo_batches(root, manifest):
        mids = batch.column(batch.schema.get_field_index("model_id")).to_pylist()
        sel = [i for i, mid in enumerate(mids) if mid in wanted]
        if not sel:
            continue
        cols = [c for c in batch.schema.names if c != "weights" and c not in drop]
        meta = batch.select(cols).to_pylist()
        w = batch.column(batch.schema.get_field_index("weights"))
        for i in sel:
            row = meta[i]
            for col, mapping in replace.items():
                if col in row:
                    row[col] = mapping.get(row[col], row[col])
            vec = w[i].values.to_numpy(zero_copy_only=False)
            rows.setdefault(mids[i], []).append((row["epoch"], row_hash(row, vec)))
    return {
        mid: hashlib.sha256("".join(h for _, h in sorted(items)).encode()).hexdigest()
        for mid, items in rows.items()
    }

