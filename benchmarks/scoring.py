"""Metrics and the sklearn heads fitted on top of feature methods.

Conventions:

* Regression main score: **Kendall tau** (rank correlation between predicted and true values
  over the test checkpoints). It is scale-free, so it compares across targets (``epoch`` is an
  integer, ``ggap`` tiny) and zoos, it is what model selection needs (ranking models), and it is
  the score reported by Unterthiner et al. and later metanetwork work. R² is reported too.
* A correlation of a constant prediction (or a constant target) is undefined; it is recorded
  as 0.0 (no rank information) so that result files stay valid JSON. The same holds for R²
  of a constant target.
* Heads are chosen on the validation split by the task's main score among the candidates of
  the task type's evaluator (:mod:`benchmarks.evaluators.regression`: ``linear`` =
  ``StandardScaler`` + ``Ridge(alpha)``; :mod:`~benchmarks.evaluators.classification`:
  ``LogisticRegression(C)``; alpha / C on a log grid; ``gbt`` = ``HistGradientBoosting*`` over
  a small grid of learning rate and minimum leaf size). The chosen head is fitted on train
  only.

Confidence intervals (:func:`cluster_bootstrap`): rows are checkpoints, but checkpoints of one
model are not independent, so the unit of resampling is the **model**: each of ``n_resamples``
resamples draws as many model ids as the split has, with replacement, and brings *all* rows of
each drawn model (a cluster bootstrap); the metric is recomputed on those rows. With several
seeds the same resampled model sets are used for every seed (the test models are the same) and
the statistic is the **seed mean** of the metric, i.e. the interval is that of the reported
``ScoreStat.mean``; the seed-to-seed spread is reported separately as ``std``. The interval is
the percentile interval (2.5% and 97.5% quantiles for level 0.95) of that statistic over the
resamples, drawn with ``numpy.random.default_rng(seed)`` (reproducible). Kendall tau, R²,
accuracy and balanced accuracy are computed for all resamples at once from per-model sums
(vectorised, exactly the values of :data:`METRICS` on the expanded rows); other metrics loop.
Undefined intervals (``low = high = None`` with a ``reason``): fewer than 2 units, or a
correlation / R² on a target that is constant over the whole split. A resample whose drawn
models happen to share one target value gets the metric's convention (0.0), like the point
estimate would. With very few models the percentile interval is lopsided and can end at the
estimate. Comparing two methods: :func:`paired_difference` (same resamples for both).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, balanced_accuracy_score, r2_score

from benchmarks.errors import BenchmarkError
from benchmarks.heads import fit_grid
from benchmarks.results import ConfidenceInterval


def _finite(x: float) -> float:
    return float(x) if math.isfinite(float(x)) else 0.0


def kendall_tau(y: np.ndarray, p: np.ndarray) -> float:
    """Kendall tau-b; 0.0 when undefined (constant input)."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return 0.0
    return _finite(stats.kendalltau(y, p).statistic)


def spearman(y: np.ndarray, p: np.ndarray) -> float:
    """Spearman rho; 0.0 when undefined."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(p) == 0:
        return 0.0
    return _finite(stats.spearmanr(y, p).statistic)


def r2(y: np.ndarray, p: np.ndarray) -> float:
    """Coefficient of determination; 0.0 when the target is constant."""
    if len(y) < 2 or np.ptp(y) == 0:
        return 0.0
    return _finite(r2_score(y, p))


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Fraction of exact matches."""
    return _finite(accuracy_score(y, p))


