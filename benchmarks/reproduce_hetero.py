"""``bench reproduce digits-hetero-v1``: per-architecture SANE vs one pooled SANE vs s(W).

Steps (each resumes when rerun with the same ``OUT``):

1. build every member of ``cards/digits-hetero.yaml`` (one architecture on one source) once,
   and merge them into the pinned zoo ``digits-hetero`` (all members), one zoo per
   architecture (its two sources) and one zoo per left-out architecture (the other three);
2. train SANE (:data:`SANE_CONFIG`, the same size for every run) on each: ``pooled`` (all),
   ``arch-<a>`` (one architecture) and ``without-<a>`` (never sees ``a``);
3. score on the pinned zoo: the s(W) baselines and the weight providers on the whole suite;
   ``sane-pooled`` (the pooled run) on the whole suite; ``sane-per-arch`` (run ``arch-<a>``)
   on the tasks of architecture ``a``; ``sane-unseen`` (run ``without-<a>``) on the
   leave-``a``-out property tasks and ``a``'s generation / initialization, i.e. on an
   architecture that run never saw;
4. write ``OUT/report.md``: the main comparison (tasks x methods, 95% bootstrap intervals over
   test models) and paired tests (:func:`benchmarks.scoring.paired_difference`) of pooled vs
   per-architecture SANE on the held-out cells.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.errors import BenchmarkError, MethodError
from benchmarks.provenance import command_line, load_average
from benchmarks.registry import SUITES, TASKS
from benchmarks.reproduce_common import (
    Job,
    Timings,
    chosen_methods,
    default_jobs,
    elapsed_line,
    record_plan,
    report_header,
    run_jobs,
    write_report,
)
from benchmarks.results import TaskResult, load_predictions, load_results
from benchmarks.scoring import class_labels, paired_difference
from benchmarks.tasks.metadata import TaskMetadata
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir

ROOT = Path(__file__).resolve().parents[1]
SUITE = "digits-hetero-v1"
CARD = "cards/digits-hetero.yaml"

#: SANE of every run: the digits-v2 size (d_model 128, 2+2 layers, latent 128; 2 epochs,
#: permutation augmentation), one token per neuron with the token and window of the largest
#: architecture (CNN-l: 289 values, 93 tokens), and the MultiZoo options this trainer has: raw
#: weights (no per-architecture normaliser, which an unseen architecture would lack), per-batch
#: masked standardisation of the loss, reconstruction loss over real weights only (padding
#: masked). A run tokenizes an architecture it did not see only if that architecture's token
#: positions lie within those of its training zoo (``sane.run.SaneRun.check_zoo``).
SANE_CONFIG: dict[str, Any] = {
    "d_model": 128, "n_heads": 4, "n_layers": 2, "latent_dim": 128, "token_size": 289,
    "window_size": 93, "epochs": 2, "batch_size": 32, "permutation_prob": 1.0,
    "normalize": "none", "loss_norm": "batch", "recon_norm": "real",
}
BASELINES = ("chance", "weight-stats-padded-linear", "weight-stats-padded-gbt", "random-init",
             "zoo-init", "weights-kde")
#: Extra options of a run over :data:`SANE_CONFIG`: ``pooled-multizoo`` adds the MultiZoo
#: options of ``sane/configs/multizoo.yaml`` (per-token standardisation, a learned
#: architecture embedding); it cannot embed an architecture it did not see, so it has no
#: ``unseen`` counterpart.
RUN_OPTIONS: dict[str, dict[str, Any]] = {
    "pooled-multizoo": {"token_norm": True, "arch_embedding": True},
}
#: Pairs of SANE methods compared on the same test rows by :func:`paired_table`.
PAIRS = (("sane-pooled", "sane-per-arch"), ("sane-pooled", "sane-unseen"),
         ("sane-pooled-multizoo", "sane-per-arch"), ("sane-pooled-multizoo", "sane-pooled"))
SANE_METHODS = ("sane-pooled", "sane-pooled-multizoo", "sane-per-arch", "sane-unseen")
#: Trained per task on the pinned zoo (issue 22); the NFNs (one network per architecture)
#: skip the leave-one-architecture-out tasks.
METANETS = ("nfn-np", "nfn-hnp", "graph-metanet")
METHODS = (*BASELINES, *SANE_METHODS, *METANETS)
#: Seeds of a method when ``seeds`` is not given (others: 1): trained methods with random
#: initialisation get their spread from seeds.
SEEDS: dict[str, int] = {m: 2 for m in METANETS}
#: Architectures that get a ``without-<a>`` SANE run (``sane-unseen``; each trains on three
#: quarters of the zoo, the costliest part). CNN-s is the one measured for the README; CTC CNN
#: and MLP would also fit, a run without CNN-l cannot tokenize CNN-l (larger token positions).
UNSEEN: tuple[str, ...] = ("cnn_s",)
QUICK: dict[str, int] = {"models": 24, "epochs": 2, "sane_epochs": 1, "seeds": 1}


def architecture_of(task: TaskMetadata) -> str | None:
    """The one architecture a task is about (rows or held-out group), else ``None``."""
    if task.rows is not None and task.rows.architecture is not None:
        return task.rows.architecture
    if task.holdout is not None and task.holdout.by == "architecture":
        return task.holdout.value
    return None


def _merge(roots: Sequence[Path], out: Path, name: str, mix: Any) -> Path:
    from modelzoo.hub.merge import merge_zoos

    if not (out / "zoo.json").exists():
        merge_zoos(zoos=roots, out=out, name=name, version=mix.version,
                   description=mix.description, license=mix.license, citation=mix.citation,
                   card=mix.card, verify=False)
    return out


def build_zoos(root: Path, *, card: Path, quick: bool,
               say: Callable[[str], None]) -> dict[str, Path]:
    """Build the card's members once and merge them: ``all``, ``arch-<a>``, ``without-<a>``."""
    from modelzoo.builder import build_zoo
    from modelzoo.hub.mix import load_mix

    mix, members = load_mix(card)
    roots: dict[str, Path] = {}
    for rec in members:
        over: dict[str, Any] = {}
        if quick:
            over = {"models": min(QUICK["models"], len(rec.configs())),
                    "epochs": min(QUICK["epochs"], rec.epochs),
                    "checkpoint_epochs": [e for e in rec.checkpoints() if e <= QUICK["epochs"]]}
        roots[rec.name] = root / "members" / rec.name
        if not (roots[rec.name] / "zoo.json").exists():
            say(f"zoo build member {rec.name}")
            build_zoo(out=roots[rec.name], recipe=rec, **over)
    arch_of = {r.name: r.architecture for r in members}
    zoos = {"all": _merge(list(roots.values()), root / "zoos" / mix.name, mix.name, mix)}
    for a in sorted(set(arch_of.values())):
        mine = [p for n, p in roots.items() if arch_of[n] == a]
        rest = [p for n, p in roots.items() if arch_of[n] != a]
        zoos[f"arch-{a}"] = _merge(mine, root / "zoos" / f"{mix.name}-{a}",
                                   f"{mix.name}-{a}", mix)
        zoos[f"without-{a}"] = _merge(rest, root / "zoos" / f"{mix.name}-without-{a}",
                                      f"{mix.name}-without-{a}", mix)
    return zoos


