"""``weights-kde``: a Gaussian KDE over the flat weights of the best training models.

A raw-weight baseline for generation: take the last checkpoints of the ``k = 30`` best
*train-split* models (by ``val_acc``) with the target architecture and activation (the
*anchors*), and sample ``anchor + h * sigma * eps`` with a uniformly drawn anchor,
``eps ~ N(0, I)`` and ``sigma`` the per-weight standard deviation over the anchors (a diagonal
Gaussian kernel; a full covariance is singular with 30 points in thousands of dimensions).
It is *not* the SANE paper's S_KDE30: that is a KDE over the *embeddings* of the best 30% of
models of a whole-model hyper-representation autoencoder (Schürholt et al. 2022, public code
``sample_finetune_auxiliaries.py``), decoded to weights; no method here implements it.

``candidates=c > 1`` (``weights-kde-sub``) adds SANE_SUB's selection with the same budget as
the ``sane`` method: draw ``c * n`` models, score each on the **validation images** of the
anchors' source, keep the best ``n``; ``candidates=1`` (``weights-kde``) returns plain draws.

The bandwidth factor ``h`` is chosen among ``bandwidths`` on validation data only; the test
split of the zoo and the test images of the source are never read:

* ``selection="validation-accuracy"`` (default): draw ``n_select`` samples per candidate
  (fixed seed 0), score each on the **validation images** of the zoo's source, count a sample
  only if it is *novel* (L2 distance to the nearest train-split checkpoint above ``novelty``
  times the median gap between distinct train-split models, the generation task's rule) and
  keep the ``h`` with the best mean: the validation analogue of the generation task's main
  score. Too small an ``h`` returns copies (score 0), too large an ``h`` returns noise.
* ``selection="likelihood"``: the classical held-out criterion, the mean log-likelihood of the
  last checkpoints of the best *validation-split* models (the top fraction the anchors are of
  train). In thousands of dimensions it is dominated by the distance between distinct models
  and picks a kernel as wide as the gap between models (on the digits test zoo: the largest
  candidate, with samples at chance accuracy), so it is not the default.

Pass ``bandwidth=`` to fix ``h``. The last choice is kept in ``last_selection`` (candidates,
their validation scores, the choice) and logged.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy.special import logsumexp

from benchmarks.errors import MethodError
from benchmarks.methods._weights import rows_weights
from benchmarks.methods.base import SELECTION_CANDIDATES, TargetModel
from benchmarks.methods.providers import build_target, last_checkpoints
from benchmarks.registry import register_method
from modelzoo import load_zoo
from modelzoo.sources import load_source
from modelzoo.storage import unflatten_weights
from modelzoo.storage.manifest import Manifest
from modelzoo.storage.schema import STATUS_OK

log = logging.getLogger(__name__)

#: Candidate bandwidth factors (multiples of the per-weight anchor standard deviation).
BANDWIDTHS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)

Selection = Literal["validation-accuracy", "likelihood"]


def _best(
    zoo: Path, split: str, target: TargetModel, k: int | None
) -> tuple[np.ndarray, int, list[str]]:
    """Flat weights ``[k', P]`` of the last checkpoints of the ``k`` best models of ``split``
    by ``val_acc`` (ties: smaller ``model_id``; ``None``: all), the number of candidate
    models and the sources of the chosen ones."""
    ds = load_zoo(zoo, split)
    last = last_checkpoints(ds, target)
    acc = np.nan_to_num(last.val_acc.to_numpy(np.float64), nan=-np.inf)
    order = sorted(range(len(last)), key=lambda i: (-acc[i], last.model_id[i]))[:k]
    rows = last.row.to_numpy()[order]
    if not len(rows):
        return np.zeros((0, 0), np.float64), 0, []
    w = rows_weights(ds, rows).numpy().astype(np.float64)
    return w, len(last), [str(last.source[i]) for i in order]


def log_likelihood(
    x: np.ndarray, anchors: np.ndarray, sigma: np.ndarray, bandwidth: float
) -> np.ndarray:
    """Log-density of each row of ``x`` under the KDE ``mean_k N(anchors_k, (h sigma)^2 I)``.

    Args:
        x: ``[n, P]`` points.
        anchors: ``[K, P]`` kernel centres.
        sigma: ``[P]`` per-weight scale (positive).
        bandwidth: factor ``h``.
    """
    z = (x[:, None, :] - anchors[None]) / sigma  # [n, K, P]
    d2 = np.einsum("nkp,nkp->nk", z, z)
    p = x.shape[1]
    norm = p * math.log(bandwidth) + np.log(sigma).sum() + 0.5 * p * math.log(2 * math.pi)
    return logsumexp(-0.5 * d2 / bandwidth**2, axis=1) - math.log(len(anchors)) - norm


def draw(
    anchors: np.ndarray, sigma: np.ndarray, bandwidth: float, n: int, seed: int
) -> np.ndarray:
    """``n`` KDE samples ``[n, P]`` (float32): a uniform anchor plus ``h * sigma * eps``."""
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(anchors), size=n)
    noise = rng.standard_normal((n, anchors.shape[1]))
    return (anchors[pick] + bandwidth * sigma * noise).astype(np.float32)


class WeightsKDE:
    """Gaussian KDE over the flat weights of the ``k`` best train-split models.

    Args:
        k: number of anchor models (the paper's 30).
        bandwidths: candidate bandwidth factors, chosen on validation data.
        bandwidth: a fixed factor instead of choosing one.
        selection: how the factor is chosen (see the module docstring).
        n_select: samples drawn per candidate for ``validation-accuracy``.
        novelty: novelty threshold for ``validation-accuracy`` (the generation task's
            default).
        data_dir: where the source's images live (non-bundled sources).
        candidates: models drawn per kept sample; above 1 the best by validation accuracy
            are kept (SANE_SUB's selection).
        name: method name in result paths.
    """

    def __init__(
        self,
        *,
        k: int = 30,
        bandwidths: Sequence[float] = BANDWIDTHS,
        bandwidth: float | None = None,
        selection: Selection = "validation-accuracy",
        n_select: int = 16,
        novelty: float = 0.1,
        data_dir: str | Path | None = None,
        candidates: int = 1,
        name: str = "weights-kde",
    ) -> None:
        if candidates < 1:
            raise MethodError(f"weights-kde candidates must be >= 1, not {candidates}")
        if k < 2:
            raise MethodError(f"weights-kde needs k >= 2 anchor models, not {k}")
        if bandwidth is None and (not bandwidths or min(bandwidths) <= 0):
            raise MethodError("weights-kde needs positive candidate bandwidths (or bandwidth=)")
        if bandwidth is not None and bandwidth <= 0:
            raise MethodError(f"weights-kde bandwidth must be positive, not {bandwidth}")
        if selection not in ("validation-accuracy", "likelihood"):
            raise MethodError(f"weights-kde selection must be 'validation-accuracy' or "
                              f"'likelihood', not {selection!r}")
        self.k = k
        self.bandwidths = tuple(float(b) for b in bandwidths)
        self.bandwidth = bandwidth
        self.selection = selection
        self.n_select = n_select
        self.novelty = novelty
        self.data_dir = data_dir
        self.candidates = candidates
        self.name = name
        self.sampling: dict[str, dict[str, Any]] = {}
        self._sources: dict[tuple[str, str, str], str] = {}
        self.last_selection: dict[str, Any] = {}
        self.selections: dict[str, dict[str, Any]] = {}
        self._cache: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, float]] = {}

    def meta(self) -> dict[str, Any]:
        """Description stored with results; after sampling it also holds ``selected``: per
        ``architecture/activation`` the bandwidth chosen and the validation scores."""
        chosen = (self.bandwidth if self.bandwidth is not None else
                  f"chosen on validation ({self.selection})")
        out = {"weights": f"Gaussian KDE (diagonal, anchor std) over the last checkpoints "
               f"of the {self.k} best train-split models by val_acc",
               "bandwidth": chosen, "bandwidths": list(self.bandwidths), "k": self.k,
               "n_select": self.n_select, "novelty": self.novelty,
               "candidates_per_sample": self.candidates,
               "reference": "raw-weight KDE baseline (not S_KDE30, a KDE over "
                            "hyper-representation embeddings)", "version": 2}
        if self.sampling:
            out["sampling"] = dict(self.sampling)
        if self.selections:
            out["selected"] = {key: {**sel, "scores": {str(h): v for h, v in
                                                       sel.get("scores", {}).items()}}
                               for key, sel in self.selections.items()}
        return out

    def fit(
        self, *, zoo: Path, manifest: Manifest, target: TargetModel
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """Anchors ``[K, P]``, per-weight scale ``[P]`` and the bandwidth factor for
        ``target`` (cached per zoo and target).

        Raises:
            MethodError: fewer than 2 anchor models, or no validation data to choose the
                bandwidth on.
        """
        key = (str(Path(zoo).resolve()), target.architecture, target.activation)
        if key in self._cache:
            return self._cache[key]
        anchors, n_train, sources = _best(Path(zoo), "train", target, self.k)
        if len(anchors) < 2:
            raise MethodError(
                f"weights-kde needs at least 2 healthy train-split {target.architecture} models "
                f"with activation {target.activation!r}; the zoo has {len(anchors)}")
        sigma = anchors.std(0)
        sigma = np.maximum(sigma, 1e-3 * max(float(sigma.mean()), 1e-12))  # constant weights
        self._sources[key] = Counter(sources).most_common(1)[0][0]
        if self.bandwidth is not None:
            h = float(self.bandwidth)
            self.last_selection = {"bandwidth": h, "chosen_on": "fixed"}
        elif self.selection == "likelihood":
            h = self._by_likelihood(Path(zoo), target, anchors, sigma, n_train)
        else:
            source = Counter(sources).most_common(1)[0][0]
            h = self._by_validation_accuracy(Path(zoo), manifest, target, anchors, sigma,
                                             source)
        self.last_selection.update(anchors=len(anchors), architecture=target.architecture,
                                   activation=target.activation)
        log.info("weights-kde: %s", self.last_selection)
        self.selections[f"{target.architecture}/{target.activation}"] = dict(self.last_selection)
        self._cache[key] = (anchors, sigma, h)
        return anchors, sigma, h

    def _by_likelihood(
        self, zoo: Path, target: TargetModel, anchors: np.ndarray, sigma: np.ndarray,
        n_train: int,
    ) -> float:
        n_val = len(last_checkpoints(load_zoo(zoo, "validation"), target))
        top = max(1, math.ceil(n_val * len(anchors) / n_train))
        val, _, _ = _best(zoo, "validation", target, top)
        if not len(val):
            raise MethodError(
                f"weights-kde chooses its bandwidth on validation-split models, but the zoo has "
                f"no healthy validation {target.architecture} models with activation "
                f"{target.activation!r}; pass WeightsKDE(bandwidth=...) to fix it")
        ll = {h: float(log_likelihood(val, anchors, sigma, h).mean()) for h in self.bandwidths}
        h = max(self.bandwidths, key=lambda b: (ll[b], -b))
        self.last_selection = {"bandwidth": h, "chosen_on": "validation-split log-likelihood",
                               "validation_models": len(val), "scores": ll}
        return h

    def _by_validation_accuracy(
        self, zoo: Path, manifest: Manifest, target: TargetModel, anchors: np.ndarray,
        sigma: np.ndarray, source: str,
    ) -> float:
        from benchmarks.finetune import accuracy_of, distinct_model_scale, nearest_distance

        src = load_source(source, data_dir=self.data_dir)
        x_val, y_val = src.x_val, src.y_val  # the only images read
        train = load_zoo(zoo, "train")
        meta = train.select_columns(["architecture", "status", "model_id", "epoch"]).to_pandas()
        rows = np.flatnonzero((meta.architecture == target.architecture).to_numpy()
                              & (meta.status == STATUS_OK).to_numpy())
        ref = rows_weights(train, rows)
        ids = meta.model_id.to_numpy()[rows]
        epochs = meta.epoch.to_numpy()[rows]
        last = [int(np.flatnonzero(ids == m)[np.argmax(epochs[ids == m])])
                for m in sorted(set(ids))]
        scale = max(distinct_model_scale(ref, ids.tolist(), last), 1e-12)
        layout = manifest.architectures[target.architecture].layout
        model = build_target(manifest, target)
        scores = {}
        for h in self.bandwidths:
            w = draw(anchors, sigma, h, self.n_select, seed=0)
            novel = nearest_distance(torch.as_tensor(w), ref).numpy() / scale > self.novelty
            acc = []
            for row in w:
                model.load_state_dict(unflatten_weights(torch.as_tensor(row), layout))
                acc.append(accuracy_of(model, x_val, y_val))
            scores[h] = float(np.mean(np.asarray(acc) * novel))
        h = max(self.bandwidths, key=lambda b: (scores[b], -b))
        self.last_selection = {"bandwidth": h, "chosen_on": f"{source} validation images, "
                               "novel samples only", "scores": scores}
        return h

    def sample(
        self, *, zoo: Path, manifest: Manifest, target: TargetModel, n: int, seed: int
    ) -> np.ndarray:
        """``n`` draws from the KDE (seeded)."""
        anchors, sigma, h = self.fit(zoo=zoo, manifest=manifest, target=target)
        m = n * self.candidates
        w = draw(anchors, sigma, h, m, seed)
        source = None
        if m > n:  # SANE_SUB's selection: the best n by validation accuracy
            source = self._sources[(str(Path(zoo).resolve()), target.architecture,
                                    target.activation)]
            acc = self._validation_accuracy(manifest, target, w, source)
            w = w[np.argsort(-acc, kind="stable")[:n]]
        self.sampling[f"{target.architecture}/n={n}"] = {
            "kept": n, "candidates": m, "bandwidth": h,
            "scored_on": f"{source} validation images" if source else None}
        return w

    def _validation_accuracy(self, manifest: Manifest, target: TargetModel, w: np.ndarray,
                             source: str) -> np.ndarray:
        """Accuracy of each weight vector on the validation images of ``source``."""
        from benchmarks.finetune import accuracy_of

        src = load_source(source, data_dir=self.data_dir)
        layout = manifest.architectures[target.architecture].layout
        model = build_target(manifest, target)
        acc = []
        for row in w:
            model.load_state_dict(unflatten_weights(torch.as_tensor(row), layout))
            acc.append(accuracy_of(model, src.x_val, src.y_val))
        return np.asarray(acc)


@register_method("weights-kde")
def _weights_kde() -> WeightsKDE:
    return WeightsKDE()


@register_method("weights-kde-sub")
def _weights_kde_sub() -> WeightsKDE:
    return WeightsKDE(candidates=SELECTION_CANDIDATES, name="weights-kde-sub")
