"""``import_zoo``: a foreign zoo folder -> a zoo of this toolkit (resumable, deterministic).

The steps, the same for every format:

1. hash the origin files (the format lists them) and the split file, if one is given: the
   import's *key* is a hash of the format, the options and these checksums;
2. read the metadata into a plan (:meth:`ZooFormat.plan`): architectures, every model with
   its split (:mod:`modelzoo.importers.splits`), and a row stream;
3. write the models in fixed groups of about ``plan.group_rows`` checkpoints, in model-id
   order (or the format's order: CTC's is file order); each group is committed with a
   marker (:class:`~modelzoo.storage.ZooWriter`), so a killed import rerun with the same
   options continues after the last committed group;
4. flag every checkpoint as ``zoo build`` does: ``diverged`` from the first checkpoint with a
   non-finite weight, a weight above ``DIVERGENCE_THRESHOLD`` or a non-finite recorded
   training loss on; ``incomplete`` where the origin has no metrics record for it;
5. write ``zoo.json``, whose ``recipe`` records the origin: format, file checksums (a digest,
   and the listing when short), split protocol, and everything the origin lacked.

A zoo of one architecture is written in place; one of several (CNN Wild Park, mixed folders)
is written as one member zoo per architecture next to ``out`` and merged into ``out`` with
:func:`modelzoo.hub.merge.merge_zoos` (one ``datasets`` config per architecture plus
``all``). The rows depend only on the files and the options, so importing the same files
twice gives the same content hash.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from modelzoo._version import __version__
from modelzoo.errors import ImportFormatError, StorageError, ZooError
from modelzoo.importers.base import IMPORTERS, ImportOptions, ModelRows, ZooFormat
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir, file_sha256
from modelzoo.storage.manifest import MANIFEST_NAME, Manifest, read_manifest
from modelzoo.storage.schema import (
    HPARAM_FIELDS,
    METRIC_FIELDS,
    STATUS_DIVERGED,
    STATUS_INCOMPLETE,
    STATUS_OK,
    zoo_schema,
)
from modelzoo.storage.writer import BUILD_DIR, ZooWriter, check_resumable

#: Bumped when the rows written for the same files change (part of the import key).
IMPORT_VERSION = 1
#: A weight with a larger magnitude marks a checkpoint diverged (as ``zoo build``).
DIVERGENCE_THRESHOLD = 1e6
#: Origin files listed one by one in ``zoo.json`` up to this count (else only the digest).
LISTED_FILES = 64
KEY_FILE = "import.json"

HASH_PROTOCOL = "a deterministic 70/15/15 by a hash of the model id (the toolkit's default)"


def protocols(fmt: ZooFormat) -> dict[str, str]:
    """The split protocols of ``fmt`` (``hash`` first)."""
    return {"hash": HASH_PROTOCOL, **fmt.split_protocols}


def _hash_files(root: Path, files: Sequence[Path], progress: bool) -> dict[str, str]:
    total = sum(p.stat().st_size for p in files)
    out: dict[str, str] = {}
    with tqdm(total=total, unit="B", unit_scale=True, disable=not progress,
              desc="hashing origin files", dynamic_ncols=True) as bar:  # fmt: skip
        for p in files:
            out[p.relative_to(root).as_posix()] = file_sha256(p)
            bar.update(p.stat().st_size)
    return out


def _digest(checksums: dict[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(checksums):
        h.update(f"{rel}\t{checksums[rel]}\n".encode())
    return "sha256:" + h.hexdigest()


def _status(mr: ModelRows) -> np.ndarray:
    w = mr.weights
    bad = ~np.isfinite(w).all(axis=1)
    if w.shape[1]:
        with np.errstate(invalid="ignore"):
            bad |= np.abs(w).max(axis=1) > DIVERGENCE_THRESHOLD
    if "train_loss" in mr.metrics:  # only where the origin records a training loss
        bad |= mr.recorded & ~np.isfinite(mr.metrics["train_loss"])
    diverged = np.maximum.accumulate(bad) if len(bad) else bad
    return np.where(diverged, STATUS_DIVERGED,
                    np.where(mr.recorded, STATUS_OK, STATUS_INCOMPLETE))


def rows_table(
    batch: Sequence[ModelRows], *, architecture: str, source: str, splits: dict[str, str],
    n_params: int,
) -> pa.Table:
    """The zoo rows of ``batch`` (models of one architecture), with their status."""
    cols: dict[str, Any] = {k: [] for k in ("model_id", "epoch", "status", "split")}
    hp: dict[str, list[Any]] = {name: [] for name, _ in HPARAM_FIELDS}
    met: dict[str, list[np.ndarray]] = {name: [] for name in METRIC_FIELDS}
    for mr in batch:
        k = len(mr.epochs)
        if mr.weights.shape != (k, n_params):
            raise ImportFormatError(f"model {mr.model_id}: weights of shape {mr.weights.shape}, "
                                    f"expected ({k}, {n_params})")
        if np.any(np.diff(mr.epochs) <= 0):
            raise ImportFormatError(f"model {mr.model_id}: checkpoints are not in increasing "
                                    f"epoch order ({mr.epochs.tolist()})")
        cols["model_id"] += [mr.model_id] * k
        cols["epoch"] += mr.epochs.astype(int).tolist()
        cols["status"] += _status(mr).tolist()
        cols["split"] += [splits[mr.model_id]] * k
        for name in hp:
            hp[name] += [mr.hparams.get(name)] * k
        nan = np.full(k, np.nan, np.float32)
        for name in METRIC_FIELDS:
            if name != "ggap":
                met[name].append(np.asarray(mr.metrics.get(name, nan), np.float32))
        met["ggap"].append(met["train_acc"][-1] - met["test_acc"][-1])
    n = len(cols["model_id"])
    types = dict(HPARAM_FIELDS)
    table: dict[str, Any] = {
        "model_id": cols["model_id"], "architecture": [architecture] * n,
        "source": [source] * n, "epoch": pa.array(cols["epoch"], pa.int32()),
        **{k: pa.array(v, types[k]) for k, v in hp.items()},
        **{k: pa.array(np.concatenate(v) if v else np.zeros(0, np.float32), pa.float32())
           for k, v in met.items()},
        "status": cols["status"], "split": cols["split"], "n_params": [n_params] * n,
    }  # fmt: skip
    flat = np.concatenate([mr.weights.reshape(-1) for mr in batch]) if batch else np.zeros(0)
    table["weights"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), n_params)
    return pa.table(table, schema=zoo_schema(n_params))


def _groups(ids: Sequence[str], counts: dict[str, int], group_rows: int) -> list[list[str]]:
    """Consecutive models, about ``group_rows`` checkpoints per group (deterministic)."""
    out: list[list[str]] = [[]]
    rows = 0
    for mid in ids:
        if out[-1] and rows + counts[mid] > group_rows:
            out.append([])
            rows = 0
        out[-1].append(mid)
        rows += counts[mid]
    return [g for g in out if g]


def _write_part(
    dest: Path, *, fmt: ZooFormat, plan: Any, arch: str, ids: list[str], bar: tqdm,
    finalize: dict[str, Any],
) -> Manifest:
    """Write the models ``ids`` (one architecture) as a zoo at ``dest``, resumably."""
    entry = plan.architectures[arch]
    writer = ZooWriter(dest, zoo_schema(entry.n_params))
    writer.discard_uncommitted()
    counts = {m: plan.models[m][1] for m in ids}
    done = writer.finished_groups()
    source = next(iter(plan.sources))
    for gi, gids in enumerate(_groups(ids, counts, plan.group_rows)):
        if gi in done:
            bar.update(sum(counts[m] for m in gids))
            continue
        gw = writer.open_group(gi)
        try:
            expect = iter(gids)
            batch: list[ModelRows] = []
            for mr in plan.rows(gids):
                want = next(expect, None)
                if mr.model_id != want:
                    raise ZooError(f"format {fmt.name} streamed model {mr.model_id}, expected "
                                   f"{want} (a bug in the format)")
                batch.append(mr)
                if sum(len(b.epochs) for b in batch) >= 1024:
                    gw.write(rows_table(batch, architecture=arch, source=source,
                                        splits=plan.splits, n_params=entry.n_params))
                    bar.update(sum(len(b.epochs) for b in batch))
                    batch = []
            if batch:
                gw.write(rows_table(batch, architecture=arch, source=source,
                                    splits=plan.splits, n_params=entry.n_params))
                bar.update(sum(len(b.epochs) for b in batch))
            missing = list(expect)
            if missing:
                raise ZooError(f"format {fmt.name} did not stream model {missing[0]}")
        except BaseException:
            gw.abort()
            raise
        gw.commit()
    return writer.finalize(architectures={arch: entry}, sources=plan.sources,
                           toolkit_version=__version__, planned=ids, **finalize)


def import_zoo(
    *,
    format: str,
    path: str | Path,
    out: str | Path,
    splits: str | None = None,
    split_file: str | Path | None = None,
    source: str | None = None,
    name: str | None = None,
    version: str = "1.0.0",
    description: str | None = None,
    license: str | None = None,
    progress: bool = False,
) -> Manifest:
    """Import a public zoo from its files on disk into a zoo at ``out`` (resumable).

    Args:
        format: a registered format (``zoo formats``): ``modelzoos``, ``ctc``, ``wildpark``,
            ``pdiff``, or one a plugin adds.
        path: the folder in the format's layout, or a zip / tar archive of it (unpacked
            safely next to ``out`` first, and removed once the zoo is finished).
        out: output folder; rerun with the same arguments to resume an interrupted import.
        splits: split protocol (default: the format's; see ``zoo formats``).
        split_file: a published split file the protocol reads (``nfn``: NFN's CTC split CSV;
            ``neural-graphs``: ``cnn_park_splits.json``).
        source: the training dataset's name (default: guessed from the folder name).
        name: zoo name (default: the format's, from the folder).
        version: semantic version of the zoo.
        description: card description (default: the format's).
        license: license id (default: the published zoo's, where known).
        progress: show progress bars.

    Returns:
        The manifest of the imported zoo.

    Raises:
        ImportFormatError: the folder is not in the format's layout.
        UnsafeFileError: a file would need pickle, or a path leaves the folder.
        ZooError: ``out`` holds another zoo or an unfinished import with other options.
    """
    from modelzoo.hub.configs import safe_name
    from modelzoo.hub.versioning import check_version

    fmt = IMPORTERS.get(format)
    root = Path(path)
    out = Path(out)
    archive = None
    if root.is_file():
        from modelzoo.importers.archive import unpack

        archive = {"name": root.name, "sha256": file_sha256(root)}
        unpacked = out.parent / f".{out.name}.unpacked"
        root = unpack(root, unpacked)
    elif not root.is_dir():
        raise ImportFormatError(f"{root} does not exist; give the folder (or archive) of the "
                                f"{fmt.name} zoo")
    known = protocols(fmt)
    protocol = splits or fmt.default_split
    if protocol not in known:
        raise ZooError(f"unknown split protocol {protocol!r} for format {fmt.name}; choose from "
                       f"{', '.join(known)}")
    version = check_version(version)
    if out.resolve() == root.resolve() or root.resolve() in out.resolve().parents:
        raise StorageError(f"--out {out} is inside the folder being imported; choose another")
    files = fmt.origin_files(root)
    if not files:
        raise ImportFormatError(f"{root} holds no files of a {fmt.name} zoo (expected: "
                                f"{fmt.description})")
    checksums = _hash_files(root, files, progress)
    sf = Path(split_file) if split_file is not None else None
    sf_entry = None if sf is None else {"name": sf.name, "sha256": file_sha256(sf)}
    options = ImportOptions(splits=protocol, split_file=sf, source=source)
    key_obj = {"import_version": IMPORT_VERSION, "format": fmt.name, "splits": protocol,
               "split_file": sf_entry, "source": source, "name": name, "version": version,
               "files": _digest(checksums)}
    key = "sha256:" + hashlib.sha256(json.dumps(key_obj, sort_keys=True).encode()).hexdigest()
    if (out / MANIFEST_NAME).exists():
        man = read_manifest(out)
        if man.recipe.get("import_key") == key:
            return man
        raise ZooError(f"{out} already holds another zoo; choose another --out")
    plan = fmt.plan(root, options)
    ids = list(plan.order) if plan.order is not None else sorted(plan.models)
    if sorted(ids) != sorted(plan.models):
        raise ZooError(f"format {fmt.name}: its model order is not its models (a bug)")
    if not ids:
        raise ImportFormatError(f"{root}: no models found")
    total = sum(n for _, n in plan.models.values())
    origin = {
        "format": fmt.name, "folder": root.resolve().name, "archive": archive,
        "files": {"count": len(checksums), "bytes": sum(p.stat().st_size for p in files),
                  "digest": _digest(checksums),
                  **({"listing": checksums} if len(checksums) <= LISTED_FILES else {})},
        "split_file": sf_entry,
        "splits": {"protocol": protocol, "rule": known[protocol], **plan.split_protocol},
        "models": len(ids), "rows": total, "flags": plan.flags,
        "unmapped_hyperparameters": plan.unmapped,
    }  # fmt: skip
    meta = {"name": name or plan.name, "version": version,
            "description": description if description is not None else plan.description,
            "license": license or plan.license}
    recipe = {"kind": "import", "format": fmt.name, "import_key": key, "origin": origin}
    by_arch: dict[str, list[str]] = {}
    for mid in ids:
        by_arch.setdefault(plan.models[mid][0], []).append(mid)
    with tqdm(total=total, unit="checkpoint", disable=not progress, dynamic_ncols=True,
              desc=f"importing {fmt.name}") as bar:  # fmt: skip
        if len(by_arch) == 1:
            arch = next(iter(by_arch))
            check_resumable(out, key_file=out / BUILD_DIR / KEY_FILE, key=key,
                            same=lambda m: m.recipe.get("import_key") == key, job="import",
                            settings="import option")  # fmt: skip
            ensure_dir(out / BUILD_DIR)
            atomic_write_bytes(out / BUILD_DIR / KEY_FILE, key.encode())
            manifest = _write_part(out, fmt=fmt, plan=plan, arch=arch, ids=by_arch[arch],
                                   bar=bar, finalize={**meta, "recipe": recipe})
            shutil.rmtree(out / BUILD_DIR, ignore_errors=True)
            _drop_unpacked(out, archive)
            return manifest
        from modelzoo.hub.merge import merge_zoos

        work = out.parent / f".{out.name}.import"
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ZooError(f"{out} exists, is not empty and is not this import; choose an "
                           "empty or new --out")
        key_file = work / KEY_FILE
        if key_file.exists() and key_file.read_text() != key:
            raise ZooError(f"{work} holds an unfinished import with other options; choose "
                           f"another --out or delete {work} to start over")
        ensure_dir(work)
        atomic_write_bytes(key_file, key.encode())
        members = []
        for arch, arch_ids in sorted(by_arch.items()):
            dest = work / safe_name(arch)
            members.append(dest)
            if (dest / MANIFEST_NAME).exists():
                bar.update(sum(plan.models[m][1] for m in arch_ids))
                continue
            member = {**meta, "name": f"{meta['name']}/{arch}"}
            _write_part(dest, fmt=fmt, plan=plan, arch=arch, ids=arch_ids, bar=bar,
                        finalize={**member, "recipe": {"kind": "import", "format": fmt.name,
                                                       "member": arch, "import_key": key}})
            shutil.rmtree(dest / BUILD_DIR, ignore_errors=True)
    manifest = merge_zoos(zoos=members, out=out, name=meta["name"], version=version,
                          description=meta["description"], license=meta["license"],
                          verify=False, recipe=recipe)  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    _drop_unpacked(out, archive)
    return manifest


def _drop_unpacked(out: Path, archive: dict[str, str] | None) -> None:
    """Remove the folder an archive was unpacked into, once its zoo is finished."""
    if archive is not None:
        shutil.rmtree(out.parent / f".{out.name}.unpacked", ignore_errors=True)


def iter_formats() -> Iterator[ZooFormat]:
    """Every registered format (plugins included), by name."""
    for name in IMPORTERS.names():
        yield IMPORTERS.get(name)
