"""The zoo row schema: one row per checkpoint (see DESIGN.md)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from modelzoo.hparams import hparam_columns

SPLITS: tuple[str, ...] = ("train", "validation", "test")

#: Hyperparameter columns, in order, with their Arrow types (declared by TrainConfig).
HPARAM_FIELDS: tuple[tuple[str, pa.DataType], ...] = hparam_columns()

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
#: An imported checkpoint whose origin has no metrics record for it (``zoo import``).
STATUS_INCOMPLETE = "incomplete"


def zoo_schema(
    n_params: int | None, hparams: Sequence[tuple[str, pa.DataType]] = HPARAM_FIELDS
) -> pa.Schema:
    """Arrow schema of a zoo.

    Args:
        n_params: fixed weight-vector length for homogeneous zoos
            (``fixed_size_list<float32>``); ``None`` for heterogeneous zoos (``list<float32>``).
        hparams: the hyperparameter columns (default: those TrainConfig declares).
    """
    weights_type = (
        pa.list_(pa.float32(), n_params) if n_params is not None else pa.list_(pa.float32())
    )
    fields = [
        pa.field("model_id", pa.string()),
        pa.field("architecture", pa.string()),
        pa.field("source", pa.string()),
        pa.field("epoch", pa.int32()),
        *[pa.field(n, t) for n, t in hparams],
        *[pa.field(n, pa.float32()) for n in METRIC_FIELDS],
        pa.field("status", pa.string()),
        pa.field("split", pa.string()),
        pa.field("n_params", pa.int64()),
        pa.field("weights", weights_type),
    ]
    return pa.schema(fields)
