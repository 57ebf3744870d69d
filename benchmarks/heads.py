"""The linear heads of property tasks, with the work their candidates share done once.

A feature method's ``linear`` head is ``StandardScaler`` + ``Ridge(alpha)`` (regression) or
``StandardScaler`` + ``LogisticRegression(C)`` (classification), with ``alpha`` / ``C`` chosen
on the validation split among a grid (:mod:`benchmarks.evaluators.regression`,
:mod:`~benchmarks.evaluators.classification`). Fitted one candidate at a time by
scikit-learn, wide features are slow: on the digits-v2 hyperparameter zoo (8,820 train rows)
``flat-linear``'s 2,464 features took 547 s against 19 s for ``weight-stats-linear``'s 70.
Two things here give the same numbers for less:

1. **Ridge, every alpha from one eigendecomposition.** Standardise with the train split's
   mean and population standard deviation (as ``StandardScaler``; a constant feature is
   centred, not scaled) and decompose the smaller Gram matrix of the standardised train rows
   ``X`` (``n x p``): ``X^T X = V diag(lam) V^T`` when ``p <= n``, else the dual
   ``X X^T = U diag(lam) U^T`` with ``V = X^T U diag(lam)^-1/2`` (directions with ``lam``
   below ``1e-12 max(lam)`` are dropped: no train row has a component there and the penalty
   puts no weight on them). In ``z = V^T w`` every split is ``Z_s = X_s V``, ``Z^T Z =
   diag(lam)``, and scikit-learn's ``Ridge`` objective ``||y - X w - b||^2 + alpha ||w||^2``
   has the closed form ``z = Z^T (y - mean y) / (lam + alpha)``: every alpha for the price
   of one solve, exact to float64 rounding (tested against ``Ridge``). The basis is cached by
   the features' content, so the regression tasks of one row view share it.
2. **A fitted grid is kept** (by the content of the features and the targets), so the next
   seed of a deterministic method, whose features are the same, reuses the fits: a linear
   head has no random state, so its fits are the same bit for bit.

``LogisticRegression`` candidates are still fitted by scikit-learn's lbfgs, one by one: its
result is where lbfgs stops (gradient components at most ``tol``), not the optimum, and on
ill-conditioned problems (large ``C``, nearly separable classes) that point depends on the
solver's path. A batched, preconditioned L-BFGS over the whole ``C`` grid in the basis above
was tried and stopped elsewhere (13% of validation labels different at ``C = 100`` on an
1,103-row sample of the hyperparameter zoo), and run to the optimum it costs more than
scikit-learn; so classification heads keep scikit-learn's fits and numbers.

Measured at commit 9005f69 (the 2-core AMD EPYC, one thread, a zoo build running beside it):
of ``flat-linear``'s 201 s on the nine property tasks of the hyperparameter zoo, the six
logistic grids took 183 s (13-57 s each) and the three ridge grids 15 s (12 s of it the first
eigendecomposition); ``weight-stats-linear``'s six logistic grids took 6.9 s in all. The cost
is lbfgs iterations on an 8,820 x 2,464 matrix that does not fit in cache (174 MB in float64,
read twice per iteration, about 20 ms each): 100-2,000 iterations per ``C``, most at ``C >= 1``,
where validation often picks the largest ``C`` (activation, dropout), so stopping the grid
early would change the choice. Tried on two of the grids: warm starts along the ascending
``C`` path (what ``LogisticRegressionCV`` does) 1.6x and 2.7x faster, predictions 94-95% equal
at ``C = 100``; lbfgs in the eigenbasis above on float32 rows with a diagonal preconditioner,
stopped where its agreement with a ``tol = 1e-9`` optimum matched scikit-learn's own (0.90 vs
0.89 at ``C = 100``), 2.1x faster. Neither reaches the 3x target of issue 24 (the head's total
would have to drop about 4.5x), so neither is adopted; the near-separable, large-``C`` fits
are intrinsically slow to converge. A closed-form classifier on the same basis (ridge on
one-vs-rest +-1 targets, every alpha from 1e-2 to 1e5 from the one eigendecomposition, the
argmax as label) is nearly free but a weaker probe: in a scratch run on the same rows its best
validation accuracy was 0.758 / 0.935 / 0.868 / 0.792 / 0.801 against the logistic head's
0.865 / 0.985 / 0.933 / 0.817 / 0.867 (activation, init, optimizer, lr, dropout), so it is not
adopted either. :func:`profile_heads` records every fit (seconds, lbfgs iterations), and
``benchmarks.perf.heads`` prints the split into iterations and time per iteration.

:func:`pca_heads` is the one fast alternative, kept as a measurement, never a shipped head:
within it, logistic grids are fitted on the train rows' top-``k`` principal components
(the basis above), whitened by the pipeline's own ``StandardScaler``.
``python -m benchmarks.perf.heads --pca K`` times it and shows, per task, what it costs on
validation; whether ``flat-linear`` should trade those points for the time is the issue
author's decision.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

__all__ = ["Basis", "basis_for", "fit_grid", "pca_heads", "profile_heads", "ridge_alphas",
           "sklearn_heads"]

#: Eigen-directions below this fraction of the largest eigenvalue are dropped (rank).
RANK_RTOL = 1e-12
#: Rows per block when forming a Gram matrix in float64 (bounds the temporary copies).
BLOCK = 4096


def _same_params(est: BaseEstimator, default: BaseEstimator, ignore: set[str]) -> bool:
    mine, ref = est.get_params(deep=False), default.get_params(deep=False)
    return all(mine[k] == ref[k] for k in ref if k not in ignore)


def _linear_model(est: BaseEstimator) -> BaseEstimator | None:
    """The model of a ``StandardScaler`` + model pipeline with a default scaler, else None."""
    if not isinstance(est, Pipeline) or len(est.steps) != 2:
        return None
    scaler, model = est.steps[0][1], est.steps[1][1]
    if type(scaler) is not StandardScaler or not _same_params(scaler, StandardScaler(), set()):
        return None
    return model


def ridge_alphas(candidates: Sequence[tuple[dict[str, Any], BaseEstimator]]
                 ) -> tuple[float, ...] | None:
    """The alphas of ``candidates`` if every one is ``StandardScaler`` + ``Ridge(alpha)``
    with all other parameters at their defaults (then :func:`fit_grid` solves them in
    closed form); ``None`` otherwise."""
    alphas = []
    for _params, est in candidates:
        model = _linear_model(est)
        if type(model) is not Ridge or not _same_params(model, Ridge(), {"alpha"}):
            return None
        alphas.append(float(model.alpha))
    return tuple(alphas) if alphas and all(a > 0 for a in alphas) else None


def _deterministic(candidates: Sequence[tuple[dict[str, Any], BaseEstimator]]) -> bool:
    """Every candidate a standard linear head (no random state): its fit can be kept."""
    return bool(candidates) and all(
        type(_linear_model(est)) in (Ridge, LogisticRegression) for _p, est in candidates)


# --------------------------------------------------------------------------- the basis


def _digest(arrays: Sequence[np.ndarray]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        if a.dtype == object:
            h.update("\0".join(map(str, a.ravel().tolist())).encode())
        else:
            h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def _gram(a: torch.Tensor, *, rows: bool) -> torch.Tensor:
    """``a a^T`` (``rows``) or ``a^T a`` in float64, accumulated over blocks of rows."""
    if rows:
        return a @ a.T
    out = torch.zeros(a.shape[1], a.shape[1], dtype=torch.float64)
    for i in range(0, a.shape[0], BLOCK):
        blk = a[i : i + BLOCK]
        out += blk.T @ blk
    return out


@dataclass
class Basis:
    """The standardisation and eigenbasis of one train feature matrix (see the module doc).

    Attributes:
        mean: train mean per feature.
        scale: train population std per feature (1 where it is 0).
        lam: the kept eigenvalues, ``Z^T Z`` (``r``).
        z: the train rows in the basis, ``[n, r]``.
        project: ``[p, r]`` map from standardised features to the basis (``V``).
    """

    mean: np.ndarray
    scale: np.ndarray
    lam: np.ndarray
    z: np.ndarray
    project: np.ndarray

    @classmethod
    def of(cls, x_train: np.ndarray) -> Basis:
        """Standardise ``x_train`` and decompose its Gram matrix (the smaller one)."""
        x64 = np.asarray(x_train, dtype=np.float64)
        mean = x64.mean(0)
        scale = x64.std(0)
        scale[scale < 10 * np.finfo(np.float64).eps * np.maximum(1.0, np.abs(mean))] = 1.0
        xs = torch.from_numpy((x64 - mean) / scale)
        n, p = xs.shape
        dual = p > n
        lam, vec = torch.linalg.eigh(_gram(xs, rows=dual))
        keep = lam > RANK_RTOL * max(float(lam[-1]), 0.0)
        lam, vec = lam[keep], vec[:, keep]
        if dual:  # V = X^T U lam^-1/2, Z = X V = U lam^1/2
            project, z = (xs.T @ vec) / lam.sqrt(), vec * lam.sqrt()
        else:
            project, z = vec, xs @ vec
        return cls(mean=mean, scale=scale, lam=lam.numpy(), z=z.numpy(),
                   project=project.numpy())

    def transform(self, x: np.ndarray) -> np.ndarray:
        """``[rows, r]`` coordinates of feature rows ``x`` (any split) in the basis."""
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.project

    def ridge(self, y: np.ndarray, alphas: Sequence[float],
              zs: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Predictions on each split of ``zs`` (rows in the basis) of ``Ridge(alpha)``
        fitted on the train rows, for every alpha."""
        y = np.asarray(y, dtype=np.float64)
        ym = y.mean()
        coef = (self.z.T @ (y - ym))[:, None] / (self.lam[:, None] + np.asarray(alphas)[None])
        preds = {s: z @ coef + ym for s, z in zs.items()}
        return [{s: p[:, j] for s, p in preds.items()} for j in range(len(alphas))]


