"""Split protocols of imported zoos: always by model, always deterministic.

``hash``
    The toolkit's own rule (``modelzoo.builder.recipe.SplitSpec``): 70/15/15 by a hash of
    the model id, independent of listing order and stable when models are added.

``modelzoos`` (Schürholt et al. 2022, ``ModelDatasetBase``)
    Every sub-folder of the zoo folder (as the original lists them: ``is_dir()`` entries,
    so a trial that crashed before its first checkpoint, or any other folder, takes its
    place in the shuffle and shifts the cuts), shuffled with Python's ``random`` seeded 42,
    cut at ``int(.7 n)`` and ``int(.7 n) + int(.15 n)``. The original shuffles the list
    ``Path.iterdir()`` returns, whose order is the file system's (it differs between
    machines, so the published split is not reproducible from the files); here the list is
    the folder names *sorted*, so the split is the same everywhere and equals the original
    wherever its listing was sorted. The original also drops checkpoints with NaN or
    thresholded weights *after* splitting; here every model keeps its split and such
    checkpoints are flagged, not dropped.

``nfn`` (Zhou et al. 2023, ``experiments/data_utils.py``; also Neural Graphs, ScaleGMN)
    The CTC rows reordered by the published split file (read as NFN reads it: every line an
    integer, so its first line, a pandas header ``0``, is row 0 again), filtered to step 86;
    the second half (from ``int(.5 n)``) is test, the first half is shuffled with
    ``random.Random(0)`` and cut at ``int(.8 m)`` into train and validation. A model takes
    the split of its step-86 checkpoint. Models without one (NFN never sees them) go to
    train/validation by hash, never test, so the test models are exactly NFN's.

``neural-graphs`` (Kofinas et al. 2024, ``cnn_park_splits.json``)
    CNN Wild Park: a model (trial folder) takes the split its checkpoints are listed under.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelzoo.errors import ImportFormatError
from modelzoo.storage.schema import SPLITS

_NAMES = {"train": "train", "val": "validation", "validation": "validation", "test": "test"}


def hash_split(model_id: str, ratios: tuple[float, float] = (0.7, 0.15), seed: int = 0) -> str:
    """The ``hash`` protocol for one model (the rule of ``SplitSpec.assign``)."""
    h = hashlib.sha256(f"{seed}:{model_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    if u < ratios[0]:
        return SPLITS[0]
    return SPLITS[1] if u < ratios[0] + ratios[1] else SPLITS[2]


def hash_splits(model_ids: Iterable[str]) -> dict[str, str]:
    """``hash`` for every model."""
    return {m: hash_split(m) for m in model_ids}


def modelzoos_splits(folders: Mapping[str, str], listing: Iterable[str] | None = None,
                     seed: int = 42,
                     ratios: tuple[float, float, float] = (0.7, 0.15, 0.15)) -> dict[str, str]:
    """The ``modelzoos`` protocol.

    Args:
        folders: model id -> the name of its trial folder.
        listing: every sub-folder name of the zoo folder, the list the original shuffles
            (default: the models' folders only); must hold every folder of ``folders``.
        seed: the seed of ``random.seed`` in the original.
        ratios: train / validation / test fractions.

    Raises:
        ImportFormatError: two models share a folder, or a model's folder is not listed.
    """
    used = set(folders.values())
    if len(used) != len(folders):
        raise ImportFormatError("two models share a trial folder name")
    names = sorted(used if listing is None else set(listing))
    missing = sorted(used.difference(names))
    if missing:
        raise ImportFormatError(f"trial folder {missing[0]} is not in the zoo folder's listing")
    random.Random(seed).shuffle(names)
    n = len(names)
    idx1 = int(ratios[0] * n)
    idx2 = idx1 + int(ratios[1] * n)
    split_of = {name: ("train" if i < idx1 else "validation" if i < idx2 else "test")
                for i, name in enumerate(names)}
    return {mid: split_of[name] for mid, name in folders.items()}


def read_row_order(path: Path, rows: int) -> np.ndarray:
    """A split file of row indices, one integer per line, read as NFN reads it.

    Raises:
        ImportFormatError: a line is not an integer, or an index is out of range.
    """
    from modelzoo.importers.base import MAX_METADATA_BYTES, check_size

    check_size(path, MAX_METADATA_BYTES, "split file")
    try:
        order = np.loadtxt(path, dtype=np.int64, ndmin=1)
    except ValueError as e:
        raise ImportFormatError(f"{path} is not a split file of row indices (one integer per "
                                f"line): {e}") from None
    bad = order[(order < 0) | (order >= rows)]
    if len(bad):
        raise ImportFormatError(f"{path} lists row {int(bad[0])}, but the zoo has {rows} rows: "
                                "is it the split file of this zoo?")
    return order


def nfn_splits(
    order: np.ndarray, final: np.ndarray, model_of_row: np.ndarray, model_ids: Sequence[str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """The ``nfn`` protocol.

    Args:
        order: row indices in split-file order (:func:`read_row_order`).
        final: ``[rows]`` bool, the row is a step-86 checkpoint.
        model_of_row: ``[rows]`` index into ``model_ids`` of each row's model.
        model_ids: the models.

    Returns:
        Model id -> split, and what happened (counts, for the manifest).
    """
    seq = order[final[order]]
    n = len(seq)
    test_point = int(0.5 * n)
    trainval = list(range(test_point))
    val_point = int(0.8 * len(trainval))
    random.Random(0).shuffle(trainval)
    split_at = np.empty(n, dtype=object)
    split_at[test_point:] = "test"
    split_at[trainval[:val_point]] = "train"
    split_at[trainval[val_point:]] = "validation"
    out: dict[str, str] = {}
    conflicts = 0
    for pos, row in enumerate(seq.tolist()):
        mid = model_ids[int(model_of_row[row])]
        if mid in out:
            conflicts += out[mid] != split_at[pos]
            continue  # a row listed twice (or two step-86 rows): the first position decides
        out[mid] = str(split_at[pos])
    unseen = [m for m in model_ids if m not in out]
    for m in unseen:
        out[m] = "train" if hash_split(m, (0.8, 0.2)) == "train" else "validation"
    info = {"final_rows": n, "test_from_position": test_point, "val_from_position": val_point,
            "rows_listed": int(len(order)), "rows_listed_twice": int(len(order) -
                                                                     len(np.unique(order))),
            "models_with_conflicting_positions": int(conflicts),
            "models_without_step_86_to_train_validation": len(unseen)}
    return out, info


def neural_graphs_splits(
    split_json: Mapping[str, Any], trial_of_model: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """The ``neural-graphs`` protocol (``cnn_park_splits.json``: split -> ``path`` list).

    Returns:
        Model id -> split (``hash`` for models the file does not list), and counts.

    Raises:
        ImportFormatError: the file is malformed, or lists one trial under two splits.
    """
    split_of_trial: dict[str, str] = {}
    for key, entry in split_json.items():
        if key not in _NAMES or not isinstance(entry, Mapping) or \
                not isinstance(entry.get("path"), list):
            raise ImportFormatError(f"split file entry {key!r} is not {{'path': [...]}} under "
                                    "train/val/test")
        for p in entry["path"]:
            parts = Path(str(p)).parts
            if len(parts) < 3:
                raise ImportFormatError(f"split file path {p!r} is not <trial>/<ckpt>/<file>")
            trial = parts[-3]
            old = split_of_trial.setdefault(trial, _NAMES[key])
            if old != _NAMES[key]:
                raise ImportFormatError(f"split file lists trial {trial} under {old} and {key}")
    out, unlisted = {}, 0
    for mid, trial in trial_of_model.items():
        if trial in split_of_trial:
            out[mid] = split_of_trial[trial]
        else:
            out[mid] = hash_split(mid)
            unlisted += 1
    return out, {"trials_listed": len(split_of_trial), "models_not_listed_hash_split": unlisted}
