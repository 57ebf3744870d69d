"""Validation-split search of the trained weight-space methods' settings (issue 22).

For each setting (network and training overrides of ``nfn-np`` / ``nfn-hnp`` /
``graph-metanet``) and each task (a target of the zoo), the method is fitted on the zoo's
train split (early-stopped on its validation split, as in ``bench run``) and scored on the
validation split; the test split is never read. One JSON line per (setting, task) is
appended to ``--out`` (a rerun skips the lines already there), with the seconds it took and
the load average it ran under; ``--report`` renders them as a Markdown table.

Example::

    OMP_NUM_THREADS=1 python scripts/metanet_search.py --zoo zoos/digits-cnn_s-hyp \\
        --method nfn-np --task test_acc:regression --task activation:classification \\
        --setting '{"network": {"channels": 8}}' \\
        --out benchmarks/perf/reports/metanets/search.jsonl
    python scripts/metanet_search.py \\
        --report benchmarks/perf/reports/metanets/search.jsonl > docs/metanet-search.md
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import click
import numpy as np
import torch

from benchmarks.provenance import QUOTED


def _cpu(line: dict) -> str:
    """CPU seconds of a search line (not recorded by the first runs: a dash)."""
    return f"{line['cpu_seconds']:.0f}" if "cpu_seconds" in line else "-"


def _score(target_type: str, y: np.ndarray, p: np.ndarray) -> float:
    from benchmarks.scoring import class_labels, score_predictions

    if target_type == "regression":
        return score_predictions(("kendall_tau",), y.astype(np.float64),
                                 p.astype(np.float64))["kendall_tau"]
    return score_predictions(("accuracy",), class_labels(y), class_labels(p))["accuracy"]


#: The command and commit of the search this report renders (its JSON lines in
#: benchmarks/perf/reports/metanets/search.jsonl).
SEARCH_COMMAND = "python scripts/metanet_search.py --zoo Z --method M --task T --setting S"
COMMIT = "8c4f5fc"


def _report(path: Path) -> str:
    lines = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    out = [QUOTED, "# Validation search of the trained metanets (issue 22)", "",
           "## Settings scored on validation (train rows fit, validation rows score)", "",
           f"Source: `{SEARCH_COMMAND}` at commit `{COMMIT}`; machine: the shared 2-core Intel "
           "Xeon (AVX-512), threads 1, load as in the last column.", "",
           "| zoo | method | network | training | task | validation score | epochs (best) | "
           "seconds | CPU s | load avg |", "|---|---|---|---|---|---:|---|---:|---:|---:|"]
    for r in lines:
        epochs = "; ".join(f"{g}: {f['epochs_run']} ({f['best_epoch']})"
                           for g, f in r["groups"].items())
        net = ", ".join(f"{k}={v}" for k, v in r["resolved"]["network"].items())
        tr = r["resolved"]["train"]
        train = f"lr={tr['lr']}, rows={tr['max_train_rows']}, epochs={tr['epochs']}"
        out.append(f"| {r['zoo']} | {r['method']} | {net} | {train} | "
                   f"{r['task']} | {r['score']:.3f} | {epochs} | {r['seconds']:.0f} | "
                   f"{_cpu(r)} | {r['load']:.1f} |")
    return "\n".join(out) + "\n"


@click.command()
@click.option("--zoo", type=click.Path(exists=True, path_type=Path), help="a built zoo")
@click.option("--method", type=click.Choice(["nfn-np", "nfn-hnp", "graph-metanet"]))
@click.option("--task", "tasks", multiple=True, help="TARGET:TYPE, e.g. test_acc:regression")
@click.option("--setting", "settings", multiple=True,
              help='JSON {"network": {...}, "train": {...}} overrides; repeatable')
@click.option("--seed", default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), help="JSON lines file (appended)")
@click.option("--report", type=click.Path(exists=True, path_type=Path),
              help="print the Markdown table of a JSON lines file and exit")
def main(zoo: Path | None, method: str | None, tasks: tuple[str, ...],
         settings: tuple[str, ...], seed: int, out: Path | None, report: Path | None) -> None:
    """Fit on train, score on validation, one JSON line per (setting, task)."""
    if report is not None:
        click.echo(_report(report), nl=False)
        return
    if zoo is None or method is None or out is None or not tasks:
        raise click.UsageError("--zoo, --method, --task and --out are needed")
    from benchmarks.methods.graph_metanet import GraphMetanetPredictor
    from benchmarks.methods.nfn import NFNPredictor
    from benchmarks.zoo import EvalZoo

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    z = EvalZoo(zoo)
    done = set()
    if out.exists():
        done = {(json.dumps(r["resolved"], sort_keys=True), r["task"], r["method"], r["zoo"])
                for r in map(json.loads, out.read_text().splitlines()) if r}
    for raw in settings or ("{}",):
        setting = json.loads(raw)
        for spec in tasks:
            target, kind = spec.split(":")
            m = (GraphMetanetPredictor(**setting) if method == "graph-metanet"
                 else NFNPredictor(method.removeprefix("nfn-"), **setting))
            meta = m.meta()
            resolved = {"network": {k: v for k, v in meta["network"].items()
                                    if k not in ("layer", "pool", "reference")},
                        "train": meta["train"]}
            key = (json.dumps(resolved, sort_keys=True), spec, method, z.manifest.name)
            if key in done:
                continue
            t0, c0 = time.perf_counter(), time.process_time()
            m.fit(z.splits["train"], target=target, task_type=kind,
                  validation=z.splits["validation"], manifest=z.manifest, seed=seed)
            p = m.predict(z.splits["validation"], manifest=z.manifest)
            score = _score(kind, z.column("validation", target), p)
            meta = m.meta()
            row = {"zoo": z.manifest.name, "method": method, "setting": setting, "task": spec,
                   "resolved": resolved,
                   "score": round(float(score), 4), "groups": meta["fits"][-1]["groups"],
                   "seconds": round(time.perf_counter() - t0, 1),
                   "cpu_seconds": round(time.process_time() - c0, 1),
                   "load": round(os.getloadavg()[0], 2), "seed": seed}
            with open(out, "a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            click.echo(f"{method} {setting} {spec}: {score:.3f} ({row['seconds']} s)")


if __name__ == "__main__":
    main()
