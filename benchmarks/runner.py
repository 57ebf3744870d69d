"""``evaluate``: score one method on a suite or a list of tasks over several seeds.

Data flow: each task declaration (:class:`~benchmarks.tasks.metadata.TaskMetadata`) names a
``type``; the evaluator of that type (:mod:`benchmarks.evaluators`, one class per type)
decides whether the method and the zoo can serve it, runs one seed
(:meth:`~benchmarks.evaluators.base.Evaluator.run_seed`: fit / sample, then score), and
computes the bootstrap intervals; this module opens the zoo once, loops over seeds and tasks,
and writes one :class:`~benchmarks.results.TaskResult` per task.

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import modelzoo
from benchmarks.errors import (
    BenchmarkError,
    MethodError,
    TaskNotApplicableError,
)
from benchmarks.evaluators.base import Evaluator, SeedContext, SeedRun
from benchmarks.methods.base import capabilities, load_method, method_meta
from benchmarks.registry import SUITES, TASKS, evaluator_for
from benchmarks.results import (
    ConfidenceInterval,
    MainScore,
    MethodInfo,
    TaskInfo,
    TaskResult,
    ZooInfo,
    git_hash,
    utc_now,
    write_predictions,
)
from benchmarks.scoring import BootstrapSpec
from benchmarks.splits import task_rows, view_key
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.zoo import EvalZoo, check_applicable, check_pin, tasks_for_zoo
from modelzoo.storage.manifest import Manifest
from modelzoo.storage.verify import resolve_verify, verification
from modelzoo.threads import limit_threads

log = logging.getLogger(__name__)


def needs(task: TaskMetadata) -> tuple[str, ...]:
    """Method capabilities, any of which lets a method do ``task`` (its evaluator's)."""
    return evaluator_for(task.type).needs


def supports(method: object, task: TaskMetadata) -> bool:
    """Whether ``method`` implements what ``task``'s type needs."""
    return bool(capabilities(method) & set(needs(task)))


def resolve_tasks(
    *, suite: str | None = None, tasks: Sequence[str | TaskMetadata] | None = None
) -> list[TaskMetadata]:
    """Tasks of a suite or a list of task names / declarations (exactly one of the two)."""
    if (suite is None) == (not tasks):
        raise BenchmarkError("give either a suite or a list of tasks (exactly one of them)")
    if suite is not None:
        return [TASKS.get(t) for t in SUITES.get(suite).tasks]
    return [t if isinstance(t, TaskMetadata) else TASKS.get(t) for t in tasks or ()]


# --------------------------------------------------------------------------- evaluate


def evaluate(
    *,
    method: str | object,
    zoo: str | Path | EvalZoo,
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
    bootstrap: BootstrapSpec | None = BootstrapSpec(),
    verify: bool | None = None,
) -> list[TaskResult]:
    """Score ``method`` on the tasks of ``suite`` (or ``tasks``) on the zoo at ``zoo``.

    Args:
        method: a registered method name, ``"module:object"``, or a method object.
        zoo: path of a built zoo, or a zoo already opened (an :class:`~benchmarks.zoo.EvalZoo`,
            e.g. the public zoo plus a leaderboard's label-free view,
            ``benchmarks.leaderboard.view.ViewedZoo``: property methods are fitted on the zoo
            as usual and also predict the rows of its split ``heldout``, whose saved
            predictions are then those rows by row id, without a local score; samples are
            made for the target model it names; results record its ``result_details``).
        suite: suite key (e.g. ``"digits-v1"``); tasks the method cannot do, or that cannot
            be scored on this zoo, are skipped (reported through ``progress``). In a suite
            that spans several zoos, only the tasks pinned to this zoo's name run.
        tasks: task names / declarations; such a task is an error instead.
        out: results root; each result is written to ``<out>/<method>/<zoo>/<task>.json``.
        seeds: number of seeds (``0..n-1``) or explicit seeds.
        allow_unpinned: score a zoo other than the one the tasks are pinned to.
        workdir: where methods may write (e.g. SANE runs); a temporary directory if None.
        data_dir: where source datasets live (for non-bundled sources); an opened ``zoo``
            has its own.
        progress: called with one line per finished task.
        threads: torch / BLAS / OpenMP threads while evaluating (1 is fastest for small
            zoos; ``None`` leaves the process settings alone).
        save_predictions: also write each task's per-item outputs (property tasks: test
            item ids and predictions; initialization / generation: the sampled weights and
            per-sample scores) to ``<out>/<method>/<zoo>/predictions/<task>.parquet``
            (see :func:`benchmarks.results.write_predictions`); needs ``out``.
        bootstrap: resamples, level and seed of the confidence intervals of every score
            (default 1000 resamples, 95%, seed 0); ``None`` skips them.
        verify: check every shard of ``zoo`` against its ``zoo.json`` checksums first
            (cached, :mod:`modelzoo.storage.verify`; None: unless switched off with
            ``modelzoo.storage.verification(False)``); False skips it here and in the
            method's own zoo reads, and the results record ``zoo.verified = false`` and
            ``zoo.matches_pin = false`` (an unverified zoo cannot claim its pin).

    Returns:
        One :class:`TaskResult` per scored task.

    Raises:
        BenchmarkError: bad arguments, unsupported task, zoo mismatch, a zoo that cannot
            serve a task, or a method breaking the protocol.
        ShardChecksumError: a shard of ``zoo`` is missing or corrupt (nothing is written).
    """
    say = progress or (lambda msg: log.info(msg))
    verify = resolve_verify(verify)
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
                f"{' or '.join(needs(t))}() (see benchmarks/methods/base.py)"
            )
        else:
            say(f"skip {t.name}: {m.name} has no {' / '.join(needs(t))}()")
    if isinstance(zoo, EvalZoo):  # opened (and verified, unless switched off) by the caller
        if data_dir is not None and str(data_dir) != str(zoo.data_dir):
            raise BenchmarkError(f"data_dir {data_dir} differs from the opened zoo's "
                                 f"({zoo.data_dir}); open the zoo with it")
        z = zoo
    else:
        with verification(verify):  # the shards are checked here, before anything is scored
            z = EvalZoo(Path(zoo), str(data_dir) if data_dir is not None else None)
    zoo_path = z.path
    if suite is not None:
        todo = tasks_for_zoo(todo, {t.zoo.name for t in task_list}, z.manifest.name, say)
    applicable, views, by_rows = [], {}, {}
    for t in todo:
        try:
            if view_key(t) not in by_rows:  # one architecture / source, or leave-one-out
                by_rows[view_key(t)] = task_rows(t, z)
            views[t.name] = by_rows[view_key(t)]  # tasks on the same rows share one view
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
    runs: dict[str, list[SeedRun]] = {t.name: [] for t in todo}
    started = {t.name: 0.0 for t in todo}
    items: dict[str, list[dict[str, Any]]] = {t.name: [] for t in todo}
    raw: dict[str, list[dict[str, Any]]] = {t.name: [] for t in todo}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, limit_threads(threads), \
            verification(verify):
        work = Path(workdir) if workdir is not None else Path(tmp)
        for seed in seed_list:
            if callable(getattr(m, "setup", None)):
                m.setup(zoo=zoo_path, manifest=z.manifest, seed=seed,
                        workdir=work / f"{m.name}-seed{seed}")
            states: dict[str, dict[str, Any]] = {}  # per row view: cached features...
            for t in todo:
                state = states.setdefault(view_key(t), {})  # shared by tasks on the same rows
                t0 = time.perf_counter()
                sink: dict[str, Any] | None = {"seed": seed} if save_predictions else None
                kept: dict[str, Any] = {}
                raw[t.name].append(kept)
                runs[t.name].append(evaluator_for(t.type).run_seed(
                    SeedContext(t, m, views[t.name], seed, state, sink, kept)))
                if sink is not None:
                    items[t.name].append(sink)
                started[t.name] += time.perf_counter() - t0
    results = []
    commit = git_hash()
    meta = method_meta(m)  # again: a method may record settings it chose on validation data
    for t in todo:
        ev = evaluator_for(t.type)
        cis = ev.intervals(t, raw[t.name], bootstrap) if bootstrap is not None else {}
        res = _aggregate(ev, t, m.name, meta, z.manifest, pins[t.name], seed_list,
                         runs[t.name], started[t.name], commit, cis, verified=z.verified)
        res.details.update(z.result_details)  # e.g. the label-free view predicted
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
    evaluator: Evaluator,
    task: TaskMetadata,
    method_name: str,
    meta: dict[str, Any],
    manifest: Manifest,
    matches_pin: bool,
    seeds: list[int],
    runs: list[SeedRun],
    seconds: float,
    commit: str | None,
    cis: dict[str, dict[str, ConfidenceInterval]] | None = None,
    *,
    verified: bool = True,
) -> TaskResult:
    scores, curves = evaluator.aggregate(runs, cis or {})
    main = scores[task.splits.score][task.main_score]
    return TaskResult(
        task=TaskInfo(name=task.name, version=task.version, type=task.type, target=task.target,
                      main_score=task.main_score, description=task.description),
        zoo=ZooInfo(name=manifest.name, version=manifest.version,
                    content_hash=manifest.content_hash,
                    matches_pin=matches_pin and verified, verified=verified),
        method=MethodInfo(name=method_name, meta=meta),
        scores=scores,
        main_score=MainScore(metric=task.main_score, split=task.splits.score,
                             mean=main.mean, std=main.std, ci=main.ci),
        curves=curves,
        seeds=seeds,
        toolkit_version=modelzoo.__version__,
        git_hash=commit,
        timestamp=utc_now(),
        evaluation_time_s=round(seconds, 3),
        details={"per_seed": [r.details for r in runs]},
    )


def intervals(
    task: TaskMetadata, raw: list[dict[str, Any]], spec: BootstrapSpec
) -> dict[str, dict[str, ConfidenceInterval]]:
    """Bootstrap intervals ``{split: {metric: ci}}`` of the seed means of ``task``'s scores
    (its evaluator's :meth:`~benchmarks.evaluators.base.Evaluator.intervals`)."""
    return evaluator_for(task.type).intervals(task, raw, spec)