def balanced_accuracy(y: np.ndarray, p: np.ndarray) -> float:
    """Mean per-class recall."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # predicted classes absent from y
        return _finite(balanced_accuracy_score(y, p))


#: Property-prediction metrics by name: ``fn(y_true, y_pred) -> float``.
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "kendall_tau": kendall_tau,
    "spearman": spearman,
    "r2": r2,
    "accuracy": accuracy,
    "balanced_accuracy": balanced_accuracy,
}


@dataclass
class HeadFit:
    """The selected head: its parameters, validation score and predictions per split."""

    params: dict[str, Any]
    validation_score: float
    predictions: dict[str, np.ndarray]


def fit_head(
    *,
    candidates: Sequence[tuple[dict[str, Any], BaseEstimator]],
    main_score: str,
    x: dict[str, np.ndarray],
    y: dict[str, np.ndarray],
) -> HeadFit:
    """Fit every candidate head on train, keep the best on validation by ``main_score``.

    The candidates are fitted by :func:`benchmarks.heads.fit_grid`: a ridge grid in closed
    form from one eigendecomposition, the other linear heads by scikit-learn, both kept for
    the next seed on the same features; trees by scikit-learn.

    Args:
        candidates: ``(params, estimator)`` pairs, from the task type's evaluator
            (:meth:`benchmarks.evaluators.property.PropertyEvaluator.head_grid`).
        main_score: metric name in :data:`METRICS` used for selection.
        x: features per split (``train``, ``validation``, ``test``).
        y: targets per split.
    """
    metric = METRICS[main_score]
    best: HeadFit | None = None
    fitted = fit_grid(candidates, x, y["train"])  # shared work done once (benchmarks.heads)
    for (params, _est), preds in zip(candidates, fitted, strict=True):
        score = metric(y["validation"], preds["validation"]) if len(y["validation"]) else 0.0
        if best is None or score > best.validation_score:
            best = HeadFit(params, score, preds)
    assert best is not None
    return best


def class_labels(values: np.ndarray | list) -> np.ndarray:
    """Class labels of a classification target as strings.

    Hyperparameters such as ``lr`` or ``dropout`` are numeric columns, which sklearn treats as
    continuous targets. Numbers become ``"%.6g"`` strings (``0.001`` -> ``"0.001"``, also when
    read back from float32), so labels and predictions compare exactly; strings stay as they
    are.
    """
    out = []
    for v in np.asarray(values, dtype=object).tolist():
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            out.append(str(v))
        else:
            out.append(f"{float(v):.6g}")
    return np.asarray(out, dtype=object)


def score_predictions(
    metrics: tuple[str, ...], y: np.ndarray, p: np.ndarray
) -> dict[str, float]:
    """All ``metrics`` of predictions ``p`` against ``y``."""
    return {m: METRICS[m](y, p) for m in metrics}


# --------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapSpec:
    """Settings of the bootstrap confidence intervals.

    Attributes:
        n_resamples: number of resamples (1000 gives quantiles stable to about 0.01).
        level: coverage of the percentile interval.
        seed: seed of the resampling generator.
    """

    n_resamples: int = 1000
    level: float = 0.95
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_resamples < 2:
            raise BenchmarkError(
                f"bootstrap needs at least 2 resamples, not {self.n_resamples} "
                "(pass bootstrap=None to skip confidence intervals)")
        if not 0 < self.level < 1:
            raise BenchmarkError(f"bootstrap level must be in (0, 1), not {self.level}")


#: Metrics undefined (recorded as 0.0) on a constant target: no interval then.
NEEDS_VARYING_TARGET = frozenset({"kendall_tau", "spearman", "r2"})


def _undefined(spec: BootstrapSpec, unit: str, n: int, reason: str) -> ConfidenceInterval:
    return ConfidenceInterval(low=None, high=None, level=spec.level, unit=unit, n_units=n,
                              n_resamples=spec.n_resamples, seed=spec.seed, reason=reason)


def _model_bootstrap_undefined(
    spec: BootstrapSpec, metric: str, y: np.ndarray, n_models: int
) -> ConfidenceInterval | None:
    """The undefined interval of a model bootstrap that cannot run, or None if it can."""
    if n_models < 2:
        return _undefined(spec, "model", n_models,
                          f"{n_models} model(s) in the split: nothing to resample")
    if metric in NEEDS_VARYING_TARGET and np.ptp(y.astype(np.float64)) == 0:
        return _undefined(spec, "model", n_models, f"{metric} of a constant target")
    return None


def percentile_interval(
    stat: np.ndarray, *, spec: BootstrapSpec, unit: str, n_units: int
) -> ConfidenceInterval:
    """The ``spec.level`` percentile interval of bootstrap replicates ``stat`` ``[B]``
    (undefined if some replicate is not finite, e.g. NaN predictions)."""
    stat = np.asarray(stat, dtype=np.float64)
    if not np.isfinite(stat).all():
        return _undefined(spec, unit, n_units, "the score is not finite on some resamples "
                          "(non-finite predictions or scores)")
    tail = (1 - spec.level) / 2
    low, high = np.quantile(stat, [tail, 1 - tail])
    return ConfidenceInterval(low=float(low), high=float(high), level=spec.level, unit=unit,
                              n_units=n_units, n_resamples=spec.n_resamples, seed=spec.seed)


def resample_counts(rng: np.random.Generator, n: int, b: int) -> np.ndarray:
    """``[b, n]`` multiplicities of ``n`` units in ``b`` resamples of size ``n`` with
    replacement (row sums are ``n``)."""
    draws = rng.integers(0, n, size=(b, n))
    flat = (draws + n * np.arange(b)[:, None]).ravel()
    return np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.float64)


def _group_sums(codes: np.ndarray, values: np.ndarray, g: int) -> np.ndarray:
    return np.bincount(codes, weights=np.asarray(values, dtype=np.float64), minlength=g)


def _pair_sums(codes: np.ndarray, g: int, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``[g, g]``: sum over row pairs (i in model a, j in model b) of ``fn(rows_a)[i, j]``,
    where ``fn(rows)`` returns the ``[len(rows), n]`` pair values of ``rows`` against all rows.
    """
    out = np.zeros((g, g))
    for a in range(g):
        rows = np.flatnonzero(codes == a)
        out[a] = np.bincount(codes, weights=fn(rows).sum(0), minlength=g)
    return out


