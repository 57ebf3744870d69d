"""Helpers for the suite tests: card paths, split coverage, smoke-sized builds of real cards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelzoo.builder import build_zoo
from modelzoo.builder.recipe import Recipe, load_recipe
from modelzoo.storage import SPLITS, load_zoo
from modelzoo.storage.schema import STATUS_OK
from tests.bench_fixtures import one_thread

CARDS_DIR = Path(__file__).resolve().parents[1] / "cards"
#: Grid fields that are not hyperparameters a task classifies.
NOT_CLASSIFIED = ("seed",)


def card(name: str, **overrides: Any) -> Recipe:
    """The recipe of ``cards/<name>.yaml`` with non-None ``overrides``."""
    return load_recipe(CARDS_DIR / f"{name}.yaml", **overrides)


def split_counts(recipe: Recipe, models: int | None = None) -> dict[str, int]:
    """Models per split of the first ``models`` models of ``recipe`` (all if None), from the
    recipe's model ids and its ``SplitSpec.assign``: no build needed."""
    counts = dict.fromkeys(SPLITS, 0)
    for cfg in recipe.configs()[:models]:
        counts[recipe.splits.assign(recipe.model_id(cfg))] += 1
    return counts


def models_covering_splits(recipe: Recipe) -> int:
    """The smallest number of leading models of ``recipe`` with a model in every split."""
    seen: set[str] = set()
    for n, cfg in enumerate(recipe.configs(), 1):
        seen.add(recipe.splits.assign(recipe.model_id(cfg)))
        if len(seen) == len(SPLITS):
            return n
    raise AssertionError(f"recipe {recipe.name} never fills every split")


def varied(recipe: Recipe) -> set[str]:
    """Grid fields with more than one value, seeds excluded."""
    return {k for k in type(recipe.grid).model_fields
            if k not in NOT_CLASSIFIED and len(getattr(recipe.grid, k)) > 1}


def build_smoke(name: str, out: Path, *, epochs: int = 1, minimum: int = 0,
                data_dir: Path | None = None, **overrides: Any) -> Path:
    """Build the first models of card ``name`` (enough to fill every split, at least
    ``minimum``) for ``epochs`` epochs, single-threaded."""
    rec = card(name, epochs=epochs, **overrides)
    models = max(models_covering_splits(rec), minimum)
    with one_thread():
        build_zoo(recipe=CARDS_DIR / f"{name}.yaml", out=out, models=models, epochs=epochs,
                  data_dir=data_dir, **overrides)
    return out


def train_values(zoo: Path, column: str) -> set[Any]:
    """Distinct values of ``column`` among healthy train-split rows of ``zoo``."""
    ds = load_zoo(zoo, "train").select_columns([column, "status"]).to_pandas()
    return set(ds[ds.status == STATUS_OK][column].tolist())