@dataclass
class _Cache:
    """The most recent basis and the grids fitted on the most recent features."""

    features: str = ""
    basis: Basis | None = None
    fits: dict[str, list[dict[str, np.ndarray]]] = field(default_factory=dict)


_CACHE = _Cache()


@dataclass
class _Mode:
    """What :func:`fit_grid` does differently inside the measurement blocks below."""

    sklearn: bool = False  # sklearn_heads: every candidate fitted by scikit-learn
    pca_k: int | None = None  # pca_heads: logistic grids on this many principal components
    profile: list[dict[str, Any]] | None = None  # profile_heads: every real fit recorded


_MODE = _Mode()


@contextlib.contextmanager
def _override(**changes: Any) -> Iterator[_Mode]:
    """Set fields of :data:`_MODE` within the block, restore them after (blocks nest)."""
    before = {k: getattr(_MODE, k) for k in changes}
    for k, v in changes.items():
        setattr(_MODE, k, v)
    try:
        yield _MODE
    finally:
        for k, v in before.items():
            setattr(_MODE, k, v)


def _record(kind: str, x_train: np.ndarray, seconds: float, n_iter: int | None = None) -> None:
    if _MODE.profile is not None:
        n, p = np.shape(x_train)
        _MODE.profile.append({"kind": kind, "rows": int(n), "features": int(p),
                              "seconds": seconds, "n_iter": n_iter})


