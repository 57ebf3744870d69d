"""The anchor-scale digits cards (``digits-cnn_s-hyp``, ``digits-cnn_s-seed``) and ``digits-v2``.

Card properties and split sizes are checked from the recipes alone (no full build); the suite
runs end to end on smoke-sized builds of the two real cards.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks import evaluate
from benchmarks.cli import cli as bench_cli
from benchmarks.registry import SUITES, TASKS
from benchmarks.scoring import class_labels
from modelzoo.storage import load_zoo, read_manifest
from tests.suite_fixtures import build_smoke, card, split_counts, train_values, varied

HYP, SEED = "digits-cnn_s-hyp", "digits-cnn_s-seed"
MODEL_ZOOS_GRID = {
    "activation": ["tanh", "relu", "sigmoid", "gelu"],
    "dropout": [0.0, 0.5],
    "init": ["uniform", "normal", "kaiming_uniform", "kaiming_normal"],
    "optimizer": ["adam", "sgd"],
    "weight_decay": [1e-3, 1e-4],
}
PROPERTY_TARGETS = {"test_acc", "ggap", "epoch"}


def _anchor_checkpoints(epochs: int) -> set[int]:
    return set(range(6)) | set(range(0, epochs + 1, 5))


def test_hyp_card_is_the_model_zoos_grid_on_digits() -> None:
    rec = card(HYP)
    assert rec.source == "digits" and rec.architecture == "cnn_s"
    for k, v in MODEL_ZOOS_GRID.items():
        assert getattr(rec.grid, k) == v, k
    lo, hi = sorted(rec.grid.lr)
    assert len(rec.grid.lr) == 2 and hi / lo == pytest.approx(10)  # a decade apart, as in MZ
    assert len(rec.grid.seed) >= 4
    configs = rec.configs()
    assert len(configs) >= 1024 and len(configs) == 256 * len(rec.grid.seed)
    assert rec.epochs >= 25 and _anchor_checkpoints(rec.epochs) <= set(rec.checkpoints())
    assert (rec.splits.train, rec.splits.validation, rec.splits.test) == (0.7, 0.15, 0.15)


def test_seed_card_is_one_configuration_over_1000_seeds() -> None:
    rec = card(SEED)
    configs = rec.configs()
    assert len({c.seed for c in configs}) == len(configs) >= 1000
    assert len({c.model_copy(update={"seed": 0}) for c in configs}) == 1  # one configuration
    assert rec.source == "digits" and rec.architecture == "cnn_s" and rec.epochs >= 25
    assert _anchor_checkpoints(rec.epochs) <= set(rec.checkpoints())
    assert set(range(21, 26)) <= set(rec.checkpoints())  # SANE's CNN runs pretrain on 21-25


@pytest.mark.parametrize("name", [HYP, SEED])
def test_anchor_zoos_have_at_least_150_test_models(name: str) -> None:
    """From the recipe's model ids and SplitSpec.assign: exactly the build's assignment."""
    counts = split_counts(card(name))
    assert counts["test"] >= 150 and counts["validation"] >= 150
    assert sum(counts.values()) == len(card(name).configs())


def test_digits_v2_is_pinned_to_the_anchor_zoos() -> None:
    hyp, seed = card(HYP), card(SEED)
    tasks = [TASKS.get(t) for t in SUITES.get("digits-v2").tasks]
    props = [t for t in tasks if t.is_property]
    weights = [t for t in tasks if t.type in ("initialization", "generation")]
    recon = [t for t in tasks if t.type == "reconstruction"]
    assert {(t.zoo.name, t.zoo.version) for t in props} == {(hyp.name, hyp.version)}
    assert {(t.zoo.name, t.zoo.version) for t in weights} == {(seed.name, seed.version)}
    assert sorted(t.zoo.name for t in recon) == [hyp.name, seed.name]  # one on each zoo
    assert len(props) + len(weights) + len(recon) == len(tasks)
    assert all(t.zoo.content_hash and t.zoo.content_hash.startswith("sha256:") for t in tasks)
    assert {t.target for t in props if t.type == "regression"} == PROPERTY_TARGETS
    # every hyperparameter the hyperparameter zoo varies is a classification task
    assert {t.target for t in props if t.type == "classification"} == varied(hyp)
    assert sorted((t.type, t.finetune.source or "") for t in weights) == [
        ("generation", ""), ("initialization", ""), ("initialization", "digits-transposed")]


def test_class_labels_are_exact_strings() -> None:
    np.testing.assert_array_equal(class_labels(np.array([0.001, 1e-4, 0.5, 0.0])),
                                  ["0.001", "0.0001", "0.5", "0"])
    np.testing.assert_array_equal(class_labels(np.array([0.001], dtype=np.float32)), ["0.001"])
    np.testing.assert_array_equal(class_labels(["relu", "tanh"]), ["relu", "tanh"])
    np.testing.assert_array_equal(class_labels(np.array([64, 32])), ["64", "32"])


@pytest.fixture(scope="module")
def smoke_zoos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Smoke builds of the two real cards: 2 epochs, every split filled; the hyperparameter
    zoo has >= 16 models so that dropout, weight decay, lr and optimizer all vary."""
    root = tmp_path_factory.mktemp("anchor")
    return {HYP: build_smoke(HYP, root / "hyp", epochs=2, minimum=16),
            SEED: build_smoke(SEED, root / "seed", epochs=2)}


