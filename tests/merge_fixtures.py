"""Synthetic zoos for merge/publish/diff tests, written with the real ``ZooWriter``.

Models are freshly initialised networks of a registered architecture (their weights load into
``create_model``); metrics are made up but deterministic. Used for shapes that the bundled
digits source cannot give (3-channel inputs, other sources, hand-made conflicts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch

import modelzoo
from modelzoo.architectures import create_model
from modelzoo.builder.recipe import SplitSpec
from modelzoo.storage.layout import flatten_state_dict, layer_layout
from modelzoo.storage.manifest import ArchitectureEntry, Manifest, SourceEntry
from modelzoo.storage.schema import zoo_schema
from modelzoo.storage.writer import ZooWriter


def make_synthetic_zoo(
    root: Path,
    *,
    arch: str = "cnn_s",
    source: str = "svhn",
    in_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    models: int = 4,
    epochs: int = 1,
    arch_kwargs: dict[str, Any] | None = None,
    weight_seed: int = 0,
    split_seed: int = 0,
    fingerprint: str = "sha256:" + "ab" * 32,
    name: str | None = None,
    version: str = "1.0.0",
    recipe: dict[str, Any] | None = None,
    perturb: tuple[str, ...] = (),
    id_prefix: str | None = None,
) -> Manifest:
    """Write a small zoo of randomly initialised ``arch`` models; return its manifest.

    ``perturb`` lists model ids whose weights get +1e-3 (a content change, same metadata).
    """
    kwargs = {
        "in_channels": in_shape[0],
        "num_classes": num_classes,
        "image_size": in_shape[1],
        **(arch_kwargs or {}),
    }
    torch.manual_seed(weight_seed)
    probe = create_model(arch, activation="relu", dropout=0.0, **kwargs)
    layout = layer_layout(probe)
    n_params = layout[-1].offset + layout[-1].numel
    splits = SplitSpec(seed=split_seed)
    prefix = id_prefix or f"{arch}-{source}"
    ids = [f"{prefix}-{i:04d}" for i in range(models)]
    rows: dict[str, list] = {k: [] for k in zoo_schema(n_params).names}
    for i, mid in enumerate(ids):
        net = create_model(arch, activation="relu", dropout=0.0, **kwargs)
        for epoch in range(epochs + 1):
            vec = flatten_state_dict(net.state_dict(), layout).numpy() + 0.01 * epoch
            if mid in perturb:
                vec = vec + 1e-3
            acc = 0.1 + 0.8 * (epoch + 1) / (epochs + 1) * (1.0 - 0.05 * (i % 10))
            values = {
                "model_id": mid, "architecture": arch, "source": source, "epoch": epoch,
                "seed": i, "lr": 1e-3, "weight_decay": 0.0, "dropout": 0.0,
                "activation": "relu", "init": "kaiming_uniform", "optimizer": "adam",
                "batch_size": 64, "train_fraction": 1.0, "schedule": "constant",
                "train_loss": 1.0 - acc,
                "train_acc": acc + 0.05, "val_loss": 1.0 - acc, "val_acc": acc,
                "test_loss": 1.0 - acc, "test_acc": acc, "ggap": 0.05, "status": "ok",
                "split": splits.assign(mid), "n_params": n_params,
                "weights": vec.astype(np.float32),
            }  # fmt: skip
            for k, v in values.items():
                rows[k].append(v)
    schema = zoo_schema(n_params)
    flat = np.concatenate(rows.pop("weights"))
    cols = {k: pa.array(v, schema.field(k).type) for k, v in rows.items()}
    cols["weights"] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), n_params)
    writer = ZooWriter(root, schema)
    writer.write_group(0, pa.table(cols, schema=schema))
    return writer.finalize(
        name=name or f"{arch}-{source}",
        version=version,
        recipe=recipe or {"architecture": arch, "source": source, "epochs": epochs},
        architectures={
            arch: ArchitectureEntry(name=arch, kwargs=kwargs, n_params=n_params, layout=layout)
        },
        sources={
            source: SourceEntry(
                name=source, fingerprint=fingerprint, num_classes=num_classes, in_shape=in_shape
            )
        },
        toolkit_version=modelzoo.__version__,
    )