def _quad(c: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``c[b] @ m @ c[b]`` for every resample ``b``."""
    return np.einsum("bg,bg->b", c @ m, c)


def target_tie_sums(y: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``[G, G]`` numbers of row pairs (model a, model b) with equal targets (self-pairs
    included): the target ties of Kendall's tau-b, shared by all seeds."""
    yf = np.asarray(y, dtype=np.float64)
    return _pair_sums(codes, int(codes.max()) + 1,
                      lambda r: (yf[r, None] == yf[None]).astype(np.float64))


def _kendall_tau_resampled(
    y: np.ndarray, p: np.ndarray, codes: np.ndarray, c: np.ndarray, ty: np.ndarray
) -> np.ndarray:
    """Tau-b of every resample from per-model pair sums (ordered pairs of expanded rows):
    ``sum sign(dy) sign(dp) / sqrt((W² - ties_y) (W² - ties_p))``, ties counting self-pairs."""
    g = c.shape[1]
    s = _pair_sums(codes, g,
                   lambda r: np.sign(y[r, None] - y[None]) * np.sign(p[r, None] - p[None]))
    tp = _pair_sums(codes, g, lambda r: (p[r, None] == p[None]).astype(np.float64))
    w = c @ np.bincount(codes, minlength=g).astype(np.float64)
    denom = (w**2 - _quad(c, ty)) * (w**2 - _quad(c, tp))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = _quad(c, s) / np.sqrt(denom)
    return np.where(denom > 0, tau, 0.0)


def _r2_resampled(y: np.ndarray, p: np.ndarray, codes: np.ndarray, c: np.ndarray) -> np.ndarray:
    g = c.shape[1]
    yc = y - y.mean()  # centred: the sums below lose no precision
    n = c @ np.bincount(codes, minlength=g).astype(np.float64)
    s1, s2 = c @ _group_sums(codes, yc, g), c @ _group_sums(codes, yc**2, g)
    ss_res = c @ _group_sums(codes, (y - p) ** 2, g)
    ss_tot = s2 - s1**2 / n
    lo = np.full(g, np.inf)
    hi = np.full(g, -np.inf)
    np.minimum.at(lo, codes, y)
    np.maximum.at(hi, codes, y)
    drawn = c > 0
    constant = np.where(drawn, hi, -np.inf).max(1) == np.where(drawn, lo, np.inf).min(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2v = 1 - ss_res / ss_tot
    return np.where(constant | (n < 2), 0.0, r2v)


def _accuracy_resampled(
    y: np.ndarray, p: np.ndarray, codes: np.ndarray, c: np.ndarray
) -> np.ndarray:
    g = c.shape[1]
    n = c @ np.bincount(codes, minlength=g).astype(np.float64)
    return (c @ _group_sums(codes, y == p, g)) / n


def _balanced_accuracy_resampled(
    y: np.ndarray, p: np.ndarray, codes: np.ndarray, c: np.ndarray
) -> np.ndarray:
    g = c.shape[1]
    recalls = []
    for cls in np.unique(y):
        of = y == cls
        n = c @ _group_sums(codes, of, g)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(n > 0, (c @ _group_sums(codes, of & (p == cls), g)) / n,
                                    np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def _resampled_loop(
    fn: Callable[[np.ndarray, np.ndarray], float],
    y: np.ndarray,
    p: np.ndarray,
    codes: np.ndarray,
    c: np.ndarray,
) -> np.ndarray:
    """Reference path: expand each resample's rows and call the metric."""
    rows = [np.flatnonzero(codes == a) for a in range(c.shape[1])]
    out = np.empty(len(c))
    for b, counts in enumerate(c.astype(np.int64)):
        idx = np.concatenate([np.tile(rows[a], k) for a, k in enumerate(counts) if k])
        out[b] = fn(y[idx], p[idx])
    return out


def resampled_metric(
    metric: str,
    y: np.ndarray,
    p: np.ndarray,
    codes: np.ndarray,
    counts: np.ndarray,
    *,
    vectorised: bool = True,
    target_ties: np.ndarray | None = None,
) -> np.ndarray:
    """``metric`` on every resample: ``counts[b, a]`` copies of the rows of model ``a``.

    Args:
        metric: a key of :data:`METRICS`.
        y: targets ``[n]``.
        p: predictions ``[n]``.
        codes: model index ``0..G-1`` of each row ``[n]``.
        counts: ``[B, G]`` model multiplicities per resample.
        vectorised: use the closed forms where there is one (``False``: loop over resamples,
            the reference the closed forms are tested against).
        target_ties: Kendall tau only: :func:`target_ties` of ``y`` (computed if ``None``;
            pass it to reuse it over seeds).
    """
    y, p = np.asarray(y), np.asarray(p)
    if vectorised and metric == "kendall_tau":
        ty = target_ties if target_ties is not None else target_tie_sums(y, codes)
        return _kendall_tau_resampled(y.astype(np.float64), p.astype(np.float64), codes,
                                      counts, ty)
    if vectorised and metric == "r2":
        return _r2_resampled(y.astype(np.float64), p.astype(np.float64), codes, counts)
    if vectorised and metric == "accuracy":
        return _accuracy_resampled(y, p, codes, counts)
    if vectorised and metric == "balanced_accuracy":
        return _balanced_accuracy_resampled(y, p, codes, counts)
    return _resampled_loop(METRICS[metric], y, p, codes, counts)


def cluster_bootstrap(
    *,
    metric: str,
    y: np.ndarray,
    predictions: Sequence[np.ndarray],
    groups: np.ndarray,
    spec: BootstrapSpec = BootstrapSpec(),
    vectorised: bool = True,
) -> ConfidenceInterval:
    """Model-level (cluster) bootstrap interval of the seed-mean of ``metric``.

    Args:
        metric: a key of :data:`METRICS`.
        y: targets of the split's rows (checkpoints) ``[n]``.
        predictions: one ``[n]`` prediction array per seed.
        groups: model id of each row ``[n]``; resampling draws model ids, never rows.
        spec: resamples, level and seed.
        vectorised: see :func:`resampled_metric`.

    Returns:
        The percentile interval; undefined (``low = high = None``, with a ``reason``) for
        fewer than 2 models or a correlation / R² on a target constant over the split.
    """
    y = np.asarray(y)
    if len(y) != len(groups) or any(len(p) != len(y) for p in predictions):
        raise BenchmarkError(
            f"bootstrap inputs differ in length: {len(y)} targets, {len(groups)} model ids, "
            f"predictions of lengths {[len(p) for p in predictions]}")
    if not predictions:
        raise BenchmarkError("bootstrap needs the predictions of at least one seed")
    ids, codes = np.unique(np.asarray(groups), return_inverse=True)
    undefined = _model_bootstrap_undefined(spec, metric, y, len(ids))
    if undefined is not None:
        return undefined
    counts = resample_counts(np.random.default_rng(spec.seed), len(ids), spec.n_resamples)
    ties = target_tie_sums(y, codes) if metric == "kendall_tau" and vectorised else None
    stat = np.mean([resampled_metric(metric, y, np.asarray(p), codes, counts,
                                     vectorised=vectorised, target_ties=ties)
                    for p in predictions], axis=0)
    return percentile_interval(stat, spec=spec, unit="model", n_units=len(ids))


def _two_stage(
    rng: np.random.Generator,
    sizes: Sequence[int],
    b: int,
    per_seed_stat: Callable[[int, np.ndarray], np.ndarray],
) -> np.ndarray:
    """``[b]`` replicates of a seed mean by a two-stage bootstrap: draw as many seeds as there
    are, with replacement, then for each drawn seed draw its samples with replacement
    (``[b, n_s]`` indices) and take ``per_seed_stat(s, indices) -> [b]``; average over the
    drawn seeds. With one seed it is the plain bootstrap of that seed's samples."""
    n_seeds = len(sizes)
    picks = rng.integers(0, n_seeds, size=(b, n_seeds))
    total = np.zeros(b)
    for slot in range(n_seeds):
        for s, n in enumerate(sizes):
            stat = per_seed_stat(s, rng.integers(0, n, size=(b, n)))
            total += np.where(picks[:, slot] == s, stat, 0.0)
    return total / n_seeds


def sample_bootstrap(
    *,
    per_sample: Sequence[np.ndarray],
    spec: BootstrapSpec = BootstrapSpec(),
    reduce: Callable[[np.ndarray], np.ndarray] = lambda v: v.mean(1),
    unit: str = "sample",
) -> ConfidenceInterval:
    """Interval of the seed-mean of a per-sample score (initialization / generation).

    A two-stage bootstrap: seeds are resampled, then the samples of each drawn seed. Samples
    of one seed may share randomness (e.g. a SANE model trained per seed), so the seeds are the
    outer unit; with one seed only the samples are resampled. ``reduce`` maps ``[B, n]``
    resampled values to ``[B]`` (mean by default, e.g. a median for ``novelty``).

    Args:
        per_sample: one ``[n]`` array of per-sample scores per seed.
        spec: resamples, level and seed.
        reduce: the per-seed statistic over a resample's samples.
        unit: what a sample is, as the interval records it (e.g. ``"model"``).
    """
    n = min(len(v) for v in per_sample)
    if n < 2:
        return _undefined(spec, unit, n, f"{n} {unit}(s) per seed: nothing to resample")
    values = [np.asarray(v, dtype=np.float64) for v in per_sample]
    stat = _two_stage(np.random.default_rng(spec.seed), [len(v) for v in values],
                      spec.n_resamples, lambda s, idx: reduce(values[s][idx]))
    return percentile_interval(stat, spec=spec, unit=unit, n_units=n)


def percentile_bootstrap(
    *,
    accuracies: Sequence[np.ndarray],
    weights: Sequence[np.ndarray],
    reference: np.ndarray,
    spec: BootstrapSpec = BootstrapSpec(),
) -> ConfidenceInterval:
    """Interval of the seed-mean of ``mean_i weights_i * P(reference <= accuracies_i)``.

    The generation task's ``percentile`` (weights 1) and ``novel_percentile`` (weights = is
    novel) depend on the samples *and* on the zoo's test models they are ranked against, so
    both are resampled: the samples as in :func:`sample_bootstrap` (seeds, then samples), the
    reference models once per resample (shared by the seeds, as the reference is).

    Args:
        accuracies: per seed, the ``[n]`` zero-shot accuracies of the samples.
        weights: per seed, ``[n]`` weights of the samples (1 or 0/1 novelty).
        reference: ``[m]`` accuracies of the reference (test-split) models.
        spec: resamples, level and seed.
    """
    ref = np.asarray(reference, dtype=np.float64)
    n = min(len(a) for a in accuracies)
    if n < 2 or len(ref) < 2:
        return _undefined(spec, "sample x model", min(n, len(ref)),
                          f"{n} sample(s) per seed and {len(ref)} reference model(s): "
                          "need at least 2 of each")
    rng = np.random.default_rng(spec.seed)
    r = ref[rng.integers(0, len(ref), size=(spec.n_resamples, len(ref)))]  # [B, m]
    acc = [np.asarray(a, dtype=np.float64) for a in accuracies]
    wts = [np.asarray(w, dtype=np.float64) for w in weights]

    def per_seed(s: int, idx: np.ndarray) -> np.ndarray:
        below = (r[:, None, :] <= acc[s][idx][:, :, None]).mean(2)  # [B, n] percentiles
        return (below * wts[s][idx]).mean(1)

    stat = _two_stage(rng, [len(a) for a in acc], spec.n_resamples, per_seed)
    return percentile_interval(stat, spec=spec, unit="sample x model", n_units=n)


def paired_difference(
    *,
    metric: str,
    y: np.ndarray,
    predictions_a: Sequence[np.ndarray],
    predictions_b: Sequence[np.ndarray],
    groups: np.ndarray,
    spec: BootstrapSpec = BootstrapSpec(),
) -> ConfidenceInterval:
    """Interval of ``metric(a) - metric(b)`` (seed means) for two methods on the same rows.

    Both methods are scored on the *same* resampled models in every resample, so the
    difference's interval is narrower than what comparing two separate intervals suggests:
    "a is better than b" is supported at level ``spec.level`` when ``low > 0``. This is the
    stated test to use instead of (conservative) non-overlap of the two intervals; the
    per-item predictions come from ``bench run --save-predictions``.

    Args:
        metric: a key of :data:`METRICS`.
        y: targets ``[n]``.
        predictions_a: per seed ``[n]`` predictions of method a.
        predictions_b: per seed ``[n]`` predictions of method b.
        groups: model id of each row.
        spec: resamples, level and seed.
    """
    if not predictions_a or not predictions_b:
        raise BenchmarkError("paired_difference needs predictions of both methods")
    y = np.asarray(y)
    ids, codes = np.unique(np.asarray(groups), return_inverse=True)
    if any(len(p) != len(y) for p in (*predictions_a, *predictions_b)) or len(groups) != len(y):
        raise BenchmarkError("paired_difference inputs differ in length")
    undefined = _model_bootstrap_undefined(spec, metric, y, len(ids))
    if undefined is not None:
        return undefined
    counts = resample_counts(np.random.default_rng(spec.seed), len(ids), spec.n_resamples)

    def seed_mean(preds: Sequence[np.ndarray]) -> np.ndarray:
        return np.mean([resampled_metric(metric, y, np.asarray(p), codes, counts)
                        for p in preds], axis=0)

    diff = seed_mean(predictions_a) - seed_mean(predictions_b)
    return percentile_interval(diff, spec=spec, unit="model", n_units=len(ids))
