"""``bench``: list tasks / suites / methods, run a method, tabulate results.

A thin click layer over :func:`benchmarks.evaluate` and :mod:`benchmarks.results`.
"""

from __future__ import annotations

from pathlib import Path

import click

from modelzoo.clickutil import ZooGroup, verify_option
from modelzoo.errors import ZooError


@click.group(cls=ZooGroup)
def cli() -> None:
    """Score weight-space methods on standard zoos, tasks and suites."""


@cli.command("ls")
@click.argument("what", type=click.Choice(["all", "tasks", "suites", "methods"]),
                default="all")
def ls_cmd(what: str) -> None:
    """List registered tasks, suites and methods."""
    from benchmarks import METHODS, SUITES, TASKS
    from benchmarks.methods.base import capabilities, load_method
    from benchmarks.table import print_table

    if what in ("all", "suites"):
        print_table(("suite", "tasks", "description"),
                    ((k, len(SUITES.get(k).tasks), SUITES.get(k).description)
                     for k in SUITES.names()), title="Suites", wrap=("description",))
    if what in ("all", "tasks"):
        tasks = [TASKS.get(name) for name in TASKS.names()]
        print_table(("task", "type", "main score", "zoo", "description"),
                    ((t.name, t.type, t.main_score, f"{t.zoo.name} v{t.zoo.version}",
                      t.description) for t in tasks), title="Tasks", wrap=("description",))
    if what in ("all", "methods"):
        rows = [(name, ", ".join(sorted(capabilities(load_method(name)))))
                for name in METHODS.names()]
        rows.append(("module:object", "any user method (see benchmarks/methods/base.py)"))
        print_table(("method", "capabilities"), rows, title="Methods")


@cli.command("run")
@click.option("--suite", help="Suite to run (e.g. digits-v1); `bench ls suites`.")
@click.option("--task", "tasks", multiple=True, help="Task to run (repeatable).")
@click.option("--method", required=True,
              help="Registered method name, or module:object for your own method.")
@click.option("--zoo", "zoos", required=True, multiple=True,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Zoo directory; repeat it for a suite that spans several zoos "
                   "(e.g. digits-v2: --zoo zoos/digits-cnn_s-hyp --zoo zoos/digits-cnn_s-seed).")
@click.option("--run", "sane_run", type=click.Path(exists=True, path_type=Path),
              help="With --method sane or sane-kde: benchmark this trained SANE run "
                   "(directory or ckpt.pt) as it is, instead of training one per seed.")
