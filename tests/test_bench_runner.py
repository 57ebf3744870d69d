"""``benchmarks.evaluate`` end to end on real (tiny) zoos."""

from __future__ import annotations

import sys
import textwrap
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import benchmarks
from benchmarks import evaluate
from benchmarks.errors import MethodError, TaskNotApplicableError, ZooMismatchError
from benchmarks.finetune import area_under_curve
from benchmarks.registry import SUITES
from benchmarks.results import load_result
from modelzoo import load_zoo, read_manifest, weights_tensor
from modelzoo.storage.verify import VERIFIED_NAME
from tests.bench_fixtures import build_test_zoo, one_thread

pytestmark = pytest.mark.usefixtures("single_thread")


def test_property_suite_scores_every_target(var_zoo: Path, tmp_path: Path) -> None:
    results = evaluate(suite="digits-properties-v1", method="weight-stats-linear", zoo=var_zoo,
                       out=tmp_path, seeds=2)
    assert [r.task.name for r in results] == list(SUITES.get("digits-properties-v1").tasks)
    manifest = read_manifest(var_zoo)
    for r in results:
        assert set(r.scores) == {"validation", "test"}
        main = r.scores["test"][r.task.main_score]
        assert len(main.values) == 2 and r.seeds == [0, 1]
        assert r.main_score.mean == pytest.approx(np.mean(main.values))
        assert r.main_score.std == pytest.approx(np.std(main.values))
        assert r.zoo.content_hash == manifest.content_hash and r.zoo.matches_pin
        assert r.method.meta["head"] == "linear"
        params = r.details["per_seed"][0]["head_params"]
        assert set(params) == ({"alpha"} if r.task.type == "regression" else {"C"})
        path = tmp_path / "weight-stats-linear" / "digits-cnn_s-v1.0.0" / f"{r.task.name}.json"
        assert load_result(path) == r
    # the weights carry real signal about test accuracy (chance has tau = 0)
    by_task = {r.task.name: r for r in results}
    assert by_task["digits-test-acc"].main_score.mean > 0.3


