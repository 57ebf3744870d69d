"""Resumable zoo writer: one finished group of models -> per-split Arrow shards + a marker.

Layout of a zoo directory (``datasets.load_from_disk`` and ``load_dataset`` both read it)::

    zoo.json                    manifest (written last: its presence means "finished")
    README.md                   minimal card whose YAML ``configs`` map splits to shards
    dataset_dict.json           split names, for ``datasets.load_from_disk``
    train/ validation/ test/    ``data-g00000.arrow`` ... + ``state.json`` + ``dataset_info.json``
    .build/done/g00000.json     one marker per finished group (resume state)
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow as pa
import torch

from modelzoo.errors import CorruptZooError, IncompleteZooError, ZooError
from modelzoo.storage.atomic import (
    atomic_write_bytes,
    atomic_write_with,
    ensure_dir,
    file_sha256,
    fsync_dir,
    storage_error,
)
from modelzoo.storage.card import dataset_card
from modelzoo.storage.manifest import (
    MANIFEST_NAME,
    ArchitectureEntry,
    FileEntry,
    Manifest,
    ModelEntry,
    SourceEntry,
    content_hash,
    read_manifest,
    split_hashes,
)
from modelzoo.storage.schema import SPLITS, STATUS_DIVERGED, STATUS_INCOMPLETE, STATUS_OK

BUILD_DIR = ".build"


def row_hash(row: dict[str, Any], weights: np.ndarray) -> str:
    """Hash of one checkpoint row: metadata (canonical JSON) + float32 weight bytes."""
    meta = {k: (float(v) if isinstance(v, np.floating) else v) for k, v in row.items()}
    h = hashlib.sha256(json.dumps(meta, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(weights, dtype=np.float32).tobytes())
    return h.hexdigest()


def _worse(a: str, b: str) -> str:
    """The model status of two row statuses: diverged over incomplete over ok (any other
    value counts as diverged)."""
    rank = {STATUS_OK: 0, STATUS_INCOMPLETE: 1}
    worst = max((a, b), key=lambda s: rank.get(s, 2))
    return worst if worst in rank else STATUS_DIVERGED


class _ModelHasher:
    """Accumulates per-row hashes into per-model entries as rows stream in."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[int, str]]] = {}
        self.meta: dict[str, dict[str, Any]] = {}
        self.status: dict[str, str] = {}

    def add(self, table: pa.Table) -> None:
        cols = [c for c in table.column_names if c != "weights"]
        meta = table.select(cols).to_pylist()
        w = table.column("weights").combine_chunks()
        flat = w.flatten().to_numpy(zero_copy_only=False)
        if pa.types.is_fixed_size_list(w.type):
            offsets = np.arange(len(table) + 1) * w.type.list_size
        else:
            offsets = w.offsets.to_numpy() - w.offsets.to_numpy()[0]
        for i, m in enumerate(meta):
            mid = m["model_id"]
            self.rows.setdefault(mid, []).append(
                (m["epoch"], row_hash(m, flat[offsets[i] : offsets[i + 1]]))
            )
            self.meta[mid] = m
            self.status[mid] = _worse(self.status.get(mid, STATUS_OK), m["status"])

    def entries(self) -> dict[str, ModelEntry]:
        out: dict[str, ModelEntry] = {}
        for mid, items in self.rows.items():
            items.sort()
            m = self.meta[mid]
            out[mid] = ModelEntry(
                architecture=m["architecture"],
                source=m["source"],
                split=m["split"],
                status=self.status[mid],
                num_checkpoints=len(items),
                sha256=hashlib.sha256("".join(h for _, h in items).encode()).hexdigest(),
            )
        return out


def write_arrow(path: Path, table: pa.Table) -> None:
    """Write ``table`` as an Arrow IPC *stream* (the format ``datasets`` memory-maps)."""

    def _write(f: Any) -> None:
        with pa.ipc.new_stream(f, table.schema) as w:
            w.write_table(table, max_chunksize=1024)

    atomic_write_with(path, _write)


