"""``wildpark``: CNN Wild Park (Kofinas et al., ICLR 2024, "Graph Neural Networks for Learning
Equivariant Representations of Neural Networks"), a zoo of CNNs that differ in depth, widths,
kernel sizes, per-layer activations and skip connections.

Layout (written by Ray Tune; the folder Neural Graphs globs as ``cifar10_zooV2/*/*/``)::

    <zoo>/<trial>/<checkpoint_N>/checkpoint.pt   a dict: model (state dict), config (the CNN's
                                                 n_layers, channels, kernel_size, stride,
                                                 padding, residual, activation), optimizer,
                                                 and Ray's state: iteration, last_result
                                                 (test/acc, test/loss, config), ...

How it is read: each trial is one model; each checkpoint one row at epoch ``iteration``
(else the folder's number), with ``test/acc`` and ``test/loss`` of ``last_result``. Every
distinct CNN is its own architecture ``park_cnn@<hash>`` (registered ``park_cnn`` with the
model's options), so the zoo is heterogeneous: one ``datasets`` config per architecture plus
``all`` (:func:`modelzoo.hub.merge.merge_zoos`). Hyperparameters come from
``last_result.config`` where present (``seed``, ``batch_size``, ``optimizer``, its ``lr`` and
``weight_decay``); the ``activation`` column holds the per-layer activations joined by commas.

Files are read with ``weights_only=True``. The published trainer saves ``config`` as an
OmegaConf object (``cnn_trainer.py``: ``self.cfg.model``), which needs pickle: such a file is
refused, naming it and the classes it asks for. Convert the checkpoints once, in an
environment where you trust them and have ``omegaconf``, to plain containers::

    for p in Path("cifar10_zooV2").glob("*/*/checkpoint.pt"):
        ck = torch.load(p, weights_only=False)  # trusted files only
        torch.save({"model": ck["model"], "iteration": ck["iteration"],
                    "config": OmegaConf.to_container(ck["config"]),
                    "last_result": {k: v for k, v in ck["last_result"].items()
                                    if k in ("test/acc", "test/loss")}}, p)

Splits: ``hash`` by default, or ``neural-graphs`` with Neural Graphs' ``cnn_park_splits.json``
as ``--split-file`` (read in the layout its ``generate_cnn_park_splits.py`` writes: per split,
``path`` / ``score`` / ``step`` lists, paths ending ``<trial>/<checkpoint>/checkpoint.pt``).
Not checked on the published files (not available here).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from modelzoo.architectures import create_model
from modelzoo.errors import ImportFormatError
from modelzoo.importers.base import (
    FormatPlan,
    ImportOptions,
    ModelRows,
    ZooFormat,
    guess_source,
    inside,
    load_tensors,
    map_state_dict,
    number,
    read_json,
    register_format,
    tensor_dict,
)
from modelzoo.importers.splits import hash_splits, neural_graphs_splits
from modelzoo.storage.layout import layer_layout, layout_size
from modelzoo.storage.manifest import ArchitectureEntry, SourceEntry

CKPT_FILE = "checkpoint.pt"
_NUM = re.compile(r"\D*(\d+)$")
SOURCES = {"cifar10": "cifar10", "fmnist": "fashion_mnist", "fashion": "fashion_mnist"}


class ParkConfig(BaseModel):
    """The ``config`` of a CNN Wild Park checkpoint (Neural Graphs' ``CNNConfig``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    n_layers: int
    n_classes: int
    channels: list[int]
    kernel_size: list[int]
    stride: list[int]
    padding: list[int]
    residual: list[int]
    activation: list[str]

    def kwargs(self) -> dict[str, Any]:
        """``park_cnn`` options (``channels`` are the hidden widths)."""
        return {"in_channels": self.channels[0], "num_classes": self.n_classes,
                "image_size": 32, "channels": self.channels[1:],
                "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "residual": self.residual,
                "activations": self.activation}


def _checkpoints(root: Path) -> dict[str, list[Path]]:
    """Trial folder name -> its ``*/checkpoint.pt`` files (sorted), exactly two levels deep."""
    out: dict[str, list[Path]] = {}
    for trial in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: p.name):
        files = sorted((c / CKPT_FILE for c in trial.iterdir() if (c / CKPT_FILE).is_file()),
                       key=lambda p: p.parent.name)
        if files:
            out[trial.name] = [inside(root, f) for f in files]
    return out


def _read(path: Path) -> tuple[dict[str, Any], ParkConfig]:
    obj = load_tensors(path)
    if not isinstance(obj, Mapping) or "model" not in obj or "config" not in obj:
        raise ImportFormatError(f"{path}: expected a dict with 'model' and 'config', got "
                                f"{sorted(obj) if isinstance(obj, Mapping) else type(obj)}")
    try:
        cfg = ParkConfig.model_validate(dict(obj["config"]))
    except (ValidationError, TypeError, ValueError) as e:
        raise ImportFormatError(f"{path}: config is not a CNN Wild Park config: {e}") from None
    return dict(obj), cfg