def test_chance_baseline_matches_the_test_split(var_zoo: Path) -> None:
    (res,) = evaluate(tasks=["digits-hp-optimizer"], method="chance", zoo=var_zoo, seeds=1)
    train = load_zoo(var_zoo, "train")["optimizer"]
    test = list(load_zoo(var_zoo, "test")["optimizer"])
    majority = sorted(Counter(train).items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    expected = sum(v == majority for v in test) / len(test)
    assert res.main_score.mean == pytest.approx(expected)
    (reg,) = evaluate(tasks=["digits-test-acc"], method="chance", zoo=var_zoo, seeds=1)
    assert reg.scores["test"]["kendall_tau"].mean == 0.0  # constant prediction: no ranking


SPY = textwrap.dedent(
    """
    import numpy as np
    SEEN = []

    class Spy:
        name = "spy"
        def meta(self):
            return {}
        def fit(self, train, *, target, task_type, validation, manifest, seed):
            SEEN.append(("fit", train, validation, seed))
            self.mean = float(np.mean(train[target]))
        def predict(self, dataset, *, manifest):
            SEEN.append(("predict", dataset))
            return np.asarray(dataset["epoch"], dtype=float)
    """
)


def test_rows_are_checkpoints_of_the_zoos_own_splits(
    var_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bench_spy.py").write_text(SPY)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        (res,) = evaluate(tasks=["digits-epoch"], method="bench_spy:Spy", zoo=var_zoo, seeds=[7])
        import bench_spy

        (_, train, val, seed), *predicts = bench_spy.SEEN
    finally:
        sys.modules.pop("bench_spy", None)
    counts = read_manifest(var_zoo).split_counts()
    assert seed == 7 and res.seeds == [7]
    assert set(train["split"]) == {"train"} and len(train) == counts["train"]["rows"]
    assert set(val["split"]) == {"validation"} and len(val) == counts["validation"]["rows"]
    assert [len(p[1]) for p in predicts] == [counts["validation"]["rows"],
                                            counts["test"]["rows"]]
    assert not set(train["model_id"]) & set(predicts[1][1]["model_id"])  # no leakage
    # predicting the epoch column itself is a perfect ranking
    assert res.main_score.mean == pytest.approx(1.0)
    assert res.scores["test"]["r2"].mean == pytest.approx(1.0)


def test_gbt_head_and_suite_skips_on_tiny_zoo(tiny_zoo: Path) -> None:
    lines: list[str] = []
    results = evaluate(suite="digits-v1", method="weight-stats-gbt", zoo=tiny_zoo, seeds=1,
                       progress=lines.append)
    names = {r.task.name for r in results}
    # tiny_zoo varies activation and lr only: init/optimizer cannot be scored; the
    # initialization / generation tasks need sample(), which this method lacks
    assert names == {"digits-test-acc", "digits-ggap", "digits-epoch", "digits-hp-activation"}
    assert any("single value" in line and "digits-hp-init" in line for line in lines)
    assert any("digits-generation" in line and "sample" in line for line in lines)
    assert all("learning_rate" in r.details["per_seed"][0]["head_params"] for r in results)


def test_explicit_task_errors(tiny_zoo: Path, var_zoo: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskNotApplicableError, match="does not vary it"):
        evaluate(tasks=["digits-hp-init"], method="chance", zoo=tiny_zoo, seeds=1)
    with pytest.raises(MethodError, match="needs sample"):
        evaluate(tasks=["digits-init-same"], method="weight-stats-linear", zoo=tiny_zoo)
    other = tmp_path / "other"
    with one_thread():
        build_test_zoo(other, seeds=1, epochs=1, name="some-other-zoo")
    with pytest.raises(ZooMismatchError, match="--allow-unpinned"):
        evaluate(tasks=["digits-epoch"], method="chance", zoo=other, seeds=1)
    (res,) = evaluate(tasks=["digits-epoch"], method="chance", zoo=other, seeds=1,
                      allow_unpinned=True, out=tmp_path / "res")
    assert not res.zoo.matches_pin and res.zoo.name == "some-other-zoo"
    assert (tmp_path / "res" / "chance" / "some-other-zoo-v1.0.0" / "digits-epoch.json").is_file()


def test_initialization_pretrained_beats_random(tiny_zoo: Path) -> None:
    runs = {m: evaluate(tasks=["digits-init-same", "digits-init-transfer"], method=m,
                        zoo=tiny_zoo, seeds=2)
            for m in ("random-init", "zoo-init")}
    for results in runs.values():
        for r in results:
            curve = r.curves["test/accuracy"]
            assert len(curve) == 3 + 1  # before fine-tuning + 3 epochs
            assert r.scores["test"]["zero_shot_accuracy"].mean == pytest.approx(curve[0].mean)
            assert r.scores["test"]["final_accuracy"].mean == pytest.approx(curve[-1].mean)
            per_seed_auc = r.scores["test"]["auc"].values
            assert len(per_seed_auc) == 2 and all(0 <= a <= 1 for a in per_seed_auc)
            assert r.main_score.mean == pytest.approx(
                area_under_curve([c.mean for c in curve]))  # mean of linear functionals
            d = r.details["per_seed"][0]
            assert d["tensors_loaded"] == d["tensors_total"]
    same = {m: res[0] for m, res in runs.items()}
    assert same["zoo-init"].task.name == "digits-init-same"
    zs = {m: r.scores["test"]["zero_shot_accuracy"].mean for m, r in same.items()}
    assert zs["zoo-init"] > zs["random-init"] + 0.2  # trained models are far better at epoch 0
    assert runs["random-init"][1].details["per_seed"][0]["source"] == "digits-transposed"


COPIER = textwrap.dedent(
    """
    import numpy as np
    from modelzoo import load_zoo, weights_tensor

    class NoisyCopies:
        name = "noisy-copies"
        def meta(self):
            return {}
        def sample(self, *, zoo, manifest, target, n, seed):
            w = weights_tensor(load_zoo(zoo, "train")).numpy()
            rng = np.random.default_rng(seed)
            last = w[-n:]  # rows of trained checkpoints
            return last + rng.normal(0, 1e-4, last.shape).astype(np.float32)
    """
)


def test_generation_novelty_rejects_copies(
    tiny_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bench_copier.py").write_text(COPIER)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        (copies,) = evaluate(tasks=["digits-generation"], method="bench_copier:NoisyCopies",
                             zoo=tiny_zoo, seeds=1)
    finally:
        sys.modules.pop("bench_copier", None)
    (rand,) = evaluate(tasks=["digits-generation"], method="random-init", zoo=tiny_zoo, seeds=1)
    (zoo,) = evaluate(tasks=["digits-generation"], method="zoo-init", zoo=tiny_zoo, seeds=1)
    for memorised in (copies, zoo):
        s = memorised.scores["test"]
        assert s["novel_fraction"].mean == 0.0 and s["novel_percentile"].mean == 0.0
        assert s["novelty"].mean < 0.01
    assert zoo.scores["test"]["zero_shot_accuracy"].mean > 0.3  # good but not novel
    r = rand.scores["test"]
    assert r["novel_fraction"].mean == 1.0 and r["novelty"].mean > 0.5
    assert r["novel_percentile"].mean == pytest.approx(r["percentile"].mean)


def test_seeds_give_mean_and_std(tiny_zoo: Path) -> None:
    (res,) = evaluate(tasks=["digits-init-same"], method="random-init", zoo=tiny_zoo,
                      seeds=[0, 5, 9])
    auc = res.scores["test"]["auc"]
    assert res.seeds == [0, 5, 9] and len(auc.values) == 3
    assert auc.std == pytest.approx(np.std(auc.values)) and auc.std > 0


def test_sane_method(tiny_zoo: Path, tmp_path: Path) -> None:
    pytest.importorskip("sane.embed")
    from benchmarks.methods.sane_method import Sane

    sane = Sane(config={"epochs": 1, "d_model": 16, "n_heads": 2, "n_layers": 1,
                        "latent_dim": 4, "token_size": 32, "window_size": 16, "device": "cpu"})
    results = evaluate(tasks=["digits-test-acc", "digits-init-same", "digits-generation"],
                       method=sane, zoo=tiny_zoo, seeds=1, workdir=tmp_path)
    assert [r.method.name for r in results] == ["sane"] * 3
    assert (tmp_path / "sane-seed0" / "run" / "ckpt.pt").is_file()
    assert results[0].method.meta["config"]["epochs"] == 1


def test_api_is_reexported() -> None:
    assert benchmarks.evaluate is evaluate
    assert weights_tensor  # the tests read weights through the storage API


def test_diverged_models_are_excluded_without_writing_into_the_zoo(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    with one_thread():
        build_test_zoo(zoo, seeds=1, epochs=1, diverged=2)
    def files() -> list[Path]:  # the shard verification cache may appear: it is no data
        return sorted(p.relative_to(zoo) for p in zoo.rglob("*") if p.name != VERIFIED_NAME)

    before = files()
    (res,) = evaluate(tasks=["digits-test-acc"], method="flat-linear", zoo=zoo, seeds=1)
    assert files() == before
    assert np.isfinite(res.main_score.mean)
    train = load_zoo(zoo, "train").to_pandas()
    healthy = train[train.status == "ok"]
    assert len(healthy) < len(train)
    # Ridge would fail on the NaN weights of the diverged models, so they were left out