def basis_for(x_train: np.ndarray, key: str | None = None) -> Basis:
    """The :class:`Basis` of ``x_train``, cached by content (only the most recent one: a
    basis is about the size of the features)."""
    key = key or _digest([x_train])
    if _CACHE.features != key:
        _CACHE.basis, _CACHE.features, _CACHE.fits = None, key, {}  # free the old one first
    if _CACHE.basis is None:
        t0 = time.perf_counter()
        _CACHE.basis = Basis.of(x_train)
        _record("basis", x_train, time.perf_counter() - t0)
    return _CACHE.basis


@contextlib.contextmanager
def sklearn_heads() -> Iterator[None]:
    """Within the block :func:`fit_grid` fits every candidate with scikit-learn, one by one,
    keeping nothing: the reference the tests and ``benchmarks.perf.heads`` compare with."""
    with _override(sklearn=True):
        yield


@contextlib.contextmanager
def pca_heads(k: int) -> Iterator[None]:
    """Within the block :func:`fit_grid` fits logistic grids on the top-``k`` principal
    components of the standardised train rows (whitened by each candidate's scaler), keeping
    nothing: the fast alternative ``benchmarks.perf.heads --pca`` measures. Ridge grids and
    features of at most ``k`` columns are fitted as outside it.

    Raises:
        ValueError: ``k`` below 1.
    """
    if k < 1:
        raise ValueError(f"pca_heads needs k >= 1 components, got {k}")
    with _override(pca_k=k):
        yield


