"""Comparison tables of result files: one row per method, one column per task (main score)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from benchmarks.results import TaskResult

_TYPE_ORDER = ("regression", "classification", "initialization", "generation")


def results_frames(results: Sequence[TaskResult]) -> dict[str, pd.DataFrame]:
    """One frame per zoo (``name-vVERSION``): index = methods, columns = tasks (by type, then
    name), cells = ``(mean, std)`` of the main score. For the same cell the newest result wins."""
    by_zoo: dict[str, dict[tuple[str, str], tuple[float, float]]] = {}
    metrics: dict[str, str] = {}
    order: dict[str, tuple[int, str]] = {}
    for r in sorted(results, key=lambda r: r.timestamp):
        by_zoo.setdefault(r.zoo.label, {})[(r.method.name, r.task.name)] = (
            r.main_score.mean, r.main_score.std)
        metrics[r.task.name] = r.main_score.metric
        order[r.task.name] = (_TYPE_ORDER.index(r.task.type), r.task.name)
    frames = {}
    for zoo, cells in sorted(by_zoo.items()):
        methods = sorted({m for m, _ in cells})
        tasks = sorted({t for _, t in cells}, key=order.__getitem__)
        df = pd.DataFrame(index=pd.Index(methods, name="method"), columns=tasks, dtype=object)
        for (m, t), v in cells.items():
            df.loc[m, t] = v
        df.attrs["metrics"] = {t: metrics[t] for t in tasks}
        frames[zoo] = df
    return frames


def _cell(v: object, best: bool) -> str:
    if not isinstance(v, tuple):
        return "–"
    text = f"{v[0]:.3f} ± {v[1]:.3f}"
    return f"**{text}**" if best else text


def to_markdown(frames: dict[str, pd.DataFrame]) -> str:
    """Markdown tables (one per zoo, best method per task in bold)."""
    out = []
    for zoo, df in frames.items():
        cols = list(df.columns)
        header = ["method", *[f"{t} ({df.attrs['metrics'][t]})" for t in cols]]
        best = {t: max((v[0] for v in df[t] if isinstance(v, tuple)), default=None)
                for t in cols}
        lines = [f"### {zoo}", "", "| " + " | ".join(header) + " |",
                 "|" + "|".join(["---"] + ["---:"] * len(cols)) + "|"]
        for m, row in df.iterrows():
            cells = [_cell(row[t], isinstance(row[t], tuple) and row[t][0] == best[t])
                     for t in cols]
            lines.append("| " + " | ".join([str(m), *cells]) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def to_csv(frames: dict[str, pd.DataFrame]) -> str:
    """Long CSV: zoo, method, task, metric, mean, std."""
    rows = [
        {"zoo": zoo, "method": m, "task": t, "metric": df.attrs["metrics"][t],
         "mean": v[0], "std": v[1]}
        for zoo, df in frames.items() for m, row in df.iterrows() for t, v in row.items()
        if isinstance(v, tuple)
    ]
    return pd.DataFrame(rows, columns=["zoo", "method", "task", "metric", "mean", "std"]).to_csv(
        index=False)
