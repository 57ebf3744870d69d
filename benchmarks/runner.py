"""``evaluate``: score one method on a suite or a list of tasks over several seeds.

Property prediction (regression / classification): rows are checkpoints with ``status == "ok"``
of the zoo's own ``train`` / ``validation`` / ``test`` splits (never re-split). Feature methods
get an sklearn head fitted on train and selected on validation (see :mod:`benchmarks.scoring`);
fit/predict methods do their own selection. Both are scored on validation and test.

Initialization: the method's ``sample`` gives ``n_models`` weight vectors per seed; each is
loaded into the zoo's architecture and fine-tuned ``epochs`` epochs on the task's source
(the zoo's own, or a new one); scores are the test accuracy before fine-tuning, after the last
epoch, and the normalised area under the accuracy-per-epoch curve (main score).

Generation: ``n_models`` samples per seed are scored zero-shot on the zoo's source test data
and placed as percentiles of the zoo's test-split models (last checkpoints). A sample counts as
*novel* when its L2 distance to the nearest training checkpoint is above
``novelty_threshold`` x the median gap between distinct training models; the main score
``novel_percentile`` is the mean percentile with non-novel samples counted as 0, so a method
that returns (near-)copies of training models scores nothing.

Seeds drive everything random in a run (method setup, stochastic heads, sampling, fine-tuning
order); each score is reported as mean ± std over seeds. Deterministic methods with
deterministic heads have std 0.

Every score also gets a 95% percentile bootstrap interval of its seed mean
(:mod:`benchmarks.scoring`, ``bootstrap=`` to change or disable): property tasks resample the
split's *models* (each with all its checkpoints; the same resampled sets for every seed);
initialization and generation resample seeds, then the samples of each drawn seed (two
stages), and for the generation percentile scores also the test-split reference models. The
test-accuracy images are held fixed (their sampling error is not in the interval).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch

import modelzoo
from benchmarks.data import ImageData, load_image_data
from benchmarks.errors import (
    BenchmarkError,
    MethodError,
    TaskNotApplicableError,
    ZooMismatchError,
)
from benchmarks.finetune import (
    accuracy_of,
    area_under_curve,
    distinct_model_scale,
    finetune_curve,
    model_from_weights,
    nearest_distance,
)
from benchmarks.methods.base import (
    TargetModel,
    capabilities,
    head_of,
    load_method,
    method_meta,
)
from benchmarks.registry import SUITES, TASKS
from benchmarks.results import (
    ConfidenceInterval,
    MainScore,
    MethodInfo,
    ScoreStat,
    TaskInfo,
    TaskResult,
    ZooInfo,
    git_hash,
    utc_now,
    write_predictions,
)
from benchmarks.scoring import (
    BootstrapSpec,
    class_labels,
    cluster_bootstrap,
    fit_head,
    percentile_bootstrap,
    sample_bootstrap,
    score_predictions,
)
from benchmarks.splits import task_rows, view_key
from benchmarks.tasks.metadata import TaskMetadata
from modelzoo.storage import SPLITS, load_zoo, read_manifest, weights_tensor
from modelzoo.storage.manifest import Manifest
from modelzoo.storage.schema import STATUS_OK
from modelzoo.threads import limit_threads

log = logging.getLogger(__name__)
#: Split name of a leaderboard view's rows (``benchmarks.leaderboard.view.ViewedZoo``).
_HELDOUT = "heldout"

#: Capability a method needs per task type.
NEEDS: dict[str, tuple[str, ...]] = {
    "regression": ("features", "predict"),
    "classification": ("features", "predict"),
    "initialization": ("sample",),
    "generation": ("sample",),
}


def supports(method: object, task: TaskMetadata) -> bool:
    """Whether ``method`` implements what ``task``'s type needs."""
    return bool(capabilities(method) & set(NEEDS[task.type]))


def resolve_tasks(
    *, suite: str | None = None, tasks: Sequence[str | TaskMetadata] | None = None
) -> list[TaskMetadata]:
    """Tasks of a suite or a list of task names / declarations (exactly one of the two)."""
    if (suite is None) == (not tasks):
        raise BenchmarkError("give either a suite or a list of tasks (exactly one of them)")
    if suite is not None:
        return [TASKS.get(t) for t in SUITES.get(suite).tasks]
    return [t if isinstance(t, TaskMetadata) else TASKS.get(t) for t in tasks or ()]


