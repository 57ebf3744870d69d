"""The population trainer's dense path against the machine's float32 matmul peak.

Run: ``python -m benchmarks.perf.roofline [--models 256 --repeats 3]``

In one fresh process with the thread count ``zoo build`` uses by default
(:func:`modelzoo.threads.resolve_threads`):

1. the sgemm peak: the best GFLOP/s of a sized square float32 matmul (``torch.mm``);
2. one epoch of the population trainer (CNN-s on digits, evaluation at the checkpoint
   included), its matmul FLOPs counted with ``torch.utils.flop_counter.FlopCounterMode`` (what
   the dense path really runs: Toeplitz builds, batched matmuls, their backward), and the
   *useful* FLOPs: the same epoch of one model in the per-model loop (direct convolutions and
   linear layers, counted the same way) times the number of models;
3. achieved GFLOP/s = FLOPs / the best wall time of ``repeats`` timed epochs, as a fraction of
   the peak.

:func:`profile_summary` gives the kernels that dominate an epoch (torch.profiler, self CPU
time), which the report prints where a target is missed.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.perf.common import emit


def sgemm_gflops(*, n: int = 1536, repeats: int = 5) -> float:
    """Best GFLOP/s of an ``n x n`` float32 matmul with the current thread count."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    out = torch.empty(n, n)
    torch.mm(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def counted_flops(fn: Callable[[], Any]) -> int:
    """Matmul/convolution FLOPs that ``fn()`` runs (forward and backward)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def _epoch_runners(models: int, arch: str = "cnn_s", seed: int = 0) -> dict[str, Any]:
    """One-epoch population and single-model loop runs of ``models`` configs (digits)."""
    from modelzoo.builder.groups import arch_kwargs_for as _arch_kwargs
    from modelzoo.builder.recipe import make_recipe
    from modelzoo.sources import load_source
    from modelzoo.training import train_one, train_population

    rec = make_recipe({"name": "roofline", "architecture": arch, "models": models, "epochs": 1,
                       "grid": {"seed": [seed]}, "checkpoint_epochs": [1]})
    data = load_source(rec.source)
    kw = _arch_kwargs(rec, data)
    cfgs = rec.configs()
    common = dict(arch=arch, arch_kwargs=kw, data=data, epochs=1, checkpoint_epochs=[1])
    return {
        "population": lambda: list(train_population(configs=cfgs, **common)),
        "one_model": lambda: list(train_one(cfg=cfgs[0], **common)),
        "train_examples": len(data.y_train),
    }


def dense_epoch(*, models: int = 256, repeats: int = 3, sgemm_n: int = 1536,
                threads: int | None = None, profile: bool = False) -> dict[str, Any]:
    """Peak, counted and useful FLOPs, and achieved GFLOP/s of one population epoch
    (``profile``: also :func:`profile_summary` of one more epoch)."""
    from modelzoo.threads import resolve_threads

    n_threads = resolve_threads(threads)
    torch.set_num_threads(n_threads)
    peak_before = sgemm_gflops(n=sgemm_n)
    run = _epoch_runners(models)
    _epoch_runners(models, seed=1000)["population"]()  # warm-up on the same shapes
    flops = counted_flops(run["population"])
    useful = counted_flops(run["one_model"]) * models
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run["population"]()
        times.append(time.perf_counter() - t0)
    peak = max(peak_before, sgemm_gflops(n=sgemm_n))
    sec = min(times)
    prof = profile_summary(run["population"]) if profile else []
    return {
        "models": models, "threads": n_threads, "sgemm_n": sgemm_n, "sgemm_gflops": peak,
        "epoch_seconds": sec, "epoch_seconds_all": times,
        "counted_gflop": flops / 1e9, "useful_gflop": useful / 1e9,
        "achieved_gflops": flops / sec / 1e9, "useful_gflops": useful / sec / 1e9,
        "achieved_frac_peak": flops / sec / 1e9 / peak,
        "useful_frac_peak": useful / sec / 1e9 / peak,
        "profile": prof, "load_1min": os.getloadavg()[0],
    }  # fmt: skip


def profile_summary(fn: Callable[[], Any], *, top: int = 8) -> list[dict[str, Any]]:
    """The ops with the most self CPU time while ``fn()`` runs (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows) or 1
    return [{"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "calls": e.count,
             "share": e.self_cpu_time_total / total} for e in rows[:top]]


def print_profile(rows: list[dict[str, Any]]) -> None:
    """Print a profile summary table."""
    print(f"  {'op':<40} {'self ms':>9} {'calls':>7} {'share':>6}")
    for r in rows:
        print(f"  {r['op'][:40]:<40} {r['self_ms']:>9.1f} {r['calls']:>7} {r['share']:>6.1%}")


def print_table(r: dict[str, Any]) -> None:
    """Print the dense-path roofline row."""
    print(f"sgemm peak ({r['sgemm_n']}^2 float32, {r['threads']} threads): "
          f"{r['sgemm_gflops']:.1f} GFLOP/s; one population epoch of CNN-s on digits "
          f"(best of {len(r['epoch_seconds_all'])}; load {r['load_1min']:.1f})")
    print(f"{'models':>6} {'epoch s':>8} {'matmul GFLOP':>13} {'GFLOP/s':>8} {'of peak':>8} "
          f"{'useful GFLOP':>13} {'GFLOP/s':>8} {'of peak':>8}")
    print(f"{r['models']:>6} {r['epoch_seconds']:>8.2f} {r['counted_gflop']:>13.1f} "
          f"{r['achieved_gflops']:>8.1f} {r['achieved_frac_peak']:>8.1%} "
          f"{r['useful_gflop']:>13.1f} {r['useful_gflops']:>8.1f} {r['useful_frac_peak']:>8.1%}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry: the roofline row, and with ``--profile`` the top kernels."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default in (("--models", 256), ("--repeats", 3)):
        p.add_argument(flag, type=int, default=default)
    p.add_argument("--profile", action="store_true", help="also print the top kernels")
    p.add_argument("--json", help="also write the results to this JSON file")
    a = p.parse_args(argv)
    r = dense_epoch(models=a.models, repeats=a.repeats, profile=a.profile)
    emit(r, print_table, a.json)
    if a.profile:
        print_profile(r["profile"])
    return r


if __name__ == "__main__":
    main()
