"""Arrow zero-copy load throughput vs a raw file read, and streaming memory of zoo reads.

Run: ``python -m benchmarks.perf.io [--rows 2000 --params 20000]``

A synthetic homogeneous zoo shard (random float32 weights in the zoo schema, written by the
toolkit's own ``ZooWriter``) is read three ways, warm page cache, each touching every value:

* ``raw read``: ``open().readinto`` of the whole shard file into one buffer (the floor);
* ``arrow zero-copy``: ``load_zoo`` + ``iter_weight_batches`` (memory-mapped, no copy) + sum;
* ``datasets rows``: ``Dataset.with_format("torch")`` batches (the convenient copying path).

Streaming memory: a child process sums the zoo chunk by chunk and reports its peak anonymous
memory (``RssAnon``: heap, not the reclaimable file pages of the mapping) for 1x, 2x and 4x
the zoo size. Flat anonymous memory is what lets a zoo larger than RAM be read window by window.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.perf.common import emit
from modelzoo.storage import iter_weight_batches, load_zoo, zoo_schema
from modelzoo.storage.manifest import ArchitectureEntry, SourceEntry
from modelzoo.storage.writer import ZooWriter


def write_synthetic_zoo(root: Path, *, rows: int, params: int, rows_per_group: int = 500) -> int:
    """Write a zoo of ``rows`` checkpoints with ``params`` random weights; return its bytes."""
    rng = np.random.default_rng(0)
    schema = zoo_schema(params)
    w = ZooWriter(root, schema)
    for g, start in enumerate(range(0, rows, rows_per_group)):
        n = min(rows_per_group, rows - start)
        ids = [f"m{start + i:07d}" for i in range(n)]
        cols: dict[str, Any] = {f.name: [None] * n for f in schema if f.name != "weights"}
        cols.update(model_id=ids, architecture=["synthetic"] * n, source=["none"] * n,
                    epoch=[0] * n, status=["ok"] * n, split=["train"] * n, n_params=[params] * n)
        flat = rng.standard_normal(n * params, dtype=np.float32)
        cols["weights"] = pa.FixedSizeListArray.from_arrays(pa.array(flat), params)
        w.write_group(g, pa.table(cols, schema=schema))
    w.finalize(
        name="synthetic", version="1.0.0", recipe={}, toolkit_version="perf",
        architectures={"synthetic": ArchitectureEntry(name="mlp", n_params=params, layout=[])},
        sources={"none": SourceEntry(name="none", fingerprint="-", num_classes=0, in_shape=())},
    )  # fmt: skip
    return sum(p.stat().st_size for p in root.rglob("*.arrow"))


def _best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def load_throughput(root: Path) -> dict[str, float]:
    """GB/s of a raw file read vs the zero-copy Arrow path vs datasets' torch formatting."""
    files = sorted((root / "train").glob("data-*.arrow"))
    nbytes = sum(p.stat().st_size for p in files)
    buf = bytearray(max(p.stat().st_size for p in files))

    def raw() -> None:
        for p in files:
            with open(p, "rb", buffering=0) as f:
                n = f.readinto(buf)
            np.frombuffer(buf, dtype=np.uint8, count=n).sum(dtype=np.uint64)

    def arrow() -> None:
        ds = load_zoo(root, split="train", verify=False)  # reading, not hashing
        for t in iter_weight_batches(ds):
            t.sum()

    def rows() -> None:
        ds = load_zoo(root, split="train", verify=False).with_format("torch", columns=["weights"])
        for b in ds.iter(batch_size=256):
            b["weights"].sum()

    raw()  # warm the page cache
    out = {"bytes": float(nbytes)}
    for name, fn in (("raw_read", raw), ("arrow_zero_copy", arrow), ("datasets_torch", rows)):
        out[f"{name}_gb_s"] = nbytes / _best_of(fn) / 1e9
    return out


_CHILD = """
import sys, resource
from pathlib import Path
from modelzoo.storage import iter_weight_batches, load_zoo
def anon():
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('RssAnon:'):
            return int(line.split()[1])
base = anon(); peak = base
total = 0.0
for t in iter_weight_batches(load_zoo(sys.argv[1], split="train", verify=False)):
    total += float(t.sum()); peak = max(peak, anon())
print(base, peak, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def streaming_memory(root: Path) -> dict[str, float]:
    """Peak anonymous memory (MB) of a fresh process that streams the whole zoo."""
    res = subprocess.run([sys.executable, "-c", _CHILD, str(root)], capture_output=True,
                         text=True, check=True)
    base, peak, maxrss = (int(x) for x in res.stdout.split())
    return {"anon_base_mb": base / 1024, "anon_peak_mb": peak / 1024,
            "anon_growth_mb": (peak - base) / 1024, "peak_rss_mb": maxrss / 1024}


def measure(*, rows: int = 2000, params: int = 20_000, scales: tuple[int, ...] = (1, 2, 4),
            work: Path | None = None) -> list[dict[str, float]]:
    """Throughput and streaming memory for zoos of ``rows * s`` checkpoints, ``s`` in scales."""
    out = []
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        for s in scales:
            root = Path(tmp) / f"zoo{s}"
            nbytes = write_synthetic_zoo(root, rows=rows * s, params=params)
            r = {"scale": s, "rows": rows * s, "params": params, "zoo_mb": nbytes / 2**20}
            r.update(load_throughput(root))
            r.update(streaming_memory(root))
            out.append(r)
    return out


def print_table(res: list[dict[str, float]]) -> None:
    """Print the results as a table."""
    print(f"{'scale':>5} {'zoo MB':>8} {'raw GB/s':>9} {'arrow GB/s':>11} {'ratio':>6} "
          f"{'torch-rows GB/s':>16} {'anon growth MB':>15} {'peak RSS MB':>12}")
    for r in res:
        print(f"{r['scale']:>5}x {r['zoo_mb']:>7.0f} {r['raw_read_gb_s']:>9.2f} "
              f"{r['arrow_zero_copy_gb_s']:>11.2f} "
              f"{r['arrow_zero_copy_gb_s'] / r['raw_read_gb_s']:>6.2f} "
              f"{r['datasets_torch_gb_s']:>16.2f} {r['anon_growth_mb']:>15.1f} "
              f"{r['peak_rss_mb']:>12.0f}")


def main(argv: list[str] | None = None) -> list[dict[str, float]]:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--params", type=int, default=20_000)
    p.add_argument("--json")
    a = p.parse_args(argv)
    return emit(measure(rows=a.rows, params=a.params), print_table, a.json)


if __name__ == "__main__":
    main()
