"""Suites of the canonical zoos that need local data (item 8 of issue 12).

Each card's suite is pinned to that card's zoo and covers its varied hyperparameters; each
runs end to end (``bench run``) on a smoke-sized build of the real card trained on the tiny
synthetic data folders of ``tests/test_sources.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.cli import cli as bench_cli
from benchmarks.registry import SUITES, TASKS
from benchmarks.tasks.suites import LOCAL_ZOO_SUITES
from modelzoo.storage import read_manifest
from tests.source_fixtures import WRITERS, make_pools
from tests.suite_fixtures import build_smoke, card, train_values, varied

CARDS = sorted(LOCAL_ZOO_SUITES)
PROPERTY_TARGETS = {"test_acc", "ggap", "epoch"}
#: Smoke-size architecture options (a narrow ResNet-18 keeps the build to seconds).
SMOKE_ARCH = {"resnet18-cifar10": {"width": 4}, "resnet18-cifar100": {"width": 4},
              "resnet18-tiny_imagenet": {"width": 4}}


def test_every_canonical_local_data_card_has_a_suite() -> None:
    assert CARDS == sorted(["mnist-cnn_s", "svhn-cnn_l", "cifar10-cnn_l", "ctc-mnist",
                            "ctc-cifar10", "resnet18-cifar10", "resnet18-cifar100",
                            "resnet18-tiny_imagenet"])
    assert all(card(name).source != "digits" for name in CARDS)


@pytest.mark.parametrize("name", CARDS)
def test_suite_is_pinned_to_its_card_and_covers_what_it_varies(name: str) -> None:
    rec = card(name)
    tasks = [TASKS.get(t) for t in SUITES.get(f"{name}-v1").tasks]
    assert {(t.zoo.name, t.zoo.version) for t in tasks} == {(rec.name, rec.version)}
    assert {t.target for t in tasks if t.type == "regression"} == PROPERTY_TARGETS
    assert {t.target for t in tasks if t.type == "classification"} == varied(rec)
    init = [t for t in tasks if t.type == "initialization"]
    assert [t.finetune.source for t in init] == [None]  # fine-tune on the zoo's own source
    generation = [t for t in tasks if t.type == "generation"]
    assert len(generation) == (0 if rec.architecture == "resnet18" else 1)
    assert all(t.name.startswith(f"{name}-") for t in tasks)


def _run(*args: object) -> str:
    res = CliRunner().invoke(bench_cli, ["run", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("name", CARDS)
def test_suite_runs_on_a_smoke_build_of_the_card(name: str, tmp_path: Path) -> None:
    rec = card(name)
    data = tmp_path / "data"
    WRITERS[rec.source](data, make_pools(rec.source))
    zoo = build_smoke(name, tmp_path / "zoo", epochs=1, minimum=4, data_dir=data,
                      arch_kwargs=SMOKE_ARCH.get(name))
    assert read_manifest(zoo).name == name
    tasks = [TASKS.get(t) for t in SUITES.get(f"{name}-v1").tasks]
    out = tmp_path / "r"
    common = ("--suite", f"{name}-v1", "--zoo", zoo, "--allow-unpinned", "--seeds", 1,
              "--data-dir", data, "--out", out)
    _run("--method", "chance", *common)
    _run("--method", "zoo-init", *common)
    # properties: every regression task; a classification task when the smoke zoo varies it
    expected = {t.name for t in tasks if t.type == "regression"
                or (t.type == "classification" and len(train_values(zoo, t.target)) > 1)}
    assert {f.stem for f in (out / "chance").rglob("*.json")} == expected
    if varied(rec):  # the smoke build varies at least one hyperparameter of the card
        assert any(TASKS.get(t).type == "classification" for t in expected)
    weights = {t.name for t in tasks if not t.is_property}
    assert {f.stem for f in (out / "zoo-init").rglob("*.json")} == weights
    for t in weights:
        res = json.loads((out / "zoo-init" / f"{name}-v1.0.0" / f"{t}.json").read_text())
        assert res["zoo"]["name"] == name and res["details"]["per_seed"][0]["source"] == \
            rec.source
