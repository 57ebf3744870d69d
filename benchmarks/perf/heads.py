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
bit for bit, since it is the same fit). Every run also profiles its heads
(:func:`benchmarks.heads.profile_heads`): per kind of fit, how many, on what matrix, the
seconds and the solver iterations, so the logistic heads' cost splits into iterations and time
per iteration. ``--pca K`` scores ``flat-linear`` once more with
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
    from benchmarks.heads import pca_heads, profile_heads, sklearn_heads

    path = "scikit-learn" if reference else f"pca-{pca}" if pca else "default"
    ctx = (sklearn_heads() if reference else pca_heads(pca) if pca
           else contextlib.nullcontext())
    load0, w0, c0 = os.getloadavg()[0], time.perf_counter(), _cpu()
    with ctx, profile_heads() as fits:
        results = evaluate(method=method, zoo=zoo, suite=suite, seeds=seeds,
                           allow_unpinned=True, threads=1)
    return {
        "profile": summarize_profile(fits),
        "method": method, "path": path,
        "seeds": seeds, "wall_s": time.perf_counter() - w0, "cpu_s": _cpu() - c0,
        "load_start": load0, "load_end": os.getloadavg()[0],
        "tasks": {r.task.name: {"main": r.main_score.mean,
                                "validation": r.scores["validation"][r.task.main_score].mean,
                                "params": [d.get("head_params") for d in
                                           r.details["per_seed"]]}
                  for r in results},
    }


def summarize_profile(fits: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per kind of fit (see :func:`benchmarks.heads.profile_heads`): the count, the largest
    train matrix, the seconds, the solver iterations and milliseconds per iteration (``None``
    for closed-form fits)."""
    out: dict[str, dict[str, Any]] = {}
    for f in fits:
        k = out.setdefault(f["kind"], {"fits": 0, "rows": 0, "features": 0, "seconds": 0.0,
                                       "iterations": None})
        k["fits"] += 1
        k["rows"], k["features"] = max(k["rows"], f["rows"]), max(k["features"], f["features"])
        k["seconds"] += f["seconds"]
        if f["n_iter"] is not None:
            k["iterations"] = (k["iterations"] or 0) + f["n_iter"]
    for k in out.values():
        it = k["iterations"]
        k["ms_per_iteration"] = 1000 * k["seconds"] / it if it else None
    return out


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
    print("where the heads' time goes (fits really done; a kept fit is not redone)")
    print(f"{'method':<22} {'heads':<13} {'fit':<20} {'fits':>5} {'rows x features':>16} "
          f"{'seconds':>8} {'iterations':>10} {'ms/iter':>8}")
    for row in r["rows"]:
        for kind, k in row.get("profile", {}).items():
            shape = f"{k['rows']} x {k['features']}"
            it = "-" if k["iterations"] is None else str(k["iterations"])
            ms = "-" if k["ms_per_iteration"] is None else f"{k['ms_per_iteration']:.2f}"
            print(f"{row['method']:<22} {row['path']:<13} {kind:<20} {k['fits']:>5} "
                  f"{shape:>16} {k['seconds']:>8.1f} {it:>10} {ms:>8}")
    by = {(row["method"], row["path"]): row.get("profile", {}) for row in r["rows"]}
    ws = by.get((METHODS[0], "default"), {}).get("LogisticRegression")
    flat = by.get((METHODS[1], "default"), {}).get("LogisticRegression")
    if ws and flat and ws["iterations"] and flat["iterations"]:
        print(f"logistic heads, flat-linear / weight-stats-linear: "
              f"{flat['seconds'] / ws['seconds']:.1f}x the seconds = "
              f"{flat['iterations'] / ws['iterations']:.1f}x the lbfgs iterations x "
              f"{flat['ms_per_iteration'] / ws['ms_per_iteration']:.1f}x the time per "
              f"iteration ({flat['features'] / ws['features']:.0f}x the features)")
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
