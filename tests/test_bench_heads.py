"""The linear heads' shared work (benchmarks.heads) gives scikit-learn's numbers: ridge grids
in closed form, fitted grids kept for the next seed, everything else fitted as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import benchmarks.heads as heads
from benchmarks.evaluators.classification import ClassificationEvaluator
from benchmarks.evaluators.regression import RegressionEvaluator
from benchmarks.scoring import class_labels, fit_head


def _data(n: int, p: int, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = rng.uniform(0.1, 10, p).astype(np.float32)
    x = {s: rng.normal(size=(m, p)).astype(np.float32) * scale
         for s, m in (("train", n), ("validation", 40), ("test", 40))}
    x["train"][:, 0] = 3.0  # a constant feature: centred, not scaled (as StandardScaler)
    w = rng.normal(size=p)
    return x, x["train"] @ w + rng.normal(size=n)


@pytest.mark.parametrize(("n", "p"), [(120, 20), (30, 90)])  # primal and dual Gram matrix
def test_ridge_grid_equals_sklearn_ridge(n: int, p: int) -> None:
    x, y = _data(n, p)
    cands = RegressionEvaluator().head_grid("linear", 0)
    assert heads.ridge_alphas(cands) == (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1000.0)
    fitted = heads.fit_grid(cands, x, y)
    for (_params, est), got in zip(cands, fitted, strict=True):
        ref = est.fit(x["train"].astype(np.float64), y)
        for s in ("validation", "test"):
            want = ref.predict(x[s].astype(np.float64))
            np.testing.assert_allclose(got[s], want, rtol=1e-7, atol=1e-7 * np.abs(want).max())


@pytest.mark.parametrize("kind", ["regression", "classification"])
def test_fit_head_chooses_what_sklearn_chooses(kind: str) -> None:
    x, y_num = _data(150, 25, seed=1)
    ev = RegressionEvaluator() if kind == "regression" else ClassificationEvaluator()
    y_val = np.tile([0.0, 1.0], 20)
    if kind == "classification":
        y_num = np.where(y_num > np.median(y_num), "relu", "tanh")
        y_val = np.where(y_val > 0, "relu", "tanh")
    y = {"train": ev.labels(y_num), "validation": ev.labels(y_val),
         "test": ev.labels(y_val[::-1])}
    main = "kendall_tau" if kind == "regression" else "accuracy"
    fast = fit_head(candidates=ev.head_grid("linear", 0), main_score=main, x=x, y=y)
    with heads.sklearn_heads():
        ref = fit_head(candidates=ev.head_grid("linear", 0), main_score=main, x=x, y=y)
    assert fast.params == ref.params and fast.validation_score == ref.validation_score
    for s in ("validation", "test"):
        if kind == "regression":
            np.testing.assert_allclose(fast.predictions[s], ref.predictions[s], rtol=1e-4)
        else:
            assert list(fast.predictions[s]) == list(ref.predictions[s])


def test_a_fitted_grid_is_kept_for_the_same_features_and_targets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(80, 12, seed=2)
    bases, fits = [], []
    monkeypatch.setattr(heads.Basis, "of", classmethod(
        lambda cls, a, of=heads.Basis.of.__func__: bases.append(1) or of(cls, a)))
    real = heads._sklearn_fits
    monkeypatch.setattr(heads, "_sklearn_fits", lambda *a: fits.append(1) or real(*a))
    ridge = RegressionEvaluator().head_grid("linear", 0)
    logistic = ClassificationEvaluator().head_grid("linear", 0)
    labels = class_labels(np.where(y > 0, "a", "b"))
    first = heads.fit_grid(ridge, x, y)
    heads.fit_grid(logistic, x, labels)
    copy = {s: a.copy() for s, a in x.items()}  # the next seed: new arrays, same content
    again = heads.fit_grid(ridge, copy, y.copy())
    heads.fit_grid(logistic, copy, labels.copy())
    assert (len(bases), len(fits)) == (1, 1)  # one basis, one scikit-learn grid: both kept
    assert all(np.array_equal(a[s], b[s]) for a, b in zip(first, again) for s in a)
    heads.fit_grid(ridge, copy, y + 1.0)  # other targets: solved again, on the same basis
    assert len(bases) == 1
    copy["test"] = copy["test"] + 1.0  # other features: a new basis
    heads.fit_grid(ridge, copy, y)
    assert len(bases) == 2


def test_other_heads_are_fitted_by_sklearn_and_not_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _data(60, 8, seed=3)
    custom = [({"alpha": 1.0}, make_pipeline(StandardScaler(), Ridge(alpha=1.0,
                                                                       fit_intercept=False)))]
    assert heads.ridge_alphas(custom) is None
    calls = []
    real = heads._sklearn_fits
    monkeypatch.setattr(heads, "_sklearn_fits", lambda *a: calls.append(1) or real(*a))
    gbt = RegressionEvaluator().head_grid("gbt", 0)[:1]
    for cands in (custom, custom, gbt, gbt):
        heads.fit_grid(cands, x, y)
    assert len(calls) == 1 + 2  # a non-default ridge is kept (deterministic), trees are not
    bad = {**x, "train": x["train"].copy()}
    bad["train"][0, 0] = np.nan
    with pytest.raises(ValueError):  # scikit-learn's own error for non-finite features
        heads.fit_grid(RegressionEvaluator().head_grid("linear", 0), bad, y)


def test_pca_heads_fit_logistic_grids_on_whitened_principal_components() -> None:
    """Within ``pca_heads(k)`` a logistic grid is what scikit-learn fits on the top-k
    principal components of the standardised train rows (PCA's own, signs aside); a ridge
    grid and the kept default fits are untouched by it."""
    from sklearn.decomposition import PCA

    x, y_num = _data(150, 25, seed=3)
    labels = class_labels(np.where(y_num > np.median(y_num), "relu", "tanh"))
    logistic = ClassificationEvaluator().head_grid("linear", 0)
    ridge = RegressionEvaluator().head_grid("linear", 0)
    default = heads.fit_grid(logistic, x, labels)
    with heads.pca_heads(5):
        got = heads.fit_grid(logistic, x, labels)
        ridge_in = heads.fit_grid(ridge, x, y_num)
    scaler = StandardScaler().fit(x["train"].astype(np.float64))
    pca = PCA(n_components=5).fit(scaler.transform(x["train"].astype(np.float64)))
    proj = {s: pca.transform(scaler.transform(a.astype(np.float64))) for s, a in x.items()}
    for (_params, est), fit in zip(logistic, got, strict=True):
        ref = est.fit(proj["train"], labels)
        for s in ("validation", "test"):
            assert list(fit[s]) == list(ref.predict(proj[s]))
    assert any(list(a["test"]) != list(b["test"]) for a, b in zip(default, got, strict=True))
    with heads.sklearn_heads():  # outside the block: the default fits, not the PCA ones
        ref_default = heads.fit_grid(logistic, x, labels)
    after = heads.fit_grid(logistic, x, labels)
    assert all(list(a[s]) == list(b[s]) for a, b in zip(after, ref_default, strict=True)
               for s in a)
    assert all(np.array_equal(a[s], b[s]) for a, b in
               zip(ridge_in, heads.fit_grid(ridge, x, y_num), strict=True) for s in a)
    with pytest.raises(ValueError, match="k >= 1"), heads.pca_heads(0):
        pass


def test_profile_heads_records_the_fits_really_done() -> None:
    """``profile_heads`` lists each real fit (kind, matrix, seconds, solver iterations); a
    kept grid is not refitted, so not recorded; outside the block nothing is recorded."""
    x, y_num = _data(140, 12, seed=7)
    labels = class_labels(np.where(y_num > np.median(y_num), "relu", "tanh"))
    logistic = ClassificationEvaluator().head_grid("linear", 0)
    ridge = RegressionEvaluator().head_grid("linear", 0)
    with heads.profile_heads() as fits:
        heads.fit_grid(logistic, x, labels)
        heads.fit_grid(logistic, x, labels)  # kept: no new fit
        heads.fit_grid(ridge, x, y_num)
    assert [f["kind"] for f in fits] == ["LogisticRegression"] * len(logistic) + [
        "basis", "ridge"]
    for f in fits:
        assert (f["rows"], f["features"]) == (140, 12) and f["seconds"] >= 0
        assert (f["n_iter"] is None) == (f["kind"] != "LogisticRegression")
    assert all(f["n_iter"] >= 1 for f in fits[: len(logistic)])
    n = len(fits)
    heads.fit_grid(logistic, *_data(140, 12, seed=8)[:1], labels)
    assert len(fits) == n


def test_perf_heads_compares_flat_linear_with_its_pca_heads(
        tiny_zoo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``benchmarks.perf.heads``: the PCA path is labelled, timed and scored per task on
    validation and test; a K below 1 is refused by the CLI."""
    from benchmarks.perf import heads as heads_perf
    from tests.bench_fixtures import one_thread

    with one_thread():
        default = heads_perf.time_method(str(tiny_zoo), "digits-v1", "flat-linear", 1)
        pca = heads_perf.time_method(str(tiny_zoo), "digits-v1", "flat-linear", 1, pca=4)
    assert (default["path"], pca["path"]) == ("default", "pca-4")
    assert set(pca["tasks"]) == set(default["tasks"]) and pca["tasks"]
    for row in (default, pca):
        assert row["wall_s"] > 0
        assert all(0 <= abs(t["validation"]) <= 1 for t in row["tasks"].values())
    logistic = default["profile"]["LogisticRegression"]
    assert logistic["fits"] >= 6 and logistic["iterations"] >= logistic["fits"]
    assert logistic["ms_per_iteration"] > 0 and logistic["features"] > 0
    heads_perf.print_table({"zoo": str(tiny_zoo), "suite": "digits-v1", "seeds": 1,
                            "rows": [default, pca]})
    printed = capsys.readouterr().out
    assert "where the heads' time goes" in printed and "LogisticRegression" in printed
    with pytest.raises(SystemExit):
        heads_perf.main(["--zoo", str(tiny_zoo), "--pca", "0"])
