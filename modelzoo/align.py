"""``align_zoo``: bring every model of a zoo into one permutation frame (weight matching).

Hidden units of a network can be permuted without changing its function, so two models that
compute similar functions may store their weights in unrelated orders. Aligning a zoo picks one
reference model and permutes every other model's hidden units to match it as closely as
possible (git re-basin weight matching, :func:`modelzoo.permutation.weight_matching`), as the
reference SANE implementation does before training on canonical views.

Each model gets **one** permutation, computed from its checkpoint at one epoch (by default the
last epoch all models share) against the reference's checkpoint at that epoch, and applied to
all its checkpoints, so a model's trajectory stays coherent. Every model keeps its function,
id, split, hyperparameters and metrics; only the order of its weights changes.

The aligned zoo is a new folder, written with :class:`~modelzoo.storage.writer.ZooWriter` (one
group per input shard, atomic shard writes, ``zoo.json`` last); an interrupted run resumes
where it stopped when started again with the same arguments. The manifest's ``recipe`` is the
input's recipe plus an ``alignment`` record (method, reference, epoch, source zoo, distances).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from tqdm.auto import tqdm

import modelzoo
from modelzoo.errors import CorruptZooError, StorageError, ZooError
from modelzoo.permutation import (
    PermutationSpec,
    architecture_permutation_spec,
    identity_permutations,
    permutation_index,
    weight_matching,
)
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.storage.manifest import Manifest, read_manifest
from modelzoo.storage.reader import verify_zoo
from modelzoo.storage.schema import STATUS_OK
from modelzoo.storage.writer import BUILD_DIR, ZooWriter, check_resumable

__all__ = ["METHOD", "Alignment", "align_zoo", "choose_reference"]

#: Name of the alignment method recorded in the manifest.
METHOD = "weight_matching"
_KEY_FILE = "align.json"
_META = ["model_id", "epoch", "split", "val_acc", "status"]


@dataclass(frozen=True)
class Alignment:
    """The permutations of an aligned zoo.

    Attributes:
        reference: model id every model is matched to.
        epoch: checkpoint epoch the permutations were computed from.
        spec: permutation structure of the architecture.
        permutations: model id -> one unit permutation per hidden layer.
        nonfinite: models with NaN/inf weights at ``epoch`` (kept unpermuted).
        distance_before: mean L2 distance to the reference at ``epoch`` before alignment.
        distance_after: the same after alignment.
    """

    reference: str
    epoch: int
    spec: PermutationSpec
    permutations: dict[str, list[torch.Tensor]]
    nonfinite: tuple[str, ...]
    distance_before: float
    distance_after: float

    @property
    def moved(self) -> list[str]:
        """Models whose permutation is not the identity."""
        return sorted(
            mid
            for mid, perms in self.permutations.items()
            if any(not torch.equal(p, torch.arange(len(p))) for p in perms)
        )


def _zoo_tables(root: Path, manifest: Manifest, columns: list[str] | None = None,
                files: list[int] | None = None) -> Iterator[tuple[int, pa.Table]]:
    """``(file index, table)`` for every record batch of the zoo's shards."""
    from modelzoo.hub.stream import iter_zoo_batches

    for fi, f in enumerate(manifest.files):
        if f.num_rows == 0 or (files is not None and fi not in files):
            continue
        one = manifest.model_copy(update={"files": [f]})
        for _f, batch in iter_zoo_batches(root, one, columns=columns):
            yield fi, pa.Table.from_batches([batch])


def _weights_matrix(table: pa.Table, n_params: int) -> np.ndarray:
    """The weights column of ``table`` as a float32 ``[rows, P]`` array (a copy)."""
    col = table.column("weights").combine_chunks()
    values = col.flatten().to_numpy(zero_copy_only=False)
    if values.size != len(table) * n_params:
        raise CorruptZooError(
            f"weight rows do not all have the architecture's {n_params} values"
        )
    return np.array(values, dtype=np.float32).reshape(len(table), n_params)


def _metadata(root: Path, manifest: Manifest) -> pa.Table:
    """The zoo's rows without weights (small: a few columns per checkpoint)."""
    tables = [t for _fi, t in _zoo_tables(root, manifest, _META)]
    if not tables:
        raise ZooError(f"{root} has no rows to align")
    return pa.concat_tables(tables)


