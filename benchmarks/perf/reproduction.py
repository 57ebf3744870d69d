"""The step times of a ``bench reproduce`` run, read from its ``OUT/timings.json``.

Run: ``python -m benchmarks.perf.reproduction repro/ [--json out.json]``

``bench reproduce`` records every step's wall and CPU seconds and the load around it
(:class:`benchmarks.reproduce_common.Timings`). This reads them back and checks the budget of
issue 24: every step other than SANE training (zoo builds and bench runs) within
:data:`BUDGET_S` in all on a 2-core machine. The check is on the sum of those steps' wall
times (one after the other). Steps run as parallel jobs (``bench reproduce --jobs``) overlap,
so the report also gives the elapsed time of the last invocation's jobs (``OUT/elapsed.json``)
and the least elapsed time the steps other than SANE training could take on ``cores`` cores
(their CPU seconds / cores), to show what parallel jobs can and cannot buy. Steps a rerun
found finished keep the times of the run that did them.

The verdict is given only for a whole reproduction: ``OUT/plan.json``
(:func:`benchmarks.reproduce_common.record_plan`) must say one invocation planned every step
(all the suite's methods, full size), and every planned step must have a time. A folder of a
partial run (``--method``, ``--quick``, an interrupted one) or of a run from before the plan
was kept gets its table and totals, and no verdict, with the reason.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from benchmarks.perf.common import emit
from benchmarks.provenance import Step

#: Wall seconds allowed for the steps other than SANE training (12 minutes).
BUDGET_S = 720.0


def is_sane_training(step: str) -> bool:
    """``sane train`` (digits-v2) and ``sane <run>`` (digits-hetero-v1) steps."""
    return step == "sane train" or (step.startswith("sane ") and not step.startswith("sane-"))


def read(out: str | Path) -> dict[str, Any]:
    """The steps of the reproduction in ``out`` and their totals (with and without SANE)."""
    path = Path(out) / "timings.json"
    steps = {k: Step.of(v) for k, v in json.loads(path.read_text()).items()}
    rows = [{"step": k, "wall_s": v.wall_s, "cpu_s": v.cpu_s, "load_start": v.load_start,
             "load_end": v.load_end, "sane_training": is_sane_training(k)}
            for k, v in steps.items()]
    other = [r for r in rows if not r["sane_training"]]
    elapsed = Path(out) / "elapsed.json"
    plan_path = Path(out) / "plan.json"
    plan = json.loads(plan_path.read_text()) if plan_path.exists() else None
    missing = [] if plan is None else [s for s in plan["steps"] if s not in steps]
    if plan is None:
        why = (f"{plan_path} is missing (a run from before bench reproduce kept its plan): "
               "whether these are all of the reproduction's steps cannot be told")
    elif not plan.get("complete"):
        why = (f"a partial {plan.get('suite')} reproduction (--method / --quick / other "
               "options): not every step of the whole one was planned")
    elif missing:
        why = f"{len(missing)} planned step(s) have no time yet: {', '.join(missing)}"
    else:
        why = None
    return {"path": str(path), "rows": rows, "complete": why is None, "no_verdict": why,
            "missing": missing, "seeds": None if plan is None else plan.get("seeds"),
            "elapsed": json.loads(elapsed.read_text()) if elapsed.exists() else None,
            "wall_s": sum(r["wall_s"] for r in rows),
            "without_sane_wall_s": sum(r["wall_s"] for r in other),
            "without_sane_cpu_s": (sum(r["cpu_s"] for r in other)
                                   if all(r["cpu_s"] is not None for r in other) else None),
            "budget_s": BUDGET_S}


def print_table(r: dict[str, Any]) -> None:
    """One line per step, then the totals against the budget."""
    print(f"steps of {r['path']}")
    print(f"{'step':<40} {'wall s':>8} {'CPU s':>8} {'load':>11}")
    for s in r["rows"]:
        cpu = "" if s["cpu_s"] is None else f"{s['cpu_s']:.0f}"
        load = "" if s["load_start"] is None else f"{s['load_start']:.1f}->{s['load_end']:.1f}"
        print(f"{s['step'][:40]:<40} {s['wall_s']:>8.0f} {cpu:>8} {load:>11}"
              + ("  (SANE training)" if s["sane_training"] else ""))
    ok = "within" if r["without_sane_wall_s"] <= r["budget_s"] else "OVER"
    seeds = f", {r['seeds']} seed(s) per method" if r.get("seeds") else ""
    verdict = (f"{ok} the {r['budget_s'] / 60:.0f}-minute budget (sum of the steps{seeds})"
               if r.get("complete") else f"no verdict on the {r['budget_s'] / 60:.0f}-minute "
               f"budget: {r.get('no_verdict') or 'no plan was read'}")
    cpu = r["without_sane_cpu_s"]
    print(f"all steps {r['wall_s']:.0f} s; without SANE training {r['without_sane_wall_s']:.0f} "
          f"s wall" + (f", {cpu:.0f} CPU-s" if cpu is not None else "") + f": {verdict}")
    if cpu is not None:
        print(f"  on 2 cores those steps take at least {cpu / 2:.0f} s elapsed however they are "
              "scheduled (CPU-s / 2)")
    e = r.get("elapsed")
    if e:
        print(f"elapsed: the {len(e['jobs'])} jobs of the last invocation took "
              f"{e['elapsed_s']:.0f} s with {e['workers']} worker(s) ({e['finished']})")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="a bench reproduce working folder (with timings.json)")
    p.add_argument("--json", help="write the results here too")
    a = p.parse_args(argv)
    return emit(read(a.out), print_table, a.json)


if __name__ == "__main__":
    main()
