"""One-command performance report: speed against the machine's limit and at zoo scale.

Run: ``python -m benchmarks.perf.report [--json perf.json] [--quick] [--out docs/perf.md]
[--heads-zoo zoos/digits-cnn_s-hyp] [--reproduction repro/]``

Every number is measured in this one invocation on this machine (compare ratios, not absolute
numbers, across machines); each measurement runs in a fresh process and records the 1-min
load average (``--quick``, a smoke run at small sizes, runs them all in one worker process:
one interpreter start instead of about fifteen, peak RSS not isolated). Tables:

1. targets (issue 15), PASS/MISS, with the kernels that dominate (torch.profiler) and what was
   tried where one is missed (:mod:`benchmarks.perf.targets`);
2. the dense path against the sgemm peak: matmul FLOPs counted as run and useful
   convolution FLOPs, as fractions of the peak (:mod:`benchmarks.perf.roofline`);
3. scaling: population vs per-model loop at 64, 256 and 1,024 CNN-s models (the loop timed
   on a subset, per model), peak RSS of each (``--quick``: 8);
4. SANE vs a baseline of the reference implementation's structure, one thread, the issue's
   configuration (:mod:`benchmarks.perf.sane_reference`), with FLOP/s against the peak;
5. Arrow zero-copy load vs a raw file read, and the streaming memory (``paper_estimate``);
6. the default thread count vs one thread (:mod:`benchmarks.perf.threads`; ``--quick``:
   under one busy process only);
7. SANE tokens/s and embedding models/s at its default tokenisation;
8. the anchor-scale digits zoos: the first 128 models (1 with ``--quick``) of each card built,
   the full build projected (:mod:`benchmarks.perf.anchor_zoos`);
9. ``flat-linear`` vs ``weight-stats-linear`` on the same rows (:mod:`benchmarks.perf.heads`):
   the hyperparameter zoo given as ``--heads-zoo`` (default ``zoos/digits-cnn_s-hyp`` if it
   exists, else built from its card); ``--quick``: an 8-model digits zoo;
10. the step times of a ``bench reproduce`` run (``--reproduction OUT``, its
   ``timings.json``; :mod:`benchmarks.perf.reproduction`), against the 12-minute budget of
   the steps other than SANE training;
11. shard verification: first and cached check of the digits-cnn_s-hyp zoo beside one
   ``bench run`` on it (:mod:`benchmarks.perf.verify_cost`).

The output starts with the git commit; ``--json`` keeps it with the numbers; ``--out FILE``
writes it as a generated Markdown report (command, commit, machine and load on top,
:mod:`benchmarks.provenance`), e.g. ``docs/perf.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.perf import (
    anchor_zoos,
    population,
    reproduction,
    roofline,
    sane_reference,
    targets,
    verify_cost,
)
from benchmarks.perf import heads as heads_perf
from benchmarks.perf import io as io_perf
from benchmarks.perf import threads as threads_perf
from benchmarks.perf.common import isolated, shared_worker
from benchmarks.provenance import cpu_seconds, header
from modelzoo.storage.atomic import atomic_write_bytes

ROOT = Path(__file__).resolve().parents[2]
#: ``--quick``: population sizes of the scaling table, and models of the loop timed there.
QUICK_SIZES, QUICK_LOOP = [8], 2
#: Where the README's commands build the hyperparameter zoo (the heads table's default).
HYP_ZOO = ROOT / "zoos" / "digits-cnn_s-hyp"


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


def heads_table(zoo: str | Path | None, quick: bool) -> dict[str, Any]:
    """:func:`benchmarks.perf.heads.measure` on ``zoo``; without one, on the hyperparameter
    zoo where the README builds it, else built from its card (quick: an 8-model zoo)."""
    from modelzoo.builder import build_zoo

    if zoo is None and not quick and (HYP_ZOO / "zoo.json").exists():
        zoo = HYP_ZOO
    if zoo is not None:
        return {**heads_perf.measure(zoo=zoo, suite="digits-v2", seeds=1), "built": False}
    with tempfile.TemporaryDirectory(prefix="perf-heads-") as tmp:
        out = Path(tmp) / "zoo"
        if quick:
            build_zoo(out=out, arch="cnn_s", source="digits", models=8, epochs=2,
                      name="digits-cnn_s", progress=False)
            r = heads_perf.measure(zoo=out, suite="digits-properties-v1", seeds=1)
        else:
            build_zoo(recipe=ROOT / "cards" / "digits-cnn_s-hyp.yaml", out=out, progress=False)
            r = heads_perf.measure(zoo=out, suite="digits-v2", seeds=1)
    return {**r, "built": True}


def run(*, quick: bool = False, heads_zoo: str | Path | None = None,
        reproduction_dir: str | Path | None = None) -> dict[str, Any]:
    """Measure everything; return a JSON-able dict."""
    load0 = os.getloadavg()[0]
    seconds: dict[str, float] = {}  # wall seconds of each table's measurement

    def timed(name: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        seconds[name] = round(time.perf_counter() - t0, 1)
        return out

    with shared_worker() if quick else contextlib.nullcontext():  # quick: one worker
        r = _measure(quick, timed, heads_zoo)
    repro = reproduction.read(reproduction_dir) if reproduction_dir is not None else None
    r.update({
        "commit": _git_commit(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.machine(), "cpus": os.cpu_count(), "quick": quick,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_1min_start": load0, "load_1min_end": os.getloadavg()[0],
        "streaming_2x_ram": paper_estimate(r["io"]), "reproduction": repro,
        "seconds": seconds,
    })  # fmt: skip
    r["targets"] = targets.evaluate(r)
    return r


def _measure(quick: bool, timed: Any, heads_zoo: str | Path | None) -> dict[str, Any]:
    """Every table's measurement (see :func:`run`)."""
    sizes = QUICK_SIZES if quick else [64, 256, 1024]
    scaling = timed("scaling", lambda: [
        population.measure(models=m, epochs=1 if quick else 2,
                           loop_models=QUICK_LOOP if quick else 16) for m in sizes])
    roof = timed("dense_roofline", isolated, roofline.dense_epoch, models=16 if quick else 256,
                 repeats=1 if quick else 3, sgemm_n=256 if quick else 1536, profile=True)
    sane_ref = timed("sane_reference", isolated, sane_reference.compare,
                     models=16 if quick else 64, epochs=2 if quick else 3,
                     repeats=1 if quick else 2, profile=True, bf16=not quick)
    io_rows = timed("io", io_perf.measure, rows=100 if quick else 2000,
                    params=2_000 if quick else 20_000, scales=(1, 2) if quick else (1, 2, 4),
                    repeat=1 if quick else 3)
    sane_rows = timed("sane", sane_scaling, [8] if quick else [16, 32, 64],
                      epochs=2 if quick else 3)
    anchor = timed("anchor_zoos", anchor_zoos.measure, models=1 if quick else 128)
    thread_rows = timed("threads_vs_one", threads_perf.measure, models=4 if quick else 64,
                        epochs=1 if quick else 2, repeats=1 if quick else 2,
                        loads=("busy",) if quick else ("as is", "busy"))
    heads_r = timed("heads", heads_table, heads_zoo, quick)
    verify_r = timed("verify_cost", verify_cost.measure, quick=quick)
    return {"scaling": scaling, "dense_roofline": roof, "sane_reference": sane_ref,
            "io": io_rows, "sane": sane_rows, "anchor_zoos": anchor,
            "threads_vs_one": thread_rows, "heads": heads_r, "verify_cost": verify_r}


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
    print("\n## linear heads: flat-linear vs weight-stats-linear on the same rows")
    heads_perf.print_table(r["heads"])
    print("\n## bench reproduce: step times")
    if r.get("reproduction"):
        reproduction.print_table(r["reproduction"])
    else:
        print("no reproduction given: run `bench reproduce digits-v2 --out DIR`, then pass "
              "--reproduction DIR")
    print("\n## shard verification: first and cached check vs one bench run")
    verify_cost.print_table(r["verify_cost"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write the results here too")
    p.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    p.add_argument("--out", help="also write the report as generated Markdown (docs/perf.md)")
    p.add_argument("--heads-zoo", help="zoo of the linear-heads table (default: "
                   "zoos/digits-cnn_s-hyp, else built from its card)")
    p.add_argument("--reproduction", help="a bench reproduce working folder: its step times")
    a = p.parse_args(argv)
    command = " ".join(["python -m benchmarks.perf.report",
                        *map(shlex.quote, sys.argv[1:] if argv is None else argv)])
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    r = run(quick=a.quick, heads_zoo=a.heads_zoo, reproduction_dir=a.reproduction)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        print_report(r)
    print(buf.getvalue(), end="")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))
    if a.out:
        head = header(title="Performance report" + (" (--quick: small sizes)" if a.quick
                                                    else ""),
                      command=command, threads="each table runs in fresh processes with the "
                      "threads its title names (default: the idle CPUs)",
                      load_start=r["load_1min_start"], load_end=r["load_1min_end"],
                      wall_s=time.perf_counter() - wall0, cpu_s=cpu_seconds() - cpu0)
        text = head + "\nThe tables as printed (fixed-width):\n\n```text\n" + buf.getvalue() \
            + "```\n"
        out = Path(a.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, text.encode())
    return r


if __name__ == "__main__":
    main()