def _plan(zoos: dict[str, Path], chosen: Sequence[str],
          unseen: Sequence[str] | None = None) -> list[tuple[str, str | None, list[str]]]:
    """``(method, SANE run or None, task names)`` to evaluate on the pinned zoo."""
    from benchmarks.methods.base import load_method
    from benchmarks.runner import supports

    tasks = [TASKS.get(n) for n in SUITES.get(SUITE).tasks]
    archs = sorted(k.removeprefix("arch-") for k in zoos if k.startswith("arch-"))
    plan: list[tuple[str, str | None, list[str]]] = []
    tasks = [t for t in tasks if architecture_of(t) in (None, *archs)]  # the card's archs
    for m in chosen:
        if m in BASELINES or m in METANETS:
            method = load_method(m)
            every_arch = getattr(method, "any_architecture", True)
            plan.append((m, None, [t.name for t in tasks if supports(method, t) and (
                every_arch or t.holdout is None or t.holdout.by != "architecture")]))
        elif m in ("sane-pooled", "sane-pooled-multizoo"):
            plan.append((m, m.removeprefix("sane-"), [t.name for t in tasks]))
        elif m == "sane-per-arch":  # architecture a's own tasks (not those leaving it out)
            plan += [(m, f"arch-{a}", [t.name for t in tasks
                                       if t.rows is not None and t.rows.architecture == a])
                     for a in archs]
        else:  # sane-unseen: leave-a-out tasks and a's weights, by a run that never saw a
            plan += [(m, f"without-{a}", [t.name for t in tasks if architecture_of(t) == a
                                          and (t.rows is None or not t.is_property)])
                     for a in archs if unseen is None or a in unseen]
    return plan


