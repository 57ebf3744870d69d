"""Comparison tables of result files: one row per method, one column per task (main score;
columns grouped by task type in the order of the types' evaluators).

A cell reads ``0.930 [0.880, 0.960]`` for one seed and ``0.930 ± 0.010 [0.880, 0.960]`` for
several: the mean over seeds, the standard deviation over seeds, and the 95% bootstrap interval
of the mean (over test models for property tasks, see :mod:`benchmarks.scoring`). Files written
before results schema 3 have no interval (``0.930 ± 0.010``). The best mean of a column is in
bold; a method is only *better* than another when their intervals do not overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import pandas as pd
from rich import box
from rich.console import Console
from rich.table import Table

from benchmarks.registry import EVALUATORS
from benchmarks.results import TaskResult

_COLUMNS = ["zoo", "method", "task", "metric", "mean", "std", "n_seeds", "ci_low", "ci_high",
            "ci_level", "ci_unit"]


class Cell(NamedTuple):
    """The main score of one method on one task."""

    mean: float
    std: float
    n_seeds: int
    low: float | None = None
    high: float | None = None
    level: float | None = None
    unit: str | None = None

    def text(self, *, ci: bool = True) -> str:
        """``mean [± std] [[low, high]]`` (std only for several seeds)."""
        out = f"{self.mean:.3f}"
        if self.n_seeds > 1:
            out += f" ± {self.std:.3f}"
        if ci and self.level is not None:
            out += (f" [{self.low:.3f}, {self.high:.3f}]" if self.low is not None
                    and self.high is not None else " [n/a]")
        return out


def _cell(r: TaskResult) -> Cell:
    ms, ci = r.main_score, r.main_score.ci
    if ci is None:
        return Cell(ms.mean, ms.std, len(r.seeds))
    return Cell(ms.mean, ms.std, len(r.seeds), ci.low, ci.high, ci.level, ci.unit)


def _type_order(task_type: str) -> int:
    """Column position of a task type (its evaluator's ``order``; unknown types last)."""
    return EVALUATORS.get(task_type).order if task_type in EVALUATORS else 1000


def results_frames(results: Sequence[TaskResult]) -> dict[str, pd.DataFrame]:
    """One frame per zoo (``name-vVERSION``): index = methods, columns = tasks (by type, then
    name), cells = :class:`Cell` of the main score. For the same cell the newest result wins."""
    by_zoo: dict[str, dict[tuple[str, str], Cell]] = {}
    metrics: dict[str, str] = {}
    order: dict[str, tuple[int, str]] = {}
    for r in sorted(results, key=lambda r: r.timestamp):
        by_zoo.setdefault(r.zoo.label, {})[(r.method.name, r.task.name)] = _cell(r)
        metrics[r.task.name] = r.main_score.metric
        order[r.task.name] = (_type_order(r.task.type), r.task.name)
    frames = {}
    for zoo, cells in sorted(by_zoo.items()):
        methods = sorted({m for m, _ in cells})
        tasks = sorted({t for _, t in cells}, key=order.__getitem__)
        df = pd.DataFrame(index=pd.Index(methods, name="method"), columns=tasks, dtype=object)
        for (m, t), v in cells.items():
            df.at[m, t] = v
        df.attrs["metrics"] = {t: metrics[t] for t in tasks}
        frames[zoo] = df
    return frames


def to_markdown(frames: dict[str, pd.DataFrame], *, ci: bool = True) -> str:
    """Markdown tables (one per zoo, best mean per task in bold).

    Args:
        frames: from :func:`results_frames`.
        ci: show the confidence intervals (and a note on how to read them).
    """
    out = []
    for zoo, df in frames.items():
        cols = list(df.columns)
        header = ["method", *[f"{t} ({df.attrs['metrics'][t]})" for t in cols]]
        best = {t: max((v.mean for v in df[t] if isinstance(v, Cell)), default=None)
                for t in cols}
        lines = [f"### {zoo}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
        for m, row in df.iterrows():
            cells = []
            for t in cols:
                v = row[t]
                if not isinstance(v, Cell):
                    cells.append("–")
                    continue
                text = v.text(ci=ci)
                cells.append(f"**{text}**" if v.mean == best[t] else text)
            lines.append("| " + " | ".join([str(m), *cells]) + " |")
        if ci and any(isinstance(v, Cell) and v.level is not None
                      for t in cols for v in df[t]):
            lines += ["", "Mean ± std over seeds [95% bootstrap interval of the mean: over test "
                      "models for property tasks, over samples for initialization / "
                      "generation]. Bold: best mean; call a method better only where the "
                      "intervals do not overlap."]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def to_csv(frames: dict[str, pd.DataFrame]) -> str:
    """Long CSV: zoo, method, task, metric, mean, std, n_seeds, ci_low, ci_high, ci_level,
    ci_unit (the interval columns are empty for results without one)."""
    rows = [
        {"zoo": zoo, "method": m, "task": t, "metric": df.attrs["metrics"][t],
         "mean": v.mean, "std": v.std, "n_seeds": v.n_seeds, "ci_low": v.low,
         "ci_high": v.high, "ci_level": v.level, "ci_unit": v.unit}
        for zoo, df in frames.items() for m, row in df.iterrows() for t, v in row.items()
        if isinstance(v, Cell)
    ]
    return pd.DataFrame(rows, columns=_COLUMNS).to_csv(index=False)


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    title: str | None = None,
    wrap: Sequence[str] = (),
) -> None:
    """Print an aligned text table on stdout (``rich``; ``bench ls``, ``bench run`` and
    ``bench leaderboard add`` summaries).

    Args:
        columns: column headers.
        rows: cells (converted with ``str``).
        title: a line above the table.
        wrap: columns that may wrap in a narrow terminal (the others are never cut, so
            names stay greppable); output that is not a terminal is not wrapped at all.
    """
    console = Console(highlight=False, emoji=False, markup=False)
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                  pad_edge=False)
    for c in columns:
        table.add_column(c, no_wrap=c not in wrap, overflow="fold")
    for row in rows:
        table.add_row(*(str(v) for v in row))
    if console.is_terminal:
        console.print(table)
        return
    plain = Console(highlight=False, emoji=False, markup=False, width=1000, no_color=True)
    with plain.capture() as text:
        plain.print(table)
    print("\n".join(line.rstrip() for line in text.get().splitlines()))