@contextlib.contextmanager
def profile_heads() -> Iterator[list[dict[str, Any]]]:
    """Within the block every fit :func:`fit_grid` really does (not the kept ones) is
    recorded in the yielded list: ``kind`` (``basis``: one eigendecomposition; ``ridge``:
    a closed-form grid; else the model's class name, one fit per candidate), the train
    ``rows`` and ``features``, ``seconds`` and, for iterative solvers, ``n_iter`` (the
    largest over classes). ``benchmarks.perf.heads`` reports it: where a head's time goes."""
    fits: list[dict[str, Any]] = []
    with _override(profile=fits):
        yield fits


def _sklearn_fits(candidates: Sequence[tuple[dict[str, Any], BaseEstimator]],
                  x: Mapping[str, np.ndarray], y_train: np.ndarray
                  ) -> list[dict[str, np.ndarray]]:
    out = []
    for _params, est in candidates:
        model = clone(est)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence / constant-feature warnings
            model.fit(x["train"], y_train)
            seconds = time.perf_counter() - t0
            out.append({s: model.predict(x[s]) for s in x if s != "train"})
        last = model.steps[-1][1] if isinstance(model, Pipeline) else model
        n_iter = getattr(last, "n_iter_", None)
        _record(type(last).__name__, x["train"], seconds,
                None if n_iter is None else int(np.max(n_iter)))
    return out


def _usable(x: Mapping[str, np.ndarray]) -> bool:
    tr = np.asarray(x["train"])
    return (tr.ndim == 2 and tr.shape[0] > 1 and tr.shape[1] > 0
            and all(np.issubdtype(np.asarray(a).dtype, np.number)
                    and bool(np.isfinite(a).all()) for a in x.values()))


def fit_grid(candidates: Sequence[tuple[dict[str, Any], BaseEstimator]],
             x: Mapping[str, np.ndarray], y_train: np.ndarray
             ) -> list[dict[str, np.ndarray]]:
    """Fit every candidate on ``x["train"]``, ``y_train``; return, per candidate in order,
    its predictions on every other split of ``x``.

    A ridge grid is solved in closed form (:class:`Basis`); other standard linear heads are
    fitted by scikit-learn; either is kept for a repeated call with the same features and
    targets. Anything else (trees, non-default parameters, non-finite features) is fitted by
    scikit-learn and not kept.
    """
    if _MODE.sklearn or not _deterministic(candidates) or not _usable(x):
        return _sklearn_fits(candidates, x, y_train)
    splits = [s for s in x if s != "train"]
    features = _digest([np.asarray(x["train"]), *(np.asarray(x[s]) for s in splits)])
    key = _digest([np.asarray(y_train)]) + repr(
        [(p, est.get_params(deep=True)) for p, est in candidates])
    if _CACHE.features != features:
        _CACHE.basis, _CACHE.features, _CACHE.fits = None, features, {}  # free the old one
    alphas = ridge_alphas(candidates)
    k = _MODE.pca_k
    if k is not None and alphas is None and np.asarray(x["train"]).shape[1] > k:
        basis = basis_for(x["train"], key=features)
        top = slice(-k, None)  # eigh orders the eigenvalues ascending
        zs = {s: basis.transform(x[s])[:, top] for s in splits}
        return _sklearn_fits(candidates, {"train": basis.z[:, top], **zs}, y_train)
    if key not in _CACHE.fits:
        if alphas is None:
            _CACHE.fits[key] = _sklearn_fits(candidates, x, y_train)
        else:
            basis = basis_for(x["train"], key=features)
            t0 = time.perf_counter()
            zs = {s: basis.transform(x[s]) for s in splits}
            _CACHE.fits[key] = basis.ridge(y_train, alphas, zs)
            _record("ridge", x["train"], time.perf_counter() - t0)
    return _CACHE.fits[key]
