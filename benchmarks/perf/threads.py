"""Default thread count vs one thread, on a quiet and on a loaded machine.

Run: ``python -m benchmarks.perf.threads [--models 64 --epochs 2 --busy 1 --repeats 2]``

torch's default of one intra-op thread per core made the population trainer ~10x slower than
one thread when another process kept a core busy (every op ends at a barrier that waits for
the thread the scheduler parked). ``zoo build`` therefore defaults to the allowed CPUs that are
idle (:mod:`modelzoo.threads`). This benchmark times the population trainer (64 CNN-s on
digits) in fresh processes with one thread, with the shipped default and with torch's own
default (one per core), first on the machine as it is, then with ``--busy`` extra processes
spinning, alternating the settings ``--repeats`` times and reporting the median. Target: the
shipped default is never slower than one thread (ratio >= 1 within noise) under load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from typing import Any

from benchmarks.perf.common import emit, isolated
from benchmarks.perf.population import _run

SETTINGS: dict[str, int | None] = {"one": 1, "default": None, "per-core": os.cpu_count() or 1}


def _time(threads: int | None, models: int, epochs: int) -> dict[str, Any]:
    return isolated(_run, "population", "cnn_s", models, epochs, "cpu", threads)


def measure(*, models: int = 64, epochs: int = 2, busy: int = 1, repeats: int = 2,
            loads: tuple[str, ...] = ("as is", "busy")) -> dict[str, Any]:
    """Median models/s of each setting, as is and with ``busy`` spinning processes."""
    out: dict[str, Any] = {"models": models, "epochs": epochs, "busy": busy,
                           "cpus": os.cpu_count(), "loads": {}}
    for kind in loads:
        load = "as is" if kind == "as is" else f"+{busy} busy"
        spin = [] if load == "as is" else [
            subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
        try:
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in SETTINGS}
            for _ in range(repeats):
                for name, n in SETTINGS.items():
                    runs[name].append(_time(n, models, epochs))
        finally:
            for p in spin:
                p.kill()
                p.wait()
        row = {name: {"models_per_s": statistics.median(r["models_per_s"] for r in rs),
                      "threads": [r["threads"] for r in rs]} for name, rs in runs.items()}
        row["default_over_one"] = row["default"]["models_per_s"] / row["one"]["models_per_s"]
        row["per_core_over_one"] = row["per-core"]["models_per_s"] / row["one"]["models_per_s"]
        out["loads"][load] = row
    return out


def print_table(r: dict[str, Any]) -> None:
    """Print one row per load."""
    print(f"population trainer, {r['models']} x cnn_s on digits, {r['epochs']} epochs, "
          f"{r['cpus']} CPUs (models/s, median; threads used in brackets)")
    print(f"{'load':<10} {'1 thread':>12} {'default':>16} {'per core':>14} "
          f"{'default/1':>10} {'per-core/1':>11}")
    for load, row in r["loads"].items():
        print(f"{load:<10} {row['one']['models_per_s']:>12.1f} "
              f"{row['default']['models_per_s']:>9.1f} {str(row['default']['threads']):>6} "
              f"{row['per-core']['models_per_s']:>14.1f} {row['default_over_one']:>9.2f}x "
              f"{row['per_core_over_one']:>10.2f}x")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--busy", type=int, default=1, help="spinning processes for the load row")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--json", help="also write the results to this JSON file")
    a = p.parse_args(argv)
    return emit(measure(models=a.models, epochs=a.epochs, busy=a.busy, repeats=a.repeats),
                print_table, a.json)


if __name__ == "__main__":
    main()
