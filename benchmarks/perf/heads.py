"""``flat-linear`` vs ``weight-stats-linear`` on the same rows: the linear heads' time.

Run: ``python -m benchmarks.perf.heads --zoo zoos/digits-cnn_s-hyp [--suite digits-v2]
[--seeds 2] [--reference] [--pca K] [--json out.json]``

Each method is scored by :func:`benchmarks.evaluate` on the suite's tasks of that zoo (for
digits-v2 and the hyperparameter zoo: 9 property tasks, 8,820 train rows), one thread, in a
fresh process (nothing cached between methods), and timed: wall and CPU seconds (user +
system), the 1-minute load average at the start and the end. ``--reference`` scores each
method once more with scikit-learn fitting every head candidate itself
(:func:`benchmarks.heads.sklearn_heads`) and compares: the chosen head parameters and the
main scores of every task must be the same (ridge to float rounding, logistic regression
bit for bit, since it is the same fit). ``--pca K`` scores ``flat-linear`` once more with
its logistic grids fitted on the top-``K`` principal components of the train rows, whitened
(:func:`benchmarks.heads.pca_heads`: the one fast alternative, not a shipped head), and
compares its validation and test main scores with the default's task by task. Printed: one
row per method and path, the flat / weight-stats time ratio, and the comparisons.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from pathlib import Path
from typing import Any

from benchmarks.perf.common import emit, isolated

METHODS = ("weight-stats-linear", "flat-linear")


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def time_method(zoo: str, suite: str, method: str, seeds: int,
                reference: bool = False, pca: int | None = None) -> dict[str, Any]:
    """Score ``method`` on ``suite``'s tasks of ``zoo`` in this process; times and scores
    (``reference``: scikit-learn's own fits; ``pca``: logistic heads on that many whitened
    principal components)."""
    from benchmarks import evaluate
    from benchmarks.heads import pca_heads, sklearn_heads

    path = "scikit-learn" if reference else f"pca-{pca}" if pca else "default"
    ctx = (sklearn_heads() if reference else pca_heads(pca) if pca
           else contextlib.nullcontext())
    load0, w0, c0 = os.getloadavg()[0], time.perf_counter(), _cpu()
    with ctx:
        results = evaluate(method=method, zoo=zoo, suite=suite, seeds=seeds,
                           allow_unpinned=True, threads=1)
    return {
        "method": method, "path": path,
        "seeds": seeds, "wall_s": time.perf_counter() - w0, "cpu_s": _cpu() - c0,
        "load_start": load0, "load_end": os.getloadavg()[0],
        "tasks": {r.task.name: {"main": r.main_score.mean,
                                "validation": r.scores["validation"][r.task.main_score].mean,
                                "params": [d.get("head_params") for d in
                                           r.details["per_seed"]]}
                  for r in results},
    }


def measure(*, zoo: str | Path, suite: str = "digits-v2", seeds: int = 1,
            reference: bool = False, methods: tuple[str, ...] = METHODS,
            pca: int | None = None) -> dict[str, Any]:
    """Time every method (its scikit-learn reference, ``flat-linear`` on ``pca`` whitened
    principal components); the ratio and the comparisons."""
    rows = [isolated(time_method, str(zoo), suite, m, seeds, False) for m in methods]
    if reference:
        rows += [isolated(time_method, str(zoo), suite, m, seeds, True) for m in methods]
    if pca and METHODS[1] in methods:
        rows.append(isolated(time_method, str(zoo), suite, METHODS[1], seeds, False, pca))
    by = {(r["method"], r["path"]): r for r in rows}
    out: dict[str, Any] = {"zoo": str(zoo), "suite": suite, "seeds": seeds, "rows": rows}
    if set(METHODS) <= set(methods):
        ws, flat = by[(METHODS[0], "default")], by[(METHODS[1], "default")]
        out["ratio_wall"] = flat["wall_s"] / ws["wall_s"]
        out["ratio_cpu"] = flat["cpu_s"] / ws["cpu_s"]
    if reference:
        diffs = {}
        for m in methods:
            a, b = by[(m, "default")]["tasks"], by[(m, "scikit-learn")]["tasks"]
            diffs[m] = {t: {"same_params": a[t]["params"] == b[t]["params"],
                            "main_diff": a[t]["main"] - b[t]["main"]} for t in a}
        out["comparison"] = diffs
    if pca and METHODS[1] in methods:
        a, b = by[(METHODS[1], "default")]["tasks"], rows[-1]["tasks"]
        out["pca"] = {"k": pca, "tasks": {
            t: {"validation": (a[t]["validation"], b[t]["validation"]),
                "test": (a[t]["main"], b[t]["main"]),
                "params": (a[t]["params"], b[t]["params"])} for t in a}}
    return out


def print_table(r: dict[str, Any]) -> None:
    """One row per method and path; the ratio; the comparison with scikit-learn's fits."""
    print(f"linear heads on {r['zoo']} ({r['suite']}, {r['seeds']} seed(s), 1 thread, a "
          "process of its own each)")
    print(f"{'method':<22} {'heads':<13} {'tasks':>5} {'wall s':>8} {'CPU s':>8} "
          f"{'load':>11}")
    for row in r["rows"]:
        print(f"{row['method']:<22} {row['path']:<13} {len(row['tasks']):>5} "
              f"{row['wall_s']:>8.1f} {row['cpu_s']:>8.1f} "
              f"{row['load_start']:>5.1f}->{row['load_end']:<5.1f}")
    if "ratio_wall" in r:
        print(f"flat-linear / weight-stats-linear: {r['ratio_wall']:.1f}x wall, "
              f"{r['ratio_cpu']:.1f}x CPU (target: within 3x)")
    for m, tasks in r.get("comparison", {}).items():
        same = sum(t["same_params"] for t in tasks.values())
        worst = max((abs(t["main_diff"]) for t in tasks.values()), default=0.0)
        print(f"{m}: same chosen head on {same}/{len(tasks)} tasks as scikit-learn's own "
              f"fits; largest main-score difference {worst:.2e}")
    if "pca" in r:
        print(f"flat-linear, default heads vs logistic heads on {r['pca']['k']} whitened "
              "principal components (main score; ridge tasks are the same fits)")
        print(f"{'task':<30} {'validation':>17} {'test':>17}")
        for t, d in r["pca"]["tasks"].items():
            (va, vb), (ta, tb) = d["validation"], d["test"]
            print(f"{t:<30} {va:>8.3f}->{vb:<8.3f} {ta:>8.3f}->{tb:<8.3f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", required=True, help="zoo directory (e.g. zoos/digits-cnn_s-hyp)")
    p.add_argument("--suite", default="digits-v2")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--reference", action="store_true",
                   help="also time scikit-learn's own fits of the same heads and compare")
    p.add_argument("--pca", type=int, metavar="K",
                   help="also time flat-linear with logistic heads on K whitened principal "
                        "components and compare its scores (a measurement, not a head)")
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args(argv)
    if a.pca is not None and a.pca < 1:
        p.error(f"--pca needs K >= 1, got {a.pca}")
    return emit(measure(zoo=a.zoo, suite=a.suite, seeds=a.seeds, reference=a.reference,
                        pca=a.pca), print_table, a.json)


if __name__ == "__main__":
    main()
