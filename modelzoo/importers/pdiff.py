"""``pdiff``: the checkpoints p-diff collects to train on ("Neural Network Diffusion", Wang et
al. 2024; NUS-HPC-AI-Lab/Neural-Network-Parameter-Diffusion).

Layout (``dataset/<task>/checkpoint/`` after p-diff's ``finetune.py``)::

    <task>/checkpoint/0012_acc0.7673_seed0040_cifar100_resnet18.pth   a dict name -> float32
                                                                       tensor: the parameter
                                                                       subset p-diff trains
                                                                       (e.g. the last two
                                                                       BatchNorm layers)

The accuracy is in the file name (``acc0.7673``: test accuracy as a fraction), with the save
index, the seed and the task tag. Each (tag, seed) is one model, one row per file at epoch =
the save index, ordered by it (p-diff itself lists the folder with ``os.listdir``, whose order
is the file system's). A row's weights are the subset only, in stored order: the zoo's
architecture entry (name ``partial``, not a registered architecture: it cannot be built
alone) records the tensors present as its layout, ``running_mean`` / ``running_var`` as
buffers; ``num_batches_tracked`` (saved as float32) is skipped, as p-diff skips it. Files
whose names do not follow the pattern are listed in the manifest's flags. ``hash`` splits.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from modelzoo.errors import ImportFormatError
from modelzoo.importers.base import (
    FormatPlan,
    ImportOptions,
    ModelRows,
    ZooFormat,
    guess_source,
    inside,
    load_tensors,
    register_format,
    tensor_dict,
)
from modelzoo.importers.splits import hash_splits
from modelzoo.storage.layout import LayerSpec
from modelzoo.storage.manifest import ArchitectureEntry, SourceEntry

NAME = re.compile(r"(?P<index>\d+)_acc(?P<acc>\d+(?:\.\d+)?)_seed(?P<seed>\d+)_(?P<tag>.+)\.pth")
SKIP = ("num_batches_tracked",)
BUFFERS = ("running_mean", "running_var")
SOURCES = {"cifar100": "cifar100", "cifar10": "cifar10", "in1k": "imagenet",
           "imagenet": "imagenet", "mnist": "mnist"}


def _folder(root: Path) -> Path:
    return root / "checkpoint" if (root / "checkpoint").is_dir() else root


def _files(root: Path) -> tuple[list[tuple[Path, re.Match[str]]], list[str]]:
    folder = _folder(root)
    found, skipped = [], []
    for p in sorted(folder.iterdir(), key=lambda p: p.name):
        m = NAME.fullmatch(p.name) if p.is_file() else None
        if m is None:
            skipped.append(p.name + ("/" if p.is_dir() else ""))
        else:
            found.append((inside(root, p), m))
    return found, skipped


def _layout(state: dict[str, Any]) -> list[LayerSpec]:
    specs, offset = [], 0
    for name, t in state.items():
        if name.endswith(SKIP) or not t.is_floating_point():
            continue
        specs.append(LayerSpec(name=name, shape=tuple(t.shape), offset=offset,
                               kind="buffer" if name.endswith(BUFFERS) else "param"))
        offset += t.numel()
    return specs


@register_format
class PDiffFormat(ZooFormat):
    """p-diff's collected checkpoints (see the module docstring)."""

    name = "pdiff"
    description = ("p-diff (Wang et al. 2024): a folder of <index>_acc<acc>_seed<seed>_<tag>.pth "
                   "files holding a parameter subset")
    example = "zoo import pdiff dataset/cifar100_resnet18 --out zoos/pdiff"

    def origin_files(self, root: Path) -> list[Path]:  # noqa: D102
        return [p for p, _ in _files(root)[0]]

    def plan(self, root: Path, options: ImportOptions) -> FormatPlan:  # noqa: D102
        found, skipped = _files(root)
        groups: dict[tuple[str, int], list[tuple[int, float, Path]]] = {}
        for p, m in found:
            groups.setdefault((m["tag"], int(m["seed"])), []).append(
                (int(m["index"]), float(m["acc"]), p))
        archs: dict[str, ArchitectureEntry] = {}
        models: dict[str, tuple[str, int]] = {}
        info: dict[str, tuple[str, list[tuple[int, float, Path]], int]] = {}
        source = options.source
        for (tag, seed), items in sorted(groups.items()):
            items.sort()
            if len({i for i, _, _ in items}) != len(items):
                raise ImportFormatError(f"{_folder(root)}: two files of {tag} seed {seed} have "
                                        "the same save index")
            key = f"partial@{tag}"
            if key not in archs:
                layout = _layout(tensor_dict(load_tensors(items[0][2]), items[0][2]))
                if not layout:
                    raise ImportFormatError(f"{items[0][2]} holds no float tensors")
                archs[key] = ArchitectureEntry(
                    name="partial", kwargs={"of": tag, "skipped": list(SKIP)},
                    n_params=sum(s.numel for s in layout), layout=layout)
            src = source or guess_source(Path(tag), SOURCES) or guess_source(root, SOURCES) \
                or "unknown"
            source = source or src
            mid = f"pdiff-{src}-{hashlib.sha256(f'{tag}:{seed}'.encode()).hexdigest()[:12]}"
            models[mid] = (key, len(items))
            info[mid] = (key, items, seed)
        source = source or "unknown"
        flags = {"skipped_files": skipped} if skipped else {}

        def rows(ids: Sequence[str]) -> Iterator[ModelRows]:
            for mid in ids:
                key, items, seed = info[mid]
                layout = archs[key].layout
                vecs = []
                for _, _, p in items:
                    state = tensor_dict(load_tensors(p), p)
                    if _layout(state) != layout:
                        raise ImportFormatError(f"{p} holds other tensors or shapes than "
                                                f"{items[0][2].name}")
                    vecs.append(np.concatenate([state[s.name].to(torch.float32).reshape(-1)
                                                .numpy() for s in layout]))
                yield ModelRows(mid, np.array([i for i, _, _ in items]), np.stack(vecs),
                                {"test_acc": np.array([a for _, a, _ in items])},
                                np.ones(len(items), bool),
                                {"seed": seed, "train_fraction": 1.0})

        return FormatPlan(
            name=f"pdiff-{source}",
            description="Checkpoints collected by p-diff (Wang et al. 2024, 'Neural Network "
            "Diffusion'): a parameter subset per checkpoint, imported with `zoo import pdiff`.",
            license="unknown", architectures=archs,
            sources={source: SourceEntry(name=source, fingerprint="unknown: not in the zoo files",
                                         num_classes=0, in_shape=())},
            models=models, splits=hash_splits(models), split_protocol={}, rows=rows, flags=flags,
            group_rows=4096)
