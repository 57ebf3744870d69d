"""``weights-kde`` (S_KDE30): anchors, seeding, bandwidth chosen on validation data only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import benchmarks.methods.kde as kde
from benchmarks import evaluate
from benchmarks.errors import MethodError
from benchmarks.methods.base import SELECTION_CANDIDATES, TargetModel, load_method
from benchmarks.methods.kde import WeightsKDE
from modelzoo import load_zoo, read_manifest, weights_tensor

pytestmark = pytest.mark.usefixtures("single_thread")


def _target(zoo: Path, activation: str = "relu") -> TargetModel:
    return TargetModel("cnn_s", activation, read_manifest(zoo).architectures["cnn_s"].n_params)


def _last_by_val_acc(zoo: Path, split: str, activation: str) -> list[np.ndarray]:
    """Last checkpoints of ``split``'s models with ``activation``, best val_acc first."""
    ds = load_zoo(zoo, split)
    df = ds.select_columns(["model_id", "epoch", "activation", "val_acc"]).to_pandas()
    df["row"] = range(len(df))
    df = df[df.activation == activation]
    last = df.loc[df.groupby("model_id").epoch.idxmax()]
    last = last.sort_values(["val_acc", "model_id"], ascending=[False, True])
    w = weights_tensor(ds).numpy().astype(np.float64)
    return [w[r] for r in last.row]


def test_samples_are_seeded_and_shaped(var_zoo: Path) -> None:
    m, manifest, t = WeightsKDE(bandwidth=0.1), read_manifest(var_zoo), _target(var_zoo)
    a = m.sample(zoo=var_zoo, manifest=manifest, target=t, n=5, seed=0)
    b = m.sample(zoo=var_zoo, manifest=manifest, target=t, n=5, seed=0)
    c = m.sample(zoo=var_zoo, manifest=manifest, target=t, n=5, seed=1)
    assert a.shape == (5, t.num_params) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert load_method("weights-kde").bandwidth is None  # the registered one chooses


@pytest.mark.parametrize("k", [2, 3])
def test_kernels_sit_on_the_k_best_train_models(var_zoo: Path, k: int) -> None:
    m = WeightsKDE(k=k, bandwidth=1e-9)
    w = m.sample(zoo=var_zoo, manifest=read_manifest(var_zoo), target=_target(var_zoo, "tanh"),
                 n=40, seed=0)
    best = np.stack(_last_by_val_acc(var_zoo, "train", "tanh"))
    dist = np.abs(w[:, None, :].astype(np.float64) - best[None]).max(2)  # [n, models]
    nearest = dist.argmin(1)
    assert dist.min(1).max() < 1e-5  # every sample is (numerically) an anchor
    assert set(nearest.tolist()) == set(range(k))  # exactly the k best, each used


class _ValidationOnly:
    """A source whose training and test images cannot be read."""

    def __init__(self, src: Any) -> None:
        self._src = src

    def __getattr__(self, name: str) -> Any:
        if name in ("x_test", "y_test", "x_train", "y_train"):
            raise AssertionError(f"weights-kde read the source's {name}")
        return getattr(self._src, name)


@pytest.mark.parametrize("selection", ["validation-accuracy", "likelihood"])
def test_bandwidth_is_chosen_without_the_test_split(
    var_zoo: Path, monkeypatch: pytest.MonkeyPatch, selection: str
) -> None:
    splits: list[str | None] = []

    def spy_zoo(path: Path, split: str | None = None, **kw: Any) -> Any:
        splits.append(split)
        return load_zoo(path, split, **kw)

    real_source = kde.load_source
    monkeypatch.setattr(kde, "load_zoo", spy_zoo)
    monkeypatch.setattr(kde, "load_source",
                        lambda *a, **kw: _ValidationOnly(real_source(*a, **kw)))
    m = WeightsKDE(selection=selection, n_select=4)
    m.sample(zoo=var_zoo, manifest=read_manifest(var_zoo), target=_target(var_zoo), n=2, seed=0)
    assert splits and set(splits) <= {"train", "validation"}
    assert ("validation" in splits) == (selection == "likelihood")
    sel = m.last_selection
    assert set(sel["scores"]) == set(kde.BANDWIDTHS)
    assert sel["bandwidth"] == max(kde.BANDWIDTHS, key=lambda h: (sel["scores"][h], -h))
    n = len(splits)
    m.sample(zoo=var_zoo, manifest=read_manifest(var_zoo), target=_target(var_zoo), n=2, seed=1)
    assert len(splits) == n  # chosen once per zoo and target, then cached


