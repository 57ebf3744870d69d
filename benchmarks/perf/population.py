"""Population trainer vs per-model loop: models trained per second and peak memory.

Run: ``python -m benchmarks.perf.population [--models 64 --epochs 2 --arch cnn_s]``

Both trainers run the same recipe (digits, one seed per model) with the thread count ``zoo
build`` uses by default (:func:`modelzoo.threads.auto_threads`) in fresh subprocesses, one after
the other in one invocation, so the printed ratio compares like with like on this machine. Each
is first warmed up for one epoch on the shapes it is then timed on (other seeds: the loop on one
model, the population on as many models), so one-time costs are not timed. Both include
evaluation at the checkpoint epoch. The population trainer tunes glibc's allocator in its
process (``modelzoo/training/allocator.py``); the loop runs at the same speed with or without.
``--loop-models N`` times the loop on only N of the models (per-model rates stay comparable).
Targets: population >= 10x the loop's models/s for 64 CNN-s models on digits (issue 2), >= 15x
at 256 models (issue 15, checked by ``python -m benchmarks.perf.report``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from typing import Any

import torch

from benchmarks.perf.common import isolated


def _run(trainer: str, arch: str, models: int, epochs: int, device: str,
         threads: int | None = None) -> dict[str, Any]:
    """Time one trainer in this process with ``threads`` (None: the shipped default)."""
    from modelzoo.threads import resolve_threads

    n = resolve_threads(threads)
    torch.set_num_threads(n)
    return {**_timed(trainer, arch, models, epochs, device), "threads": n}


def _timed(trainer: str, arch: str, models: int, epochs: int, device: str) -> dict[str, Any]:
    from modelzoo.builder.groups import arch_kwargs_for as _arch_kwargs
    from modelzoo.builder.recipe import make_recipe
    from modelzoo.sources import load_source
    from modelzoo.training import train_one, train_population

    rec = make_recipe({"name": "perf", "architecture": arch, "models": models, "epochs": epochs,
                       "checkpoint_epochs": [epochs]})
    data = load_source(rec.source)
    kw = _arch_kwargs(rec, data)
    cfgs = rec.configs()
    # one-time costs (torch.func's first trace, kernel selection, lazy imports, the allocator
    # growing to its working set) are paid once per build, not per model: warm each trainer up
    # for one epoch on the same shapes it is timed on, with other seeds
    warm_cfgs = make_recipe({"name": "warm", "architecture": arch, "models": models,
                             "epochs": 1, "grid": {"seed": [1000]},
                             "checkpoint_epochs": [1]}).configs()
    warm = dict(arch=arch, arch_kwargs=kw, data=data, epochs=1, checkpoint_epochs=[1],
                device=device)
    if trainer == "population":
        list(train_population(configs=warm_cfgs, **warm))
    else:
        list(train_one(cfg=warm_cfgs[0], **warm))
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    if trainer == "population":
        ck = list(train_population(arch=arch, arch_kwargs=kw, configs=cfgs, data=data,
                                   epochs=epochs, checkpoint_epochs=[epochs], device=device))
        acc = ck[-1].metrics["test_acc"].mean().item()
    else:
        accs = []
        for cfg in cfgs:
            ck = list(train_one(arch=arch, arch_kwargs=kw, cfg=cfg, data=data, epochs=epochs,
                                checkpoint_epochs=[epochs], device=device))
            accs.append(ck[-1].metrics["test_acc"].item())
        acc = sum(accs) / len(accs)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    return {"trainer": trainer, "models": models, "epochs": epochs, "seconds": seconds,
            "models_per_s": models / seconds, "peak_rss_mb": peak_rss_mb,
            "peak_gpu_mb": gpu_mb, "mean_test_acc": acc, "load_1min": os.getloadavg()[0]}


def measure(*, arch: str = "cnn_s", models: int = 64, epochs: int = 2, device: str = "cpu",
            loop_models: int | None = None) -> dict[str, Any]:
    """Time both trainers in fresh processes and return the numbers and the speed-up ratio.

    ``loop_models`` times the per-model loop on only that many of the models (its models/s is
    per model, so the ratio stays like with like; the loop's time grows linearly).
    """
    n_loop = models if loop_models is None else min(loop_models, models)
    rows = [isolated(_run, "population", arch, models, epochs, device),
            isolated(_run, "loop", arch, n_loop, epochs, device)]
    pop, loop = rows
    return {
        "benchmark": "population_vs_loop",
        "arch": arch, "source": "digits", "device": device,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "results": rows,
        "speedup": pop["models_per_s"] / loop["models_per_s"],
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry: print a table and the ratio; optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="cnn_s")
    p.add_argument("--models", type=int, default=64)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--loop-models", type=int, help="time the loop on this many models only")
    p.add_argument("--json", help="also write the results to this JSON file")
    a = p.parse_args(argv)
    res = measure(arch=a.arch, models=a.models, epochs=a.epochs, device=a.device,
                  loop_models=a.loop_models)
    print(f"{a.models} x {a.arch} on digits, {a.epochs} epochs, {a.device}")
    print(f"{'trainer':<11} {'seconds':>8} {'models/s':>9} {'peak RSS MB':>12} "
          f"{'peak GPU MB':>12} {'test acc':>9}")
    for r in res["results"]:
        print(f"{r['trainer']:<11} {r['seconds']:>8.2f} {r['models_per_s']:>9.2f} "
              f"{r['peak_rss_mb']:>12.0f} {r['peak_gpu_mb']:>12.0f} {r['mean_test_acc']:>9.3f}")
    print(f"speed-up (population / loop): {res['speedup']:.1f}x  (target >= 15x at 256)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
