"""Memory and speed of ``zoo import ctc`` against the size of ``weights.npy``.

Run: ``python -m benchmarks.perf.import_ctc [--sizes-mb 125 250 500 1000] [--json out.json]``

For each size a synthetic CTC zoo folder is written (random float32 ``weights.npy`` rows of
4,970 values in the TensorFlow layout, ``metrics.csv.gz`` with one line per row, 9 steps per
``modeldir``, and ``layout.csv``), streamed to disk so the generator holds one chunk at a
time. Each import then runs in a fresh spawned process with one torch thread, which reports:

* ``rows/s`` and ``MB/s`` over the whole import (hashing the origin files included);
* ``peak RSS``: the process's high-water mark (``VmHWM``: heap plus resident mapped pages);
* ``peak - base``: the peak above the RSS after the imports the process needs (torch,
  datasets...), i.e. what the import itself holds at most.

The importer maps ``weights.npy`` and releases its pages after each group of rows, and keeps
only compact per-row metadata (about 24 bytes a row), so ``peak - base`` should stay flat as
the file grows. This is a benchmark, not a test: its numbers depend on the machine and load.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.perf.common import emit, isolated

P = 4970
STEPS = (0, 1, 2, 3, 20, 40, 60, 80, 86)
LAYOUT = (("conv2d", (3, 3, 1, 16)), ("conv2d_1", (3, 3, 16, 16)), ("conv2d_2", (3, 3, 16, 16)),
          ("dense", (16, 10)))


def write_synthetic_ctc(root: Path, rows: int, chunk: int = 4096) -> int:
    """Write a CTC zoo folder of ``rows`` checkpoints (streamed); return ``weights.npy`` bytes."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    with open(root / "weights.npy", "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (rows, P)})
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            f.write(rng.standard_normal((n, P), dtype=np.float32).tobytes())
    with gzip.open(root / "metrics.csv.gz", "wt", newline="", compresslevel=1) as f:
        w = csv.writer(f)
        w.writerow(["modeldir", "step", "test_accuracy", "test_loss", "train_accuracy",
                    "train_loss", "config.activation", "config.dropout", "config.init_std",
                    "config.l2reg", "config.learning_rate", "config.optimizer",
                    "config.random_seed", "config.train_fraction", "config.w_init"])
        for i in range(rows):
            m, s = divmod(i, len(STEPS))
            w.writerow([f"/ctc/synthetic/{m}", STEPS[s], 0.5, 1.2, 0.55, 1.1, "relu", 0.1, 0.05,
                        1e-4, 1e-3, "adam", m, 1.0, "he_normal"])
    with open(root / "layout.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["varname", "start_idx", "end_idx", "shape"])
        start = 0
        for name, shape in LAYOUT:
            bias = shape[-1]
            w.writerow([f"sequential/{name}/bias:0", start, start + bias, str((bias,))])
            start += bias
            k = int(np.prod(shape))
            w.writerow([f"sequential/{name}/kernel:0", start, start + k, str(shape)])
            start += k
    return (root / "weights.npy").stat().st_size


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _import_cell(src: str, out: str) -> dict[str, Any]:
    """In a fresh process: import the zoo at ``src`` into ``out``; time and memory."""
    import torch

    torch.set_num_threads(1)
    import modelzoo.importers  # noqa: F401  (the imports the command needs, before the base)
    from modelzoo.importers import import_zoo
    from modelzoo.storage import writer  # noqa: F401

    base = _status_kb("VmRSS")
    t0 = time.perf_counter()
    m = import_zoo(format="ctc", path=src, out=out)
    wall = time.perf_counter() - t0
    return {"rows": m.num_rows, "models": m.num_models, "wall_s": wall,
            "base_rss_mb": base / 1024, "peak_rss_mb": _status_kb("VmHWM") / 1024}


def run(sizes_mb: list[int], workdir: Path | None = None) -> dict[str, Any]:
    """Import a synthetic CTC zoo of each size; one row of numbers per size."""
    tmp = Path(tempfile.mkdtemp(prefix="import_ctc-", dir=workdir))
    cells = []
    try:
        for mb in sizes_mb:
            rows = max(len(STEPS), int(mb * 2**20 // (P * 4)) // len(STEPS) * len(STEPS))
            src, out = tmp / f"ctc-{mb}" / "cifar10", tmp / f"zoo-{mb}"
            nbytes = write_synthetic_ctc(src, rows)
            r = isolated(_import_cell, str(src), str(out))
            r |= {"weights_mb": nbytes / 2**20, "rows_per_s": r["rows"] / r["wall_s"],
                  "mb_per_s": nbytes / 2**20 / r["wall_s"],
                  "peak_above_base_mb": r["peak_rss_mb"] - r["base_rss_mb"]}
            cells.append(r)
            shutil.rmtree(src.parent)
            shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"load_average": os.getloadavg(), "cpus": os.cpu_count(), "cells": cells}


def print_table(result: dict[str, Any]) -> None:
    """The table ``run`` measured."""
    print("## zoo import ctc: memory and speed vs weights.npy size "
          f"(load average {result['load_average'][0]:.1f}, 1 torch thread)")
    print(f"{'weights.npy':>12} {'rows':>8} {'wall s':>8} {'rows/s':>8} {'MB/s':>7} "
          f"{'base RSS':>9} {'peak RSS':>9} {'peak-base':>10}")
    for c in result["cells"]:
        print(f"{c['weights_mb']:>9.0f} MB {c['rows']:>8} {c['wall_s']:>8.1f} "
              f"{c['rows_per_s']:>8.0f} {c['mb_per_s']:>7.1f} {c['base_rss_mb']:>6.0f} MB "
              f"{c['peak_rss_mb']:>6.0f} MB {c['peak_above_base_mb']:>7.0f} MB")


def main() -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes-mb", type=int, nargs="+", default=[125, 250, 500, 1000])
    ap.add_argument("--workdir", type=Path, help="Where the synthetic folders go (default tmp).")
    ap.add_argument("--json", help="Also write the numbers to this JSON file.")
    args = ap.parse_args()
    emit(run(args.sizes_mb, args.workdir), print_table, args.json)


if __name__ == "__main__":
    main()
