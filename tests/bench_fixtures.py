"""Test helpers for the benchmark tests: a small *real* zoo trained on sklearn digits.

The zoo varies activation, init and optimizer so that every property-prediction target
(regression and classification) has signal, and assigns splits per model.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import torch
from torch import nn

from modelzoo import create_model
from modelzoo.sources import load_source
from modelzoo.storage import ZooWriter, flatten_state_dict, layer_layout, zoo_schema
from modelzoo.storage.manifest import ArchitectureEntry, Manifest, SourceEntry

ZOO_NAME = "digits-cnn_s"
ZOO_VERSION = "1.0.0"

_INITS = {
    "kaiming_uniform": nn.init.kaiming_uniform_,
    "normal": lambda w: nn.init.normal_(w, std=0.3),
}


def _acc_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        out = model(x)
    model.train()
    return float((out.argmax(1) == y).float().mean()), float(nn.functional.cross_entropy(out, y))


def build_test_zoo(
    out: Path,
    *,
    seeds: int = 2,
    epochs: int = 3,
    name: str = ZOO_NAME,
    version: str = ZOO_VERSION,
    arch: str = "cnn_s",
    diverged: int = 0,
) -> Manifest:
    """Train ``8 * seeds`` tiny models (checkpoints ``0..epochs``) and write them as a zoo.

    Builds the ``var_zoo`` fixture (tests/conftest.py). Unlike ``tiny_zoo`` (which varies
    activation and lr), this zoo varies activation x init x optimizer, so every
    classification target has two classes.
    The first ``diverged`` models get NaN weights after epoch 0 and status ``diverged``.
    """
    src = load_source("digits")
    kwargs = {"in_channels": 1, "num_classes": 10, "image_size": 8, "activation": "relu",
              "dropout": 0.0}
    proto = create_model(arch, **kwargs)
    layout = layer_layout(proto)
    n_params = sum(s.numel for s in layout)
    schema = zoo_schema(n_params)
    rows: list[dict] = []
    grid = list(itertools.product(["relu", "tanh"], list(_INITS), ["adam", "sgd"], range(seeds)))
    for i, (act, init, opt, seed) in enumerate(grid):
        split = ("train", "train", "train", "validation", "train", "test", "train", "validation",
                 "test", "train", "train", "test")[i % 12]
        torch.manual_seed(1000 + i)
        model = create_model(arch, **{**kwargs, "activation": act})
        for p in model.parameters():
            if p.dim() > 1:
                _INITS[init](p)
        optim = (torch.optim.Adam(model.parameters(), lr=3e-3) if opt == "adam"
                 else torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9))
        lr = 3e-3 if opt == "adam" else 0.05
        for epoch in range(epochs + 1):
            if epoch > 0:
                for b in torch.randperm(len(src.y_train)).split(64):
                    optim.zero_grad()
                    loss = nn.functional.cross_entropy(model(src.x_train[b]), src.y_train[b])
                    loss.backward()
                    optim.step()
            tr_acc, tr_loss = _acc_loss(model, src.x_train, src.y_train)
            va_acc, va_loss = _acc_loss(model, src.x_val, src.y_val)
            te_acc, te_loss = _acc_loss(model, src.x_test, src.y_test)
            w = flatten_state_dict(model.state_dict(), layout).numpy()
            bad = i < diverged and epoch > 0
            if bad:
                w = w * float("nan")
            rows.append({
                "model_id": f"m{i:03d}", "architecture": arch, "source": "digits",
                "epoch": epoch, "seed": seed, "lr": lr, "weight_decay": 0.0, "dropout": 0.0,
                "activation": act, "init": init, "optimizer": opt, "batch_size": 64,
                "train_fraction": 1.0, "schedule": "constant", "train_loss": tr_loss,
                "train_acc": tr_acc,
                "val_loss": va_loss, "val_acc": va_acc, "test_loss": te_loss, "test_acc": te_acc,
                "ggap": tr_acc - te_acc, "status": "diverged" if i < diverged else "ok",
                "split": split,
                "n_params": n_params, "weights": w.tolist(),
            })  # fmt: skip
    writer = ZooWriter(out, schema)
    writer.write_group(0, pa.Table.from_pylist(rows, schema=schema))
    return writer.finalize(
        name=name,
        version=version,
        recipe={"test": True},
        architectures={arch: ArchitectureEntry(name=arch, kwargs=kwargs, n_params=n_params,
                                               layout=layout)},
        sources={"digits": SourceEntry(name="digits", fingerprint=src.fingerprint,
                                       num_classes=10, in_shape=(1, 8, 8), sizes=src.sizes())},
        toolkit_version="0.1.0",
    )


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run tiny torch work single-threaded (much faster on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
