"""Hyperparameters of a zoo's models, declared once.

:class:`TrainConfig` lists every hyperparameter with its default, its constraints, its Arrow
column type and, for named choices, the allowed values (:class:`Column`). The rest is derived:
the recipe's grid (``modelzoo.builder.recipe.Grid``: one list per hyperparameter, checked against
the choices), the zoo row schema's hyperparameter columns (``modelzoo.storage.schema``) and the
rows a build writes. Adding a hyperparameter is one field here (plus the trainer code using it).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Annotated, Any

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo

from modelzoo.architectures.registry import ACTIVATIONS

INITS: tuple[str, ...] = (
    "default",
    "uniform",
    "normal",
    "kaiming_uniform",
    "kaiming_normal",
    "xavier_uniform",
    "xavier_normal",
)
OPTIMIZERS: tuple[str, ...] = ("adam", "adamw", "sgd")
SCHEDULES: tuple[str, ...] = ("constant", "onecycle")


@dataclass(frozen=True, eq=False)
class Column:
    """How a hyperparameter is stored and gridded.

    Attributes:
        arrow: type of its column in the zoo row schema.
        choices: allowed values of a named hyperparameter (``None``: any value the field's
            type and constraints accept).
    """

    arrow: pa.DataType
    choices: Collection[str] | None = None


class TrainConfig(BaseModel):
    """Hyperparameters of one model of a zoo (the flat hyperparameter columns, in order)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: Annotated[int, Column(pa.int64())] = 0
    lr: Annotated[float, Column(pa.float64()), Field(gt=0)] = 1e-3
    weight_decay: Annotated[float, Column(pa.float64()), Field(ge=0)] = 0.0
    dropout: Annotated[float, Column(pa.float64()), Field(ge=0, lt=1)] = 0.0
    activation: Annotated[str, Column(pa.string(), ACTIVATIONS)] = "relu"
    init: Annotated[str, Column(pa.string(), INITS)] = "kaiming_uniform"
    optimizer: Annotated[str, Column(pa.string(), OPTIMIZERS)] = "adam"
    batch_size: Annotated[int, Column(pa.int32()), Field(gt=0)] = 64
    train_fraction: Annotated[float, Column(pa.float64()), Field(gt=0, le=1)] = 1.0
    schedule: Annotated[str, Column(pa.string(), SCHEDULES)] = "constant"

    @model_validator(mode="after")
    def _choices(self) -> TrainConfig:
        for name, f in type(self).model_fields.items():
            ok = column_of(f).choices
            if ok is not None and getattr(self, name) not in ok:
                raise ValueError(
                    f"{name} {getattr(self, name)!r} is unknown; choose from {', '.join(ok)}"
                )
        return self

    def group_key(self) -> tuple:
        """Models sharing this key run the same function and data shapes: one population."""
        return (self.activation, self.dropout, self.batch_size, self.train_fraction)

    def optim_key(self) -> tuple:
        """Models sharing this key can share one optimizer over stacked parameters."""
        return (self.optimizer, self.lr, self.weight_decay, self.schedule)


def column_of(field: FieldInfo) -> Column:
    """The :class:`Column` declared on a hyperparameter field.

    Raises:
        TypeError: the field declares none (every TrainConfig field must).
    """
    for meta in field.metadata:
        if isinstance(meta, Column):
            return meta
    raise TypeError(f"hyperparameter field {field!r} declares no Column(arrow type)")


def hparam_columns(config: type[TrainConfig] = TrainConfig) -> tuple[tuple[str, pa.DataType], ...]:
    """``(name, Arrow type)`` of each hyperparameter column, in declaration order."""
    return tuple((name, column_of(f).arrow) for name, f in config.model_fields.items())


def hparam_defaults(config: type[TrainConfig] = TrainConfig) -> dict[str, Any]:
    """Each hyperparameter's default value."""
    return {name: f.default for name, f in config.model_fields.items()}