@click.option("--out", default=Path("results"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Results root.")
@click.option("--seeds", default=3, show_default=True, type=click.IntRange(min=1),
              help="Number of seeds (0..N-1); scores are mean ± std over them.")
@click.option("--allow-unpinned", is_flag=True,
              help="Score a zoo other than the one the tasks are pinned to.")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where methods keep their files (e.g. SANE runs); temporary if unset.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where source datasets live (non-bundled sources).")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=1),
              help="torch / BLAS threads while evaluating.")
@click.option("--save-predictions", is_flag=True,
              help="Also save per-item predictions under OUT (needed by `bench submit`).")
@click.option("--heldout", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="A leaderboard's label-free view: also predict its rows (for `bench "
                   "submit --zoo VIEW`); the method still trains on --zoo.")
@verify_option("results are then marked unverified (zoo.verified false), never claim the "
               "task's pin, and `bench submit` refuses them.")
def run_cmd(
    suite: str | None,
    tasks: tuple[str, ...],
    method: str,
    zoos: tuple[Path, ...],
    sane_run: Path | None,
    out: Path,
    seeds: int,
    allow_unpinned: bool,
    workdir: Path | None,
    data_dir: Path | None,
    threads: int,
    save_predictions: bool,
    heldout: Path | None,
    verify: bool,
) -> None:
    """Score METHOD on a suite or tasks of the zoo(s) at ZOO; write results under OUT."""
    from benchmarks import evaluate
    from benchmarks.zoo import EvalZoo

    if (suite is None) == (not tasks):
        raise click.UsageError("give either --suite or one or more --task")
    if len(zoos) > 1 and suite is None:
        raise click.UsageError("several --zoo need a --suite (each zoo runs its own tasks)")
    if sane_run is not None and method not in ("sane", "sane-kde"):
        raise click.UsageError(f"--run is for --method sane / sane-kde (a trained SANE run), "
                               f"not {method!r}")
    results = []
    chosen: object = method
    if sane_run is not None:
        from benchmarks.methods.sane_method import Sane, SaneSampler

        chosen = Sane(run=sane_run) if method == "sane" else SaneSampler(run=sane_run)
    for zoo in zoos:
        opened: Path | EvalZoo = zoo
        if heldout is not None:  # the public zoo plus a board's label-free view
            from benchmarks.leaderboard.view import ViewedZoo
            from modelzoo.storage.verify import verification

            with verification(verify):
                opened = ViewedZoo(zoo, heldout, data_dir)
        results += evaluate(suite=suite, tasks=list(tasks) or None, method=chosen,
                            zoo=opened, out=out, seeds=seeds, allow_unpinned=allow_unpinned,
                            workdir=workdir, data_dir=data_dir, progress=click.echo,
                            threads=threads, save_predictions=save_predictions,
                            verify=verify)
    if not results:
        raise ZooError(f"method {method!r} can do none of the tasks asked for")
    from benchmarks.table import print_table

    print_table(("zoo", "task", "main score", "mean ± std [95% CI]"),
                ((r.zoo.label, r.task.name, r.main_score.metric,
                  f"{r.main_score.mean:.4f} ± {r.main_score.std:.4f}"
                  + (f" {r.main_score.ci}" if r.main_score.ci is not None else ""))
                 for r in results))
    click.echo(f"wrote {len(results)} result file(s) under {out}"
               + ("" if verify else " (--no-verify: marked unverified, no pin claimed)"))


@cli.command("table")
@click.argument("results_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["markdown", "csv"]), default="markdown",
              show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout.")
@click.option("--ci/--no-ci", default=True, show_default=True,
              help="Show the 95% bootstrap intervals in Markdown (CSV always has them).")
@click.option("--published", "suite", metavar="SUITE",
              help="Instead, put ours beside the numbers SUITE's papers publish (Markdown), "
                   "e.g. ctc-cifar10-gs-v1.")
def table_cmd(results_dir: Path, fmt: str, output: Path | None, ci: bool,
              suite: str | None) -> None:
    """Compare methods on every task: main score as mean ± std over seeds and its 95%
    bootstrap interval [low, high] (over test models for property tasks). With --published
    SUITE: each published number of the suite beside our score of the method it compares with,
    with its source and whether it was checked against the paper."""
    from benchmarks.results import load_results
    from benchmarks.table import results_frames, to_csv, to_markdown

    results = load_results(results_dir)
    if suite is not None:
        from benchmarks.registry import SUITES
        from benchmarks.reproduce import PaperCell, paper_table

        cells = [PaperCell(p.task, p.metric, p.ours or "-", p.value,
                           f"{p.method} ({p.status})", p.source)
                 for p in SUITES.get(suite).published]
        if not cells:
            raise click.UsageError(f"suite {suite} records no published numbers")
        text = paper_table(results, cells)
    else:
        frames = results_frames(results)
        text = to_markdown(frames, ci=ci) if fmt == "markdown" else to_csv(frames)
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


@cli.command("reproduce")
@click.argument("suite")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Working folder (zoos/, sane/, results/, report.md); rerun to resume.")
@click.option("--quick", is_flag=True,
              help="Smaller zoos, fewer SANE epochs and one seed (unpinned; marked as such).")
@click.option("--seeds", type=click.IntRange(min=1), help="Seeds per method.")
@click.option("--method", "methods", multiple=True, help="Only these methods (repeatable).")
@click.option("--allow-unpinned", is_flag=True,
              help="Score zoos whose content hash differs from the suite's pins (built on "
                   "another CPU kind: its kernels round differently); marked in the report.")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the report to this file (e.g. docs/reproduce-digits-v2.md: "
                   "generated, with the command, commit and machine on top).")
@verify_option("its results are then marked unverified and claim no pin.")
@click.option("--jobs", type=click.IntRange(min=1),
              help="SANE runs and bench runs at once, each in a process of its own with one "
                   "thread (default: the usable CPUs, at most 4). Changes the wall time, "
                   "not the numbers; 1 runs them one after the other in this process.")
def reproduce_cmd(suite: str, out: Path, quick: bool, seeds: int | None,
                  methods: tuple[str, ...], allow_unpinned: bool,
                  report_file: Path | None, verify: bool, jobs: int | None) -> None:
    """Build SUITE's zoos from their cards, train SANE with its recorded config, score every
    method and write OUT/report.md: all scores with 95% intervals, ours beside each
    published number with its source, and every step's wall and CPU time. The report starts
    with what it was measured with: the command, the commit (and whether the tree had
    uncommitted changes), the machine (CPU model and kernel level, cores, torch threads,
    torch version) and the load average.

    \b
    Example:
      bench reproduce digits-v2 --out repro/ --seeds 2   # the full run (2 cores: ~24 min)
      bench reproduce digits-v2 --out repro/ --seeds 2 --report docs/reproduce-digits-v2.md
      bench reproduce digits-v2 --out repro-q/ --quick
      bench reproduce digits-hetero-v1 --out repro-h/   # 8 zoos, 7 SANE runs (2 cores: ~50 min)
      bench reproduce digits-hetero-v1 --out repro-hq/ --quick   # ~2 min of steps
    """
    from benchmarks.reproduce import reproduce

    report = reproduce(suite=suite, out=out, quick=quick, seeds=seeds,
                       methods=list(methods) or None, progress=click.echo,
                       report=report_file, allow_unpinned=allow_unpinned, verify=verify,
                       jobs=jobs)
    click.echo(report.read_text(encoding="utf-8"))
    click.echo(f"wrote {report}" + (f" and {report_file}" if report_file else ""))


@cli.command("schema")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the results JSON Schema here (default: print it).")
@click.option("--check", is_flag=True,
              help="Exit 1 if the published benchmarks/results.schema.json is out of date.")
def schema_cmd(out: Path | None, check: bool) -> None:
    """Print, write or check the JSON Schema of result files."""
    from benchmarks.results import SCHEMA_FILE, json_schema_text, write_json_schema

    if check:
        current = SCHEMA_FILE.read_text(encoding="utf-8") if SCHEMA_FILE.is_file() else ""
        if current != json_schema_text():
            raise click.ClickException(
                f"{SCHEMA_FILE} is out of date: run `bench schema --out {SCHEMA_FILE}`")
        click.echo(f"{SCHEMA_FILE} is up to date")
    elif out:
        click.echo(f"wrote {write_json_schema(out)}")
    else:
        click.echo(json_schema_text(), nl=False)


from benchmarks.leaderboard.cli import leaderboard_group, submit_cmd  # noqa: E402

cli.add_command(submit_cmd)
cli.add_command(leaderboard_group)


def main() -> None:
    """Console-script entry point (``bench``)."""
    cli()


if __name__ == "__main__":
    main()
