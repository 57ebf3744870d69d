"""Zoo recipes: architecture, source, hyperparameter grid, epochs, checkpoints and splits."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from modelzoo.architectures import ARCHITECTURES
from modelzoo.errors import RecipeError
from modelzoo.hparams import TrainConfig, column_of
from modelzoo.storage.schema import SPLITS

#: The order zoos built so far enumerate their grids in (it fixes the order of models and so
#: their groups); hyperparameters declared later in TrainConfig are enumerated after these.
GRID_ORDER: tuple[str, ...] = (
    "seed", "activation", "init", "optimizer", "lr", "weight_decay", "dropout", "batch_size",
    "train_fraction", "schedule",
)  # fmt: skip


class GridBase(BaseModel):
    """Hyperparameter grid: every combination is trained once per seed.

    Its fields (one list per hyperparameter, default: the hyperparameter's default) are
    derived from a TrainConfig class by :func:`grid_model`.
    """

    model_config = ConfigDict(extra="forbid")

    config_class: ClassVar[type[TrainConfig]] = TrainConfig

    @model_validator(mode="after")
    def _check(self) -> GridBase:
        for name in type(self).model_fields:
            values = getattr(self, name)
            if not values:
                raise ValueError(f"grid.{name} is empty")
            if len(set(values)) != len(values):
                raise ValueError(f"grid.{name} has duplicates: {values}")
        for name, f in self.config_class.model_fields.items():
            ok = column_of(f).choices
            if ok is None:
                continue
            bad = [v for v in getattr(self, name) if v not in ok]
            if bad:
                raise ValueError(f"grid.{name} has unknown {bad}; choose from {', '.join(ok)}")
        return self

    def size(self) -> int:
        """Number of configurations in the full grid (seeds included)."""
        n = 1
        for name in type(self).model_fields:
            n *= len(getattr(self, name))
        return n

    def configs(self, models: int | None = None) -> list[TrainConfig]:
        """Enumerate configurations: all hyperparameter combinations for the first seed, then
        the next seed, ... ``models`` caps the count and, when larger than the grid, continues
        with new seeds after the largest listed one.
        """
        names = [n for n in type(self).model_fields if n != "seed"]
        combos = list(itertools.product(*(getattr(self, n) for n in names)))

        def seeds():
            yield from self.seed
            yield from itertools.count(max(self.seed) + 1)

        out: list[TrainConfig] = []
        total = models if models is not None else len(self.seed) * len(combos)
        for s in seeds():
            for c in combos:
                if len(out) >= total:
                    return out
                try:
                    out.append(self.config_class(seed=s, **dict(zip(names, c))))
                except ValidationError as e:
                    raise RecipeError(f"invalid grid value: {e}") from None
        return out


def grid_model(config: type[TrainConfig] = TrainConfig, name: str = "Grid") -> type[GridBase]:
    """The grid of ``config``'s hyperparameters: a list field per hyperparameter, in
    :data:`GRID_ORDER` then declaration order; named choices are checked against the
    declared values."""
    fields = config.model_fields
    order = [n for n in GRID_ORDER if n in fields] + [n for n in fields if n not in GRID_ORDER]
    defs: dict[str, Any] = {}
    for n in order:
        f = fields[n]
        item = str if column_of(f).choices is not None else f.annotation
        defs[n] = (list[item], Field(default_factory=functools.partial(list, [f.default])))
    grid = create_model(name, __base__=GridBase, __module__=__name__, **defs)
    grid.config_class = config
    return grid


Grid = grid_model(TrainConfig)


class SplitSpec(BaseModel):
    """Per-model split ratios; assignment is a deterministic hash of the model id."""

    model_config = ConfigDict(extra="forbid")

    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    seed: int = 0

    @model_validator(mode="after")
    def _sum(self) -> SplitSpec:
        vals = [self.train, self.validation, self.test]
        if any(v < 0 for v in vals) or abs(sum(vals) - 1) > 1e-6:
            raise ValueError(f"split ratios must be >= 0 and sum to 1, got {vals}")
        return self

    def assign(self, model_id: str) -> str:
        """The split of ``model_id`` (stable when models are added to the zoo)."""
        h = hashlib.sha256(f"{self.seed}:{model_id}".encode()).digest()
        u = int.from_bytes(h[:8], "big") / 2**64
        if u < self.train:
            return SPLITS[0]
        if u < self.train + self.validation:
            return SPLITS[1]
        return SPLITS[2]


class CardFields(BaseModel):
    """The dataset-card fields every zoo file carries (a build recipe or a mix)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    version: str = "1.0.0"
    description: str = ""
    license: str = "cc-by-4.0"
    citation: str = ""
    card: str = ""


class Recipe(CardFields):
    """Everything needed to build a zoo reproducibly (a ``cards/*.yaml`` file)."""

    architecture: str
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    source: str = "digits"
    max_train: int | None = Field(None, gt=0)
    grid: Grid = Field(default_factory=Grid)
    models: int | None = Field(None, gt=0)
    epochs: int = Field(10, ge=0)
    checkpoint_epochs: list[int] | Literal["all"] = "all"
    splits: SplitSpec = Field(default_factory=SplitSpec)

    @field_validator("architecture")
    @classmethod
    def _arch(cls, v: str) -> str:
        if v not in ARCHITECTURES:
            raise ValueError(ARCHITECTURES.unknown_message(v))
        return v

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        from modelzoo.sources import SOURCES

        if v not in SOURCES:
            raise ValueError(SOURCES.unknown_message(v))
        return v

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        parts = v.split(".")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ValueError(f"version must be semantic MAJOR.MINOR.PATCH, got {v!r}")
        return v

    @model_validator(mode="after")
    def _epochs(self) -> Recipe:
        if self.checkpoint_epochs != "all":
            bad = [e for e in self.checkpoint_epochs if not 0 <= e <= self.epochs]
            if bad:
                raise ValueError(f"checkpoint_epochs {bad} outside 0..{self.epochs}")
        return self

    def checkpoints(self) -> list[int]:
        """Sorted checkpoint epochs."""
        if self.checkpoint_epochs == "all":
            return list(range(self.epochs + 1))
        return sorted(set(self.checkpoint_epochs))

    def configs(self) -> list[TrainConfig]:
        """The models of this zoo, in build order."""
        return self.grid.configs(self.models)

    def model_id(self, cfg: TrainConfig) -> str:
        """Stable id derived from architecture, source and the model's hyperparameters."""
        key = {
            "architecture": self.architecture,
            "arch_kwargs": self.arch_kwargs,
            "source": self.source,
            "max_train": self.max_train,
            **cfg.model_dump(),
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.architecture}-{self.source}-{digest}"

    def build_key(self) -> dict[str, Any]:
        """The fields that determine the zoo's content (a resumed build must match them)."""
        return self.model_dump(exclude={"description", "license", "citation", "card", "version"})


def load_recipe(path: str | Path, **overrides: Any) -> Recipe:
    """Read a YAML recipe, apply non-None ``overrides``, validate.

    Raises:
        RecipeError: unreadable file or invalid recipe (with the offending field).
    """
    return make_recipe(read_yaml_mapping(path, "recipe"), **overrides)


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping; errors name ``what`` it is meant to be.

    Raises:
        RecipeError: unreadable file, invalid YAML, or not a mapping.
    """
    p = Path(path)
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise RecipeError(f"cannot read {what} {p}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"{what} {p} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"{what} {p} must be a YAML mapping")
    return raw


def make_recipe(raw: dict[str, Any], **overrides: Any) -> Recipe:
    """Validate a recipe mapping with non-None ``overrides`` applied.

    Overriding ``epochs`` (e.g. ``zoo build card.yaml --epochs 10``) keeps the recipe's listed
    checkpoint epochs that still fit and adds the new last epoch; overriding ``arch_kwargs``
    for the recipe's own architecture updates its options instead of replacing them.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    data = {**raw, **given}
    ckpts = raw.get("checkpoint_epochs")
    if "epochs" in given and "checkpoint_epochs" not in given and isinstance(ckpts, list):
        epochs = given["epochs"]
        data["checkpoint_epochs"] = sorted(
            {e for e in ckpts if isinstance(e, int) and e <= epochs} | {epochs})
    same_arch = given.get("architecture", raw.get("architecture")) == raw.get("architecture")
    if "arch_kwargs" in given and same_arch and isinstance(raw.get("arch_kwargs"), dict):
        data["arch_kwargs"] = {**raw["arch_kwargs"], **given["arch_kwargs"]}
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        msgs = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'recipe'}: {err['msg']}"
            for err in e.errors()
        )
        raise RecipeError(f"invalid recipe: {msgs}") from None
