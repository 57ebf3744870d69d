"""Dataset cards: the recipe's prose plus statistics measured on the zoo, and a plot.

``zoo_stats`` reads only the metadata columns of a zoo (weights are never loaded);
``render_card`` turns a manifest, its statistics and the Hub ``configs`` into a README.md with
YAML front matter; ``plot_accuracy`` draws test accuracy against epoch (matplotlib, Agg).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from modelzoo.hub.configs import ZooConfig, zoo_configs
from modelzoo.hub.stream import iter_zoo_batches
from modelzoo.storage.card import dataset_card
from modelzoo.storage.manifest import Manifest, read_manifest
from modelzoo.storage.schema import HPARAM_FIELDS, SPLITS, STATUS_OK

PLOT_NAME = "accuracy.png"

_META_COLUMNS = [
    "model_id", "architecture", "source", "epoch", *[n for n, _ in HPARAM_FIELDS],
    "train_acc", "test_acc", "status", "split",
]  # fmt: skip

#: ``size_categories`` buckets of the Hugging Face Hub, by row count.
SIZE_CATEGORIES: tuple[tuple[float, str], ...] = (
    (1e3, "n<1K"),
    (1e4, "1K<n<10K"),
    (1e5, "10K<n<100K"),
    (1e6, "100K<n<1M"),
    (1e7, "1M<n<10M"),
    (1e8, "10M<n<100M"),
    (1e9, "100M<n<1B"),
    (1e10, "1B<n<10B"),
    (1e11, "10B<n<100B"),
    (1e12, "100B<n<1T"),
)


def size_category(num_rows: int) -> str:
    """Hub ``size_categories`` value for a dataset of ``num_rows`` rows."""
    for bound, name in SIZE_CATEGORIES:
        if num_rows < bound:
            return name
    return "n>1T"


class AccuracySummary(BaseModel):
    """Distribution of a metric over models (at each model's last checkpoint)."""

    count: int
    min: float | None
    median: float | None
    max: float | None


class GroupStats(BaseModel):
    """Statistics of one (architecture, source) config."""

    config: str
    architecture: str
    registry_name: str
    source: str
    n_params: int
    models: int
    last_epoch: int
    test_acc: AccuracySummary


class ZooStats(BaseModel):
    """Measured statistics of a zoo (what the card reports)."""

    num_models: int
    num_rows: int
    num_params: dict[str, int]
    total_params: int
    epochs: list[int]
    diverged: int
    split_models: dict[str, int]
    split_rows: dict[str, int]
    grid: dict[str, list[Any]]
    test_acc: AccuracySummary
    groups: list[GroupStats] = Field(default_factory=list)
    #: config -> epoch -> (q25, median, q75) of test accuracy over models
    curves: dict[str, dict[int, tuple[float, float, float]]] = Field(default_factory=dict)


def _summary(values: np.ndarray) -> AccuracySummary:
    v = values[np.isfinite(values)]
    if not len(v):
        return AccuracySummary(count=0, min=None, median=None, max=None)
    return AccuracySummary(
        count=len(v), min=float(v.min()), median=float(np.median(v)), max=float(v.max())
    )


def zoo_frame(zoo: str | Path, manifest: Manifest | None = None) -> pd.DataFrame:
    """The metadata columns of every row of a zoo as a DataFrame (no weights)."""
    manifest = manifest or read_manifest(zoo)
    parts = [
        batch.to_pandas() for _f, batch in iter_zoo_batches(zoo, manifest, columns=_META_COLUMNS)
    ]
    if not parts:
        return pd.DataFrame(columns=_META_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def zoo_stats(zoo: str | Path, manifest: Manifest | None = None) -> ZooStats:
    """Measure a zoo: counts, parameters, accuracy distribution, grid, splits, curves."""
    manifest = manifest or read_manifest(zoo)
    df = zoo_frame(zoo, manifest)
    configs = [c for c in zoo_configs(manifest) if c.architecture is not None] or [
        ZooConfig(zoo_configs(manifest)[0].name, None, None)
    ]
    last = df.sort_values("epoch").groupby("model_id", sort=False).tail(1)
    grid = {
        name: sorted(df[name].dropna().unique().tolist())
        for name, _ in HPARAM_FIELDS
        if name in df
    }
    split_models = {s: 0 for s in SPLITS}
    split_rows = {s: 0 for s in SPLITS}
    for m in manifest.models.values():
        split_models[m.split] = split_models.get(m.split, 0) + 1
        split_rows[m.split] = split_rows.get(m.split, 0) + m.num_checkpoints
    groups: list[GroupStats] = []
    curves: dict[str, dict[int, tuple[float, float, float]]] = {}
    for c in configs:
        mask = np.ones(len(df), dtype=bool)
        if c.architecture is not None:
            mask = ((df["architecture"] == c.architecture) & (df["source"] == c.source)).to_numpy()
        sub = df[mask]
        sub_last = last[last["model_id"].isin(sub["model_id"].unique())]
        curve: dict[int, tuple[float, float, float]] = {}
        for epoch, accs in sub.groupby("epoch")["test_acc"]:
            v = accs.to_numpy(dtype=float)
            v = v[np.isfinite(v)]
            if len(v):
                q = np.quantile(v, [0.25, 0.5, 0.75])
                curve[int(epoch)] = (float(q[0]), float(q[1]), float(q[2]))
        curves[c.name] = curve
        for arch in sorted(sub["architecture"].unique()):
            entry = manifest.architectures.get(arch)
            for src in sorted(sub.loc[sub["architecture"] == arch, "source"].unique()):
                g_last = sub_last[(sub_last["architecture"] == arch) & (sub_last["source"] == src)]
                groups.append(
                    GroupStats(
                        config=c.name,
                        architecture=arch,
                        registry_name=entry.name if entry else arch,
                        source=src,
                        n_params=entry.n_params if entry else 0,
                        models=int(g_last["model_id"].nunique()),
                        last_epoch=int(g_last["epoch"].max()) if len(g_last) else 0,
                        test_acc=_summary(g_last["test_acc"].to_numpy(dtype=float)),
                    )
                )
    ok_last = last[last["status"] == STATUS_OK]
    return ZooStats(
        num_models=manifest.num_models,
        num_rows=manifest.num_rows,
        num_params={k: a.n_params for k, a in manifest.architectures.items()},
        total_params=int(sum(manifest.architectures[m.architecture].n_params * m.num_checkpoints
                             for m in manifest.models.values()
                             if m.architecture in manifest.architectures)),
        epochs=sorted(int(e) for e in df["epoch"].unique()),
        diverged=sum(1 for m in manifest.models.values() if m.status != STATUS_OK),
        split_models=split_models,
        split_rows=split_rows,
        grid=grid,
        test_acc=_summary(ok_last["test_acc"].to_numpy(dtype=float)),
        groups=groups,
        curves=curves,
    )  # fmt: skip


def plot_accuracy(stats: ZooStats, path: str | Path, *, title: str = "") -> Path:
    """Save a PNG of test accuracy vs epoch (median and interquartile band per config)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, curve in stats.curves.items():
        if not curve:
            continue
        epochs = sorted(curve)
        lo = [curve[e][0] for e in epochs]
        mid = [curve[e][1] for e in epochs]
        hi = [curve[e][2] for e in epochs]
        (line,) = ax.plot(epochs, mid, marker="o", markersize=3, label=f"{name} (median)")
        ax.fill_between(epochs, lo, hi, alpha=0.2, color=line.get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    if stats.curves:
        ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, format="png")
    return out


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.4f}"


def _fmt_values(values: Sequence[Any]) -> str:
    return ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def card_front_matter(
    *,
    manifest: Manifest,
    configs: list[ZooConfig],
    data_files: dict[str, dict[str, str]],
) -> dict[str, Any]:
    """YAML front matter of a Hub dataset card (configs, license, tags, sizes, name)."""
    tags = ["model-zoo", "weight-space-learning", "populations-of-neural-networks"]
    tags += sorted({a.name for a in manifest.architectures.values()})
    tags += sorted({s.name for s in manifest.sources.values()})
    return {
        "pretty_name": manifest.name,
        "license": manifest.license,
        "tags": list(dict.fromkeys(tags)),
        "task_categories": ["tabular-regression", "tabular-classification"],
        "size_categories": [size_category(manifest.num_rows)],
        "configs": hub_configs(configs, data_files),
    }


def hub_configs(
    configs: list[ZooConfig], data_files: dict[str, dict[str, str]]
) -> list[dict[str, Any]]:
    """The card's ``configs`` list: each config's files per split; ``all``/``default`` first
    choice of ``load_dataset`` (``default: true``)."""
    return [
        {
            "config_name": c.name,
            **({"default": True} if len(configs) == 1 or c.architecture is None else {}),
            "data_files": [{"split": s, "path": p} for s, p in data_files[c.name].items()],
        }
        for c in configs
    ]


def render_card(
    *,
    manifest: Manifest,
    stats: ZooStats,
    configs: list[ZooConfig],
    data_files: dict[str, dict[str, str]],
    plot: str | None = PLOT_NAME,
    repo_id: str | None = None,
    revision: str | None = None,
) -> str:
    """Render README.md: YAML front matter, the recipe's prose, measured statistics, usage."""
    rec = manifest.recipe or {}
    front = card_front_matter(manifest=manifest, configs=configs, data_files=data_files)
    repo = repo_id or "<user>/<name>"
    tag = revision or f"v{manifest.version}"
    cfg_names = [c.name for c in configs]
    lines = [f"# {manifest.name} (v{manifest.version})", ""]
    description = manifest.description or rec.get("description", "")
    if description:
        lines += [description.strip(), ""]
    if rec.get("card"):
        lines += [str(rec["card"]).strip(), ""]
    acc = stats.test_acc
    lines += [
        "## Statistics (measured on this zoo)",
        "",
        "| | |",
        "|---|---|",
        f"| models | {stats.num_models:,} |",
        f"| checkpoints (rows) | {stats.num_rows:,} |",
        f"| epochs stored | {_fmt_values(stats.epochs)} |",
        "| parameters per model | "
        + ", ".join(f"{k}: {v:,}" for k, v in stats.num_params.items()) + " |",
        f"| total stored parameters | {stats.total_params:,} |",
        f"| diverged / NaN models | {stats.diverged} |",
        f"| test accuracy at the last epoch (min / median / max) | {_fmt(acc.min)} / "
        f"{_fmt(acc.median)} / {_fmt(acc.max)} |",
        "",
        "Splits are per model (all checkpoints of a model are in one split):",
        "",
        "| split | models | checkpoints |",
        "|---|---|---|",
    ]  # fmt: skip
    for s in stats.split_models:
        lines.append(f"| {s} | {stats.split_models[s]:,} | {stats.split_rows.get(s, 0):,} |")
    lines += ["", "### Per architecture and source", "",
              "| config | architecture | source | params | models | last epoch | test acc "
              "(min / median / max) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for g in stats.groups:
        arch = g.architecture if g.architecture == g.registry_name else (
            f"{g.architecture} ({g.registry_name})"
        )
        lines.append(
            f"| {g.config} | {arch} | {g.source} | {g.n_params:,} | {g.models} | {g.last_epoch} "
            f"| {_fmt(g.test_acc.min)} / {_fmt(g.test_acc.median)} / {_fmt(g.test_acc.max)} |"
        )
    lines += ["", "### Hyperparameters", "", "| hyperparameter | values |", "|---|---|"]
    for k, v in stats.grid.items():
        lines.append(f"| {k} | {_fmt_values(v)} |")
    lines.append("")
    if plot:
        lines += ["### Test accuracy vs epoch", "",
                  f"![test accuracy vs epoch (median and interquartile range)]({plot})", ""]
    lines += [
        "## Usage",
        "",
        "```python",
        "from datasets import load_dataset",
        f'zoo = load_dataset("{repo}", revision="{tag}")  # the published version {tag}',
    ]
    if len(cfg_names) > 1:
        lines.append(f'one = load_dataset("{repo}", "{cfg_names[0]}", revision="{tag}")')
    lines += [
        "```",
        "",
        f"Configs: {', '.join(f'`{c}`' for c in cfg_names)}. Each row is one checkpoint: "
        "`model_id`, `architecture`, `source`, `epoch`, hyperparameters, train/validation/test "
        "loss and accuracy, `ggap`, `status` and the flat `weights` vector.",
        "",
        "Rebuild a network from a row with the toolkit (`zoo.json` holds each architecture's "
        "constructor arguments and layer layout, keyed by the `architecture` column):",
        "",
        "```python",
        "import json, torch",
        "from huggingface_hub import hf_hub_download",
        "from modelzoo import create_model, load_flat_weights",
        "from modelzoo.storage.manifest import Manifest",
        f'path = hf_hub_download("{repo}", "zoo.json", repo_type="dataset", revision="{tag}")',
        "man = Manifest.model_validate(json.load(open(path)))",
        'row = zoo["train"][0]',
        'entry = man.architectures[row["architecture"]]',
        'net = create_model(entry.name, **{**entry.kwargs, "activation": row["activation"],',
        '                                  "dropout": row["dropout"]})',
        'load_flat_weights(net, torch.tensor(row["weights"]), entry.layout)',
        "```",
        "",
        "## Versioning",
        "",
        f"Version {manifest.version}, content hash `{manifest.content_hash}`. Published versions "
        "never change: each is a tag (`v<version>`); `zoo diff OLD NEW` lists what changed "
        "between two versions.",
        "",
        f"Built with modelzoo-toolkit {manifest.toolkit_version}, torch "
        f"{manifest.torch_version}. License: {manifest.license}.",
        "",
    ]
    members = [m for m in rec.get("members", []) if isinstance(m, dict)]
    if members:
        lines += ["## Members", "", "This zoo merges:", "", "| zoo | version | content hash |",
                  "|---|---|---|"]  # fmt: skip
        for mem in members:
            lines.append(f"| {mem.get('name')} | {mem.get('version')} | "
                         f"`{mem.get('content_hash')}` |")  # fmt: skip
        lines.append("")
    citations = [str(rec.get("citation") or "").strip()]
    citations += [str((m.get("recipe") or {}).get("citation") or "").strip() for m in members]
    citations = [c for c in dict.fromkeys(citations) if c]
    if citations:
        lines += ["## Citation", "", "```bibtex", "\n\n".join(citations), "```", ""]
    return dataset_card("\n".join(lines), **front)


def local_card(
    *, name: str, description: str, configs: list[ZooConfig], data_files: dict[str, dict]
) -> str:
    """README.md of a local zoo folder: YAML ``configs`` so ``load_dataset(dir, cfg)`` works."""
    body = [f"# {name}", ""]
    if description:
        body += [description, ""]
    body.append("Configs: " + ", ".join(f"`{c.name}`" for c in configs) + ".")
    body.append("")
    body.append("A merged model zoo built with the model-zoo toolkit. `zoo info .` summarises it.")
    return dataset_card("\n".join(body) + "\n", configs=hub_configs(configs, data_files),
                        tags=["model-zoo", "weight-space-learning"])  # fmt: skip
