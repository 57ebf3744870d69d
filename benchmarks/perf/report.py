"""One-command performance report: how the toolkit's hot paths scale with zoo size.

Run: ``python -m benchmarks.perf.report [--json perf.json] [--quick]``

Prints one table per measurement, each at 1x, 2x and 4x zoo size, all measured in this one
invocation on this machine (compare ratios, not absolute numbers, across machines):

1. population trainer vs per-model loop (models/s and the speed-up ratio; target >= 10x at 64
   CNN-s models on digits);
2. Arrow zero-copy load GB/s vs a raw file read, and the peak anonymous memory of streaming the
   zoo chunk by chunk (flat as the zoo grows, so zoos larger than RAM are read window by
   window; see ``paper_estimate`` for a zoo of twice this machine's RAM);
3. SANE training tokens/s and embedding models/s;
4. the anchor-scale digits zoos: the first 128 models (32 with ``--quick``) of each card built,
   and the full build time projected from them (:mod:`benchmarks.perf.anchor_zoos`).
5. the default thread count vs one thread, on the machine as it is and with a busy process
   (``benchmarks.perf.threads``; target: the default never slower than one thread).

The JSON output carries the git commit, so results can be compared across commits.
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

from benchmarks.perf import anchor_zoos, population
from benchmarks.perf import io as io_perf
from benchmarks.perf import threads as threads_perf


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
    base = 8 if quick else 16
    sizes = [base, 2 * base, 4 * base]
    pop = [population.measure(models=m, epochs=1 if quick else 2) for m in sizes]
    io_rows = io_perf.measure(rows=250 if quick else 2000, params=20_000)
    sane_rows = sane_scaling(sizes, epochs=3)
    anchor = anchor_zoos.measure(models=32 if quick else 128)
    thread_rows = threads_perf.measure(models=4 * base, epochs=1 if quick else 2,
                                       repeats=1 if quick else 2)
    return {
        "commit": _git_commit(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "population_vs_loop": pop, "io": io_rows, "streaming_2x_ram": paper_estimate(io_rows),
        "sane": sane_rows, "anchor_zoos": anchor, "threads_vs_one": thread_rows,
    }  # fmt: skip


def print_report(r: dict[str, Any]) -> None:
    """Print the tables."""
    print(f"# perf report  commit {str(r['commit'])[:10]}  torch {r['torch']}  "
          f"{r['cpus']} CPUs  {r['threads']} threads  GPU {r['cuda']}")
    print("\n## population trainer vs per-model loop (cnn_s on digits)")
    print(f"{'models':>6} {'pop models/s':>13} {'loop models/s':>14} {'speed-up':>9} "
          f"{'pop peak RSS MB':>16}")
    for p in r["population_vs_loop"]:
        pop, loop = p["results"]
        print(f"{pop['models']:>6} {pop['models_per_s']:>13.2f} {loop['models_per_s']:>14.2f} "
              f"{p['speedup']:>8.1f}x {pop['peak_rss_mb']:>16.0f}")
    print("\n## Arrow zero-copy load vs raw file read; streaming memory")
    io_perf.print_table(r["io"])
    e = r["streaming_2x_ram"]
    print(f"on paper: a zoo of 2x RAM ({e['zoo_mb']:,.0f} MB) streams with at most ~"
          f"{e['heap_mb_estimate']:.0f} MB of heap (linear upper bound from the rows above)")
    print("\n## default threads vs one thread (population trainer)")
    threads_perf.print_table(r["threads_vs_one"])
    if r["sane"]:
        print("\n## SANE (digits cnn_s zoos)")
        print(f"{'models':>6} {'train tokens/s':>15} {'embed models/s':>15}")
        for s in r["sane"]:
            print(f"{s['models']:>6} {s['train_tokens_per_s']:>15,.0f} "
                  f"{s['embed_models_per_s']:>15.1f}")
    if r.get("anchor_zoos"):
        print("\n## anchor-scale digits zoos (first models built, full build projected)")
        anchor_zoos.print_table(r["anchor_zoos"])


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