def check_pin(task: TaskMetadata, manifest: Manifest, *, allow_unpinned: bool) -> bool:
    """Whether the zoo is the one ``task`` is pinned to; raise if not and not allowed."""
    pin = task.zoo
    problems = []
    if manifest.name != pin.name:
        problems.append(f"name {manifest.name!r} (pinned: {pin.name!r})")
    if manifest.version != pin.version:
        problems.append(f"version {manifest.version!r} (pinned: {pin.version!r})")
    if pin.content_hash and manifest.content_hash != pin.content_hash:
        problems.append(
            f"content hash {manifest.content_hash[:19]}... (pinned: {pin.content_hash[:19]}...)"
        )
    if problems and not allow_unpinned:
        raise ZooMismatchError(
            f"task {task.name!r} is pinned to zoo {pin.name} v{pin.version}, but the zoo given "
            f"has {'; '.join(problems)}. Pass the pinned zoo, or allow scoring another zoo with "
            "--allow-unpinned (results then record the zoo actually used)."
        )
    return not problems


class _Zoo:
    """A zoo opened once per evaluation: manifest, healthy rows per split, caches."""

    def __init__(self, path: Path, data_dir: str | None = None) -> None:
        self.path = path
        self.data_dir = data_dir
        self.manifest = read_manifest(path)
        raw = load_zoo(path)
        self.splits: dict[str, datasets.Dataset] = {s: _healthy(raw[s]) for s in SPLITS}
        self._columns: dict[tuple[str, str], np.ndarray] = {}

    def column(self, split: str, name: str) -> np.ndarray:
        key = (split, name)
        if key not in self._columns:
            ds = self.splits[split]
            self._columns[key] = ds.select_columns([name]).to_pandas()[name].to_numpy()
        return self._columns[key]

    def most_common(self, name: str) -> str:
        values = self.column("train", name)
        if not len(values):
            raise BenchmarkError(f"zoo {self.path} has no healthy train-split rows")
        counts = Counter(values.tolist())
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    def target_model(self, task: TaskMetadata) -> TargetModel:
        """Most frequent train architecture; the task's activation, else that of the best
        train checkpoint by ``val_acc`` (ties: smallest model id), as SANE's anchors use."""
        arch = self.most_common("architecture")
        activation = task.finetune.activation if task.finetune else None
        if not activation:
            rows = np.flatnonzero(self.column("train", "architecture") == arch)
            acc = np.nan_to_num(self.column("train", "val_acc")[rows].astype(np.float64),
                                nan=-np.inf)
            ids = self.column("train", "model_id")[rows]
            best = min(range(len(rows)), key=lambda i: (-acc[i], ids[i]))
            activation = str(self.column("train", "activation")[rows[best]])
        return TargetModel(arch, activation, self.manifest.architectures[arch].n_params)


def _healthy(ds: datasets.Dataset) -> datasets.Dataset:
    """Rows with status ok; an in-memory selection only if some rows are not ok (so that
    nothing is written into the zoo directory)."""
    status = ds.select_columns(["status"]).to_pandas()["status"].to_numpy()
    ok = np.flatnonzero(status == STATUS_OK)
    if len(ok) == len(ds):
        return ds
    was = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        return ds.select(ok.tolist(), keep_in_memory=True).flatten_indices(keep_in_memory=True)
    finally:
        if was:
            datasets.enable_progress_bars()


# --------------------------------------------------------------------------- property tasks


def check_applicable(task: TaskMetadata, zoo: _Zoo) -> None:
    """Raise :class:`TaskNotApplicableError` if ``task`` cannot be scored on ``zoo``."""
    name = zoo.manifest.name
    needed = SPLITS if task.is_property else (("train", "test") if task.type == "generation"
                                              else ("train",))
    for s in needed:
        if not len(zoo.splits[s]):
            raise TaskNotApplicableError(
                f"zoo {name} has no healthy {s}-split checkpoints, which {task.name} needs"
            )
    if task.type == "classification":
        values = sorted(set(zoo.column("train", task.target).tolist()))
        if len(values) < 2:
            raise TaskNotApplicableError(
                f"target {task.target!r} has a single value ({values[0]!r}) in the train split "
                f"of zoo {name}: the zoo does not vary it, so {task.name} cannot be scored on it"
            )