def _run(*args: object) -> str:
    res = CliRunner().invoke(bench_cli, ["run", *map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


def test_digits_v2_runs_each_task_on_its_own_zoo(smoke_zoos: dict[str, Path],
                                                  tmp_path: Path) -> None:
    hyp, seed = smoke_zoos[HYP], smoke_zoos[SEED]
    suite = SUITES.get("digits-v2").tasks
    out = tmp_path / "r"
    _run("--suite", "digits-v2", "--method", "weight-stats-linear", "--zoo", hyp, "--zoo",
         seed, "--allow-unpinned", "--seeds", "1", "--out", out)
    expected = {t for t in suite if TASKS.get(t).is_property
                and (TASKS.get(t).type == "regression"
                     or len(train_values(hyp, TASKS.get(t).target)) > 1)}
    assert {"digits-hyp-lr", "digits-hyp-dropout", "digits-hyp-weight-decay"} <= expected
    files = sorted((out / "weight-stats-linear").rglob("*.json"))
    assert {f.stem for f in files} == expected
    assert {f.parent.name for f in files} == {"digits-cnn_s-hyp-v1.0.0"}
    text = _run("--suite", "digits-v2", "--method", "zoo-init", "--zoo", hyp, "--zoo", seed,
                "--allow-unpinned", "--seeds", "1", "--out", out)
    weights = {t for t in suite if TASKS.get(t).type in ("initialization", "generation")}
    for t in weights:  # skipped on the hyperparameter zoo, run on the seed zoo
        assert f"skip {t}: pinned to zoo digits-cnn_s-seed" in text
        res = json.loads((out / "zoo-init" / "digits-cnn_s-seed-v1.0.0" / f"{t}.json")
                         .read_text())
        assert res["zoo"]["name"] == SEED and res["zoo"]["matches_pin"] is False  # smoke hash
    assert {f.stem for f in (out / "zoo-init").rglob("*.json")} == weights


def test_suite_on_a_single_pinned_zoo_refuses_it_without_allow_unpinned(
        smoke_zoos: dict[str, Path]) -> None:
    res = CliRunner().invoke(bench_cli, ["run", "--suite", "digits-v2", "--method", "chance",
                                         "--zoo", str(smoke_zoos[HYP]), "--seeds", "1"])
    assert res.exit_code == 2 and "content hash" in res.output  # smoke build != pinned zoo


def test_numeric_hyperparameter_is_scored_as_classes(smoke_zoos: dict[str, Path]) -> None:
    """chance predicts the train majority lr: its accuracy is the test share of that lr."""
    zoo = smoke_zoos[HYP]
    (res,) = evaluate(tasks=["digits-hyp-lr"], method="chance", zoo=zoo, seeds=1,
                      allow_unpinned=True)
    train = load_zoo(zoo, "train")["lr"]
    test = load_zoo(zoo, "test")["lr"]
    majority = sorted(Counter(train).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    assert res.main_score.mean == pytest.approx(np.mean([v == majority for v in test]))
    assert read_manifest(zoo).name == HYP and len(set(train)) == 2


def test_leaderboard_rescores_numeric_classes_of_a_two_zoo_suite(
        smoke_zoos: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A board on one zoo of a two-zoo suite requires that zoo's tasks only, and re-scores
    lr predictions (saved as class-label strings) against the zoo's float column."""
    from benchmarks.leaderboard import add_submission, load_board, make_submission
    from benchmarks.registry import SUITES as suites
    from benchmarks.registry import TASKS as tasks
    from benchmarks.tasks.metadata import Suite

    hyp = smoke_zoos[HYP]
    lr = TASKS.get("digits-hyp-lr")  # the real task, pinned to this smoke build's hash
    pinned = lr.model_copy(update={"name": "smoke-hyp-lr", "zoo": lr.zoo.model_copy(
        update={"content_hash": read_manifest(hyp).content_hash})})
    monkeypatch.setitem(tasks._items, pinned.name, pinned)
    suite = Suite(name="smoke", version=1, description="two zoos",
                  tasks=(pinned.name, "digits-seed-generation"))
    monkeypatch.setitem(suites._items, suite.key, suite)
    out = tmp_path / "r"
    (res,) = evaluate(suite=suite.key, method="weight-stats-linear", zoo=hyp, seeds=1, out=out,
                      save_predictions=True)
    make_submission(results=out, zoo=hyp, suite=suite.key, method="weight-stats-linear",
                    out=tmp_path / "sub.json")
    add_submission(submission=tmp_path / "sub.json", board=tmp_path / "board", zoo=hyp)
    _, (entry,) = load_board(tmp_path / "board")
    assert [s.task for s in entry.scores] == [pinned.name] and entry.discrepancies == []
    (score,) = entry.scores
    assert score.scores["accuracy"].values == pytest.approx(
        res.scores["test"]["accuracy"].values, abs=1e-12)


class _SetupSpy:
    """A features-only method that records ``setup`` calls (SANE trains there)."""

    name = "setup-spy"

    def __init__(self) -> None:
        self.setups: list[int] = []

    def meta(self) -> dict[str, int]:
        return {"version": 1}

    def setup(self, *, zoo: Path, manifest: object, seed: int, workdir: Path) -> None:
        self.setups.append(seed)

    def features(self, dataset: object, manifest: object) -> np.ndarray:
        return np.zeros((len(dataset), 1))  # type: ignore[arg-type]


def test_no_setup_on_a_zoo_of_the_suite_with_nothing_to_score(
        smoke_zoos: dict[str, Path]) -> None:
    spy = _SetupSpy()
    # the seed zoo's tasks need sample(), the properties are pinned to the hyperparameter zoo
    assert evaluate(suite="digits-v2", method=spy, zoo=smoke_zoos[SEED], seeds=2,
                    allow_unpinned=True) == []
    assert spy.setups == []
    results = evaluate(suite="digits-v2", method=spy, zoo=smoke_zoos[HYP], seeds=2,
                       allow_unpinned=True)
    assert spy.setups == [0, 1] and {r.zoo.name for r in results} == {HYP}


@pytest.mark.parametrize(("models", "ckpts", "chunk"), [(1, 3, 2048), (2, 1, 2048), (23, 4, 5)])
def test_distinct_model_scale_matches_the_pairwise_definition(models: int, ckpts: int,
                                                              chunk: int) -> None:
    """The one-pass version (needed for 14,000-checkpoint zoos) against the definition."""
    import torch

    from benchmarks.finetune import distinct_model_scale

    g = torch.Generator().manual_seed(models)
    order = torch.randperm(models * ckpts, generator=g)
    w = torch.randn(models * ckpts, 40, generator=g)[order]
    ids = [f"m{int(i) // ckpts}" for i in order]
    last = [ids.index(f"m{m}") for m in range(models)]
    expected = []
    for r in last:
        others = [j for j in range(len(ids)) if ids[j] != ids[r]]
        if others:
            expected.append(min(float(torch.dist(w[r].double(), w[j].double())) for j in others))
    got = distinct_model_scale(w, ids, last, chunk=chunk)
    assert got == pytest.approx(float(np.median(expected)) if expected else 1.0, rel=1e-9)
