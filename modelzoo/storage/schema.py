"""The zoo row schema: one row per checkpoint (see DESIGN.md)."""

from __future__ import annotations

import pyarrow as pa

SPLITS: tuple[str, ...] = ("train", "validation", "test")

#: Hyperparameter columns, in order, with their Arrow types.
HPARAM_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("seed", pa.int64()),
    ("lr", pa.float64()),
    ("weight_decay", pa.float64()),
    ("dropout", pa.float64()),
    ("activation", pa.string()),
    ("init", pa.string()),
    ("optimizer", pa.string()),
    ("batch_size", pa.int32()),
    ("train_fraction", pa.float64()),
    ("schedule", pa.string()),
)

#: Metric columns (float32), per checkpoint.
METRIC_FIELDS: tuple[str, ...] = (
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "test_loss",
    "test_acc",
    "ggap",
)

#: Values of the ``status`` column.
STATUS_OK = "ok"
STATUS_DIVERGED = "diverged"


def zoo_schema(n_params: int | None) -> pa.Schema:
    """Arrow schema of a zoo.

    Args:
        n_params: fixed weight-vector length for homogeneous zoos
            (``fixed_size_list<float32>``); ``None`` for heterogeneous zoos (``list<float32>``).
    """
    weights_type = (
        pa.list_(pa.float32(), n_params) if n_params is not None else pa.list_(pa.float32())
    )
    fields = [
        pa.field("model_id", pa.string()),
        pa.field("architecture", pa.string()),
        pa.field("source", pa.string()),
        pa.field("epoch", pa.int32()),
        *[pa.field(n, t) for n, t in HPARAM_FIELDS],
        *[pa.field(n, pa.float32()) for n in METRIC_FIELDS],
        pa.field("status", pa.string()),
        pa.field("split", pa.string()),
        pa.field("n_params", pa.int64()),
        pa.field("weights", weights_type),
    ]
    return pa.schema(fields)