class GroupWriter:
    """Streams one group's rows into per-split temp shards; ``commit`` makes them final.

    Nothing is visible as finished until ``commit`` writes the group's marker; ``abort``
    (or a crash) leaves only temp files that the next run removes.
    """

    def __init__(self, zoo: ZooWriter, group: int) -> None:
        self.zoo = zoo
        self.group = group
        self._writers: dict[str, tuple[Path, Any, pa.ipc.RecordBatchStreamWriter]] = {}
        self._hasher = _ModelHasher()
        self._rows: dict[str, int] = {}

    def write(self, table: pa.Table) -> None:
        """Append rows (any splits) to the group."""
        table = table.cast(self.zoo.schema)
        self._hasher.add(table)
        split_col = np.asarray(table.column("split").to_pylist(), dtype=object)
        for split in SPLITS:
            idx = np.flatnonzero(split_col == split)
            if len(idx) == 0:
                continue
            if split not in self._writers:
                d = ensure_dir(self.zoo.root / split)
                final = d / f"data-g{self.group:05d}.arrow"
                tmp = d / f".{final.name}.tmp"
                try:
                    f = open(tmp, "wb")
                    w = pa.ipc.new_stream(f, self.zoo.schema)
                except OSError as e:
                    raise storage_error(e, tmp) from None
                self._writers[split] = (final, f, w)
            try:
                self._writers[split][2].write_table(table.take(pa.array(idx)), max_chunksize=1024)
                self._rows[split] = self._rows.get(split, 0) + len(idx)
            except OSError as e:
                self.abort()
                raise storage_error(e, self.zoo.root / split) from None

    def commit(self) -> None:
        """Close, fsync and rename the shards, then write the group's marker."""
        files: list[dict[str, Any]] = []
        try:
            for split, (final, f, w) in sorted(self._writers.items()):
                w.close()
                f.flush()
                os.fsync(f.fileno())
                f.close()
                tmp = final.with_name(f".{final.name}.tmp")
                os.replace(tmp, final)
                fsync_dir(final.parent)
                files.append(
                    FileEntry(
                        path=f"{split}/{final.name}",
                        split=split,
                        num_rows=self._rows[split],
                        sha256=file_sha256(final),
                    ).model_dump()
                )
        except OSError as e:
            self.abort()
            raise storage_error(e, self.zoo.root) from None
        models = {k: v.model_dump() for k, v in self._hasher.entries().items()}
        atomic_write_bytes(
            self.zoo.marker(self.group), json.dumps({"files": files, "models": models}).encode()
        )
        self._writers.clear()

    def abort(self) -> None:
        """Drop the group's temp files."""
        for final, f, _w in self._writers.values():
            try:
                f.close()
            except OSError:
                pass
            final.with_name(f".{final.name}.tmp").unlink(missing_ok=True)
        self._writers.clear()


