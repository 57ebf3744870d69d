"""One declaration per hyperparameter: the recipe grid and the Arrow columns derive from it."""

from __future__ import annotations

from typing import Annotated

import pyarrow as pa
import pytest
from pydantic import Field, ValidationError

from modelzoo.builder.recipe import Grid, grid_model
from modelzoo.errors import RecipeError
from modelzoo.hparams import Column, TrainConfig, hparam_columns
from modelzoo.storage.schema import HPARAM_FIELDS, zoo_schema

#: The columns and grid order of every zoo built so far: deriving them must not change them.
COLUMNS_V1 = (
    ("seed", pa.int64()), ("lr", pa.float64()), ("weight_decay", pa.float64()),
    ("dropout", pa.float64()), ("activation", pa.string()), ("init", pa.string()),
    ("optimizer", pa.string()), ("batch_size", pa.int32()), ("train_fraction", pa.float64()),
    ("schedule", pa.string()),
)  # fmt: skip
GRID_ORDER_V1 = ["seed", "activation", "init", "optimizer", "lr", "weight_decay", "dropout",
                 "batch_size", "train_fraction", "schedule"]  # fmt: skip


class SmoothConfig(TrainConfig):
    """TrainConfig plus one new hyperparameter, declared in one place."""

    label_smoothing: Annotated[float, Column(pa.float64()), Field(ge=0, lt=1)] = 0.0
    loss: Annotated[str, Column(pa.string(), ("ce", "focal"))] = "ce"


def test_derived_columns_and_grid_match_the_released_schema() -> None:
    assert HPARAM_FIELDS == COLUMNS_V1
    assert list(Grid.model_fields) == GRID_ORDER_V1
    assert Grid().model_dump() == {n: [getattr(TrainConfig(), n)] for n in GRID_ORDER_V1}


def test_a_new_field_gives_a_schema_column_and_a_grid_option() -> None:
    cols = hparam_columns(SmoothConfig)
    assert cols[: len(COLUMNS_V1)] == COLUMNS_V1
    assert cols[len(COLUMNS_V1):] == (("label_smoothing", pa.float64()), ("loss", pa.string()))
    schema = zoo_schema(None, cols)
    assert schema.field("label_smoothing").type == pa.float64()
    assert schema.names.index("label_smoothing") == schema.names.index("schedule") + 1

    grid_cls = grid_model(SmoothConfig, "SmoothGrid")
    assert list(grid_cls.model_fields) == [*GRID_ORDER_V1, "label_smoothing", "loss"]
    grid = grid_cls.model_validate({"label_smoothing": [0.0, 0.1], "lr": [0.01]})
    cfgs = grid.configs()
    assert [type(c) for c in cfgs] == [SmoothConfig, SmoothConfig]
    got = [(c.label_smoothing, c.lr, c.loss) for c in cfgs]
    assert got == [(0.0, 0.01, "ce"), (0.1, 0.01, "ce")]
    with pytest.raises(ValidationError, match=r"grid.loss has unknown \['mse'\]; choose from ce"):
        grid_cls.model_validate({"loss": ["mse"]})
    with pytest.raises(RecipeError, match="label_smoothing"):
        grid_cls.model_validate({"label_smoothing": [1.5]}).configs()
    with pytest.raises(ValidationError, match="label_smoothing"):
        Grid.model_validate({"label_smoothing": [0.1]})  # not a hyperparameter of TrainConfig


def test_choices_are_checked_on_the_config_too() -> None:
    with pytest.raises(ValidationError, match="optimizer 'lbfgs' is unknown; choose from adam"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValidationError, match="activation"):
        TrainConfig(activation="swish")
