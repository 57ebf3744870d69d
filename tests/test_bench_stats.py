"""Bootstrap confidence intervals: over models (never checkpoints), over samples, in results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import evaluate
from benchmarks.errors import BenchmarkError
from benchmarks.scoring import (
    METRICS,
    BootstrapSpec,
    cluster_bootstrap,
    percentile_bootstrap,
    resample_counts,
    resampled_metric,
    sample_bootstrap,
)
from modelzoo import load_zoo

SPEC = BootstrapSpec(n_resamples=400, seed=3)
NUMERIC = ("kendall_tau", "r2", "spearman")
LABELS = ("accuracy", "balanced_accuracy")


def _data(metric: str, *, models: int = 8, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Rows of ``models`` models with 1..4 checkpoints each, ties in targets and predictions."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, size=models)
    groups = np.repeat([f"m{i}" for i in range(models)], sizes)
    n = len(groups)
    if metric in NUMERIC:
        y = rng.normal(size=n).round(1)
        p = (y + rng.normal(size=n)).round(1)
    else:
        y = rng.choice(["relu", "tanh", "gelu"], size=n)
        p = np.where(rng.random(n) < 0.6, y, rng.choice(["relu", "tanh"], size=n))
    return y, p, groups


def _duplicated(metric: str, k: int = 5) -> tuple[np.ndarray, ...]:
    """Each of 10 models has ``k`` checkpoints with identical target and prediction (perfectly
    correlated checkpoints), plus the same data with one row per model."""
    y, p, _ = _data(metric, models=10, seed=1)
    y, p = y[:10], p[:10]
    groups = np.repeat(np.arange(10), k)
    return np.repeat(y, k), np.repeat(p, k), groups, y, p


def _width(ci) -> float:  # noqa: ANN001
    return ci.high - ci.low


@pytest.mark.parametrize("metric", [*NUMERIC, *LABELS])
def test_vectorised_resamples_equal_the_metric_on_expanded_rows(metric: str) -> None:
    y, p, groups = _data(metric)
    _, codes = np.unique(groups, return_inverse=True)
    counts = resample_counts(np.random.default_rng(0), codes.max() + 1, 200)
    fast = resampled_metric(metric, y, p, codes, counts)
    slow = resampled_metric(metric, y, p, codes, counts, vectorised=False)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    # counts of all ones are the original rows: the point estimate
    ones = np.ones((1, codes.max() + 1))
    assert resampled_metric(metric, y, p, codes, ones)[0] == pytest.approx(METRICS[metric](y, p))


@pytest.mark.parametrize("metric", ["kendall_tau", "r2", "accuracy"])
def test_interval_is_over_models_not_checkpoints(metric: str) -> None:
    y, p, groups, y1, p1 = _duplicated(metric)
    model_level = cluster_bootstrap(metric=metric, y=y, predictions=[p], groups=groups,
                                    spec=SPEC)
    # checkpoints of a model carry no extra information: the interval is exactly the one of
    # one row per model (same generator draws, same multiset of models per resample)
    one_row = cluster_bootstrap(metric=metric, y=y1, predictions=[p1], groups=np.arange(10),
                                spec=SPEC)
    assert (model_level.low, model_level.high) == pytest.approx((one_row.low, one_row.high))
    assert model_level.unit == "model" and model_level.n_units == 10
    # the bug this guards against: resampling checkpoints as if independent is too narrow
    checkpoint_level = cluster_bootstrap(metric=metric, y=y, predictions=[p],
                                         groups=np.arange(len(y)), spec=SPEC)
    assert checkpoint_level.n_units == 50
    assert _width(checkpoint_level) < 0.75 * _width(model_level)


@pytest.mark.parametrize("metric", [*NUMERIC, *LABELS])
def test_interval_contains_the_estimate_and_is_reproducible(metric: str) -> None:
    y, p, groups = _data(metric, models=12)
    ci = cluster_bootstrap(metric=metric, y=y, predictions=[p], groups=groups, spec=SPEC)
    assert ci.low <= METRICS[metric](y, p) <= ci.high and ci.low < ci.high
    assert (ci.level, ci.n_resamples, ci.seed, ci.n_units) == (0.95, 400, 3, 12)
    again = cluster_bootstrap(metric=metric, y=y, predictions=[p], groups=groups, spec=SPEC)
    assert again == ci
    other = cluster_bootstrap(metric=metric, y=y, predictions=[p], groups=groups,
                              spec=BootstrapSpec(n_resamples=400, seed=4))
    assert (other.low, other.high) != (ci.low, ci.high)
    wider = cluster_bootstrap(metric=metric, y=y, predictions=[p], groups=groups,
                              spec=BootstrapSpec(n_resamples=400, seed=3, level=0.99))
    assert wider.low <= ci.low and wider.high >= ci.high


def test_several_seeds_give_the_interval_of_the_seed_mean() -> None:
    y, p1, groups = _data("kendall_tau", models=10)
    p2 = np.random.default_rng(9).permutation(p1)
    one = cluster_bootstrap(metric="kendall_tau", y=y, predictions=[p1], groups=groups,
                            spec=SPEC)
    same = cluster_bootstrap(metric="kendall_tau", y=y, predictions=[p1, p1], groups=groups,
                             spec=SPEC)
    assert same == one  # identical seeds: the interval of one
    both = cluster_bootstrap(metric="kendall_tau", y=y, predictions=[p1, p2], groups=groups,
                             spec=SPEC)
    _, codes = np.unique(groups, return_inverse=True)
    counts = resample_counts(np.random.default_rng(SPEC.seed), 10, SPEC.n_resamples)
    mean = (resampled_metric("kendall_tau", y, p1, codes, counts)
            + resampled_metric("kendall_tau", y, p2, codes, counts)) / 2  # paired resamples
    assert (both.low, both.high) == pytest.approx(tuple(np.quantile(mean, [0.025, 0.975])))


@pytest.mark.parametrize(
    ("metric", "y", "groups", "reason"),
    [
        ("kendall_tau", [0.1, 0.2, 0.3], ["a", "a", "a"], "1 model"),
        ("accuracy", ["x", "y"], ["a", "a"], "1 model"),
        ("kendall_tau", [0.5, 0.5, 0.5, 0.5], ["a", "a", "b", "c"], "constant target"),
        ("r2", [0.5, 0.5, 0.5, 0.5], ["a", "a", "b", "c"], "constant target"),
    ],
)
def test_degenerate_cases_have_no_interval(
    metric: str, y: list, groups: list, reason: str
) -> None:
    p = np.arange(len(y), dtype=float) if metric != "accuracy" else np.array(y)
    ci = cluster_bootstrap(metric=metric, y=np.array(y), predictions=[p],
                           groups=np.array(groups), spec=SPEC)
    assert ci.low is None and ci.high is None and not ci.defined
    assert reason in ci.reason and str(ci) == "[n/a]"


def test_non_finite_predictions_have_no_interval() -> None:
    y, p, groups = _data("kendall_tau")
    p = p.copy()
    p[0] = np.nan
    ci = cluster_bootstrap(metric="kendall_tau", y=y, predictions=[p], groups=groups, spec=SPEC)
    assert not ci.defined and "not finite" in ci.reason


def test_constant_labels_still_have_an_accuracy_interval() -> None:
    y = np.array(["relu"] * 6)
    p = np.array(["relu", "tanh", "relu", "relu", "tanh", "relu"])
    ci = cluster_bootstrap(metric="accuracy", y=y, predictions=[p],
                           groups=np.array(list("aabbcc")), spec=SPEC)
    assert ci.defined and 0 <= ci.low <= 4 / 6 <= ci.high <= 1


def test_bad_inputs_fail_clearly() -> None:
    with pytest.raises(BenchmarkError, match="differ in length"):
        cluster_bootstrap(metric="r2", y=np.zeros(3), predictions=[np.zeros(2)],
                          groups=np.arange(3))
    with pytest.raises(BenchmarkError, match="at least 2 resamples"):
        BootstrapSpec(n_resamples=1)
    with pytest.raises(BenchmarkError, match="level"):
        BootstrapSpec(level=1.0)


def test_sample_bootstrap() -> None:
    rng = np.random.default_rng(0)
    seed = rng.normal(0.5, 0.1, size=8)
    ci = sample_bootstrap(per_sample=[seed], spec=SPEC)
    assert ci.low < seed.mean() < ci.high and ci.unit == "sample" and ci.n_units == 8
    assert sample_bootstrap(per_sample=[seed], spec=SPEC) == ci
    # more samples narrow the interval
    many = sample_bootstrap(per_sample=[np.tile(seed, 10)], spec=SPEC)
    assert _width(many) < 0.5 * _width(ci)
    const = sample_bootstrap(per_sample=[np.full(5, 0.7)], spec=SPEC)
    assert (const.low, const.high) == pytest.approx((0.7, 0.7))
    med = sample_bootstrap(per_sample=[seed], spec=SPEC, reduce=lambda v: np.median(v, axis=1))
    assert med.low <= np.median(seed) <= med.high
    assert "1 sample" in sample_bootstrap(per_sample=[np.ones(1)], spec=SPEC).reason


def test_sample_bootstrap_resamples_seeds_then_samples() -> None:
    # two seeds whose samples agree within a seed but not across seeds (e.g. one SANE model
    # trained per seed): the seeds are the outer unit, so the interval spans both seed means;
    # resampling samples within each seed only would give a narrow interval around 0.55
    rng = np.random.default_rng(1)
    seeds = [0.5 + rng.normal(0, 1e-3, size=4), 0.6 + rng.normal(0, 1e-3, size=4)]
    ci = sample_bootstrap(per_sample=seeds, spec=SPEC)
    assert ci.low < 0.505 and ci.high > 0.595


def test_percentile_bootstrap_resamples_samples_and_reference_models() -> None:
    acc = [np.array([0.2, 0.5, 0.9, 0.6])]
    ref = np.array([0.1, 0.4, 0.7, 0.8])
    ci = percentile_bootstrap(accuracies=acc, weights=[np.ones(4)], reference=ref, spec=SPEC)
    point = np.mean([(ref <= a).mean() for a in acc[0]])
    assert ci.low <= point <= ci.high and ci.unit == "sample x model"
    none_novel = percentile_bootstrap(accuracies=acc, weights=[np.zeros(4)], reference=ref,
                                      spec=SPEC)
    assert (none_novel.low, none_novel.high) == (0.0, 0.0)
    fixed_ref = percentile_bootstrap(accuracies=[np.full(4, 0.5)], weights=[np.ones(4)],
                                     reference=ref, spec=SPEC)
    assert fixed_ref.low < 0.5 < fixed_ref.high  # the reference models alone make it vary
    assert not percentile_bootstrap(accuracies=acc, weights=[np.ones(4)],
                                    reference=ref[:1], spec=SPEC).defined


@pytest.mark.usefixtures("single_thread")
def test_results_carry_model_level_intervals(var_zoo: Path) -> None:
    (res,) = evaluate(tasks=["digits-test-acc"], method="weight-stats-linear", zoo=var_zoo,
                      seeds=1, bootstrap=BootstrapSpec(n_resamples=200))
    test_models = len(set(load_zoo(var_zoo, "test")["model_id"]))
    val_models = len(set(load_zoo(var_zoo, "validation")["model_id"]))
    for split, n_models in (("test", test_models), ("validation", val_models)):
        for metric, stat in res.scores[split].items():
            assert stat.ci is not None, (split, metric)
            assert stat.ci.unit == "model" and stat.ci.n_units == n_models
            assert stat.ci.n_resamples == 200
    main = res.scores["test"]["kendall_tau"]
    assert res.main_score.ci == main.ci and main.ci.low <= main.mean <= main.ci.high
    (plain,) = evaluate(tasks=["digits-test-acc"], method="weight-stats-linear", zoo=var_zoo,
                        seeds=1, bootstrap=None)
    assert plain.main_score.ci is None and plain.main_score.mean == res.main_score.mean


def test_paired_difference_is_a_sharper_test_than_overlap() -> None:
    from benchmarks.scoring import paired_difference

    rng = np.random.default_rng(5)
    groups = np.repeat(np.arange(12), 3)
    y = rng.normal(size=36)
    noise = rng.normal(size=36)
    worse = y + 1.0 * noise
    better = y + 0.8 * noise  # the same errors, a bit smaller: better on every resample
    a = cluster_bootstrap(metric="kendall_tau", y=y, predictions=[better], groups=groups,
                          spec=SPEC)
    b = cluster_bootstrap(metric="kendall_tau", y=y, predictions=[worse], groups=groups,
                          spec=SPEC)
    assert a.low < b.high  # the separate intervals overlap: no claim from them
    d = paired_difference(metric="kendall_tau", y=y, predictions_a=[better],
                          predictions_b=[worse], groups=groups, spec=SPEC)
    assert d.low > 0 and d.unit == "model"  # the paired test supports "better"
    same = paired_difference(metric="kendall_tau", y=y, predictions_a=[worse],
                             predictions_b=[worse], groups=groups, spec=SPEC)
    assert (same.low, same.high) == (0.0, 0.0)
    assert not paired_difference(metric="r2", y=np.ones(6), predictions_a=[y[:6]],
                                 predictions_b=[y[:6]], groups=np.arange(6)).defined