def _common_epochs(meta: pa.Table) -> list[int]:
    per = meta.group_by("model_id").aggregate([("epoch", "distinct")])
    sets = [set(e) for e in per.column("epoch_distinct").to_pylist()]
    return sorted(set.intersection(*sets)) if sets else []


def choose_reference(manifest: Manifest, meta: pa.Table, *, epoch: int) -> str:
    """The ``auto`` reference: the train model with the median validation accuracy.

    Among train-split models whose status is ``ok`` and whose ``val_acc`` at ``epoch`` is
    finite, sorted by ``(val_acc, model_id)``, the one at position ``(n - 1) // 2``: a typical
    well-behaved model (not an outlier), chosen without looking at validation/test models.

    Args:
        manifest: the zoo's manifest.
        meta: rows with at least ``model_id``, ``epoch``, ``split`` and ``val_acc``.
        epoch: checkpoint epoch whose ``val_acc`` is compared.

    Raises:
        ZooError: the train split has no such model.
    """
    at = meta.filter(pc.and_(pc.equal(meta.column("epoch"), epoch),
                             pc.equal(meta.column("split"), "train")))  # fmt: skip
    cands = sorted(
        (float(acc), mid)
        for mid, acc in zip(at.column("model_id").to_pylist(), at.column("val_acc").to_pylist(),
                            strict=True)
        if manifest.models[mid].status == STATUS_OK and acc is not None and math.isfinite(acc)
    )
    if not cands:
        raise ZooError(
            f"no train-split model with status ok and a finite val_acc at epoch {epoch} to use "
            "as the reference; give one with --reference MODEL_ID"
        )
    return cands[(len(cands) - 1) // 2][1]


def _resolve(
    manifest: Manifest, meta: pa.Table, reference: str, epoch: int | str
) -> tuple[str, int]:
    common = _common_epochs(meta)
    if not common:
        raise ZooError("the models of this zoo share no checkpoint epoch to align them at")
    if epoch == "last":
        e = common[-1]
    else:
        try:
            e = int(epoch)
        except (TypeError, ValueError):
            raise ZooError(f"epoch must be an integer or 'last', not {epoch!r}") from None
        if e not in common:
            raise ZooError(
                f"not every model has a checkpoint at epoch {e}; choose --epoch from the "
                f"epochs all models share: {common}"
            )
    if reference == "auto":
        return choose_reference(manifest, meta, epoch=e), e
    if reference not in manifest.models:
        import difflib

        close = difflib.get_close_matches(reference, list(manifest.models), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ZooError(f"reference model {reference!r} is not in the zoo.{hint} "
                       "Use --reference auto or a model id from the zoo")  # fmt: skip
    split = manifest.models[reference].split
    if split != "train":
        raise ZooError(
            f"reference model {reference!r} is in the {split} split: aligning the training "
            f"models to it would let {split} weights shape the training data; choose a train "
            "model (or --reference auto)"
        )
    return reference, e


def compute_alignment(
    *,
    zoo: str | Path,
    reference: str = "auto",
    epoch: int | Literal["last"] = "last",
    max_iter: int = 100,
    manifest: Manifest | None = None,
    progress: bool = False,
) -> Alignment:
    """Compute one permutation per model of a zoo (without writing anything).

    Args:
        zoo: zoo directory (one architecture).
        reference: ``"auto"`` (see :func:`choose_reference`) or a train model id.
        epoch: checkpoint epoch to match at; ``"last"``: the last epoch all models share.
        max_iter: maximum weight-matching passes per model.
        manifest: the zoo's manifest if already read.
        progress: show a progress bar.

    Raises:
        NotPermutableError: the architecture has no function-preserving permutation.
        ZooError: several architectures, an unknown/non-train reference, a missing epoch.
    """
    root = Path(zoo)
    manifest = manifest or read_manifest(root)
    if len(manifest.architectures) != 1:
        raise ZooError(
            f"{root} holds {len(manifest.architectures)} architectures "
            f"({', '.join(manifest.architectures)}); align one at a time: "
            "`zoo align ZOO/data/<config> --out ...` for each config, then `zoo merge` them"
        )
    (entry,) = manifest.architectures.values()
    spec = architecture_permutation_spec(entry.name, entry.layout)
    ref_id, e = _resolve(manifest, _metadata(root, manifest), reference, epoch)
    ref_w = None
    for _fi, t in _zoo_tables(root, manifest):
        hit = [i for i, (m, ep) in enumerate(zip(t.column("model_id").to_pylist(),
                                                 t.column("epoch").to_pylist(), strict=True))
               if m == ref_id and ep == e]  # fmt: skip
        if hit:
            ref_w = torch.from_numpy(_weights_matrix(t.take(pa.array(hit[:1])), spec.n_params)[0])
            break
    if ref_w is None:  # pragma: no cover - _resolve checked that the checkpoint exists
        raise CorruptZooError(f"checkpoint of {ref_id} at epoch {e} not found")
    if not torch.isfinite(ref_w).all():
        raise ZooError(f"reference {ref_id} has NaN/inf weights at epoch {e}; choose another")
    perms: dict[str, list[torch.Tensor]] = {}
    nonfinite: list[str] = []
    before: list[float] = []
    after: list[float] = []
    bar = tqdm(total=len(manifest.models), disable=not progress, unit="model",
               desc=f"matching to {ref_id}", dynamic_ncols=True)  # fmt: skip
    for _fi, t in _zoo_tables(root, manifest):
        keep = [i for i, ep in enumerate(t.column("epoch").to_pylist()) if ep == e]
        if not keep:
            continue
        t = t.take(pa.array(keep))
        w = torch.from_numpy(_weights_matrix(t, spec.n_params))
        for mid, vec in zip(t.column("model_id").to_pylist(), w, strict=True):
            finite = bool(torch.isfinite(vec).all())
            if mid == ref_id or not finite:
                perms[mid] = identity_permutations(spec)
            else:
                perms[mid] = weight_matching(spec, vec, ref_w, max_iter=max_iter)
            if not finite:
                nonfinite.append(mid)
            else:
                aligned = vec[permutation_index(spec, perms[mid])]
                before.append(float((vec.double() - ref_w.double()).norm()))
                after.append(float((aligned.double() - ref_w.double()).norm()))
            bar.update(1)
    bar.close()
    return Alignment(
        reference=ref_id, epoch=e, spec=spec, permutations=perms, nonfinite=tuple(nonfinite),
        distance_before=float(np.mean(before)) if before else 0.0,
        distance_after=float(np.mean(after)) if after else 0.0,
    )  # fmt: skip


def _job_key(manifest: Manifest, **args: object) -> str:
    """What identifies an alignment run (an interrupted run resumes only with the same key)."""
    return json.dumps({"input": manifest.content_hash, "method": METHOD, **args},
                      sort_keys=True)  # fmt: skip


def _check_out(root: Path, zoo: Path, key: str) -> Manifest | None:
    """Return the manifest of a finished identical alignment at ``root``, None to (re)start."""
    if root.exists() and not root.is_dir():
        raise StorageError(f"cannot write {root}: it exists and is not a directory")
    if root.resolve() == zoo.resolve():
        raise ZooError("--out must be a new folder: the input zoo is never modified")
    return check_resumable(
        root, key_file=root / BUILD_DIR / _KEY_FILE, key=key, job="alignment",
        settings="argument",
        same=lambda man: man.recipe.get("alignment", {}).get("job") == json.loads(key))


def align_zoo(
    *,
    zoo: str | Path,
    out: str | Path,
    reference: str = "auto",
    epoch: int | Literal["last"] = "last",
    max_iter: int = 100,
    name: str | None = None,
    version: str | None = None,
    verify: bool = True,
    progress: bool = False,
) -> Manifest:
    """Write a copy of ``zoo`` at ``out`` with every model aligned to one reference model.

    Every checkpoint of a model is permuted by the model's one permutation (weight matching
    of its checkpoint at ``epoch`` to the reference's checkpoint at ``epoch``). Functions,
    ids, splits, hyperparameters and metrics are unchanged; the reference model is unchanged.
    The input zoo is never modified. Rerunning with the same arguments resumes an
    interrupted run, or returns the finished zoo.

    Args:
        zoo: input zoo directory (one permutable architecture).
        out: output directory (new or empty; or an interrupted run of the same alignment).
        reference: ``"auto"``: the train model with the median validation accuracy at
            ``epoch`` (ties by model id); or the id of a train-split model.
        epoch: checkpoint epoch the permutations are computed at; ``"last"``: the last epoch
            all models share.
        max_iter: maximum weight-matching passes over the layers per model.
        name: name of the aligned zoo (default ``<input name>-aligned``).
        version: its version (default: the input's).
        verify: check the input's shard checksums first.
        progress: show progress bars.

    Returns:
        The manifest of the aligned zoo; ``manifest.recipe["alignment"]`` records the method,
        reference, epoch, source zoo and mean L2 distances to the reference before/after.

    Raises:
        NotPermutableError: the architecture cannot be permuted (e.g. ResNets).
        ZooError: several architectures in the zoo, a bad reference or epoch, a used ``out``.
        CorruptZooError: the input zoo does not match its manifest.
    """
    from modelzoo.hub.versioning import check_version

    if version is not None:
        version = check_version(version)
    src, root = Path(zoo), Path(out)
    manifest = verify_zoo(src) if verify else read_manifest(src)
    key = _job_key(manifest, reference=reference, epoch=epoch, max_iter=max_iter, name=name,
                   version=version)
    done = _check_out(root, src, key)
    if done is not None:
        return done
    al = compute_alignment(zoo=src, reference=reference, epoch=epoch, max_iter=max_iter,
                           manifest=manifest, progress=progress)  # fmt: skip
    arch_key = next(iter(manifest.architectures))
    ensure_dir(root / BUILD_DIR)
    atomic_write_bytes(root / BUILD_DIR / _KEY_FILE, key.encode())
    schema = next(t.schema for _fi, t in _zoo_tables(src, manifest))
    writer = ZooWriter(root, schema)
    finished = writer.finished_groups()
    index_cache: dict[str, torch.Tensor] = {}

    def index_of(mid: str) -> torch.Tensor:
        if mid not in index_cache:
            if len(index_cache) > 4096:
                index_cache.clear()
            index_cache[mid] = permutation_index(al.spec, al.permutations[mid])
        return index_cache[mid]

    todo = [fi for fi, f in enumerate(manifest.files) if f.num_rows and fi not in finished]
    bar = tqdm(total=sum(manifest.files[fi].num_rows for fi in todo), disable=not progress,
               unit="checkpoint", desc="writing aligned zoo", dynamic_ncols=True)  # fmt: skip
    for fi in todo:
        gw = writer.open_group(fi)
        try:
            for _fi, t in _zoo_tables(src, manifest, files=[fi]):
                w = torch.from_numpy(_weights_matrix(t, al.spec.n_params))
                ids, inverse = np.unique(
                    np.asarray(t.column("model_id").to_pylist(), dtype=object),
                    return_inverse=True,
                )
                for k, mid in enumerate(ids):
                    if mid not in al.permutations:
                        raise CorruptZooError(f"model {mid} has no checkpoint at epoch {al.epoch}")
                    rows = torch.from_numpy(np.flatnonzero(inverse == k))
                    w[rows] = w[rows][:, index_of(mid)]
                flat = pa.array(w.numpy().reshape(-1), pa.float32())
                col = pa.FixedSizeListArray.from_arrays(flat, al.spec.n_params)
                idx = t.schema.get_field_index("weights")
                t = t.set_column(idx, t.schema.field("weights"), col.cast(t.schema.field(
                    "weights").type))
                gw.write(t)
                bar.update(len(t))
        except BaseException:
            gw.abort()
            raise
        gw.commit()
    bar.close()
    src_ref = {"name": manifest.name, "version": manifest.version,
               "content_hash": manifest.content_hash}  # fmt: skip
    alignment = {
        "method": METHOD,
        "reference": al.reference,
        "reference_rule": "auto: train model with the median val_acc at the epoch"
        if reference == "auto" else "given",
        "epoch": al.epoch,
        "architecture": arch_key,
        "models_moved": len(al.moved),
        "models_nonfinite": len(al.nonfinite),
        "mean_l2_to_reference_before": round(al.distance_before, 6),
        "mean_l2_to_reference_after": round(al.distance_after, 6),
        "source": src_ref,
        "job": json.loads(key),
    }
    recipe = {**manifest.recipe, "alignment": alignment}
    result = writer.finalize(
        name=name or f"{manifest.name}-aligned",
        version=version or manifest.version,
        recipe=recipe,
        architectures=manifest.architectures,
        sources=manifest.sources,
        toolkit_version=modelzoo.__version__,
        description=manifest.description,
        license=manifest.license,
    )
    shutil.rmtree(root / BUILD_DIR, ignore_errors=True)
    return result
