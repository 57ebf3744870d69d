"""One command from nothing to the paper comparison: ``bench reproduce digits-v2``.

Builds the suite's canonical zoos from their cards, trains SANE with the settings recorded in
its config files (chosen on validation models only; one run per zoo, as the paper does: on
the seed zoo's late epochs for its reconstruction / initialization / generation tasks, on the
hyperparameter zoo for the property tasks), scores every method on every task of the suite,
and writes Markdown tables under ``OUT``: every method on every task (main score, mean ± std
over seeds, 95% bootstrap interval over test models), our number beside the published one for
each cell the papers report, with its source, and each target of the reproduction beside its
measured figure (:mod:`benchmarks.reproduce_targets`).

Everything resumes: a killed run rerun with the same ``OUT`` keeps the finished zoos (``zoo
build`` resumes by model), the SANE run (``sane train`` resumes by epoch) and every finished
result file. ``--quick`` is a smaller variant (fewer models and epochs, fewer SANE epochs and
seeds) whose zoos are not the pinned ones, so it is marked as such in its tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchmarkError
from benchmarks.provenance import command_line, load_average
from benchmarks.registry import SUITES
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
from benchmarks.reproduce_targets import Target, format_stat, targets_table
from benchmarks.results import TaskResult, load_results
from benchmarks.table import results_frames, to_markdown
from modelzoo.storage import open_manifest, verification
from modelzoo.storage.atomic import ensure_dir

ROOT = Path(__file__).resolve().parents[1]
SOURCE_SANE = "Schürholt et al., ICML 2024 (SANE), MNIST CNN-s zoo"
SOURCE_UNTERTHINER = "Unterthiner et al. 2020, CTC zoos (per-layer statistics + GBM)"


@dataclass(frozen=True)
class PaperCell:
    """A published number and the cell of ours it corresponds to (``method`` None: no method
    here implements the published one; the number is shown for context only)."""

    task: str
    metric: str
    method: str | None
    published: float
    published_as: str
    source: str


@dataclass(frozen=True)
class Reproduction:
    """What ``bench reproduce`` runs for one suite."""

    suite: str
    cards: dict[str, str]  # zoo name -> card path (relative to the repository)
    sane_config: str  # SANE config file (relative to the repository)
    sane_zoo: str  # zoo name SANE trains on
    methods: tuple[str, ...]
    seeds: int = 3
    quick: dict[str, Any] = field(default_factory=dict)
    paper: tuple[PaperCell, ...] = ()
    #: one SANE run per zoo: zoo name -> config file; empty: ``{sane_zoo: sane_config}``
    #: (run folder ``OUT/sane/run``; with several runs ``OUT/sane/<zoo>``)
    sane_runs: dict[str, str] = field(default_factory=dict)
    targets: tuple[Target, ...] = ()

    def runs(self) -> dict[str, str]:
        """Zoo name -> SANE config file of every SANE run."""
        return dict(self.sane_runs) or {self.sane_zoo: self.sane_config}


#: Methods benchmarked with the reproduction's SANE run of the zoo they are scored on.
SANE_METHODS = ("sane", "sane-kde")
#: Bench runs started first when jobs run in parallel (the longest: trained per task).
SLOW_METHODS = ("nfn-np", "nfn-hnp", "graph-metanet", "flat-linear", "weight-stats-gbt")


SEED_GENERATION = "digits-seed-generation"
DIGITS_V2 = Reproduction(
    suite="digits-v2",
    cards={"digits-cnn_s-hyp": "cards/digits-cnn_s-hyp.yaml",
           "digits-cnn_s-seed": "cards/digits-cnn_s-seed.yaml"},
    sane_config="sane/configs/digits-v2.yaml",
    sane_zoo="digits-cnn_s-hyp",
    sane_runs={"digits-cnn_s-seed": "sane/configs/digits-v2-seed.yaml",
               "digits-cnn_s-hyp": "sane/configs/digits-v2.yaml"},
    methods=("chance", "flat-linear", "weight-stats-linear", "weight-stats-gbt", "random-init",
             "zoo-init", "weights-kde", "weights-kde-sub", "sane", "sane-kde", "nfn-np",
             "nfn-hnp", "graph-metanet"),
    quick={"models": 192, "epochs": 10, "sane_epochs": 2, "seeds": 1},
    paper=(
        PaperCell("digits-hyp-test-acc", "r2", "weight-stats-linear", 0.987,
                  "s(W), linear probe", SOURCE_SANE),
        PaperCell("digits-hyp-test-acc", "r2", "sane", 0.978, "SANE, linear probe",
                  SOURCE_SANE),
        PaperCell("digits-hyp-epoch", "r2", "weight-stats-linear", 0.974,
                  "s(W), linear probe", SOURCE_SANE),
        PaperCell("digits-hyp-epoch", "r2", "sane", 0.958, "SANE, linear probe", SOURCE_SANE),
        PaperCell("digits-hyp-ggap", "r2", "weight-stats-linear", 0.393,
                  "s(W), linear probe", SOURCE_SANE),
        PaperCell("digits-hyp-ggap", "r2", "sane", 0.402, "SANE, linear probe", SOURCE_SANE),
        PaperCell("digits-hyp-test-acc", "r2", "weight-stats-gbt", 0.98,
                  "per-layer statistics + GBM (R2 > .98)", SOURCE_UNTERTHINER),
        PaperCell("digits-hyp-test-acc", "kendall_tau", "weight-stats-gbt", 0.92,
                  "per-layer statistics + GBM (tau ~.92)", SOURCE_UNTERTHINER),
        PaperCell("digits-seed-generation", "zero_shot_accuracy", None, 0.686,
                  "S_KDE30, epoch 0: a KDE over the embeddings of the best 30% of models of a "
                  "whole-model hyper-representation (Schürholt et al. 2022), decoded; not "
                  "implemented here (weights-kde is a KDE over raw weights)", SOURCE_SANE),
        PaperCell("digits-seed-generation", "zero_shot_accuracy", "sane", 0.867,
                  "SANE subsampled, epoch 0", SOURCE_SANE),
    ),
    targets=(
        Target("decoded test models keep >= 0.90 of their accuracy",
               "digits-seed-reconstruction", "accuracy_ratio", "sane", 0.90),
        Target("decoded test models keep >= 0.90 of their accuracy",
               "digits-hyp-reconstruction", "accuracy_ratio", "sane", 0.90),
        Target("SANE_SUB zero-shot accuracy >= 0.85", SEED_GENERATION, "zero_shot_accuracy",
               "sane", 0.85),
        Target("SANE_SUB above plain SANE KDE draws", SEED_GENERATION, "zero_shot_accuracy",
               "sane", versus="sane-kde", strict=True),
        Target("SANE linear probe within 0.02 R2 of s(W) on test accuracy",
               "digits-hyp-test-acc", "r2", "sane", -0.02, versus="weight-stats-linear"),
        Target("SANE linear probe at or above s(W) on ggap", "digits-hyp-ggap", "r2", "sane",
               versus="weight-stats-linear"),
        *(Target(f"novelty of {m}'s samples: distance to the nearest training model / "
                 "median gap between seed-only neighbours", SEED_GENERATION, "novelty", m,
                 report_only=True)
          for m in ("sane", "sane-kde", "weights-kde", "weights-kde-sub")),
        *(Target(f"zero-shot accuracy of {m} (like for like)", SEED_GENERATION,
                 "zero_shot_accuracy", m, report_only=True)
          for m in ("sane-kde", "weights-kde", "weights-kde-sub")),
    ),
)

#: The README's quick start in one command: the 32-model demo zoo, SANE with its
#: validation-chosen config, the baselines, 2 seeds (the table of ``docs/quickstart-digits-v1.md``).
DIGITS_V1 = Reproduction(
    suite="digits-v1",
    cards={"digits-cnn_s": "cards/digits-cnn_s.yaml"},
    sane_config="sane/configs/digits-cnn_s.yaml",
    sane_zoo="digits-cnn_s",
    methods=("weight-stats-linear", "weight-stats-gbt", "flat-linear", "random-init",
             "zoo-init", "weights-kde", "sane"),
    seeds=2,
    quick={"models": 16, "epochs": 4, "sane_epochs": 2, "seeds": 1},
)

REPRODUCTIONS: dict[str, Reproduction] = {r.suite: r for r in (DIGITS_V1, DIGITS_V2)}


def _cell(results: Sequence[TaskResult], c: PaperCell) -> str:
    if c.method is None:
        return "no counterpart"
    for r in results:
        if r.task.name == c.task and r.method.name == c.method:
            split = "test" if "test" in r.scores else next(iter(r.scores))
            s = r.scores[split].get(c.metric)
            return "–" if s is None else format_stat(s)
    return "not run"


def paper_table(results: Sequence[TaskResult], cells: Sequence[PaperCell]) -> str:
    """Markdown: our score (mean ± std over seeds [95% CI]) beside each published figure."""
    lines = ["| task | metric | our method | ours | published | published as | source |",
             "|---|---|---|---:|---:|---|---|"]
    for c in cells:
        lines.append(f"| {c.task} | {c.metric} | {c.method or '–'} | {_cell(results, c)} | "
                     f"{c.published:.3f} | {c.published_as} | {c.source} |")
    return "\n".join(lines) + "\n"


def reproduce(
    *,
    suite: str,
    out: str | Path,
    quick: bool = False,
    seeds: int | None = None,
    methods: Sequence[str] | None = None,
    progress: Callable[[str], None] | None = None,
    report: str | Path | None = None,
    allow_unpinned: bool = False,
    verify: bool = True,
    jobs: int | None = None,
) -> Path:
    """Build the zoos, train SANE, run every method and write the tables; return the report.

    The report (``OUT/report.md``) is generated whole: it starts with the command, commit,
    machine, threads and load (:mod:`benchmarks.provenance`) and ends with every step's wall
    and CPU time; ``report`` writes a copy there too (e.g. ``docs/reproduce-digits-v2.md``).

    Args:
        suite: a suite with a recorded reproduction (see :data:`REPRODUCTIONS`), or
            ``digits-hetero-v1`` (:mod:`benchmarks.reproduce_hetero`).
        out: working folder (zoos/, sane/, results/, report.md); rerun to resume.
        quick: the smaller variant (unpinned zoos; marked in the report).
        seeds: seeds per method (default: the reproduction's, 1 with ``quick``).
        methods: a subset of the reproduction's methods.
        progress: called with one line per step.
        report: also write the report to this file.
        allow_unpinned: score zoos whose content hash differs from the suite's pins (a
            build on another CPU kind, whose kernels round differently; marked in the report).
        verify: check the shards of every zoo (built now or by an earlier run) against its
            ``zoo.json`` before it is used; False marks every result unverified.
        jobs: SANE runs and bench runs at once, each in a process of its own
            (:func:`~benchmarks.reproduce_common.run_jobs`; default
            :func:`~benchmarks.reproduce_common.default_jobs`): the wall time changes, not
            the numbers.

    Raises:
        BenchmarkError: no reproduction is recorded for ``suite``, or an unknown method.
        ShardChecksumError: a zoo's shard is corrupt (nothing more is written).
    """
    if suite == "digits-hetero-v1":  # several SANE runs and zoos: its own pipeline
        from benchmarks.reproduce_hetero import reproduce_hetero

        with verification(verify):  # its builds, SANE runs and evaluations follow it
            return reproduce_hetero(out=out, quick=quick, seeds=seeds, methods=methods,
                                    progress=progress, report=report,
                                    allow_unpinned=allow_unpinned, jobs=jobs, verify=verify)
    if suite not in REPRODUCTIONS:
        raise BenchmarkError(f"no reproduction recorded for suite {suite!r}; "
                         f"choose from {', '.join(REPRODUCTIONS)}, digits-hetero-v1")
    rep = REPRODUCTIONS[suite]
    SUITES.get(suite)  # the suite itself must be registered
    chosen = chosen_methods(suite, methods, rep.methods)
    say = progress or (lambda _msg: None)
    command = command_line("bench reproduce", suite, out=out, quick=quick, seeds=seeds,
                           method=list(methods or []), report=report,
                           allow_unpinned=allow_unpinned, jobs=jobs)
    load0 = load_average()
    root = ensure_dir(Path(out))
    timings = Timings(root)
    workers = default_jobs() if jobs is None else jobs
    over = {"models": rep.quick["models"], "epochs": rep.quick["epochs"]} if quick else {}
    zoos = {name: root / "zoos" / name for name in rep.cards}
    for zoo in zoos.values():  # a zoo of an earlier run may have been damaged since: say so
        if (zoo / "zoo.json").exists():  # before any job starts (a build job checks again)
            open_manifest(zoo, verify=verify)
    builds = [Job(f"zoo build {name}", _build_job,
                  timed=not (zoos[name] / "zoo.json").exists(),  # a built zoo keeps its time
                  kwargs={"card": str(ROOT / card), "out": zoos[name], "over": over,
                          "verify": verify, "threads": 1 if workers > 1 else None})
              for name, card in rep.cards.items()]
    build = {name: f"zoo build {name}" for name in rep.cards}
    runs = rep.runs()
    run_dirs = {z: root / "sane" / ("run" if len(runs) == 1 else z) for z in runs}
    sane_job = {z: "sane train" if len(runs) == 1 else f"sane train {z}" for z in runs}
    sane_jobs: list[Job] = []
    for zoo_name, config_file in runs.items() if set(chosen) & set(SANE_METHODS) else ():
        # a run found trained keeps its first time (sane.train resumes or returns)
        sane_jobs.append(Job(sane_job[zoo_name], _sane_job, after=(build[zoo_name],), timed=not (
            run_dirs[zoo_name] / "ckpt.pt").exists(), kwargs={
                "zoo": zoos[zoo_name], "out": run_dirs[zoo_name],
                "config": str(ROOT / config_file), "verify": verify,
                "quick": ({"epochs": rep.quick["sane_epochs"],
                           "zoo_epochs": rep.quick["epochs"]} if quick else None)}))
    n_seeds = seeds or (rep.quick["seeds"] if quick else rep.seeds)
    res_dir = root / "results"
    bench: list[Job] = []
    for method in chosen:
        for name, zoo in zoos.items():
            if method in SANE_METHODS and name not in run_dirs:
                continue  # no SANE run for this zoo
            bench.append(Job(
                f"bench {method} {name}", _bench_job,
                after=(build[name], *((sane_job[name],) if method in SANE_METHODS else ())),
                marker=root / "work" / "done" / f"{method}__{name}",
                kwargs={"method": method, "run": run_dirs.get(name), "zoo": zoo,
                        "suite": suite, "out": res_dir, "seeds": n_seeds,
                        "allow_unpinned": quick or allow_unpinned,
                        "workdir": root / "work" / method / name, "verify": verify}))
    # longest first (SANE runs, then the trained metanetworks), so parallel workers finish
    # together; the order of results and tables does not depend on it
    bench.sort(key=lambda j: SLOW_METHODS.index(j.kwargs["method"])
               if j.kwargs["method"] in SLOW_METHODS else len(SLOW_METHODS))
    t0 = time.perf_counter()
    every = [*builds, *sane_jobs, *bench]
    record_plan(root, suite=suite, steps=[j.name for j in every],
                complete=not quick and set(chosen) == set(rep.methods), seeds=n_seeds)
    ran = run_jobs(every, workers=workers, timings=timings, say=say)
    elapsed = elapsed_line(root, elapsed_s=time.perf_counter() - t0, workers=workers,
                           ran=[j.name for j in every if j.timed and j.name in ran],
                           timings=timings)
    results = load_results(res_dir)
    title = f"{suite} reproduction" + (" (quick variant, unpinned zoos)" if quick else "")
    unpinned = sorted({r.zoo.name for r in results if not r.zoo.matches_pin})
    head = [report_header(title=title, command=command, timings=timings, load_start=load0,
                          threads=f"{workers} job(s) at once; zoo builds: "
                          + ("1 each" if workers > 1 else "the idle CPUs")
                          + " (the dense path's numbers do not depend on the count); SANE "
                            "training: 1 (sane.train's default); bench runs and their heads: 1"),
            *([f"Zoos that do not match the tasks' pins (scored with --allow-unpinned): "
               f"{', '.join(unpinned)}.", ""] if unpinned and not quick else []),
            f"Seeds per method: {n_seeds}. Cells: main score, mean ± std over seeds "
            "[95% bootstrap interval over test models].", ""]
    text = "\n".join(head) + to_markdown(results_frames(results))
    if rep.paper:
        text += "\n## Beside the papers\n\n" + paper_table(results, rep.paper)
    if rep.targets:
        text += "\n" + targets_table(results, rep.targets)
    total = sum(timings.values.values())
    text += (f"\n## Time ({total / 60:.0f} min in all)\n\n" + timings.table()
             + elapsed)
    return write_report(root / "report.md", text, copy_to=report)


def _build_job(*, card: str, out: Path, over: dict[str, int], verify: bool,
               threads: int | None, progress: Callable[[str], None] | None) -> None:
    """Build (or resume) one zoo of a reproduction from its card (a job); ``threads``: the
    build's threads (1 beside other jobs; ``None``: the idle CPUs). The dense path's numbers
    do not depend on it."""
    from modelzoo.hub.cli import build_recipe_file

    if progress is not None:
        progress(f"zoo build {card}" + (f" (quick: {over})" if over else ""))
    build_recipe_file(card, out=out, progress=progress is not None, threads=threads, **over)
    open_manifest(out, verify=verify)  # a resumed zoo may have been damaged since


def _sane_job(*, zoo: Path, out: Path, config: str, verify: bool, quick: dict[str, int] | None,
              progress: Callable[[str], None] | None) -> None:
    """Train (or resume) one SANE run of a reproduction with its config file (a job)."""
    from sane import SaneConfig, train

    cfg = SaneConfig.from_yaml(config)
    if quick:
        cfg = cfg.replace(epochs=quick["epochs"],
                          epochs_range=_quick_range(cfg.epochs_range, quick["zoo_epochs"]))
    # sane.train's fixed default thread count (recorded in the run): reproducible digits
    train(zoo=zoo, out=out, config=cfg, progress=progress is not None, verify=verify)


def _bench_job(*, method: str, run: Path | None, zoo: Path, suite: str, out: Path, seeds: int,
               allow_unpinned: bool, workdir: Path, verify: bool,
               progress: Callable[[str], None] | None) -> None:
    """Score one method on one zoo's tasks of ``suite`` (a job; SANE methods with ``run``)."""
    import benchmarks

    spec: Any = _sane_method(method, run) if method in SANE_METHODS and run else method
    benchmarks.evaluate(method=spec, zoo=zoo, suite=suite, out=out, seeds=seeds,
                        allow_unpinned=allow_unpinned, workdir=workdir, progress=progress,
                        verify=verify)


def _sane_method(method: str, run: Path) -> Any:
    """The SANE method ``method`` benchmarking the trained ``run``."""
    from benchmarks.methods.sane_method import Sane, SaneSampler

    return Sane(run=run) if method == "sane" else SaneSampler(run=run, name=method)


def _quick_range(rng: tuple[int, int] | None, epochs: int) -> tuple[int, int] | None:
    """A SANE ``epochs_range`` moved to the last epochs of a quick zoo of ``epochs`` epochs
    (same width)."""
    if rng is None or rng[1] <= epochs:
        return rng
    return (max(0, epochs - (rng[1] - rng[0])), epochs)