def reproduce_hetero(
    *,
    out: str | Path,
    quick: bool = False,
    seeds: int | None = None,
    methods: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    card: str | Path | None = None,
    sane_config: dict[str, Any] | None = None,
    unseen: Sequence[str] | None = None,
    report: str | Path | None = None,
    allow_unpinned: bool = False,
    jobs: int | None = None,
    verify: bool = True,
) -> Path:
    """Build, train, score and write ``OUT/report.md`` for ``digits-hetero-v1``.

    Args:
        out: working folder (members/, zoos/, sane/, results/, report.md); rerun to resume.
        quick: smaller members (:data:`QUICK`), 1 SANE epoch, 1 seed; zoos are unpinned.
        seeds: seeds per method (default 1: SANE is trained once per run; :data:`SEEDS`
            for the trained metanetworks, 1 with ``quick``).
        methods: a subset of :data:`METHODS`.
        progress: called with one line per step.
        card: the mix card (default :data:`CARD`; tests pass a smaller one).
        sane_config: SANE fields over :data:`SANE_CONFIG`.
        unseen: architectures that get a ``without-<a>`` run (default :data:`UNSEEN`).
        report: also write the report (generated header on top) to this file.
        allow_unpinned: score a pinned zoo whose content hash differs (another CPU kind).
        jobs: SANE runs and bench runs at once (:func:`benchmarks.reproduce_common.run_jobs`;
            default: :func:`~benchmarks.reproduce_common.default_jobs`).
        verify: check the zoos' shards before they are used (False: results unverified).

    Raises:
        BenchmarkError: an unknown method.
    """
    jobs_n = jobs
    chosen = chosen_methods(SUITE, methods, METHODS)
    say = progress or (lambda _msg: None)
    command = command_line("bench reproduce", SUITE, out=out, quick=quick, seeds=seeds,
                           method=list(methods or []), report=report,
                           allow_unpinned=allow_unpinned, jobs=jobs)
    load0 = load_average()
    root = ensure_dir(Path(out))
    timings = Timings(root)
    timed = timings.record

    t0 = time.perf_counter()
    zoos = build_zoos(root, card=ROOT / (card or CARD), quick=quick, say=say)
    timed("zoos", t0, fresh="zoos" not in timings.values)
    build_s = time.perf_counter() - t0
    plan = _plan(zoos, chosen, UNSEEN if unseen is None else unseen)
    jobs: list[Job] = []
    for run in sorted({r for _, r, _ in plan if r is not None}):
        cfg = {**SANE_CONFIG, **RUN_OPTIONS.get(run, {}), **(sane_config or {}),
               **({"epochs": QUICK["sane_epochs"]} if quick else {})}
        # resumes (or returns) a started run: a run found trained keeps its first time
        jobs.append(Job(f"sane {run}", _sane_job, timed=not (
            root / "sane" / run / "ckpt.pt").exists(), kwargs={
                "zoo": zoos["all" if run.startswith("pooled") else run],
                "out": root / "sane" / run, "config": cfg, "verify": verify}))
    spath = root / "skipped.json"
    skipped: dict[str, str] = json.loads(spath.read_text()) if spath.exists() else {}
    res_dir = root / "results"
    bench: list[Job] = []
    for method, run, names in plan:
        if not names:
            continue
        # a per-architecture run knows only its architecture's token positions: it is scored
        # on its own zoo, whose rows are those of that architecture in the pinned zoo (same
        # models, weights and splits), so it is unpinned by name
        own = run is not None and run.startswith("arch-")
        bench.append(Job(
            f"bench {method} {run or ''}".strip(), _bench_job,
            after=(f"sane {run}",) if run is not None else (),
            marker=root / "work" / "done" / f"{method}__{run or 'none'}",
            kwargs={"method": method, "run": None if run is None else root / "sane" / run,
                    "zoo": zoos[run] if own else zoos["all"], "tasks": names,
                    "out": res_dir, "seeds": seeds or (1 if quick else SEEDS.get(method, 1)),
                    "allow_unpinned": quick or own or allow_unpinned,
                    "workdir": root / "work" / method / (run or "none"), "verify": verify}))
    bench.sort(key=lambda j: j.kwargs["method"] not in METANETS)  # the longest first
    workers = default_jobs() if jobs_n is None else jobs_n
    t0 = time.perf_counter()
    every = [*jobs, *bench]
    record_plan(root, suite=SUITE, steps=["zoos", *(j.name for j in every)],
                complete=(not quick and set(chosen) == set(METHODS) and card is None
                          and unseen is None and not sane_config))
    ran = run_jobs(every, workers=workers, timings=timings, say=say)
    elapsed = elapsed_line(root, elapsed_s=time.perf_counter() - t0, workers=workers,
                           ran=[j.name for j in every if j.timed and j.name in ran],
                           timings=timings, zoo_builds_s=build_s)
    for name, why in ran.items():
        if why:  # e.g. a run that cannot tokenize an unseen architecture
            skipped[name.removeprefix("bench sane-unseen ")] = why
    atomic_write_bytes(spath, json.dumps(skipped, indent=1).encode())
    results = load_results(res_dir)
    title = f"{SUITE} reproduction" + (" (quick variant, unpinned zoos)" if quick else "")
    text = (report_header(title=title, command=command, timings=timings, load_start=load0,
                          threads=f"member builds (one after the other): the idle CPUs "
                                  "(the dense path's numbers do not depend on the count); "
                                  f"then {workers} job(s) at once: SANE training 1 thread "
                                  "(sane.train's default), bench runs and their heads 1")
            + "\n" + comparison_table(results) + "\n" + paired_table(results, res_dir,
                                                                     zoos["all"])
            + "".join(f"\nNot scored: `sane-unseen` with run `{r}`: {e}\n"
                      for r, e in skipped.items())
            + f"\n## Time ({sum(timings.values.values()) / 60:.0f} min in all)\n\n"
            + timings.table() + elapsed)
    return write_report(root / "report.md", text, copy_to=report)