def _hparams(cfg: ParkConfig, result: Mapping[str, Any]) -> dict[str, Any]:
    trial = result.get("config") if isinstance(result.get("config"), Mapping) else {}
    opt = trial.get("optimizer") if isinstance(trial.get("optimizer"), Mapping) else {}
    target = str(opt.get("_target_", "")).rsplit(".", 1)[-1].lower()
    return {
        "seed": int(trial["seed"]) if isinstance(trial.get("seed"), int) else None,
        "lr": float(opt["lr"]) if isinstance(opt.get("lr"), (int, float)) else None,
        "weight_decay": float(opt["weight_decay"])
        if isinstance(opt.get("weight_decay"), (int, float)) else None,
        "optimizer": target or None, "dropout": 0.0, "activation": ",".join(cfg.activation),
        "init": None, "batch_size": int(trial["batch_size"])
        if isinstance(trial.get("batch_size"), int) else None,
        "train_fraction": 1.0, "schedule": None,
    }


def signature(cfg: ParkConfig) -> str:
    """Architecture key of a CNN: ``park_cnn@`` + 8 hex digits of its options."""
    text = json.dumps(cfg.kwargs(), sort_keys=True)
    return "park_cnn@" + hashlib.sha256(text.encode()).hexdigest()[:8]


@register_format
class WildParkFormat(ZooFormat):
    """CNN Wild Park (see the module docstring)."""

    name = "wildpark"
    description = ("CNN Wild Park (Neural Graphs, Kofinas et al. 2024): */*/checkpoint.pt dicts "
                   "with model, config and Ray state; a heterogeneous zoo")
    split_protocols = {"neural-graphs": "the split Neural Graphs' cnn_park_splits.json lists "
                                        "each trial under"}
    example = "zoo import wildpark data/cifar10_zooV2 --out zoos/wildpark"

    def origin_files(self, root: Path) -> list[Path]:  # noqa: D102
        return [f for files in _checkpoints(root).values() for f in files]

    def plan(self, root: Path, options: ImportOptions) -> FormatPlan:  # noqa: D102
        trials = _checkpoints(root)
        source = options.source or guess_source(root, SOURCES) or "unknown"
        archs: dict[str, ArchitectureEntry] = {}
        models: dict[str, tuple[str, int]] = {}
        trial_of: dict[str, str] = {}
        cfg_of: dict[str, ParkConfig] = {}
        in_shape, classes = (3, 32, 32), 10
        for trial, files in trials.items():
            _, cfg = _read(files[0])
            key = signature(cfg)
            if key not in archs:
                kwargs = cfg.kwargs()
                layout = layer_layout(create_model("park_cnn", **kwargs))
                archs[key] = ArchitectureEntry(name="park_cnn", kwargs=kwargs,
                                               n_params=layout_size(layout), layout=layout)
                in_shape, classes = (cfg.channels[0], 32, 32), cfg.n_classes
            mid = f"park_cnn-{source}-{hashlib.sha256(trial.encode()).hexdigest()[:12]}"
            models[mid] = (key, len(files))
            trial_of[mid] = trial
            cfg_of[mid] = cfg
        if options.splits == "neural-graphs":
            if options.split_file is None:
                raise ImportFormatError("--splits neural-graphs needs --split-file: Neural "
                                        "Graphs' cnn_park_splits.json")
            splits, protocol = neural_graphs_splits(read_json(options.split_file), trial_of)
        else:
            splits, protocol = hash_splits(models), {}

        def rows(ids: Sequence[str]) -> Iterator[ModelRows]:
            for mid in ids:
                arch = models[mid][0]
                epochs, vecs, acc, loss, hp = [], [], [], [], {}
                for f in trials[trial_of[mid]]:
                    obj, cfg = _read(f)
                    if cfg != cfg_of[mid]:
                        raise ImportFormatError(f"{f}: its config differs from the trial's "
                                                "first checkpoint")
                    state = tensor_dict(obj["model"], f)
                    vecs.append(map_state_dict(state, archs[arch].layout, f))
                    result = obj.get("last_result") if isinstance(obj.get("last_result"),
                                                                   Mapping) else {}
                    it = obj.get("iteration")
                    m = _NUM.fullmatch(f.parent.name)
                    epoch = int(it) if isinstance(it, int) else int(m.group(1)) if m else None
                    if epoch is None:
                        raise ImportFormatError(f"{f}: no Ray 'iteration' and no number in its "
                                                "folder name")
                    epochs.append(epoch)
                    acc.append(number(result.get("test/acc")))
                    loss.append(number(result.get("test/loss")))
                    hp = hp or _hparams(cfg, result)
                order = np.argsort(epochs, kind="stable")
                ep = np.asarray(epochs)[order]
                if len(set(ep.tolist())) != len(ep):
                    raise ImportFormatError(f"trial {trial_of[mid]}: two checkpoints at one "
                                            "iteration")
                yield ModelRows(mid, ep, np.stack(vecs)[order],
                                {"test_acc": np.asarray(acc)[order],
                                 "test_loss": np.asarray(loss)[order]},
                                np.isfinite(np.asarray(acc)[order]), hp)

        return FormatPlan(
            name=f"wildpark-{source}",
            description="CNN Wild Park (Kofinas et al., ICLR 2024): CNNs of varied depth, width, "
            "kernel size, activations and skip connections, imported with `zoo import wildpark`.",
            license="unknown", architectures=archs,
            sources={source: SourceEntry(name=source, fingerprint="unknown: not in the zoo files",
                                         num_classes=classes, in_shape=in_shape)},
            models=models, splits=splits, split_protocol=protocol, rows=rows, group_rows=1024)
