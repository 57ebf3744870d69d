"""Mix recipes (``kind: mix`` + ``members``): build several recipes, then merge them."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator

from modelzoo.builder.recipe import CardFields, Recipe, load_recipe, make_recipe, read_yaml_mapping
from modelzoo.builder.zoo import build_zoo
from modelzoo.errors import RecipeError, ZooError
from modelzoo.hub.configs import safe_name
from modelzoo.hub.merge import merge_zoos
from modelzoo.hub.versioning import check_version
from modelzoo.storage.manifest import MANIFEST_NAME, Manifest, read_manifest


class MixRecipe(CardFields):
    """A heterogeneous zoo recipe (``kind: mix``): member recipes built then merged.

    ``members`` entries are recipe file names (relative to the mix file) or inline recipes.
    """

    kind: Literal["mix"] = "mix"
    members: list[str | dict[str, Any]] = Field(min_length=1)

    @field_validator("version")
    @classmethod
    def _semver(cls, v: str) -> str:
        try:
            return check_version(v)
        except ZooError as e:
            raise ValueError(str(e)) from None


def is_mix_file(path: str | Path) -> bool:
    """Whether ``path`` is a YAML mix recipe (``kind: mix``)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(raw, dict) and raw.get("kind") == "mix"


def load_mix(path: str | Path) -> tuple[MixRecipe, list[Recipe]]:
    """Read a mix recipe and its member recipes.

    Raises:
        RecipeError: unreadable/invalid mix file or member recipe.
    """
    p = Path(path)
    raw = read_yaml_mapping(p, "mix recipe")
    try:
        mix = MixRecipe.model_validate(raw)
    except ValidationError as e:
        msgs = "; ".join(
            f"{'.'.join(str(x) for x in err['loc']) or 'mix'}: {err['msg']}" for err in e.errors()
        )
        raise RecipeError(f"invalid mix recipe {p}: {msgs}") from None
    members = []
    for m in mix.members:
        if isinstance(m, str):
            member = p.parent / m
            if is_mix_file(member):
                raise RecipeError(f"mix member {m} is itself a mix; list its members instead")
            members.append(load_recipe(member))
        else:
            members.append(make_recipe(m))
    names = [r.name for r in members]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise RecipeError(f"mix recipe {p} lists members with the same name: {dup}")
    return mix, members


def build_mix(
    *,
    mix: str | Path,
    out: str | Path,
    models: int | None = None,
    epochs: int | None = None,
    max_train: int | None = None,
    data_dir: str | Path | None = None,
    group_size: int = 64,
    trainer: str = "population",
    device: str = "cpu",
    progress: bool = False,
    threads: int | None = None,
) -> Manifest:
    """Build every member recipe of a mix file, then merge them into one zoo at ``out``.

    Members are built (resumably) under ``.<out>.members/`` next to ``out`` and removed once
    the merged zoo is complete; rerunning an interrupted build resumes the member builds.
    ``models``/``epochs``/``max_train`` override every member (for quick test builds).

    Returns:
        The manifest of the merged zoo.
    """

    mix_cfg, members = load_mix(mix)
    out = Path(out)
    key = {
        "mix": mix_cfg.model_dump(exclude={"description", "license", "citation", "card"}),
        "members": [r.build_key() for r in members],
        "overrides": {"models": models, "epochs": epochs, "max_train": max_train},
    }
    key_hash = "sha256:" + hashlib.sha256(
        json.dumps(key, sort_keys=True, default=str).encode()
    ).hexdigest()
    if (out / MANIFEST_NAME).exists():
        done = read_manifest(out)
        if done.recipe.get("mix_key") == key_hash:
            return done
        raise ZooError(f"{out} already holds a different zoo; choose another --out")
    work = out.parent / f".{out.name}.members"
    roots = []
    for rec in members:
        ckpts = None
        if epochs is not None and rec.checkpoint_epochs != "all":
            ckpts = [e for e in rec.checkpoint_epochs if e <= epochs] or [epochs]
        root = work / safe_name(rec.name)
        build_zoo(
            out=root, recipe=rec, models=models, epochs=epochs, max_train=max_train,
            checkpoint_epochs=ckpts, data_dir=data_dir, group_size=group_size, trainer=trainer,
            device=device, progress=progress, threads=threads,
        )  # fmt: skip
        roots.append(root)
    manifest = merge_zoos(
        zoos=roots, out=out, name=mix_cfg.name, version=mix_cfg.version,
        description=mix_cfg.description, license=mix_cfg.license, citation=mix_cfg.citation,
        card=mix_cfg.card, verify=False, recipe={"kind": "mix", "mix_key": key_hash},
    )  # fmt: skip
    shutil.rmtree(work, ignore_errors=True)
    return manifest