def _sane_job(*, zoo: Path, out: Path, config: dict[str, Any], verify: bool,
              progress: Callable[[str], None] | None) -> None:
    """Train (or resume) one SANE run (a job of :func:`reproduce_hetero`)."""
    from sane import SaneConfig, train

    # sane.train's fixed default thread count (recorded in the run)
    train(zoo=zoo, out=out, config=SaneConfig.from_dict(config), progress=False, verify=verify)


def _bench_job(*, method: str, run: Path | None, zoo: Path, tasks: list[str], out: Path,
               seeds: int, allow_unpinned: bool, workdir: Path, verify: bool,
               progress: Callable[[str], None] | None) -> str | None:
    """Score ``method`` (SANE methods: with ``run``) on ``tasks`` (a job); the reason if a
    ``sane-unseen`` run cannot embed its unseen architecture (then nothing is scored)."""
    import benchmarks
    from benchmarks.methods.sane_method import Sane

    spec: Any = method if run is None else Sane(run=run, name=method)
    try:
        benchmarks.evaluate(method=spec, zoo=zoo, tasks=tasks, out=out, seeds=seeds,
                            allow_unpinned=allow_unpinned, workdir=workdir, progress=progress,
                            save_predictions=True, verify=verify)
    except MethodError as e:
        if method != "sane-unseen":
            raise
        return str(e)
    return None