class ZooWriter:
    """Writes finished groups of models into a zoo directory, resumably.

    Args:
        root: zoo directory (created if needed).
        schema: Arrow schema of every row.
    """

    def __init__(self, root: str | Path, schema: pa.Schema) -> None:
        self.root = Path(root)
        self.schema = schema
        ensure_dir(self.root)
        self.done_dir = ensure_dir(self.root / BUILD_DIR / "done")

    def marker(self, group: int) -> Path:
        """Marker file of a finished group."""
        return self.done_dir / f"g{group:05d}.json"

    def finished_groups(self) -> set[int]:
        """Indices of groups whose shards are fully written."""
        return {int(p.stem[1:]) for p in self.done_dir.glob("g*.json")}

    def finished_models(self) -> dict[str, int]:
        """Model id -> index of the committed group that holds it (the resume state).

        Raises:
            CorruptZooError: one model id is committed by two groups.
        """
        out: dict[str, int] = {}
        for marker in sorted(self.done_dir.glob("g*.json")):
            group = int(marker.stem[1:])
            for mid in json.loads(marker.read_text())["models"]:
                if mid in out:
                    raise CorruptZooError(
                        f"model {mid} is committed by groups {out[mid]} and {group} in "
                        f"{self.done_dir}; delete {self.root / BUILD_DIR} to start over"
                    )
                out[mid] = group
        return out

    def discard_uncommitted(self) -> list[Path]:
        """Delete shard files of groups without a marker (a crash before ``commit`` finished).

        A group's shards are renamed into place before its marker is written, so a crash in
        between leaves final-named shards that no marker lists; ``load_dataset`` would read
        them (its configs glob ``<split>/*.arrow``). Returns the deleted paths.
        """
        done = self.finished_groups()
        gone: list[Path] = []
        for split in SPLITS:
            d = self.root / split
            if not d.is_dir():
                continue
            for p in d.iterdir():
                tmp = p.name.startswith(".") and p.name.endswith(".tmp")
                m = re.fullmatch(r"data-g(\d+)\.arrow", p.name)
                if tmp or (m is not None and int(m.group(1)) not in done):
                    p.unlink(missing_ok=True)
                    gone.append(p)
        return gone

    def open_group(self, group: int) -> GroupWriter:
        """Start streaming group ``group`` (its stale temp files, if any, are replaced)."""
        return GroupWriter(self, group)

    def write_group(self, group: int, table: pa.Table) -> None:
        """Write one whole group's rows and its marker."""
        g = self.open_group(group)
        g.write(table)
        g.commit()

    def finalize(
        self,
        *,
        name: str,
        version: str,
        recipe: dict[str, Any],
        architectures: dict[str, ArchitectureEntry],
        sources: dict[str, SourceEntry],
        toolkit_version: str,
        description: str = "",
        license: str = "cc-by-4.0",
        planned: Collection[str] | None = None,
    ) -> Manifest:
        """Write the ``datasets`` metadata files and ``zoo.json``; return the manifest.

        Args:
            planned: the model ids the zoo must hold, each exactly once; any difference
                raises :class:`IncompleteZooError` before ``zoo.json`` is written.
        """
        files: list[FileEntry] = []
        models: dict[str, ModelEntry] = {}
        for marker in sorted(self.done_dir.glob("g*.json")):
            data = json.loads(marker.read_text())
            files += [FileEntry(**f) for f in data["files"]]
            for mid, m in data["models"].items():
                if mid in models:
                    raise CorruptZooError(f"model {mid} was written twice ({marker})")
                models[mid] = ModelEntry(**m)
        if planned is not None:
            check_plan(set(planned), models.keys(), where=str(self.root))
        nonempty = [s for s in SPLITS if any(f.split == s and f.num_rows for f in files)]
        for split in SPLITS:
            empty = self._write_split_metadata(split, [f for f in files if f.split == split])
            if empty is not None:
                files.append(empty)
        files.sort(key=lambda f: f.path)
        atomic_write_bytes(
            self.root / "dataset_dict.json", json.dumps({"splits": list(SPLITS)}).encode()
        )
        atomic_write_bytes(
            self.root / "README.md", minimal_card(name, description, nonempty).encode()
        )
        manifest = Manifest(
            name=name,
            version=version,
            description=description,
            license=license,
            recipe=recipe,
            toolkit_version=toolkit_version,
            torch_version=torch.__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            architectures=architectures,
            sources=sources,
            files=files,
            models=models,
            num_rows=sum(f.num_rows for f in files),
            content_hash=content_hash(models),
            split_hashes=split_hashes(models),
        )
        atomic_write_bytes(
            self.root / MANIFEST_NAME, manifest.model_dump_json(indent=1).encode()
        )
        return manifest

    def _write_split_metadata(self, split: str, split_files: list[FileEntry]) -> FileEntry | None:
        """Write ``state.json``/``dataset_info.json`` of a split folder (``load_from_disk``).

        Returns the entry of an empty shard written for a split without rows, else None.
        """
        d = ensure_dir(self.root / split)
        names = [Path(f.path).name for f in split_files]
        extra = None
        if not names:  # an empty split still loads, with the zoo's schema
            path = d / "data-empty.arrow"
            write_arrow(path, self.schema.empty_table())
            names = [path.name]
            extra = FileEntry(path=f"{split}/{path.name}", split=split, num_rows=0,
                              sha256=file_sha256(path))
        state = {
            "_data_files": [{"filename": n} for n in names],
            "_fingerprint": hashlib.sha256("".join(names).encode()).hexdigest()[:16],
            "_format_columns": None,
            "_format_kwargs": {},
            "_format_type": None,
            "_output_all_columns": False,
            "_split": split,
        }
        atomic_write_bytes(d / "state.json", json.dumps(state, indent=1).encode())
        info = datasets.DatasetInfo(features=datasets.Features.from_arrow_schema(self.schema))
        try:
            info.write_to_directory(str(d))
        except OSError as e:
            raise storage_error(e, d) from None
        return extra


