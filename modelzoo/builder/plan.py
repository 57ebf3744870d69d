"""A zoo against its recorded plan: every model its recipe(s) plan, present once, complete.

``zoo.json`` records the recipe a zoo was built from (for a merged or mixed zoo, each member's
recipe). The plan is what that recipe enumerates: model ids and checkpoint epochs. A zoo
matches its plan when the manifest lists exactly the planned models and the shards hold each
planned ``(model_id, epoch)`` row exactly once, and no other row.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from modelzoo.builder.recipe import Recipe
from modelzoo.errors import IncompleteZooError, RecipeError
from modelzoo.storage.manifest import Manifest, read_manifest
from modelzoo.storage.writer import check_plan


@dataclass(frozen=True)
class Plan:
    """Planned models of a zoo: model id -> the checkpoint epochs it must have."""

    epochs: dict[str, tuple[int, ...]]


def recorded_recipes(recipe: dict[str, Any]) -> list[Recipe] | None:
    """The build recipes recorded in a manifest's ``recipe`` field (None: no plan recorded).

    A built zoo records its recipe; a merged or mixed zoo records its members' recipes.

    Raises:
        RecipeError: a recorded build recipe no longer validates (e.g. an architecture from a
            plugin that is not installed).
    """
    if "architecture" in recipe and "kind" not in recipe:
        # an aligned zoo records its input's recipe plus how it was aligned (same plan)
        build = {k: v for k, v in recipe.items() if k != "alignment"}
        try:
            return [Recipe.model_validate(build)]
        except ValueError as e:
            raise RecipeError(f"the recorded recipe does not validate, so the plan cannot be "
                              f"rebuilt: {e}") from None
    if recipe.get("kind") in ("merge", "mix") and recipe.get("members"):
        out: list[Recipe] = []
        for member in recipe["members"]:
            sub = recorded_recipes(member.get("recipe") or {})
            if sub is None:
                return None
            out += sub
        return out
    return None


def plan_of(manifest: Manifest) -> Plan | None:
    """The plan recorded in ``manifest`` (None when the zoo records no build recipe)."""
    recipes = recorded_recipes(manifest.recipe)
    if recipes is None:
        return None
    epochs: dict[str, tuple[int, ...]] = {}
    for rec in recipes:
        ckpts = tuple(rec.checkpoints())
        for cfg in rec.configs():
            epochs[rec.model_id(cfg)] = ckpts
    return Plan(epochs)


def verify_plan(path: str | Path, manifest: Manifest | None = None) -> str:
    """Check the zoo at ``path`` against its recorded plan; return a one-line summary.

    Raises:
        IncompleteZooError: a planned model is missing, duplicated or incomplete, or a model
            or row that the plan does not hold is present.
    """
    root = Path(path)
    manifest = manifest or read_manifest(root)
    if manifest.recipe.get("kind") == "import":
        return verify_import(root, manifest)
    plan = plan_of(manifest)
    if plan is None:
        return "no build recipe recorded in zoo.json; the plan check does not apply"
    check_plan(set(plan.epochs), manifest.models.keys(), where=f"{root}/zoo.json")
    rows, problems = _shard_rows(root, manifest, set(plan.epochs))
    have: dict[str, set[int]] = {}
    for mid, ep in rows:
        have.setdefault(mid, set()).add(ep)
    bad = [mid for mid, want in plan.epochs.items() if have.get(mid) != set(want)]
    if bad:
        mid = bad[0]
        problems.append(
            f"{len(bad)} models without exactly their planned checkpoints, e.g. {mid}: "
            f"has epochs {sorted(have.get(mid, ()))}, plan {list(plan.epochs[mid])}"
        )
    if problems:
        raise IncompleteZooError(f"{root} does not match its plan: {'; '.join(problems)}")
    return (f"{len(plan.epochs)} planned models present once, "
            f"{sum(rows.values())} checkpoints as planned")


def _shard_rows(
    root: Path, manifest: Manifest, models: set[str]
) -> tuple[Counter[tuple[str, int]], list[str]]:
    """``(model_id, epoch)`` -> how many rows the shards hold, and the rows written twice.

    Raises:
        IncompleteZooError: the shards hold other models than ``models``.
    """
    rows: Counter[tuple[str, int]] = Counter()
    for f in manifest.files:
        with pa.memory_map(str(root / f.path)) as src:
            for batch in pa.ipc.open_stream(src):
                rows.update(zip(batch.column("model_id").to_pylist(),
                                batch.column("epoch").to_pylist()))
    check_plan(models, {mid for mid, _ in rows}, where=f"the shards of {root}")
    dup = [k for k, n in rows.items() if n > 1]
    problems = [f"{len(dup)} rows written more than once, e.g. {dup[0]}"] if dup else []
    return rows, problems


def verify_import(root: Path, manifest: Manifest) -> str:
    """Check an imported zoo (``zoo import``) against what its origin recorded: the models of
    ``zoo.json`` present once each with their number of checkpoints, each (model, epoch) once,
    and as many rows as the origin files held.

    Raises:
        IncompleteZooError: a model or row is missing, duplicated or not recorded.
    """
    origin = manifest.recipe.get("origin") or {}
    rows, problems = _shard_rows(root, manifest, set(manifest.models))
    per: Counter[str] = Counter(mid for mid, _ in rows)
    bad = [m for m, e in manifest.models.items() if per[m] != e.num_checkpoints]
    if bad:
        problems.append(f"{len(bad)} models without their recorded checkpoints, e.g. {bad[0]}: "
                        f"{per[bad[0]]} rows, zoo.json {manifest.models[bad[0]].num_checkpoints}")
    total = sum(rows.values())
    if origin.get("rows") is not None and total != origin["rows"]:
        problems.append(f"{total} rows, but the origin files held {origin['rows']}")
    if problems:
        raise IncompleteZooError(f"{root} does not match its import: {'; '.join(problems)}")
    return (f"{len(manifest.models)} imported models present once, {total} checkpoints as the "
            f"{origin.get('format', manifest.recipe.get('format'))} origin files held")