def _fmt(r: TaskResult) -> str:
    s = r.main_score
    ci = f" [{s.ci.low:.3f}, {s.ci.high:.3f}]" if s.ci is not None and s.ci.low is not None \
        and s.ci.high is not None else ""
    return f"{s.mean:.3f}{ci}"


def comparison_table(results: Sequence[TaskResult]) -> str:
    """Markdown, one row per task, one column per method: main score [95% CI]."""
    cells = {(r.task.name, r.method.name): r for r in results if r.task.name in
             SUITES.get(SUITE).tasks}
    methods = [m for m in METHODS if any(k[1] == m for k in cells)]
    lines = ["| task (main score) | " + " | ".join(methods) + " |",
             "|---|" + "---:|" * len(methods)]
    for name in SUITES.get(SUITE).tasks:
        row = [_fmt(cells[(name, m)]) if (name, m) in cells else "" for m in methods]
        if any(row):
            lines.append(f"| {name} ({TASKS.get(name).main_score}) | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def paired_table(results: Sequence[TaskResult], res_dir: Path, zoo: Path) -> str:
    """Markdown: the differences of the main score of the :data:`PAIRS` of SANE methods on
    the same test models, each with its 95% paired bootstrap interval over test models."""
    from modelzoo.storage import load_zoo

    by = {(r.task.name, r.method.name): r for r in results}
    targets = sorted({TASKS.get(n).target for n in SUITES.get(SUITE).tasks
                      if TASKS.get(n).is_property})
    truth = load_zoo(zoo)["test"].select_columns(
        list(dict.fromkeys(["model_id", "epoch", *targets]))).to_pandas()
    lines = ["| task | a | b | a - b [95% paired CI] |", "|---|---|---|---:|"]
    for name in SUITES.get(SUITE).tasks:
        task = TASKS.get(name)
        if not task.is_property:
            continue
        for first, other in PAIRS:
            if (name, first) not in by or (name, other) not in by:
                continue
            a, b = (load_predictions(by[(name, m)], res_dir).to_pandas()
                    for m in (first, other))
            if not (a.model_id.equals(b.model_id) and a.epoch.equals(b.epoch)):
                raise BenchmarkError(f"{name}: the two methods predicted different rows")
            y = a[["model_id", "epoch"]].merge(truth, how="left")[task.target].to_numpy()
            pa_, pb = (np.asarray(d.prediction.tolist()) for d in (a, b))
            if task.type == "classification":
                y, pa_, pb = class_labels(y), class_labels(pa_), class_labels(pb)
            ci = paired_difference(metric=task.main_score, y=y, predictions_a=[pa_],
                                   predictions_b=[pb], groups=a.model_id.to_numpy())
            diff = by[(name, first)].main_score.mean - by[(name, other)].main_score.mean
            band = "[n/a]" if ci.low is None or ci.high is None else \
                f"[{ci.low:+.3f}, {ci.high:+.3f}]"
            lines.append(f"| {name} | {first} | {other} | {diff:+.3f} {band} |")
    return "## Pooled vs per-architecture SANE (paired)\n\n" + "\n".join(lines) + "\n"
