"""Cost of verifying a zoo's shards (issue 25): first and cached check, beside one ``bench run``.

Run: ``python -m benchmarks.perf.verify_cost [--zoo zoos/digits-cnn_s-hyp] [--json out.json]``

The zoo is copied into a temporary folder first (the verification cache is written into the
zoo folder, and the source may be read-only), its folders made writable, and the copy left
older than the cache's racy margin (:data:`modelzoo.storage.verify.RACY_NS`) so that the first
check records every shard. The checks run in one fresh process with the in-process memo
cleared before each (so only ``.verified.json`` vouches, as in a new process), each bench run
in its own fresh process; warm page cache (the copy was just written; a cold read adds the
disk's read time):

* ``first check``: :func:`~modelzoo.storage.verify.check_shards` without a cache: every shard
  hashed, ``.verified.json`` written (what the first ``bench run`` / ``sane train`` does);
* ``cached check``: the same again: the cache vouches for every unchanged shard (stat only);
* ``zoo validate``: every shard re-hashed, the cache ignored (``use_cache=False``);
* ``bench run``: ``benchmarks.evaluate`` of one property task with a cheap method (its
  verification is the cached check), and the same with ``verify=False``.

Without ``--zoo``: ``$MODELZOO_PERF_ZOO``, else ``zoos/digits-cnn_s-hyp`` of the repository
if it is built, else the first 128 models of ``cards/digits-cnn_s-hyp.yaml`` are built
(``--quick``: 32 models, 2 epochs) and measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.perf.common import emit, isolated
from modelzoo.storage.verify import VERIFIED_NAME

REPO = Path(__file__).resolve().parents[2]
CARD = REPO / "cards" / "digits-cnn_s-hyp.yaml"
TASK = "digits-hyp-test-acc"
METHOD = "weight-stats-linear"


def _checks(zoo: str, build: tuple[int, int | None] | None) -> dict[str, dict[str, Any]]:
    """In one fresh process: build the zoo if asked, wait out the racy margin, then the first,
    cached and validate checks, the in-process memo cleared before each (as in a new
    process: only ``.verified.json`` vouches)."""
    from modelzoo.storage.verify import RACY_NS, check_shards, clear_memo

    if build is not None:
        from modelzoo.builder import build_zoo

        build_zoo(recipe=CARD, out=zoo, models=build[0], epochs=build[1], threads=1,
                  progress=False)
    time.sleep(RACY_NS / 1e9 + 0.1)  # older than the racy margin: every shard is recorded
    rows = {}
    for name, use_cache in (("first check", True), ("cached check", True),
                            ("zoo validate", False)):
        clear_memo()
        t0 = time.perf_counter()
        r = check_shards(zoo, use_cache=use_cache, progress=False)
        wall = time.perf_counter() - t0
        rows[name] = {"seconds": wall, "files": r.files, "hashed": r.hashed,
                      "hashed_mb": r.hashed_bytes / 2**20, "cache_written": r.cache_written,
                      "load_1min": os.getloadavg()[0]}
    return rows


def _bench(zoo: str, verify: bool, seeds: int) -> dict[str, Any]:
    import benchmarks

    t0 = time.perf_counter()
    (res,) = benchmarks.evaluate(method=METHOD, zoo=zoo, tasks=[TASK], seeds=seeds,
                                 allow_unpinned=True, verify=verify, threads=1)
    return {"seconds": time.perf_counter() - t0, "score": res.main_score.mean,
            "metric": res.main_score.metric, "verified": res.zoo.verified,
            "load_1min": os.getloadavg()[0]}


def default_zoo() -> Path | None:
    """The zoo measured when none is given (see the module docstring), if it exists."""
    env = os.environ.get("MODELZOO_PERF_ZOO")
    for cand in ([Path(env)] if env else []) + [REPO / "zoos" / "digits-cnn_s-hyp"]:
        if (cand / "zoo.json").is_file():
            return cand
    return None


def _writable_copy(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(VERIFIED_NAME))
    for d in [dst, *(p for p in dst.rglob("*") if p.is_dir())]:
        d.chmod(d.stat().st_mode | stat.S_IWUSR)


def measure(*, zoo: Path | None = None, quick: bool = False, seeds: int = 1,
            work: Path | None = None) -> dict[str, Any]:
    """Time the steps of the module docstring on a copy of ``zoo`` (or a built one)."""
    src = zoo if zoo is not None else (None if quick else default_zoo())
    with tempfile.TemporaryDirectory(prefix="perf-verify-", dir=work) as tmp:
        copy = Path(tmp) / "zoo"
        build = None
        if src is None:
            build = (32, 2) if quick else (128, None)
            what = f"{CARD.name}, first {build[0]} models" + (
                f", {build[1]} epochs" if build[1] else "")
        else:
            t0 = time.perf_counter()
            _writable_copy(Path(src), copy)
            what = f"copy of {src} (copied in {time.perf_counter() - t0:.1f} s)"
        rows = isolated(_checks, str(copy), build)
        rows["bench run"] = isolated(_bench, str(copy), True, seeds)
        rows["bench run --no-verify"] = isolated(_bench, str(copy), False, seeds)
        from modelzoo.storage import read_manifest

        m = read_manifest(copy)
        size = sum((copy / f.path).stat().st_size for f in m.files)
    return {"benchmark": "verify_cost", "zoo": what, "name": m.name, "models": m.num_models,
            "shards": len(m.files), "zoo_mb": size / 2**20, "task": TASK, "method": METHOD,
            "seeds": seeds, "cpus": os.cpu_count(), "rows": rows}


def print_table(r: dict[str, Any]) -> None:
    """Print the measurement as a table."""
    print(f"{r['name']}: {r['models']:,} models, {r['shards']} shards, {r['zoo_mb']:.0f} MB "
          f"({r['zoo']}); bench run = {r['task']} x {r['method']}, {r['seeds']} seed(s), "
          "1 thread; warm page cache; the checks in one fresh process (memo cleared before "
          "each), each bench run in its own; a first bench run costs the first check more")
    print(f"{'step':<22} {'seconds':>8} {'hashed':>7} {'MB hashed':>10} {'GB/s':>6} "
          f"{'cache written':>13} {'load':>5}")
    for name, row in r["rows"].items():
        if "hashed" in row:
            gbs = row["hashed_mb"] * 2**20 / 1e9 / row["seconds"] if row["hashed"] else 0.0
            print(f"{name:<22} {row['seconds']:>8.3f} {row['hashed']:>3}/{row['files']:<3} "
                  f"{row['hashed_mb']:>10.1f} {gbs:>6.2f} {str(row['cache_written']):>13} "
                  f"{row['load_1min']:>5.1f}")
        else:
            print(f"{name:<22} {row['seconds']:>8.3f} {'':>7} {'':>10} {'':>6} {'':>13} "
                  f"{row['load_1min']:>5.1f}   {row['metric']} {row['score']:.4f}")
    base = r["rows"]["bench run --no-verify"]["seconds"]
    for name in ("first check", "cached check"):
        print(f"{name}: {100 * r['rows'][name]['seconds'] / base:.1f}% of a bench run "
              "without verification")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI entry."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", type=Path, help="zoo to measure (copied first)")
    p.add_argument("--quick", action="store_true", help="a small built zoo (a smoke run)")
    p.add_argument("--seeds", type=int, default=1, help="seeds of the bench run")
    p.add_argument("--json")
    a = p.parse_args(argv)
    return emit(measure(zoo=a.zoo, quick=a.quick, seeds=a.seeds), print_table, a.json)


if __name__ == "__main__":
    main()
