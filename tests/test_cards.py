"""Canonical recipes in ``cards/`` and dataset cards rendered from measured statistics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from modelzoo.builder import plan_groups
from modelzoo.builder.recipe import load_recipe
from modelzoo.hub.cards import (
    PLOT_NAME,
    plot_accuracy,
    render_card,
    size_category,
    zoo_stats,
)
from modelzoo.hub.configs import zoo_configs
from modelzoo.hub.mix import is_mix_file, load_mix
from modelzoo.storage import load_zoo, read_manifest

CARDS = sorted((Path(__file__).resolve().parents[1] / "cards").glob("*.yaml"))
MODEL_ZOOS_GRID = {
    "activation": ["tanh", "relu", "sigmoid", "gelu"],
    "dropout": [0.0, 0.5],
    "init": ["uniform", "normal", "kaiming_uniform", "kaiming_normal"],
    "optimizer": ["adam", "sgd"],
    "lr": [1e-3, 1e-4],
    "weight_decay": [1e-3, 1e-4],
}


def test_the_canonical_cards_are_there() -> None:
    names = {p.stem for p in CARDS}
    assert {
        "digits-cnn_s", "mnist-cnn_s", "svhn-cnn_l", "cifar10-cnn_l", "ctc-mnist",
        "ctc-cifar10", "resnet18-cifar10", "resnet18-cifar100", "resnet18-tiny_imagenet",
        "hetero-mix", "digits-cnn_s-hyp", "digits-cnn_s-seed",
    } <= names  # fmt: skip


@pytest.mark.parametrize("path", CARDS, ids=[p.stem for p in CARDS])
def test_every_card_parses_and_plans(path: Path) -> None:
    if is_mix_file(path):
        mix, recipes = load_mix(path)
        assert len(recipes) >= 2 and mix.card
        assert len({(r.architecture, r.source) for r in recipes}) == len(recipes)
    else:
        recipes = [load_recipe(path)]
    for rec in recipes:
        groups = plan_groups(rec, 64)
        configs = [c for g in groups for c in g]
        assert len(configs) == len(rec.configs()) > 0
        assert len({rec.model_id(c) for c in configs}) == len(configs)  # distinct models
        assert rec.description and rec.card and rec.license
        assert rec.name == path.stem or is_mix_file(path)


@pytest.mark.parametrize("name", ["mnist-cnn_s", "svhn-cnn_l", "cifar10-cnn_l"])
def test_model_zoos_cards_use_the_published_grid(name: str) -> None:
    rec = load_recipe(Path(CARDS[0].parent, f"{name}.yaml"))
    for k, v in MODEL_ZOOS_GRID.items():
        assert getattr(rec.grid, k) == v
    assert len(rec.configs()) == 256 * len(rec.grid.seed) and len(rec.grid.seed) == 10
    assert rec.epochs == 50 and rec.checkpoints() == list(range(51))
    assert (rec.splits.train, rec.splits.validation, rec.splits.test) == (0.7, 0.15, 0.15)


@pytest.mark.parametrize("name", ["ctc-mnist", "ctc-cifar10"])
def test_ctc_cards(name: str) -> None:
    rec = load_recipe(Path(CARDS[0].parent, f"{name}.yaml"))
    assert rec.architecture == "ctc_cnn"
    assert rec.checkpoints() == [0, 1, 2, 3, 20, 40, 60, 80, 86]
    for k in ("activation", "init", "dropout", "weight_decay", "lr", "optimizer",
              "train_fraction"):  # fmt: skip
        assert len(getattr(rec.grid, k)) > 1, k


@pytest.mark.parametrize("name", ["resnet18-cifar10", "resnet18-cifar100",
                                  "resnet18-tiny_imagenet"])  # fmt: skip
def test_resnet_cards(name: str) -> None:
    rec = load_recipe(Path(CARDS[0].parent, f"{name}.yaml"))
    assert rec.architecture == "resnet18" and rec.epochs == 50
    assert rec.grid.optimizer == ["sgd"] and rec.grid.lr == [0.05]
    assert rec.grid.weight_decay == [5e-4] and rec.grid.batch_size == [256]
    seeds = sorted({c.seed for c in rec.configs()})
    assert seeds == list(range(1, 1001))
    assert "GPU" in rec.card


def test_demo_card_is_small() -> None:
    rec = load_recipe(Path(CARDS[0].parent, "digits-cnn_s.yaml"))
    assert rec.source == "digits" and 16 <= len(rec.configs()) <= 32 and 5 <= rec.epochs <= 10


@pytest.mark.parametrize(
    ("rows", "expected"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (54_321, "10K<n<100K"),
     (2_500_000, "1M<n<10M"), (10**13, "n>1T")],
)  # fmt: skip
def test_size_category(rows: int, expected: str) -> None:
    assert size_category(rows) == expected


def test_stats_match_the_zoo(tiny_zoo: Path) -> None:
    m = read_manifest(tiny_zoo)
    s = zoo_stats(tiny_zoo)
    assert s.num_models == m.num_models == 12 and s.num_rows == m.num_rows
    assert s.epochs == [0, 1, 2, 3]
    assert s.grid["activation"] == ["relu", "tanh"] and s.grid["lr"] == [1e-3, 3e-3]
    assert s.num_params == {"cnn_s": m.architectures["cnn_s"].n_params}
    assert sum(s.split_models.values()) == 12 and sum(s.split_rows.values()) == m.num_rows
    assert s.diverged == sum(1 for x in m.models.values() if x.status != "ok")
    # independent computation of the last-epoch accuracy distribution
    last = {}
    for ds in load_zoo(tiny_zoo).values():
        for row in ds.remove_columns("weights"):
            if row["status"] == "ok" and row["epoch"] == 3:
                last[row["model_id"]] = row["test_acc"]
    acc = np.array(list(last.values()))
    assert s.test_acc.count == len(acc)
    assert s.test_acc.min == pytest.approx(acc.min())
    assert s.test_acc.median == pytest.approx(np.median(acc))
    assert s.test_acc.max == pytest.approx(acc.max())
    assert sorted(s.curves["default"]) == [0, 1, 2, 3]


def test_card_renders_prose_statistics_and_plot(tiny_zoo: Path, tmp_path: Path) -> None:
    rec = load_recipe(Path(CARDS[0].parent, "digits-cnn_s.yaml"))
    m = read_manifest(tiny_zoo)
    m = m.model_copy(update={"recipe": {**m.recipe, "card": rec.card, "citation": rec.citation},
                             "description": rec.description})  # fmt: skip
    stats = zoo_stats(tiny_zoo, m)
    png = plot_accuracy(stats, tmp_path / PLOT_NAME)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    configs = zoo_configs(m)
    files = {"default": {s: f"data/{s}-*.parquet" for s in configs[0].rows}}
    text = render_card(manifest=m, stats=stats, configs=configs, data_files=files,
                       repo_id="me/digits", revision="v1.0.0")  # fmt: skip
    front = yaml.safe_load(text.split("---\n", 2)[1])
    assert front["size_categories"] == ["n<1K"] and front["pretty_name"] == m.name
    assert front["configs"][0]["default"] is True
    assert f"]({PLOT_NAME})" in text
    assert "## Intended use" in text  # the recipe's prose
    assert "@inproceedings{schurholt2022modelzoos" in text  # its citation
    assert f"| models | {m.num_models} |" in text
    assert 'load_dataset("me/digits", revision="v1.0.0")' in text
    med = f"{stats.test_acc.median:.4f}"
    assert med in text