def _features(
    method: Any, zoo: _Zoo, cache: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    for split in zoo.splits:  # SPLITS, plus the rows of a held-out view if there is one
        if split not in cache:
            f = np.asarray(method.features(zoo.splits[split], zoo.manifest))
            if f.ndim != 2 or len(f) != len(zoo.splits[split]):
                raise MethodError(
                    f"method {method.name!r}: features() returned shape {f.shape} for "
                    f"{len(zoo.splits[split])} {split} rows; expected [rows, d]"
                )
            cache[split] = f
    return cache


def _property_seed(
    task: TaskMetadata,
    method: Any,
    zoo: _Zoo,
    seed: int,
    feature_cache: dict[str, np.ndarray],
    items: dict[str, Any] | None = None,
    raw: dict[str, Any] | None = None,
) -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
    y = {s: zoo.column(s, task.target) for s in SPLITS}
    if task.type == "regression":
        y = {s: v.astype(np.float64) for s, v in y.items()}
    else:  # numeric hyperparameters (lr, dropout...) are classes too
        y = {s: class_labels(v) for s, v in y.items()}
    details: dict[str, Any] = {}
    if "features" in capabilities(method):
        x = _features(method, zoo, feature_cache)
        fit = fit_head(head=head_of(method), task_type=task.type, main_score=task.main_score,
                       x=x, y=y, seed=seed)
        preds = fit.predictions
        details = {"head": head_of(method), "head_params": fit.params}
    else:
        method.fit(zoo.splits["train"], target=task.target, task_type=task.type,
                   validation=zoo.splits["validation"], manifest=zoo.manifest, seed=seed)
        preds = {s: np.asarray(method.predict(zoo.splits[s], manifest=zoo.manifest))
                 for s in zoo.splits if s != "train"}
        for s, p in preds.items():
            if len(p) != len(zoo.splits[s]):
                raise MethodError(f"method {method.name!r}: predict() returned {len(p)} values "
                                  f"for {len(zoo.splits[s])} {s} rows")
    if task.type == "regression":
        preds = {s: p.astype(np.float64) for s, p in preds.items()}
    else:
        preds = {s: class_labels(p) for s, p in preds.items()}
    scores = {s: score_predictions(task.metrics, y[s], preds[s]) for s in ("validation", "test")}
    if raw is not None:  # for the bootstrap intervals
        raw.update({s: {"y": y[s], "p": np.asarray(preds[s]),
                        "groups": zoo.column(s, "model_id")} for s in ("validation", "test")})
    if items is not None and _HELDOUT in preds:  # a held-out view's rows (bench run --heldout)
        items.update(row_id=zoo.view.row_ids(),  # type: ignore[attr-defined]
                     prediction=np.asarray(preds[_HELDOUT]).tolist())
    elif items is not None:  # per-item test predictions (bench run --save-predictions)
        items.update(model_id=zoo.column("test", "model_id").tolist(),
                     epoch=zoo.column("test", "epoch").tolist(),
                     prediction=np.asarray(preds["test"]).tolist())
    return scores, details


# ----------------------------------------------------------------- initialization/generation


def _sample(method: Any, zoo: _Zoo, target: TargetModel, n: int, seed: int) -> np.ndarray:
    w = np.asarray(method.sample(zoo=zoo.path, manifest=zoo.manifest, target=target, n=n,
                                 seed=seed), dtype=np.float32)
    if w.shape != (n, target.num_params):
        raise MethodError(f"method {method.name!r}: sample() returned shape {w.shape}, "
                          f"expected ({n}, {target.num_params})")
    return w


def _source_data(task: TaskMetadata, zoo: _Zoo) -> ImageData:
    name = task.finetune.source if task.finetune and task.finetune.source else \
        zoo.most_common("source")
    return load_image_data(name, zoo.data_dir)


def _init_seed(
    task: TaskMetadata,
    method: Any,
    zoo: _Zoo,
    seed: int,
    items: dict[str, Any] | None = None,
    raw: dict[str, Any] | None = None,
) -> tuple[dict[str, float], list[float], dict[str, Any]]:
    spec = task.finetune
    assert spec is not None
    target = zoo.target_model(task)
    data = _source_data(task, zoo)
    weights = _sample(method, zoo, target, spec.n_models, seed)
    curves, loaded = [], []
    for i, w in enumerate(weights):
        model, n_loaded = model_from_weights(zoo.manifest, target, w, data)
        torch.manual_seed(seed * 7919 + i)
        curves.append(finetune_curve(model, data, epochs=spec.epochs, lr=spec.lr,
                                     batch_size=spec.batch_size, seed=seed * 7919 + i))
        loaded.append(n_loaded)
    curve = np.mean(np.asarray(curves), axis=0).tolist()
    scores = {"auc": area_under_curve(curve), "final_accuracy": curve[-1],
              "zero_shot_accuracy": curve[0]}
    details = {"source": data.name, "source_fingerprint": data.fingerprint,
               "architecture": target.architecture, "activation": target.activation,
               "tensors_loaded": int(min(loaded)),
               "tensors_total": len(zoo.manifest.architectures[target.architecture].layout)}
    if raw is not None:  # per-sample scores, for the bootstrap intervals
        c = np.asarray(curves, dtype=np.float64)
        raw.update(auc=np.array([area_under_curve(row) for row in c]),
                   final_accuracy=c[:, -1], zero_shot_accuracy=c[:, 0])
    if items is not None:  # per-sample weights and accuracy curves
        items.update(weights=weights, curve=curves)
    return scores, curve, details


def _generation_seed(
    task: TaskMetadata,
    method: Any,
    zoo: _Zoo,
    seed: int,
    items: dict[str, Any] | None = None,
    raw: dict[str, Any] | None = None,
) -> tuple[dict[str, float], dict[str, Any]]:
    spec = task.finetune
    assert spec is not None
    target = zoo.target_model(task)
    data = _source_data(task, zoo)
    weights = _sample(method, zoo, target, spec.n_models, seed)
    acc = np.array([accuracy_of(model_from_weights(zoo.manifest, target, w, data)[0],
                                data.x_test, data.y_test) for w in weights])
    # reference distribution: last checkpoints of the test-split models of that architecture
    arch = zoo.column("test", "architecture")
    epochs, ids = zoo.column("test", "epoch"), zoo.column("test", "model_id")
    ref = _last_rows(ids, epochs, arch == target.architecture)
    if not len(ref):
        raise BenchmarkError(f"zoo has no healthy test-split {target.architecture} models")
    ref_acc = zoo.column("test", "test_acc")[ref].astype(np.float64)
    percentile = np.array([(ref_acc <= a).mean() for a in acc])
    # novelty: distance to the nearest training checkpoint, in units of the typical gap
    tr_arch = zoo.column("train", "architecture") == target.architecture
    tr_rows = np.flatnonzero(tr_arch)
    tr_w = weights_tensor(zoo.splits["train"])[torch.as_tensor(tr_rows)]
    tr_ids = zoo.column("train", "model_id")[tr_rows]
    last = _last_rows(tr_ids, zoo.column("train", "epoch")[tr_rows], np.ones(len(tr_rows), bool))
    scale = distinct_model_scale(tr_w, tr_ids.tolist(), last.tolist())
    dist = nearest_distance(torch.as_tensor(weights), tr_w).numpy() / max(scale, 1e-12)
    novel = dist > spec.novelty_threshold
    scores = {
        "zero_shot_accuracy": float(acc.mean()),
        "percentile": float(percentile.mean()),
        "novelty": float(np.median(dist)),
        "novel_fraction": float(novel.mean()),
        "novel_percentile": float((percentile * novel).mean()),
    }
    details = {"source": data.name, "source_fingerprint": data.fingerprint,
               "architecture": target.architecture, "activation": target.activation,
               "reference_models": len(ref), "novelty_scale_l2": scale}
    if raw is not None:  # per-sample scores and the reference, for the bootstrap intervals
        raw.update(zero_shot_accuracy=acc, novel=novel.astype(np.float64), novelty=dist,
                   reference=ref_acc)
    if items is not None:  # per-sample weights and scores
        items.update(weights=weights, zero_shot_accuracy=acc.tolist(),
                     percentile=percentile.tolist(), novelty=dist.tolist(),
                     novel=novel.tolist())
    return scores, details


def _last_rows(ids: np.ndarray, epochs: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Index of each model's last checkpoint among rows where ``mask``."""
    best: dict[str, int] = {}
    for i in np.flatnonzero(mask):
        if ids[i] not in best or epochs[i] > epochs[best[ids[i]]]:
            best[ids[i]] = int(i)
    return np.array(sorted(best.values()), dtype=np.int64)


# --------------------------------------------------------------------------- evaluate


def tasks_for_zoo(
    tasks: list[TaskMetadata], suite_zoos: set[str], zoo_name: str,
    say: Callable[[str], None] | None = None,
) -> list[TaskMetadata]:
    """Those of a suite's ``tasks`` that are pinned to ``zoo_name``, if the suite spans
    several zoos (``suite_zoos``, the names its tasks are pinned to).

    A suite may pin its tasks to more than one zoo (``digits-v2``: properties on the
    hyperparameter zoo, initialization and generation on the seed zoo); given one of them,
    only that zoo's tasks run and the others are skipped with a note naming their zoo. A zoo
    named like none of the suite's zoos keeps every task (the pin check then decides).
    """
    if zoo_name not in suite_zoos or len(suite_zoos) == 1:
        return tasks
    keep = []
    for t in tasks:
        if t.zoo.name == zoo_name:
            keep.append(t)
        elif say is not None:
            say(f"skip {t.name}: pinned to zoo {t.zoo.name} v{t.zoo.version}; run the suite "
                f"on that zoo too")
    return keep


def evaluate(
    *,
    method: str | object,
    zoo: str | Path,
    suite: str | None = None,
    tasks: Sequence[str | TaskMetadata] | None = None,
    out: str | Path | None = None,
    seeds: int | Sequence[int] = 3,
    allow_unpinned: bool = False,
    workdir: str | Path | None = None,
    data_dir: str | Path | None = None,
    progress: Callable[[str], None] | None = None,
    threads: int | None = 1,
    save_predictions: bool = False,
    heldout: str | Path | None = None,
    bootstrap: BootstrapSpec | None = BootstrapSpec(),
) -> list[TaskResult]:
    """Score ``method`` on the tasks of ``suite`` (or ``tasks``) on the zoo at ``zoo``.

    Args:
        method: a registered method name, ``"module:object"``, or a method object.
        zoo: path of a built zoo.
        suite: suite key (e.g. ``"digits-v1"``); tasks the method cannot do, or that cannot
            be scored on this zoo, are skipped (reported through ``progress``). In a suite
            that spans several zoos, only the tasks pinned to this zoo's name run.
        tasks: task names / declarations; such a task is an error instead.
        out: results root; each result is written to ``<out>/<method>/<zoo>/<task>.json``.
        seeds: number of seeds (``0..n-1``) or explicit seeds.
        allow_unpinned: score a zoo other than the one the tasks are pinned to.
        workdir: where methods may write (e.g. SANE runs); a temporary directory if None.
        data_dir: where source datasets live (for non-bundled sources).
        progress: called with one line per finished task.
        threads: torch / BLAS / OpenMP threads while evaluating (1 is fastest for small
            zoos; ``None`` leaves the process settings alone).
        save_predictions: also write each task's per-item outputs (property tasks: test
            item ids and predictions; initialization / generation: the sampled weights and
            per-sample scores) to ``<out>/<method>/<zoo>/predictions/<task>.parquet``
            (see :func:`benchmarks.results.write_predictions`); needs ``out``.
        heldout: a leaderboard's label-free view (``bench leaderboard init``): property
            methods are fitted on ``zoo`` as usual and also predict the view's rows (saved
            predictions are then those rows, by row id; they have no local score), and
            samples are made for the view's target model. Results record the view in
            ``details["heldout"]``; ``bench submit --zoo VIEW`` packages them.
        bootstrap: resamples, level and seed of the confidence intervals of every score
            (default 1000 resamples, 95%, seed 0); ``None`` skips them.

    Returns:
        One :class:`TaskResult` per scored task.

    Raises:
        BenchmarkError: bad arguments, unsupported task, zoo mismatch, a zoo that cannot
            serve a task, or a method breaking the protocol.
    """
    say = progress or (lambda msg: log.info(msg))
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise BenchmarkError("need at least one seed")
    if save_predictions and out is None:
        raise BenchmarkError("save_predictions needs an output directory (out / --out)")
    task_list = resolve_tasks(suite=suite, tasks=tasks)
    m = load_method(method)
    todo = []
    for t in task_list:
        if supports(m, t):
            todo.append(t)
        elif suite is None:
            raise MethodError(
                f"method {m.name!r} cannot do {t.type} task {t.name!r}: it needs "
                f"{' or '.join(NEEDS[t.type])}() (see benchmarks/methods/base.py)"
            )
        else:
            say(f"skip {t.name}: {m.name} has no {' / '.join(NEEDS[t.type])}()")
    zoo_path = Path(zoo)
    if heldout is not None:  # the public zoo plus a board's label-free view
        from benchmarks.leaderboard.view import ViewedZoo

        z = ViewedZoo(zoo_path, heldout, str(data_dir) if data_dir is not None else None)
    else:
        z = _Zoo(zoo_path, str(data_dir) if data_dir is not None else None)
    if suite is not None:
        todo = tasks_for_zoo(todo, {t.zoo.name for t in task_list}, z.manifest.name, say)
    applicable, views = [], {}
    for t in todo:
        try:
            views[t.name] = task_rows(t, z)  # one architecture / source, or leave-one-out
            check_applicable(t, views[t.name])
        except TaskNotApplicableError as e:
            if suite is None:
                raise
            say(f"skip {t.name}: {e}")
        else:
            applicable.append(t)
    todo = applicable
    pins = {t.name: check_pin(t, z.manifest, allow_unpinned=allow_unpinned) for t in todo}
    if not todo:  # nothing to score on this zoo: no method setup (e.g. SANE training) either
        return []
    meta = method_meta(m)  # checked before the (long) runs
    per_seed: dict[str, list[dict[str, dict[str, float]]]] = {t.name: [] for t in todo}
    curves: dict[str, list[list[float]]] = {t.name: [] for t in todo}
    details: dict[str, list[dict[str, Any]]] = {t.name: [] for t in todo}
    started = {t.name: 0.0 for t in todo}
    items: dict[str, list[dict[str, Any]]] = {t.name: [] for t in todo}
    raw: dict[str, list[dict[str, Any]]] = {t.name: [] for t in todo}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, limit_threads(threads):
        work = Path(workdir) if workdir is not None else Path(tmp)
        for seed in seed_list:
            if callable(getattr(m, "setup", None)):
                m.setup(zoo=zoo_path, manifest=z.manifest, seed=seed,
                        workdir=work / f"{m.name}-seed{seed}")
            feature_caches: dict[str, dict[str, np.ndarray]] = {}
            for t in todo:
                zt, feature_cache = views[t.name], feature_caches.setdefault(view_key(t), {})
                t0 = time.perf_counter()
                sink: dict[str, Any] | None = {"seed": seed} if save_predictions else None
                kept: dict[str, Any] = {}
                raw[t.name].append(kept)
                if t.is_property:
                    scores, det = _property_seed(t, m, zt, seed, feature_cache, sink, kept)
                elif t.type == "initialization":
                    test, curve, det = _init_seed(t, m, zt, seed, sink, kept)
                    scores = {"test": test}
                    curves[t.name].append(curve)
                else:
                    test, det = _generation_seed(t, m, zt, seed, sink, kept)
                    scores = {"test": test}
                if sink is not None:
                    items[t.name].append(sink)
                per_seed[t.name].append(scores)
                details[t.name].append(det)
                started[t.name] += time.perf_counter() - t0
    results = []
    commit = git_hash()
    meta = method_meta(m)  # again: a method may record settings it chose on validation data
    for t in todo:
        cis = intervals(t, raw[t.name], bootstrap) if bootstrap is not None else {}
        res = _aggregate(t, m.name, meta, z.manifest, pins[t.name], seed_list,
                         per_seed[t.name], curves[t.name], details[t.name], started[t.name],
                         commit, cis)
        if heldout is not None:
            res.details["heldout"] = z.view.pin.model_dump(mode="json")  # type: ignore[attr-defined]
        if out is not None:
            res.save(out)
            if save_predictions:
                write_predictions(res, out, items[t.name])
        ci = f" {res.main_score.ci}" if res.main_score.ci is not None else ""
        say(f"{t.name}: {t.main_score} = {res.main_score.mean:.4f} ± {res.main_score.std:.4f}"
            f"{ci}")
        results.append(res)
    return results


def _aggregate(
    task: TaskMetadata,
    method_name: str,
    meta: dict[str, Any],
    manifest: Manifest,
    matches_pin: bool,
    seeds: list[int],
    per_seed: list[dict[str, dict[str, float]]],
    curves: list[list[float]],
    details: list[dict[str, Any]],
    seconds: float,
    commit: str | None,
    cis: dict[str, dict[str, ConfidenceInterval]] | None = None,
) -> TaskResult:
    cis = cis or {}
    scores = {
        split: {metric: ScoreStat.of([s[split][metric] for s in per_seed],
                                     ci=cis.get(split, {}).get(metric))
                for metric in per_seed[0][split]}
        for split in per_seed[0]
    }
    main = scores[task.splits.score][task.main_score]
    curve_stats = ({"test/accuracy": [ScoreStat.of(col) for col in zip(*curves, strict=True)]}
                   if curves else {})
    return TaskResult(
        task=TaskInfo(name=task.name, version=task.version, type=task.type, target=task.target,
                      main_score=task.main_score, description=task.description),
        zoo=ZooInfo(name=manifest.name, version=manifest.version,
                    content_hash=manifest.content_hash, matches_pin=matches_pin),
        method=MethodInfo(name=method_name, meta=meta),
        scores=scores,
        main_score=MainScore(metric=task.main_score, split=task.splits.score,
                             mean=main.mean, std=main.std, ci=main.ci),
        curves=curve_stats,
        seeds=seeds,
        toolkit_version=modelzoo.__version__,
        git_hash=commit,
        timestamp=utc_now(),
        evaluation_time_s=round(seconds, 3),
        details={"per_seed": details},
    )


def intervals(
    task: TaskMetadata, raw: list[dict[str, Any]], spec: BootstrapSpec
) -> dict[str, dict[str, ConfidenceInterval]]:
    """Bootstrap intervals ``{split: {metric: ci}}`` of the seed means of ``task``'s scores.

    Args:
        task: the task.
        raw: per seed, what the ``_*_seed`` functions kept: per split ``y`` / ``p`` /
            ``groups`` (property tasks) or per-sample score arrays (initialization,
            generation; ``reference`` = accuracies of the test-split reference models).
        spec: resamples, level and seed.
    """
    if task.is_property:
        return {
            split: {m: cluster_bootstrap(metric=m, y=raw[0][split]["y"],
                                         predictions=[r[split]["p"] for r in raw],
                                         groups=raw[0][split]["groups"], spec=spec)
                    for m in task.metrics}
            for split in ("validation", "test")
        }
    out: dict[str, ConfidenceInterval] = {}
    for m in task.metrics:
        if task.type == "generation" and m in ("percentile", "novel_percentile"):
            weights = [np.ones_like(r["novel"]) if m == "percentile" else r["novel"]
                       for r in raw]
            out[m] = percentile_bootstrap(accuracies=[r["zero_shot_accuracy"] for r in raw],
                                          weights=weights, reference=raw[0]["reference"],
                                          spec=spec)
        else:
            key = "novel" if m == "novel_fraction" else m
            reduce = (lambda v: np.median(v, axis=1)) if m == "novelty" else (
                lambda v: v.mean(1))
            out[m] = sample_bootstrap(per_sample=[r[key] for r in raw], spec=spec,
                                      reduce=reduce)
    return {"test": out}
