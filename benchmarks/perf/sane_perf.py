"""SANE speed and memory: training tokens/s, embedding models/s, peak memory for N vs 2N models.

Run ``python -m benchmarks.perf.sane_perf`` (``--help`` for sizes). It builds digits zoos with
``modelzoo.build_zoo`` in a temporary directory, then:

1. trains SANE on a CNN-s zoo and reports training throughput (weight tokens per second,
   counting both augmented views) and embedding throughput (model checkpoints per second);
2. trains + embeds, each in a fresh process, on an MLP zoo of N and of 2N models and reports
   the peak anonymous (heap) memory and the peak total RSS. The zoo is streamed from its
   memory-mapped Arrow shards, so heap memory stays flat as the zoo doubles; total RSS also
   counts the shard pages the kernel maps in while reading (page cache, reclaimable).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


class _PeakAnon:
    """Samples RssAnon every 20 ms in a thread and keeps the peak (Linux)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _status_kb("RssAnon"))
            time.sleep(0.02)

    def __enter__(self) -> _PeakAnon:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _status_kb("RssAnon"))


def _build(out: Path, *, arch: str, models: int, epochs: int, arch_kwargs: dict | None = None,
           max_train: int | None = None) -> Path:
    from modelzoo.builder import build_zoo
    from modelzoo.builder.recipe import make_recipe

    recipe = make_recipe({
        "name": out.name, "architecture": arch, "arch_kwargs": arch_kwargs or {},
        "source": "digits", "models": models, "epochs": epochs, "max_train": max_train,
        "grid": {"activation": ["relu", "tanh"], "lr": [1e-3, 3e-3]},
    })  # fmt: skip
    build_zoo(out=out, recipe=recipe)
    return out


def _sane_config(args: argparse.Namespace, epochs: int) -> Any:
    from sane import SaneConfig

    return SaneConfig(d_model=args.d_model, n_heads=4, n_layers=args.layers, latent_dim=16,
                      token_size=args.token_size, window_size=args.window, epochs=epochs,
                      batch_size=args.batch_size, device=args.device)


def speed(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Training tokens/s and embedding models/s on a CNN-s digits zoo."""
    from sane import embed, train
    from sane.data import ZooRows

    zoo = _build(work / "speed-zoo", arch="cnn_s", models=args.models, epochs=3)
    cfg = _sane_config(args, args.epochs)
    n_rows = len(ZooRows(zoo, "train"))
    marks: list[float] = []

    def cb(event: str, info: dict) -> None:
        if event == "step" and not marks:
            marks.append(time.perf_counter())  # after the first step (warm-up excluded)

    t0 = time.perf_counter()
    train(zoo=zoo, out=work / "speed-run", config=cfg, progress=False, callback=cb,
          threads=torch.get_num_threads())  # the threads this benchmark runs with
    t1 = time.perf_counter()
    steps_per_epoch = -(-n_rows // cfg.batch_size)
    windows = n_rows * cfg.epochs - min(cfg.batch_size, n_rows)  # minus the warm-up step
    tokens = windows * cfg.window_size * 2  # two views per window
    t2 = time.perf_counter()
    ds = embed(run=work / "speed-run", zoo=zoo, out=work / "speed-emb", progress=False,
               device=args.device)
    t3 = time.perf_counter()
    return {
        "zoo_rows_train": n_rows,
        "steps": steps_per_epoch * cfg.epochs,
        "train_seconds_total": t1 - t0,
        "train_tokens_per_s": tokens / (t1 - marks[0]),
        "train_models_per_s": windows / (t1 - marks[0]),
        "embed_rows": len(ds),
        "embed_models_per_s": len(ds) / (t3 - t2),
    }


def _child(zoo: str, run: str, args: argparse.Namespace) -> None:
    """One process: train one epoch and embed; print peak memory as JSON."""
    from sane import embed, train

    with _PeakAnon() as peak:
        train(zoo=zoo, out=run, config=_sane_config(args, 1), progress=False,
              threads=torch.get_num_threads())
        embed(run=run, zoo=zoo, out=Path(run) / "emb", progress=False, device=args.device)
    print(json.dumps({"peak_anon_mb": peak.peak / 1024, "peak_rss_mb": _status_kb("VmHWM") / 1024}))


def memory(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Peak memory of train + embed on MLP zoos of N and 2N models (fresh process each)."""
    from modelzoo.storage import read_manifest

    hidden = [args.rss_hidden, args.rss_hidden]
    out = []
    for n in (args.rss_models, 2 * args.rss_models):
        zoo = _build(work / f"mem-zoo-{n}", arch="mlp", models=n, epochs=1,
                     arch_kwargs={"hidden": hidden}, max_train=256)
        m = read_manifest(zoo)
        shard_mb = sum((zoo / f.path).stat().st_size for f in m.files) / 2**20
        cmd = [sys.executable, "-m", "benchmarks.perf.sane_perf", "--child", str(zoo),
               str(work / f"mem-run-{n}"), *_passthrough(args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                              cwd=Path(__file__).resolve().parents[2])
        if proc.returncode:
            raise SystemExit(proc.stderr[-3000:])
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        out.append({"models": n, "rows": m.num_rows, "params": m.architectures["mlp"].n_params,
                    "shards_mb": shard_mb, **res})
    return out


def _passthrough(args: argparse.Namespace) -> list[str]:
    return ["--d-model", str(args.d_model), "--layers", str(args.layers), "--token-size",
            str(args.token_size), "--window", str(args.window), "--batch-size",
            str(args.batch_size), "--device", args.device]


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", type=int, default=32, help="models in the speed zoo (cnn_s)")
    p.add_argument("--epochs", type=int, default=5, help="SANE epochs for the speed test")
    p.add_argument("--rss-models", type=int, default=64, help="N for the N vs 2N memory test")
    p.add_argument("--rss-hidden", type=int, default=256, help="MLP width of the memory zoos")
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--token-size", type=int, default=64)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-memory", action="store_true", help="only the speed test")
    p.add_argument("--child", nargs=2, metavar=("ZOO", "RUN"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], args)
        return
    from sane.config import resolve_device

    dev = resolve_device(args.device)
    print(f"# SANE perf: torch {torch.__version__}, device {dev}, {torch.get_num_threads()} "
          f"threads, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="sane-perf-") as tmp:
        work = Path(tmp)
        s = speed(args, work)
        print(f"training : {s['train_tokens_per_s']:,.0f} tokens/s "
              f"({s['train_models_per_s']:.1f} model windows/s; {s['zoo_rows_train']} train rows, "
              f"{s['steps']} steps, {s['train_seconds_total']:.1f} s incl. setup)")
        print(f"embedding: {s['embed_models_per_s']:.1f} models/s ({s['embed_rows']} checkpoints)")
        if not args.skip_memory:
            rows = memory(args, work)
            print("memory (train 1 epoch + embed, fresh process each):")
            print(f"  {'models':>6} {'rows':>5} {'params':>8} {'shards MB':>9} "
                  f"{'peak heap MB':>12} {'peak RSS MB':>11}")
            for r in rows:
                print(f"  {r['models']:>6} {r['rows']:>5} {r['params']:>8} {r['shards_mb']:>9.1f} "
                      f"{r['peak_anon_mb']:>12.1f} {r['peak_rss_mb']:>11.1f}")
            a, b = rows
            print(f"  2N/N: shards x{b['shards_mb'] / a['shards_mb']:.2f}, peak heap "
                  f"x{b['peak_anon_mb'] / a['peak_anon_mb']:.2f}, peak RSS "
                  f"x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f} (RSS includes mapped shard pages)")


if __name__ == "__main__":
    main()
