"""One command from nothing to the paper comparison: ``bench reproduce digits-v2``.

Builds the suite's canonical zoos from their cards, trains SANE with the settings recorded in
its config file (chosen on validation models only), scores every method on every task of the
suite, and writes two Markdown tables under ``OUT``: every method on every task (main score,
mean ± std over seeds, 95% bootstrap interval over test models), and our number beside the
published one for each cell the papers report, with its source.

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
from benchmarks.registry import SUITES
from benchmarks.reproduce_common import Timings, chosen_methods
from benchmarks.results import TaskResult, load_results
from benchmarks.table import results_frames, to_markdown
from modelzoo.storage import open_manifest, verification
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir
from modelzoo.threads import limit_threads, resolve_threads

ROOT = Path(__file__).resolve().parents[1]
SOURCE_SANE = "Schürholt et al., ICML 2024 (SANE), MNIST CNN-s zoo"
SOURCE_UNTERTHINER = "Unterthiner et al. 2020, CTC zoos (per-layer statistics + GBM)"


@dataclass(frozen=True)
class PaperCell:
    """A published number and the cell of ours it corresponds to."""

    task: str
    metric: str
    method: str
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


DIGITS_V2 = Reproduction(
    suite="digits-v2",
    cards={"digits-cnn_s-hyp": "cards/digits-cnn_s-hyp.yaml",
           "digits-cnn_s-seed": "cards/digits-cnn_s-seed.yaml"},
    sane_config="sane/configs/digits-v2.yaml",
    sane_zoo="digits-cnn_s-hyp",
    methods=("chance", "flat-linear", "weight-stats-linear", "weight-stats-gbt", "random-init",
             "zoo-init", "weights-kde", "sane"),
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
        PaperCell("digits-seed-generation", "zero_shot_accuracy", "weights-kde", 0.686,
                  "S_KDE30, epoch 0", SOURCE_SANE),
        PaperCell("digits-seed-generation", "zero_shot_accuracy", "sane", 0.867,
                  "SANE subsampled, epoch 0", SOURCE_SANE),
    ),
)

REPRODUCTIONS: dict[str, Reproduction] = {DIGITS_V2.suite: DIGITS_V2}


def _cell(results: Sequence[TaskResult], c: PaperCell) -> str:
    for r in results:
        if r.task.name == c.task and r.method.name == c.method:
            split = "test" if "test" in r.scores else next(iter(r.scores))
            s = r.scores[split].get(c.metric)
            if s is None:
                return "–"
            text = f"{s.mean:.3f}"
            if len(s.values) > 1:
                text += f" ± {s.std:.3f}"
            if s.ci is not None and s.ci.low is not None and s.ci.high is not None:
                text += f" [{s.ci.low:.3f}, {s.ci.high:.3f}]"
            return text
    return "not run"


def paper_table(results: Sequence[TaskResult], cells: Sequence[PaperCell]) -> str:
    """Markdown: our score (mean ± std over seeds [95% CI]) beside each published figure."""
    lines = ["| task | metric | our method | ours | published | published as | source |",
             "|---|---|---|---:|---:|---|---|"]
    for c in cells:
        lines.append(f"| {c.task} | {c.metric} | {c.method} | {_cell(results, c)} | "
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
    verify: bool = True,
) -> Path:
    """Build the zoos, train SANE, run every method and write the tables; return the report.

    Args:
        suite: a suite with a recorded reproduction (see :data:`REPRODUCTIONS`), or
            ``digits-hetero-v1`` (:mod:`benchmarks.reproduce_hetero`).
        out: working folder (zoos/, sane/, results/, report.md); rerun to resume.
        quick: the smaller variant (unpinned zoos; marked in the report).
        seeds: seeds per method (default: the reproduction's, 1 with ``quick``).
        methods: a subset of the reproduction's methods.
        progress: called with one line per step.
        verify: check the shards of every zoo (built now or by an earlier run) against its
            ``zoo.json`` before it is used; False marks every result unverified.

    Raises:
        BenchmarkError: no reproduction is recorded for ``suite``, or an unknown method.
        ShardChecksumError: a zoo's shard is corrupt (nothing more is written).
    """
    from benchmarks import evaluate
    from modelzoo.hub.cli import build_recipe_file
    from sane import SaneConfig, train

    if suite == "digits-hetero-v1":  # several SANE runs and zoos: its own pipeline
        from benchmarks.reproduce_hetero import reproduce_hetero

        with verification(verify):  # its builds, SANE runs and evaluations follow it
            return reproduce_hetero(out=out, quick=quick, seeds=seeds, methods=methods,
                                    progress=progress)
    if suite not in REPRODUCTIONS:
        raise BenchmarkError(f"no reproduction recorded for suite {suite!r}; "
                         f"choose from {', '.join(REPRODUCTIONS)}, digits-hetero-v1")
    rep = REPRODUCTIONS[suite]
    SUITES.get(suite)  # the suite itself must be registered
    chosen = chosen_methods(suite, methods, rep.methods)
    say = progress or (lambda _msg: None)
    root = ensure_dir(Path(out))
    timings = Timings(root)
    timed = timings.record
    over = {"models": rep.quick["models"], "epochs": rep.quick["epochs"]} if quick else {}
    zoos: dict[str, Path] = {}
    for name, card in rep.cards.items():
        t0 = time.perf_counter()
        say(f"zoo build {card}" + (f" (quick: {over})" if quick else ""))
        zoos[name] = root / "zoos" / name
        fresh = not (zoos[name] / "zoo.json").exists()
        build_recipe_file(ROOT / card, out=zoos[name], progress=progress is not None, **over)
        open_manifest(zoos[name], verify=verify)  # a resumed zoo may have been damaged since
        timed(f"zoo build {name}", t0, fresh=fresh)
    run_dir = root / "sane" / "run"
    if "sane" in chosen:
        t0 = time.perf_counter()
        cfg = SaneConfig.from_yaml(ROOT / rep.sane_config)
        if quick:
            cfg = cfg.replace(epochs=rep.quick["sane_epochs"])
        say(f"sane train on {rep.sane_zoo} ({cfg.epochs} epochs, config {rep.sane_config})")
        fresh = not (run_dir / "ckpt.pt").exists()
        with limit_threads(resolve_threads(None)):  # the idle CPUs: no thrashing when shared
            train(zoo=zoos[rep.sane_zoo], out=run_dir, config=cfg,
                  progress=progress is not None, verify=verify)
        timed("sane train", t0, fresh=fresh)
    n_seeds = seeds or (rep.quick["seeds"] if quick else rep.seeds)
    res_dir = root / "results"
    for method in chosen:
        spec: Any = method
        if method == "sane":
            from benchmarks.methods.sane_method import Sane

            spec = Sane(run=run_dir)
        for name, zoo in zoos.items():
            done = root / "work" / "done" / f"{method}__{name}"
            if done.exists():  # finished by an earlier (killed) run of the same command
                continue
            t0 = time.perf_counter()
            say(f"bench run {method} on {name}")
            evaluate(method=spec, zoo=zoo, suite=suite, out=res_dir, seeds=n_seeds,
                     allow_unpinned=quick, workdir=root / "work" / method / name,
                     progress=say, verify=verify)
            timed(f"bench {method} {name}", t0, fresh=True)
            ensure_dir(done.parent)
            atomic_write_bytes(done, b"")
    results = load_results(res_dir)
    report = root / "report.md"
    head = [f"# {suite} reproduction" + (" (quick variant, unpinned zoos)" if quick else ""),
            "", f"Seeds per method: {n_seeds}. Cells: main score, mean ± std over seeds "
            "[95% bootstrap interval over test models].", ""]
    text = "\n".join(head) + to_markdown(results_frames(results)) + "\n## Beside the papers\n\n"
    text += paper_table(results, rep.paper)
    total = sum(timings.values.values())
    text += (f"\n## Time ({total / 60:.0f} min in all)\n\n"
             + "\n".join(f"- {k}: {v:.0f} s" for k, v in timings.values.items()))
    atomic_write_bytes(report, (text + "\n").encode())
    return report
