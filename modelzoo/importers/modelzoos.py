"""``modelzoos``: the Model Zoos dataset (Schürholt et al., NeurIPS 2022 Datasets & Benchmarks).

Layout (one zoo folder, as unpacked from Zenodo; written by Ray Tune)::

    <zoo>/dataset.pt                       the image data the models trained on (not models:
                                           skipped, only hashed as the source fingerprint)
    <zoo>/<trial>/params.json              the trial's config: model::type, model::nlin, ...
    <zoo>/<trial>/result.json              one JSON line per epoch, with training_iteration
    <zoo>/<trial>/checkpoint_<N>/checkpoints      torch state dict after epoch N (0: untrained)
    <zoo>/<trial>/checkpoint_<N:06d>/checkpoints  the same, as newer Ray versions name it

How it is read:

* architecture from ``model::type`` (``CNN`` -> ``cnn_s``, ``CNN3`` -> ``cnn_l``, ``Resnet18``
  -> ``resnet18`` with its BatchNorm buffers), options from ``model::channels_in`` and
  ``model::o_dim``; parameters are mapped module by module by their actual keys and shapes
  (:func:`~modelzoo.importers.base.map_state_dict`), so the dropout modules that shift the
  ``module_list.N`` indices of CNN-s (and the torchvision names of ResNet-18) map correctly;
* metrics from the ``result.json`` line whose ``training_iteration`` equals the checkpoint's
  epoch (never by line position); ``ggap = train_acc - test_acc``; a checkpoint without a
  line is kept, ``incomplete``; a line without a checkpoint (a missing epoch), duplicated or
  unparsable lines are recorded in the manifest's flags;
* hyperparameters from ``params.json`` into the typed columns (``seed``, ``optim::lr``,
  ``optim::wd``, ``model::dropout``, ``model::nlin``, ``model::init_type``,
  ``optim::optimizer``, ``training::batchsize``, ``optim::scheduler``); other keys are listed
  as unmapped;
* splits: the ``modelzoos`` protocol by default (:mod:`modelzoo.importers.splits`): every
  sub-folder of the zoo folder takes part in the shuffle, as in the original, models or not.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modelzoo.architectures import create_model
from modelzoo.errors import ImportFormatError
from modelzoo.importers.base import (
    MAX_METADATA_BYTES,
    METRICS,
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
from modelzoo.importers.splits import hash_splits, modelzoos_splits
from modelzoo.storage.atomic import file_sha256
from modelzoo.storage.layout import layer_layout, layout_size
from modelzoo.storage.manifest import ArchitectureEntry, SourceEntry

#: ``model::type`` -> (registered architecture, the input size its dense layer assumes).
MODEL_TYPES: dict[str, tuple[str, int]] = {"CNN": ("cnn_s", 28), "CNN3": ("cnn_l", 32),
                                           "Resnet18": ("resnet18", 32)}
#: params.json key -> hyperparameter column.
HPARAM_KEYS = {"seed": "seed", "optim::lr": "lr", "optim::wd": "weight_decay",
               "model::dropout": "dropout", "model::nlin": "activation",
               "model::init_type": "init", "optim::optimizer": "optimizer",
               "training::batchsize": "batch_size"}
#: Keys that describe the architecture or the run, not a hyperparameter of the model.
STRUCTURAL = {"model::type", "model::channels_in", "model::o_dim", "optim::scheduler", "cuda",
              "dataset::dump", "training::epochs_train", "training::start_epoch",
              "training::output_epoch", "training::val_epochs", "training::idx_out",
              "training::checkpoint_dir", "training::data_path", "testloader::workers",
              "scheduler::steps_per_epoch", "training::dataloader"}
#: Folder-name fragments -> source dataset (first match wins).
SOURCES = {"f_mnist": "fashion_mnist", "fashion": "fashion_mnist", "mnist": "mnist",
           "svhn": "svhn", "cifar100": "cifar100", "cifar10": "cifar10", "stl": "stl10",
           "usps": "usps", "tiny": "tiny_imagenet", "eurosat": "eurosat"}
_CKPT = re.compile(r"checkpoint_(\d+)")
CKPT_FILE = "checkpoints"


def _source_name(dataset: str, in_shape: tuple[int, ...]) -> str:
    """``dataset``, or ``dataset-CxHxW`` where a registered source of that name has another
    input shape (the Model Zoos SVHN and CIFAR-10 CNN-s zoos train on 28 px images, SVHN on
    one channel), so no task loads the registered images for these models."""
    from modelzoo.sources import SOURCES as REGISTERED

    if dataset in REGISTERED and tuple(REGISTERED.get(dataset).in_shape) != tuple(in_shape):
        return f"{dataset}-{'x'.join(str(d) for d in in_shape)}"
    return dataset


@dataclass
class _Trial:
    name: str
    params: Path
    result: Path | None
    checkpoints: dict[int, Path] = field(default_factory=dict)


def _listing(root: Path
             ) -> tuple[list[_Trial], list[str], dict[str, list[str]], list[str]]:
    """Trials (sorted), skipped root entries, checkpoint folders without their file, and
    every sub-folder name of ``root`` (the list the ``modelzoos`` split shuffles)."""
    trials, skipped, empty, folders = [], [], {}, []
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        if entry.is_dir():
            folders.append(entry.name)
        if not entry.is_dir() or not (entry / "params.json").is_file():
            skipped.append(entry.name + ("/" if entry.is_dir() else ""))
            continue
        inside(root, entry)
        result = entry / "result.json"
        t = _Trial(entry.name, inside(root, entry / "params.json"),
                   inside(root, result) if result.is_file() else None)
        for sub in sorted(entry.iterdir(), key=lambda p: p.name):
            m = _CKPT.fullmatch(sub.name)
            if m is None or not sub.is_dir():
                continue
            epoch = int(m.group(1))
            if epoch in t.checkpoints:
                raise ImportFormatError(
                    f"{entry}: two folders hold epoch {epoch} ({t.checkpoints[epoch].parent.name}"
                    f" and {sub.name}); remove the one that is not the trial's"
                )
            f = sub / CKPT_FILE
            if f.is_file():
                t.checkpoints[epoch] = inside(root, f)
            else:
                empty.setdefault(entry.name, []).append(sub.name)
        trials.append(t)
    return trials, skipped, empty, folders


def _results(path: Path | None) -> tuple[dict[int, dict[str, Any]], int, int]:
    """result.json lines by ``training_iteration``; counts of duplicated and unparsable lines
    (a duplicate, e.g. after a Ray restore, is replaced by the later line)."""
    if path is None:
        return {}, 0, 0
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise ImportFormatError(f"{path} is larger than {MAX_METADATA_BYTES:,} bytes")
    out: dict[int, dict[str, Any]] = {}
    dup = bad = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                it = int(rec["training_iteration"])
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                bad += 1
                continue
            dup += it in out
            out[it] = rec
    return out, dup, bad


def _hparams(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    out: dict[str, Any] = {"train_fraction": 1.0}
    for key, col in HPARAM_KEYS.items():
        if key in params and params[key] is not None:
            out[col] = params[key]
    if isinstance(out.get("optimizer"), str):
        out["optimizer"] = out["optimizer"].lower().replace("_", "")  # rms_prop -> rmsprop
    for col, cast in (("seed", int), ("batch_size", int), ("lr", float),
                      ("weight_decay", float), ("dropout", float)):
        if col in out:
            try:
                out[col] = cast(out[col])
            except (TypeError, ValueError):
                raise ImportFormatError(f"params.json: {col} = {out[col]!r} is not a number") \
                    from None
    sched = params.get("optim::scheduler")
    out["schedule"] = "onecycle" if sched == "OneCycleLR" else "constant" if sched is None \
        else str(sched)
    unmapped = sorted(k for k in params if k not in HPARAM_KEYS and k not in STRUCTURAL)
    return out, unmapped


@register_format
class ModelZoosFormat(ZooFormat):
    """The Model Zoos dataset (see the module docstring)."""

    name = "modelzoos"
    description = ("Model Zoos (Schürholt et al. 2022): Ray Tune trial folders with params.json, "
                   "result.json and checkpoint_<N>/checkpoints")
    split_protocols = {"modelzoos": "Model Zoos' 70/15/15 after random.seed(42) shuffling of "
                                    "the zoo folder's sub-folders, sorted (the original "
                                    "shuffles them in file-system order)"}
    default_split = "modelzoos"
    example = "zoo import modelzoos tune_zoo_mnist_hyperparameter_10_random_seeds --out zoos/mz"

    def origin_files(self, root: Path) -> list[Path]:  # noqa: D102
        trials = _listing(root)[0]
        files: list[Path] = []
        for t in trials:
            files += [root / t.name / "params.json"]
            if t.result is not None:
                files.append(root / t.name / "result.json")
            files += [root / t.name / p.parent.name / CKPT_FILE
                      for _, p in sorted(t.checkpoints.items())]
        return files

    def plan(self, root: Path, options: ImportOptions) -> FormatPlan:  # noqa: D102
        trials, skipped, empty, folders = _listing(root)
        dataset = options.source or guess_source(root, SOURCES) or "unknown"
        source = dataset
        archs: dict[str, ArchitectureEntry] = {}
        models: dict[str, tuple[str, int]] = {}
        folder_of: dict[str, str] = {}
        info: dict[str, tuple[_Trial, dict[str, Any], dict[int, dict[str, Any]]]] = {}
        flags: dict[str, Any] = {}
        unmapped: set[str] = set()
        in_shape: tuple[int, ...] | None = None
        num_classes = 10
        for t in trials:
            params = read_json(t.params)
            if not isinstance(params, dict):
                raise ImportFormatError(f"{t.params} is not a JSON object")
            mtype = params.get("model::type")
            if mtype not in MODEL_TYPES:
                raise ImportFormatError(
                    f"{t.params}: model::type {mtype!r} has no registered architecture here "
                    f"(known: {', '.join(MODEL_TYPES)}); register one and map it in "
                    "modelzoo.importers.modelzoos.MODEL_TYPES"
                )
            arch, size = MODEL_TYPES[mtype]
            if not t.checkpoints:
                flags.setdefault("trials_without_checkpoints", []).append(t.name)
                continue
            kwargs: dict[str, Any] = {"in_channels": int(params.get("model::channels_in", 1)),
                                      "num_classes": int(params.get("model::o_dim", 10)),
                                      "image_size": size}
            if arch == "resnet18":
                first = tensor_dict(load_tensors(next(iter(t.checkpoints.values()))),
                                    t.params.parent)
                kwargs |= {"norm": "bn", "width": int(first["conv1.weight"].shape[0])}
            if arch not in archs:
                model = create_model(arch, **kwargs)
                layout = layer_layout(model)
                archs[arch] = ArchitectureEntry(name=arch, kwargs=kwargs,
                                                n_params=layout_size(layout), layout=layout)
                in_shape = (kwargs["in_channels"], size, size)
                num_classes = kwargs["num_classes"]
            elif archs[arch].kwargs != kwargs:
                raise ImportFormatError(f"{t.params}: {arch} with options {kwargs}, but other "
                                        f"trials have {archs[arch].kwargs}; import them apart")
            mid = f"{arch}-{source}-{hashlib.sha256(t.name.encode()).hexdigest()[:12]}"
            hp, extra = _hparams(params)
            unmapped |= set(extra)
            results, dup, bad = _results(t.result)
            missing = sorted(set(results) - set(t.checkpoints))
            no_line = sorted(set(t.checkpoints) - set(results))
            for key, value in (("epochs_without_checkpoint", missing),
                               ("checkpoints_without_result_line", no_line),
                               ("duplicated_result_lines", dup), ("unparsable_result_lines", bad)):
                if value:
                    flags.setdefault(key, {})[mid] = value
            models[mid] = (arch, len(t.checkpoints))
            folder_of[mid] = t.name
            info[mid] = (t, hp, results)
        if options.source is None and in_shape is not None:
            source = _source_name(dataset, in_shape)
            if source != dataset:  # model ids name the source: rename them
                rename = {m: m.replace(f"-{dataset}-", f"-{source}-", 1) for m in models}
                models = {rename[m]: v for m, v in models.items()}
                folder_of = {rename[m]: v for m, v in folder_of.items()}
                info = {rename[m]: v for m, v in info.items()}
                flags = {k: ({rename.get(m, m): x for m, x in v.items()}
                             if isinstance(v, dict) else v) for k, v in flags.items()}
        if empty:
            flags["checkpoint_folders_without_file"] = empty
        if skipped:
            flags["skipped_in_zoo_folder"] = skipped
        if options.splits == "modelzoos":
            splits = modelzoos_splits(folder_of, folders)  # every sub-folder, as the original
            protocol = {"seed": 42, "ratios": [0.7, 0.15, 0.15],
                        "folders_shuffled": len(folders),
                        "folders_shuffled_without_a_model": len(folders) - len(folder_of)}
        else:
            splits, protocol = hash_splits(models), {}
        data = root / "dataset.pt"
        fingerprint = ("sha256:" + file_sha256(data) if data.is_file()
                       else "unknown: no dataset.pt in the zoo folder")
        sources = {source: SourceEntry(name=source, fingerprint=fingerprint,
                                       num_classes=num_classes, in_shape=in_shape or (1, 28, 28))}
        layouts = {k: a.layout for k, a in archs.items()}

        def rows(ids: Sequence[str]) -> Iterator[ModelRows]:
            for mid in ids:
                t, hp, results = info[mid]
                arch = models[mid][0]
                epochs = sorted(t.checkpoints)
                weights = np.stack([
                    map_state_dict(tensor_dict(load_tensors(t.checkpoints[e]), t.checkpoints[e]),
                                   layouts[arch], t.checkpoints[e]) for e in epochs])  # fmt: skip
                recorded = np.array([e in results for e in epochs])
                present = {k for rec in results.values() for k in rec if k in METRICS}
                metrics = {k: np.array([number(results.get(e, {}).get(k)) for e in epochs])
                           for k in present}
                yield ModelRows(mid, np.array(epochs), weights, metrics, recorded, hp)

        return FormatPlan(
            name=f"modelzoos-{dataset}" + (f"-{next(iter(archs))}" if len(archs) == 1 else ""),
            description=f"The Model Zoos dataset (Schürholt et al., NeurIPS 2022 Datasets and "
            f"Benchmarks) zoo {root.resolve().name}, imported with `zoo import modelzoos`.",
            license="cc-by-4.0", architectures=archs, sources=sources, models=models,
            splits=splits, split_protocol=protocol, rows=rows, flags=flags,
            unmapped=sorted(unmapped), group_rows=2048 if "resnet18" not in archs else 64)
