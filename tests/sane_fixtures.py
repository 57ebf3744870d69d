"""Small real zoos for the SANE tests, written with ``modelzoo.storage.ZooWriter``.

Models are really trained (a few full-batch Adam steps per epoch) on sklearn digits (8x8, bundled
with scikit-learn), so accuracies are meaningful, and can be heterogeneous (several
architectures in one zoo with ``list<float32>`` weights).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import torch
from sklearn.datasets import load_digits

from modelzoo.architectures import create_model
from modelzoo.storage import ZooWriter, flatten_state_dict, layer_layout, zoo_schema
from modelzoo.storage.manifest import ArchitectureEntry, Manifest, SourceEntry

DIGITS_KW = {"in_channels": 1, "num_classes": 10, "image_size": 8}


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread: tiny models are faster so, and the 2 shared CPU cores of the
    test machine are not oversubscribed (which makes multi-threaded torch ~10x slower)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def digits_tensors() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """sklearn digits as ``{split: (x [N,1,8,8], y [N])}`` with a fixed 70/15/15 split."""
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(y), generator=g)
    a, b = int(0.7 * len(y)), int(0.85 * len(y))
    parts = {"train": perm[:a], "validation": perm[a:b], "test": perm[b:]}
    return {k: (x[v], y[v]) for k, v in parts.items()}


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: tuple[torch.Tensor, torch.Tensor]) -> float:
    """Top-1 accuracy of ``model`` on ``(x, y)``."""
    model.eval()
    return float((model(data[0]).argmax(1) == data[1]).float().mean())


def make_zoo(
    root: Path,
    *,
    archs: Sequence[tuple[str, str, dict]] = (("cnn_s", "cnn_s", {}),),
    models_per_arch: int = 6,
    epochs: int = 2,
    steps_per_epoch: int = 2,
    train_examples: int = 256,
    heterogeneous: bool | None = None,
    name: str = "sane-test-zoo",
) -> Manifest:
    """Train and write a small digits zoo.

    Args:
        root: output directory.
        archs: ``(architecture key, registry name, extra kwargs)`` triples.
        models_per_arch: models per architecture (splits cycle train, train, ..., val, test).
        epochs: checkpoints 0..epochs are stored per model.
        steps_per_epoch: full-batch Adam steps per epoch.
        train_examples: training examples used (a subset keeps the fixture fast).
        heterogeneous: ``list<float32>`` weights (default: True when several architectures).
        name: zoo name.
    """
    data = digits_tensors()
    data["train"] = (data["train"][0][:train_examples], data["train"][1][:train_examples])
    hetero = len(archs) > 1 if heterogeneous is None else heterogeneous
    entries: dict[str, ArchitectureEntry] = {}
    n_params_fixed = None
    rows: list[dict] = []
    activations = ("relu", "tanh")
    for key, reg, extra in archs:
        kwargs = {**DIGITS_KW, "activation": "relu", "dropout": 0.0, **extra}
        probe = create_model(reg, **kwargs)
        layout = layer_layout(probe)
        n = sum(s.numel for s in layout)
        n_params_fixed = n
        entries[key] = ArchitectureEntry(name=reg, kwargs=kwargs, n_params=n, layout=layout)
        for m in range(models_per_arch):
            seed = 1000 * len(entries) + m
            act = activations[m % 2]
            torch.manual_seed(seed)
            model = create_model(reg, **{**kwargs, "activation": act})
            opt = torch.optim.Adam(model.parameters(), lr=3e-3 * (1 + m % 3))
            mid = hashlib.sha256(f"{name}/{key}/{m}".encode()).hexdigest()[:12]
            split = "validation" if m % 6 == 4 else "test" if m % 6 == 5 else "train"
            for ep in range(epochs + 1):
                if ep > 0:
                    model.train()
                    for _ in range(steps_per_epoch):
                        loss = torch.nn.functional.cross_entropy(model(data["train"][0]),
                                                                 data["train"][1])
                        opt.zero_grad()
                        loss.backward()
                        opt.step()
                accs = {s: accuracy(model, data[s]) for s in data}
                rows.append({
                    "model_id": mid, "architecture": key, "source": "digits", "epoch": ep,
                    "seed": seed, "lr": 3e-3 * (1 + m % 3), "weight_decay": 0.0, "dropout": 0.0,
                    "activation": act, "init": "default", "optimizer": "adam",
                    "batch_size": len(data["train"][1]), "train_fraction": 1.0,
                    "train_loss": 0.0, "train_acc": accs["train"], "val_loss": 0.0,
                    "val_acc": accs["validation"], "test_loss": 0.0, "test_acc": accs["test"],
                    "ggap": accs["train"] - accs["test"], "status": "ok", "split": split,
                    "n_params": n,
                    "weights": flatten_state_dict(model.state_dict(), layout).tolist(),
                })  # fmt: skip
    schema = zoo_schema(None if hetero else n_params_fixed)
    writer = ZooWriter(root, schema)
    writer.write_group(0, pa.Table.from_pylist(rows, schema=schema))
    return writer.finalize(
        name=name,
        version="0.0.1",
        recipe={"test": True},
        architectures=entries,
        sources={"digits": SourceEntry(name="digits", fingerprint="test", num_classes=10,
                                       in_shape=(1, 8, 8))},
        toolkit_version="test",
    )
