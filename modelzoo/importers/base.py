"""What a zoo format is, the registry of formats, and the safe readers every format uses.

A *format* (one module per public zoo layout in :mod:`modelzoo.importers`) reads a folder in
the exact layout the field publishes (Ray Tune trial folders, one big ``weights.npy``, ...)
and describes it as a :class:`FormatPlan`: the architectures (registered ones, with their
layer layout), the source dataset, every model with its split, and a function that streams
the models' checkpoints as :class:`ModelRows`. :func:`modelzoo.importers.import_zoo` does
the rest the same way for every format (hashing the files, resumable writing, flagging
diverged checkpoints as ``zoo build`` does, the manifest).

Formats register in :data:`IMPORTERS` like architectures and sources do, so a plugin package
adds one with a ``modelzoo.importers`` entry point whose module calls :func:`register_format`.

Untrusted input: every ``.pt``/``.pth`` file is read with ``torch.load(weights_only=True)``
(:func:`load_tensors`); one that would need pickle is refused, naming the file and the Python
objects it asks for. Files are found by walking the folder without following links out of it
(:func:`walk_files`), and each file's size is bounded before it is read.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from modelzoo.errors import ImportFormatError, UnsafeFileError
from modelzoo.registry import Registry
from modelzoo.storage.layout import LayerSpec
from modelzoo.storage.manifest import ArchitectureEntry, SourceEntry

#: Largest checkpoint file read (bytes); a larger one is refused before it is opened.
MAX_CHECKPOINT_BYTES = 2 << 30
#: Largest JSON / CSV metadata file read whole (bytes).
MAX_METADATA_BYTES = 256 << 20

#: Metric columns a format fills (``ggap`` is derived from train and test accuracy).
METRICS: tuple[str, ...] = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss",
                            "test_acc")


class ImportOptions(BaseModel):
    """What the user chose for an import (``zoo import`` options).

    Attributes:
        splits: split protocol (one of the format's ``split_protocols``).
        split_file: the published split file a protocol reads (e.g. NFN's CTC split CSV).
        source: name of the training dataset (default: guessed from the folder name).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    splits: str
    split_file: Path | None = None
    source: str | None = None


@dataclass
class ModelRows:
    """The checkpoints of one model, in the architecture's flat layout.

    Attributes:
        model_id: the model's id (its checkpoints share it).
        epochs: ``[k]`` checkpoint epochs (or steps), ascending.
        weights: ``[k, P]`` float32 flat vectors.
        metrics: name (:data:`METRICS`) -> ``[k]`` values; NaN where not recorded.
        recorded: ``[k]`` bool, whether the origin holds a metrics record for the checkpoint
            (a missing one marks the row ``incomplete``, never divergence).
        hparams: the model's hyperparameter columns (``None`` where the origin has none).
    """

    model_id: str
    epochs: np.ndarray
    weights: np.ndarray
    metrics: dict[str, np.ndarray]
    recorded: np.ndarray
    hparams: dict[str, Any]


@dataclass
class FormatPlan:
    """A foreign zoo as read from its metadata, before any weights are read.

    Attributes:
        name: default zoo name.
        description: one paragraph for the card.
        license: license id of the published zoo.
        architectures: architecture key -> entry (registry name, options, layout).
        sources: source key -> entry.
        models: model id -> (architecture key, number of checkpoints), every model once.
        splits: model id -> split.
        split_protocol: what the split protocol did (recorded in ``zoo.json``).
        rows: ``rows(model_ids)`` streams those models' :class:`ModelRows` in that order.
        flags: what the origin lacks or holds in excess (missing epochs, skipped files...),
            recorded in ``zoo.json`` and printed; never silently dropped.
        unmapped: hyperparameter keys of the origin with no column here.
        group_rows: checkpoints per resumable group (bounds memory per group).
        order: the order models are written in (default: sorted ids). A format whose
            weights sit in one big file gives file order, so a group reads one stretch of it.
    """

    name: str
    description: str
    license: str
    architectures: dict[str, ArchitectureEntry]
    sources: dict[str, SourceEntry]
    models: dict[str, tuple[str, int]]
    splits: dict[str, str]
    split_protocol: dict[str, Any]
    rows: Callable[[Sequence[str]], Iterator[ModelRows]]
    flags: dict[str, Any] = field(default_factory=dict)
    unmapped: list[str] = field(default_factory=list)
    group_rows: int = 4096
    order: list[str] | None = None


class ZooFormat(ABC):
    """One public zoo layout. Subclasses set the class attributes and implement two methods.

    Attributes:
        name: format name (``zoo import NAME``).
        description: one line for ``zoo formats``.
        split_protocols: protocol name -> one line; ``hash`` (a deterministic 70/15/15 by a
            hash of the model id) is always available.
        default_split: the protocol used when none is given.
        example: a ``zoo import`` command line for ``--help``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    split_protocols: ClassVar[dict[str, str]] = {}
    default_split: ClassVar[str] = "hash"
    example: ClassVar[str] = ""

    @abstractmethod
    def origin_files(self, root: Path) -> list[Path]:
        """The files whose bytes define the zoo (hashed into its origin), sorted."""

    @abstractmethod
    def plan(self, root: Path, options: ImportOptions) -> FormatPlan:
        """Read the metadata under ``root`` into a :class:`FormatPlan`."""


IMPORTERS: Registry[ZooFormat] = Registry("zoo format", group="modelzoo.importers")


def register_format(fmt: type[ZooFormat]) -> type[ZooFormat]:
    """Class decorator registering a format (an instance of it) under its ``name``."""
    IMPORTERS.add(fmt.name, fmt())
    return fmt


# ---------------------------------------------------------------------------------------------
# safe reading
# ---------------------------------------------------------------------------------------------


def inside(root: Path, path: Path) -> Path:
    """``path`` resolved, if it stays inside ``root`` (links included); else refuse it.

    Raises:
        UnsafeFileError: the path (or a link on it) leads out of ``root``.
    """
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise UnsafeFileError(
            f"{path} leads outside the folder being imported ({root}); refusing to read it. "
            "Copy the zoo into one folder without links that point out of it"
        )
    return real


def walk_files(root: Path, keep: Callable[[Path], bool] = lambda p: True) -> list[Path]:
    """Every regular file under ``root`` that ``keep`` accepts, sorted by relative path.

    The walk does not follow directory links; a file link is kept only if it resolves
    inside ``root``.

    Raises:
        UnsafeFileError: a kept file links outside ``root``.
    """
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for fname in filenames:
            p = Path(dirpath) / fname
            if not keep(p):
                continue
            if p.is_symlink():
                inside(root, p)
            if p.is_file():
                out.append(p)
    return sorted(out, key=lambda p: p.relative_to(root).as_posix())


def check_size(path: Path, limit: int, what: str) -> None:
    """Refuse a file larger than ``limit`` bytes before reading it."""
    size = path.stat().st_size
    if size > limit:
        raise ImportFormatError(
            f"{path} is {size:,} bytes, more than the {limit:,} a {what} may have; is it the "
            "right file?"
        )


def load_tensors(path: Path, *, max_bytes: int = MAX_CHECKPOINT_BYTES) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; never runs code from the file.

    Raises:
        UnsafeFileError: the file needs pickle (it stores Python objects other than tensors
            and plain containers); the message names the file and those objects.
        ImportFormatError: not a torch file, or too large.
    """
    check_size(path, max_bytes, "checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        try:
            needs = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
        except Exception:  # noqa: BLE001  (a legacy or broken file: keep the torch message)
            needs = []
        what = f" (it asks for {', '.join(needs)})" if needs else ""
        raise UnsafeFileError(
            f"{path} needs pickle to load{what}; the toolkit never unpickles a foreign file. "
            "In an environment you trust, load it and save only tensors and plain "
            "dicts/lists/numbers (e.g. torch.save({k: v for k, v in obj.items() if ...}))"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ImportFormatError(f"{path} is not a readable torch file: {e}") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file of bounded size.

    Raises:
        ImportFormatError: too large or not JSON.
    """
    check_size(path, MAX_METADATA_BYTES, "metadata file")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImportFormatError(f"{path} is not valid JSON: {e}") from None


def tensor_dict(obj: Any, path: Path, what: str = "state dict") -> dict[str, torch.Tensor]:
    """``obj`` as a ``{name: tensor}`` mapping (checked), in its stored order.

    Raises:
        ImportFormatError: not a mapping of names to tensors.
    """
    if not isinstance(obj, Mapping) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise ImportFormatError(f"{path}: expected a {what} (names -> tensors), got "
                                f"{type(obj).__name__}")
    return dict(obj)


# ---------------------------------------------------------------------------------------------
# state dicts onto registered layouts
# ---------------------------------------------------------------------------------------------


def _modules(names: Iterable[str]) -> list[tuple[str, list[str]]]:
    """Group tensor names by module (``module_list.4.weight`` -> ``module_list.4``), in order."""
    out: list[tuple[str, list[str]]] = []
    for name in names:
        module, _, leaf = name.rpartition(".")
        if out and out[-1][0] == module:
            out[-1][1].append(leaf)
        else:
            out.append((module, [leaf]))
    return out


def map_state_dict(
    state: Mapping[str, torch.Tensor], layout: Sequence[LayerSpec], where: Path | str
) -> np.ndarray:
    """Flatten a foreign state dict into ``layout`` order, matching module by module.

    Keys are read, not assumed: the floating-point tensors of ``state`` are grouped by module
    in stored order and the i-th module is paired with the i-th module of the layout, whose
    tensor names (``weight``, ``bias``, ``running_mean``...) and shapes must agree. Modules
    without tensors (dropout, activations) have no keys, so a model whose dropout modules
    shift the ``module_list.N`` indices maps like one without them; non-float entries (e.g.
    BatchNorm's ``num_batches_tracked``) are skipped as the layout skips them.

    Raises:
        ImportFormatError: a module, a tensor name or a shape differs (names both sides).
    """
    floats = [k for k, v in state.items() if v.is_floating_point()]
    theirs, ours = _modules(floats), _modules(s.name for s in layout)
    if len(theirs) != len(ours):
        raise ImportFormatError(
            f"{where}: {len(theirs)} modules with tensors ({', '.join(m for m, _ in theirs)}) "
            f"but the architecture has {len(ours)} ({', '.join(m for m, _ in ours)})"
        )
    specs = {s.name: s for s in layout}
    parts: list[np.ndarray] = []
    for (tm, tleaves), (om, oleaves) in zip(theirs, ours):
        if tleaves != oleaves:
            raise ImportFormatError(f"{where}: module {tm} holds {tleaves}, the architecture's "
                                    f"{om} holds {oleaves}")
        for leaf in tleaves:
            t, spec = state[f"{tm}.{leaf}" if tm else leaf], specs[f"{om}.{leaf}" if om else leaf]
            if tuple(t.shape) != spec.shape:
                raise ImportFormatError(f"{where}: {tm}.{leaf} has shape {tuple(t.shape)}, the "
                                        f"architecture's {spec.name} {spec.shape}")
            parts.append(t.detach().to(torch.float32).reshape(-1).numpy())
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def number(value: Any) -> float:
    """A metric value as float (NaN for missing / non-numeric; JSON's NaN and inf kept)."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def guess_source(root: Path, known: Mapping[str, str]) -> str | None:
    """The first ``known`` key found in the folder's name (lower case), mapped to its value."""
    text = root.resolve().name.lower()
    for needle, source in known.items():
        if needle in text:
            return source
    return None