def minimal_card(name: str, description: str = "", splits: Iterable[str] = SPLITS) -> str:
    """A README.md whose YAML front matter lets ``datasets.load_dataset(dir)`` find the splits.

    Only splits with rows are listed: ``datasets`` refuses a split whose files hold no data.
    """
    lines = [f"# {name}", ""]
    if description:
        lines += [description, ""]
    lines.append("A model zoo built with the model-zoo toolkit. `zoo info .` summarises it.")
    configs = [{"config_name": "default", "data_files": [
        {"split": split, "path": f"{split}/*.arrow"} for split in splits]}]  # fmt: skip
    return dataset_card("\n".join(lines) + "\n", configs=configs,
                        tags=["model-zoo", "weight-space-learning"])  # fmt: skip


def check_plan(planned: set[str], present: Iterable[str], *, where: str) -> None:
    """Raise :class:`IncompleteZooError` unless ``present`` is exactly ``planned``, once each.

    Args:
        planned: model ids the recipe plans.
        present: model ids found (a repeated id counts as a duplicate).
        where: the zoo, named in the message.
    """
    seen: dict[str, int] = {}
    for mid in present:
        seen[mid] = seen.get(mid, 0) + 1
    missing = sorted(planned - seen.keys())
    extra = sorted(seen.keys() - planned)
    dup = sorted(k for k, n in seen.items() if n > 1)
    if not (missing or extra or dup):
        return
    parts = []
    for label, ids in (("missing", missing), ("not in the plan", extra), ("duplicated", dup)):
        if ids:
            more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
            parts.append(f"{len(ids)} {label} ({', '.join(ids[:3])}{more})")
    raise IncompleteZooError(
        f"{where} does not match its plan of {len(planned)} models: {'; '.join(parts)}. "
        "Rerun the same `zoo build` command to train what is missing, or delete the folder "
        "and build again"
    )


def check_resumable(
    root: Path, *, key_file: Path, key: str, same: Callable[[Manifest], bool], job: str,
    settings: str,
) -> Manifest | None:
    """Whether a job may write a zoo at ``root``: the finished zoo of the same job (returned),
    an unfinished run of it (None: resume), an empty or new folder (None: start), else error.

    Args:
        root: output folder.
        key_file: where the job's key is stored while it runs (``<root>/.build/...``).
        key: this job's key; an unfinished run with another key is refused.
        same: whether a finished zoo's manifest is this job's result.
        job: what the job is, for messages (``build``, ``alignment``).
        settings: what differs when the keys differ (``recipe``, ``arguments``).

    Raises:
        ZooError: ``root`` holds another zoo, another unfinished job, or other files.
    """
    if (root / MANIFEST_NAME).exists():
        man = read_manifest(root)
        if same(man):
            return man
        raise ZooError(f"{root} already holds another zoo (a different {settings}); "
                       "choose another --out")
    if key_file.exists() and key_file.read_text() != key:
        raise ZooError(
            f"{root} holds an unfinished {job} with other {settings}s (a different {settings});"
            f" choose another --out or delete {root / BUILD_DIR} to start over"
        )
    if not key_file.exists() and root.exists() and any(p.name != BUILD_DIR for p in root.iterdir()):
        raise ZooError(f"{root} exists, is not empty and is not a zoo {job}; choose an empty "
                       "or new --out")
    return None