def test_likelihood_criterion_matches_scipy(var_zoo: Path) -> None:
    m = WeightsKDE(selection="likelihood", bandwidths=(0.3, 1.0, 3.0))
    anchors, sigma, h = m.fit(zoo=var_zoo, manifest=read_manifest(var_zoo),
                              target=_target(var_zoo))
    val = np.stack(_last_by_val_acc(var_zoo, "validation", "relu"))
    assert m.last_selection["validation_models"] == len(val)  # fraction 1: all of them
    for bw, score in m.last_selection["scores"].items():
        per_anchor = np.stack([stats.norm.logpdf(val, a, bw * sigma).sum(1) for a in anchors])
        expected = (logsumexp(per_anchor, axis=0) - np.log(len(anchors))).mean()
        assert score == pytest.approx(expected, rel=1e-9)
    assert h == max(m.last_selection["scores"], key=m.last_selection["scores"].get)


def test_validation_accuracy_picks_novel_but_accurate_samples(var_zoo: Path) -> None:
    m = WeightsKDE(n_select=8)
    m.fit(zoo=var_zoo, manifest=read_manifest(var_zoo), target=_target(var_zoo))
    scores = m.last_selection["scores"]
    assert scores[0.01] == 0.0  # copies of training models count nothing
    assert scores[m.last_selection["bandwidth"]] > scores[2.0]  # noise is worse
    assert "validation images" in m.last_selection["chosen_on"]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"k": 1}, "k >= 2"), ({"bandwidth": 0.0}, "positive"), ({"bandwidths": ()}, "positive"),
     ({"selection": "test-accuracy"}, "selection")],
)
def test_bad_settings_fail_clearly(kwargs: dict, match: str) -> None:
    with pytest.raises(MethodError, match=match):
        WeightsKDE(**kwargs)


def test_too_few_anchor_models_fail_clearly(var_zoo: Path) -> None:
    with pytest.raises(MethodError, match="at least 2 healthy train-split"):
        WeightsKDE().sample(zoo=var_zoo, manifest=read_manifest(var_zoo),
                            target=_target(var_zoo, "gelu"), n=2, seed=0)


def test_generation_task_scores_novel_samples(var_zoo: Path) -> None:
    (res,) = evaluate(tasks=["digits-generation"], method="weights-kde", zoo=var_zoo, seeds=1)
    s = res.scores["test"]
    assert s["novel_fraction"].mean > 0.5 and s["zero_shot_accuracy"].mean > 0.3
    assert s["novel_percentile"].ci.unit == "sample x model"
    assert "not S_KDE30" in res.method.meta["reference"]  # a KDE over raw weights
    (selected,) = res.method.meta["selected"].values()  # the choice is in the result file
    assert str(selected["bandwidth"]) in selected["scores"]
    assert "validation images" in selected["chosen_on"]


def test_selection_keeps_the_best_draws_by_validation_accuracy(
    var_zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``candidates=3``: 3n draws, the n best on the validation images kept (SANE_SUB's
    selection, the ``weights-kde-sub`` budget); no test image is read."""
    real_source = kde.load_source
    monkeypatch.setattr(kde, "load_source",
                        lambda *a, **kw: _ValidationOnly(real_source(*a, **kw)))
    manifest, t = read_manifest(var_zoo), _target(var_zoo)
    plain = WeightsKDE(bandwidth=0.5)
    sub = WeightsKDE(bandwidth=0.5, candidates=3, name="weights-kde-sub")
    all_draws = plain.sample(zoo=var_zoo, manifest=manifest, target=t, n=12, seed=0)
    kept = sub.sample(zoo=var_zoo, manifest=manifest, target=t, n=4, seed=0)
    acc = plain._validation_accuracy(manifest, t, all_draws, "digits")
    best = all_draws[np.argsort(-acc, kind="stable")[:4]]
    np.testing.assert_array_equal(kept, best)
    assert sub.meta()["sampling"]["cnn_s/n=4"]["candidates"] == 12
    assert load_method("weights-kde-sub").candidates == SELECTION_CANDIDATES == 5  # 50 -> 10
