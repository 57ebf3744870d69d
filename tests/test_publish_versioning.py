"""Versions and ``diff_zoos`` / ``zoo diff``: what changed between two versions of a zoo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelzoo.cli import main as zoo_cli
from modelzoo.errors import ZooError
from modelzoo.hub.merge import merge_zoos
from modelzoo.hub.versioning import (
    VersionConflictError,
    bump_version,
    check_same_release,
    diff_zoos,
    parse_version,
    version_tag,
)
from modelzoo.storage import read_manifest
from tests.merge_fixtures import make_synthetic_zoo

RECIPE = {"architecture": "mlp", "source": "digits", "epochs": 1, "grid": {"lr": [0.001]}}
MLP = {"arch": "mlp", "source": "digits", "in_shape": (1, 8, 8), "models": 6}


@pytest.mark.parametrize(
    ("version", "part", "expected"),
    [("1.2.3", "major", "2.0.0"), ("1.2.3", "minor", "1.3.0"), ("1.2.3", "patch", "1.2.4")],
)
def test_bump_version(version: str, part: str, expected: str) -> None:
    assert bump_version(version, part) == expected
    assert parse_version(expected) > parse_version(version)


@pytest.mark.parametrize("bad", ["1.0", "v1.x.0", "one", "1.0.0.0"])
def test_bad_versions_are_refused(bad: str) -> None:
    with pytest.raises(ZooError, match="semantic"):
        parse_version(bad)


def test_version_tag() -> None:
    assert version_tag("1.4.0") == "v1.4.0" == version_tag("v1.4.0")


def test_same_zoo_is_identical(tiny_zoo: Path) -> None:
    d = diff_zoos(old=tiny_zoo, new=tiny_zoo)
    assert d.identical and not (d.added or d.removed or d.changed or d.moved or d.metadata)
    assert "identical" in d.summary()


def test_diff_reports_added_removed_changed_and_metadata(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    make_synthetic_zoo(old, **MLP, recipe=RECIPE)
    make_synthetic_zoo(
        new, **{**MLP, "models": 7}, version="1.1.0", perturb=("mlp-digits-0002",),
        recipe={**RECIPE, "epochs": 2, "grid": {"lr": [0.001, 0.01]}},
    )  # fmt: skip
    d = diff_zoos(old=old, new=new)
    assert d.added == ["mlp-digits-0006"] and d.removed == []
    assert d.changed == ["mlp-digits-0002"] and d.moved == {}
    assert d.metadata["version"] == ("1.0.0", "1.1.0")
    assert d.metadata["recipe.epochs"] == (1, 2)
    assert d.metadata["recipe.grid.lr"] == ([0.001], [0.001, 0.01])
    assert not d.warnings  # content changed and the version was bumped
    text = d.summary()
    assert "models added: 1" in text and "recipe.epochs: 1 -> 2" in text
    back = diff_zoos(old=new, new=old)
    assert back.removed == ["mlp-digits-0006"]
    assert any("lower" in w for w in back.warnings)


def test_split_moves_are_told_apart_from_weight_changes(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    make_synthetic_zoo(old, **{**MLP, "models": 10})
    m_new = make_synthetic_zoo(new, **{**MLP, "models": 10}, split_seed=1)
    m_old = read_manifest(old)
    moved = {k for k in m_old.models if m_old.models[k].split != m_new.models[k].split}
    assert moved  # a different split seed moves some models
    d = diff_zoos(old=old, new=new)
    assert set(d.moved) == moved
    assert d.changed == []  # same weights: only the split changed
    assert d.warnings and "bump" in d.warnings[0]  # content changed, version still 1.0.0
    mid = sorted(moved)[0]
    perturbed = tmp_path / "perturbed"
    make_synthetic_zoo(perturbed, **{**MLP, "models": 10}, split_seed=1, perturb=(mid,))
    d2 = diff_zoos(old=old, new=perturbed)
    assert d2.changed == [mid] and mid in d2.moved


def test_diff_of_a_zoo_and_its_merge_with_another(tiny_zoo: Path, tiny_mlp_zoo: Path,
                                                  tmp_path: Path) -> None:  # fmt: skip
    merged = tmp_path / "merged"
    merge_zoos(zoos=[tiny_zoo, tiny_mlp_zoo], out=merged, version="2.0.0")
    d = diff_zoos(old=tiny_zoo, new=merged)
    assert d.added == sorted(read_manifest(tiny_mlp_zoo).models)
    assert d.removed == [] and d.changed == [] and d.moved == {}
    assert d.metadata["architectures.mlp.name"] == ("<absent>", "mlp")


def test_check_same_release(tiny_zoo: Path, tmp_path: Path) -> None:
    m = read_manifest(tiny_zoo)
    assert check_same_release(m, m, where="x") is True
    other = make_synthetic_zoo(tmp_path / "o", models=2)
    with pytest.raises(VersionConflictError, match="bump the version"):
        check_same_release(m, other, where="x")
    with pytest.raises(VersionConflictError, match="own folder or tag"):
        check_same_release(m, m.model_copy(update={"version": "1.0.1"}), where="x")


def test_cli_diff(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    make_synthetic_zoo(old, **MLP)
    make_synthetic_zoo(new, **{**MLP, "models": 5}, version="2.0.0")
    r = CliRunner().invoke(zoo_cli, ["diff", str(old), str(new)])
    assert r.exit_code == 0, r.output
    assert "models removed: 1" in r.output and "mlp-digits-0005" in r.output
    r = CliRunner().invoke(zoo_cli, ["diff", str(old), str(new), "--json"])
    data = json.loads(r.output)
    assert data["removed"] == ["mlp-digits-0005"] and data["metadata"]["version"] == [
        "1.0.0", "2.0.0"
    ]  # fmt: skip
    r = CliRunner().invoke(zoo_cli, ["diff", str(old), str(old), "--exit-code"])
    assert r.exit_code == 0
    r = CliRunner().invoke(zoo_cli, ["diff", str(old), str(new), "--exit-code"])
    assert r.exit_code == 1
