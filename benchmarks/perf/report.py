"""One-command performance report: speed against the machine's limit and at zoo scale.

Run: ``python -m benchmarks.perf.report [--json perf.json] [--quick]``

Every number is measured in this one invocation on this machine (compare ratios, not absolute
numbers, across machines); each measurement runs in a fresh process and records the 1-min
load average. Tables:

1. targets (issue 15), PASS/MISS, with the kernels that dominate (torch.profiler) and what was
   tried where one is missed (:mod:`benchmarks.perf.targets`);
2. the dense path against the sgemm peak: matmul FLOPs counted as run and useful
   convolution FLOPs, as fractions of the peak (:mod:`benchmarks.perf.roofline`);
3. scaling: population vs per-model loop at 64, 256 and 1,024 CNN-s models (the loop timed
   on a subset, per model), peak RSS of each (``--quick``: 8, 16, 32);
4. SANE vs a baseline of the reference implementation's structure, one thread, the issue's
   configuration (:mod:`benchmarks.perf.sane_reference`), with FLOP/s against the peak;
5. Arrow zero-copy load vs a raw file read, and the streaming memory (``paper_estimate``);
6. the default thread count vs one thread (:mod:`benchmarks.perf.threads`);
7. SANE tokens/s and embedding models/s at its default tokenisation;
8. the anchor-scale digits zoos: the first 128 models (8 with ``--quick``) of each card built,
   the full build projected (:mod:`benchmarks.perf.anchor_zoos`);
9. shard verification: first and cached check of the digits-cnn_s-hyp zoo beside one
   ``bench run`` on it (:mod:`benchmarks.perf.verify_cost`).

The output starts with the git commit; ``--json`` keeps it with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.perf import anchor_zoos, population, roofline, sane_reference, targets, verify_cost
from benchmarks.perf import io as io_perf
from benchmarks.perf import threads as threads_perf
from benchmarks.perf.common import isolated


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True, cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _ram_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def paper_estimate(io_rows: list[dict[str, float]]) -> dict[str, float]:
    """Streaming a zoo of 2x RAM: bytes read and the heap it needs, extrapolated linearly
    from the measured anonymous-memory growth per zoo MB (which is near zero)."""
    first, last = io_rows[0], io_rows[-1]
    slope = (last["anon_peak_mb"] - first["anon_peak_mb"]) / max(
        last["zoo_mb"] - first["zoo_mb"], 1e-9)
    zoo_mb = 2 * _ram_bytes() / 2**20
    return {"ram_mb": _ram_bytes() / 2**20, "zoo_mb": zoo_mb,
            "heap_mb_estimate": last["anon_peak_mb"] + max(slope, 0) * (zoo_mb - last["zoo_mb"])}


def sane_scaling(models: list[int], epochs: int) -> list[dict[str, Any]]:
    """SANE throughput on digits CNN-s zoos of the given sizes (empty if SANE is absent)."""
    try:
        from benchmarks.perf import sane_perf
    except ImportError:
        return []
    out = []
    for m in models:
        ns = argparse.Namespace(models=m, epochs=epochs, d_model=64, layers=2, token_size=64,
                                window=64, batch_size=32, device="auto")
        with tempfile.TemporaryDirectory(prefix="perf-sane-") as tmp:
            s = sane_perf.speed(ns, Path(tmp))
        out.append({"models": m, **s})
    return out


def run(*, quick: bool = False) -> dict[str, Any]:
    """Measure everything; return a JSON-able dict."""
    load0 = os.getloadavg()[0]
    sizes = [8, 16, 32] if quick else [64, 256, 1024]
    scaling = [population.measure(models=m, epochs=1 if quick else 2,
                                  loop_models=4 if quick else 16) for m in sizes]
    roof = isolated(roofline.dense_epoch, models=32 if quick else 256,
                    repeats=1 if quick else 3, sgemm_n=512 if quick else 1536, profile=True)
    sane_ref = isolated(sane_reference.compare, models=16 if quick else 64,
                        epochs=2 if quick else 3, repeats=1 if quick else 2, profile=True)
    io_rows = io_perf.measure(rows=100 if quick else 2000, params=2_000 if quick else 20_000)
    sane_rows = sane_scaling([8] if quick else [16, 32, 64], epochs=2 if quick else 3)
    anchor = anchor_zoos.measure(models=8 if quick else 128)
    thread_rows = threads_perf.measure(models=8 if quick else 64, epochs=1 if quick else 2,
                                       repeats=1 if quick else 2,
                                       loads=("as is",) if quick else ("as is", "busy"))
    r = {
        "commit": _git_commit(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "quick": quick,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_1min_start": load0, "load_1min_end": os.getloadavg()[0],
        "scaling": scaling, "dense_roofline": roof, "sane_reference": sane_ref,
        "io": io_rows, "streaming_2x_ram": paper_estimate(io_rows),
        "sane": sane_rows, "anchor_zoos": anchor, "threads_vs_one": thread_rows,
        "verify_cost": verify_cost.measure(quick=quick),
    }  # fmt: skip
    r["targets"] = targets.evaluate(r)
    return r


def print_report(r: dict[str, Any]) -> None:
    """Print the tables."""
    print(f"# perf report  commit {r['commit']}  torch {r['torch']}  {r['cpus']} CPUs  "
          f"GPU {r['cuda']}  load {r['load_1min_start']:.1f} -> {r['load_1min_end']:.1f}"
          f"{'  (--quick: small sizes)' if r['quick'] else ''}")
    print("\n## targets (issue 15; ratios measured in this run)")
    targets.print_table(r["targets"])
    missed = {t["name"] for t in r["targets"] if t["status"] == "MISS"}
    if missed & {"dense_peak", "anchor_1024x25", "pop_vs_loop_256"}:
        print("\ndense path, one epoch: ops with the most self CPU time (torch.profiler)")
        roofline.print_profile(r["dense_roofline"]["profile"])
    if "sane_2x" in missed:
        print("\nSANE training, one epoch: ops with the most self CPU time (torch.profiler)")
        roofline.print_profile(r["sane_reference"]["profile"])
    for name in sorted(missed):
        print(f"tried ({name}): {targets.TRIED[name]}")
    print("\n## dense path vs sgemm peak (FLOPs counted with FlopCounterMode)")
    roofline.print_table(r["dense_roofline"])
    print("\n## scaling: population trainer vs per-model loop (cnn_s on digits, default threads)")
    print(f"{'models':>6} {'epochs':>6} {'pop s':>7} {'pop models/s':>13} {'loop models':>11} "
          f"{'loop models/s':>14} {'speed-up':>9} {'pop RSS MB':>11} {'loop RSS MB':>12} "
          f"{'load':>5}")
    for p in r["scaling"]:
        pop, loop = p["results"]
        print(f"{pop['models']:>6} {pop['epochs']:>6} {pop['seconds']:>7.1f} "
              f"{pop['models_per_s']:>13.2f} {loop['models']:>11} {loop['models_per_s']:>14.2f} "
              f"{p['speedup']:>8.1f}x {pop['peak_rss_mb']:>11.0f} {loop['peak_rss_mb']:>12.0f} "
              f"{pop['load_1min']:>5.1f}")
    big = r["scaling"][-1]["results"][0]
    print(f"anchor scale (estimated, linear from the {big['models']}-model row): 1,024 models x "
          f"25 epochs ~ {big['seconds'] / big['epochs'] * 25 * 1024 / big['models']:.0f} s")
    print("\n## SANE vs a baseline of the reference's structure")
    sane_reference.print_table(r["sane_reference"])
    print("\n## Arrow zero-copy load vs raw file read; streaming memory")
    io_perf.print_table(r["io"])
    e = r["streaming_2x_ram"]
    print(f"on paper: a zoo of 2x RAM ({e['zoo_mb']:,.0f} MB) streams with at most ~"
          f"{e['heap_mb_estimate']:.0f} MB of heap (linear upper bound from the rows above)")
    print("\n## default threads vs one thread (population trainer)")
    threads_perf.print_table(r["threads_vs_one"])
    if r["sane"]:
        print("\n## SANE at its default tokenisation (digits cnn_s zoos)")
        print(f"{'models':>6} {'train tokens/s':>15} {'embed models/s':>15}")
        for s in r["sane"]:
            print(f"{s['models']:>6} {s['train_tokens_per_s']:>15,.0f} "
                  f"{s['embed_models_per_s']:>15.1f}")
    if r.get("anchor_zoos"):
        print("\n## anchor-scale digits zoos (first models built, full build projected)")
        anchor_zoos.print_table(r["anchor_zoos"])
    print("\n## shard verification: first and cached check vs one bench run")
    verify_cost.print_table(r["verify_cost"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write the results here too")
    p.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    a = p.parse_args(argv)
    r = run(quick=a.quick)
    print_report(r)
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    return r


if __name__ == "__main__":
    main()
