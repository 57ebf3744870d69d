"""The label-free view of a board's held-out zoo: what the public sees of the scored models.

A held-out board (``bench leaderboard init``) keeps its zoo, with every label, private. It
publishes only this view, a Hub dataset folder::

    view.json                            manifest: name, version, pin, layouts, tasks, rules
    README.md                            dataset card (rules, columns, how to submit)
    data/test-00000-of-00001.parquet     row_id, architecture, source, n_params, weights

One row per healthy test-split checkpoint of the held-out zoo. ``row_id`` is an HMAC of
``(model_id, epoch)`` under the board's secret, so it reveals neither the model, the epoch
nor the build order; rows are sorted by it (a random-looking order). Nothing a task predicts
is in the view: no metrics, no hyperparameters, no epoch, no model id, no recipe, no seeds.

``bench run --zoo PUBLIC --heldout VIEW`` trains on the public zoo and predicts the view's
rows (:class:`ViewedZoo`); ``bench submit --zoo VIEW`` packages those predictions.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Literal

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, ValidationError

from benchmarks.leaderboard.errors import LeaderboardError
from benchmarks.leaderboard.rules import rules_text
from benchmarks.leaderboard.schema import BoardRules, ZooPin
from benchmarks.methods.base import TargetModel
from benchmarks.tasks.metadata import TaskMetadata
from benchmarks.zoo import HELDOUT as HELDOUT_SPLIT
from benchmarks.zoo import EvalZoo
from modelzoo.storage.atomic import atomic_write_bytes, atomic_write_with, ensure_dir
from modelzoo.storage.card import dataset_card
from modelzoo.storage.manifest import ArchitectureEntry, Manifest, SourceEntry

VIEW_FORMAT = "modelzoo-heldout-view"
VIEW_MANIFEST = "view.json"
VIEW_DATA = "data/test-00000-of-00001.parquet"
#: The only columns of a view (anything a task predicts is absent by construction).
VIEW_COLUMNS = ("row_id", "architecture", "source", "n_params", "weights")

class ViewTarget(BaseModel):
    """The model that initialization / generation samples are for (decided by the board)."""

    model_config = ConfigDict(extra="forbid")

    architecture: str
    activation: str
    num_params: int


class ViewManifest(BaseModel):
    """``view.json`` of a label-free view.

    Attributes:
        name: view name (``<zoo>-heldout``); submissions pin it with ``content_hash``.
        version: the board's zoo version.
        zoo: name and version of the public zoo the tasks are pinned to (train on it).
        tasks: tasks the board scores (per suite: those of the suite listed here).
        target: the model initialization / generation samples are for.
        content_hash: sha256 over the rows (row id, architecture, source, weights).
        split_hashes: ``{"test": sha256 of the sorted row ids}``.
        rules: what the board allows, what a submitter sees, when ranking scores come
            out, the limits, what it enforces and cannot enforce
            (:func:`~benchmarks.leaderboard.rules.rules_text` of the board's rules).
    """

    model_config = ConfigDict(extra="forbid")

    format: Literal["modelzoo-heldout-view"] = VIEW_FORMAT
    format_version: Literal[1] = 1
    name: str
    version: str
    zoo: dict[str, str]
    license: str = "cc-by-4.0"
    architectures: dict[str, ArchitectureEntry]
    sources: dict[str, SourceEntry]
    tasks: list[str]
    target: ViewTarget
    num_rows: int
    content_hash: str
    split_hashes: dict[str, str]
    rules: list[str] = rules_text(BoardRules())

    @property
    def pin(self) -> ZooPin:
        """What a submission made on this view pins."""
        return ZooPin(name=self.name, version=self.version, content_hash=self.content_hash,
                      split_hashes=self.split_hashes)


def row_id(secret: bytes, model_id: str, epoch: int) -> str:
    """Opaque id of a held-out checkpoint: ``r`` + 20 hex digits of an HMAC-SHA256."""
    mac = hmac.new(secret, f"{model_id}\x00{int(epoch)}".encode(), hashlib.sha256)
    return "r" + mac.hexdigest()[:20]


def _rows_hash(table: pa.Table) -> tuple[str, str]:
    """``(content hash, test split hash)`` of view rows sorted by row id."""
    h = hashlib.sha256()
    ids = table.column("row_id").to_pylist()
    archs = table.column("architecture").to_pylist()
    srcs = table.column("source").to_pylist()
    weights = table.column("weights").combine_chunks()
    for i, rid in enumerate(ids):
        h.update(f"{rid}\t{archs[i]}\t{srcs[i]}\n".encode())
        h.update(np.asarray(weights[i].values.to_numpy(zero_copy_only=False),
                            dtype=np.float32).tobytes())
    split = hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()
    return "sha256:" + h.hexdigest(), "sha256:" + split


def view_table(test: datasets.Dataset, secret: bytes) -> pa.Table:
    """The view's rows of a held-out test split (healthy rows only), sorted by row id."""
    rows = test.with_format("arrow")[:]  # a pyarrow.Table, selections applied
    mids = rows.column("model_id").to_pylist()
    ids = [row_id(secret, m, e) for m, e in zip(mids, rows.column("epoch").to_pylist(),
                                                 strict=True)]
    order = pa.array(sorted(range(len(ids)), key=ids.__getitem__), pa.int64())
    rows = rows.take(order)
    weights = rows.column("weights").combine_chunks()
    return pa.table({
        "row_id": pa.array([ids[i] for i in order.to_pylist()], pa.string()),
        "architecture": rows.column("architecture").cast(pa.string()),
        "source": rows.column("source").cast(pa.string()),
        "n_params": rows.column("n_params").cast(pa.int64()),
        "weights": weights.cast(pa.list_(pa.float32())),
    })


def view_card(manifest: ViewManifest) -> str:
    """README.md of a view: YAML ``configs`` (so ``load_dataset(folder)`` works), rules, use."""
    lines = [
        f"# {manifest.name} (label-free held-out view)", "",
        f"The models a leaderboard scores for zoo {manifest.zoo['name']} "
        f"v{manifest.zoo['version']}: {manifest.num_rows} checkpoints of a held-out zoo, "
        "without labels. Train your method on the public zoo, predict these rows, submit.", "",
        "## Rules", "", *[f"- {r}" for r in manifest.rules], "",
        "## Columns", "",
        "| column | meaning |", "|---|---|",
        "| `row_id` | opaque id (no model, epoch or order in it); predictions are keyed by it |",
        "| `architecture` | registry name; layer layout in `view.json` |",
        "| `source` | training dataset name |",
        "| `n_params` | length of `weights` |",
        "| `weights` | flat float32 vector in the architecture's layout order |", "",
        "## Submitting", "", "```bash",
        f"bench run --suite SUITE --method mypkg.mod:MyMethod --zoo zoos/{manifest.zoo['name']} "
        "--heldout VIEW --out results/ --save-predictions",
        "bench submit --results results/ --zoo VIEW --suite SUITE --method my-method "
        "--out my-method.json", "```", "",
        f"Scored tasks: {', '.join(manifest.tasks)}. Initialization / generation samples are "
        f"for {manifest.target.architecture} / {manifest.target.activation} "
        f"({manifest.target.num_params} parameters) unless a task fixes the activation.", "",
        f"Content hash: `{manifest.content_hash}`.", "",
    ]
    return dataset_card(
        "\n".join(lines), license=manifest.license,
        configs=[{"config_name": "default",
                  "data_files": [{"split": "test", "path": "data/test-*.parquet"}]}],
        tags=["model-zoo", "weight-space-learning", "leaderboard"])


def write_view(
    *,
    test: datasets.Dataset,
    secret: bytes,
    out: str | Path,
    name: str,
    version: str,
    zoo: dict[str, str],
    architectures: dict[str, ArchitectureEntry],
    sources: dict[str, SourceEntry],
    tasks: list[str],
    target: ViewTarget,
    rules: BoardRules,
    license: str = "cc-by-4.0",
) -> ViewManifest:
    """Write the label-free view of a held-out test split (healthy rows) to ``out``, its card
    stating the board's ``rules``.

    The same inputs always give the same bytes (so the board can re-create its view).
    """
    table = view_table(test, secret)
    content, split = _rows_hash(table)
    manifest = ViewManifest(name=name, version=version, zoo=dict(zoo), license=license,
                            architectures=architectures, sources=sources, tasks=list(tasks),
                            target=target, num_rows=table.num_rows, content_hash=content,
                            split_hashes={"test": split}, rules=rules_text(rules))
    root = ensure_dir(Path(out))
    data = ensure_dir(root / "data") / Path(VIEW_DATA).name
    atomic_write_with(data, lambda f: pq.write_table(table, f))
    atomic_write_bytes(root / "README.md", view_card(manifest).encode())
    atomic_write_bytes(root / VIEW_MANIFEST, manifest.model_dump_json(indent=1).encode())
    return manifest


def is_view(path: str | Path) -> bool:
    """Whether ``path`` is a label-free view folder (it has ``view.json``)."""
    return (Path(path) / VIEW_MANIFEST).is_file()


class HeldOutView:
    """A label-free view opened for predicting: manifest and rows (checked against the pin).

    Raises:
        LeaderboardError: no view there, an invalid manifest, or rows that do not match it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        mpath = self.path / VIEW_MANIFEST
        if not mpath.is_file():
            raise LeaderboardError(
                f"{self.path} is not a label-free view (no {VIEW_MANIFEST}); pass the folder "
                "`bench leaderboard init --view` wrote (or its published copy)")
        try:
            self.manifest = ViewManifest.model_validate_json(mpath.read_bytes())
        except (ValidationError, ValueError) as e:
            raise LeaderboardError(f"{mpath} is not a valid view manifest: {e}") from None
        try:
            table = pq.read_table(self.path / VIEW_DATA)
        except (OSError, ValueError) as e:
            raise LeaderboardError(f"cannot read the view's rows {VIEW_DATA}: {e}") from None
        if tuple(table.column_names) != VIEW_COLUMNS:
            raise LeaderboardError(f"the view's rows have columns {table.column_names}, "
                                   f"expected {list(VIEW_COLUMNS)}")
        content, split = _rows_hash(table)
        if content != self.manifest.content_hash or split != self.manifest.split_hashes.get(
                "test"):
            raise LeaderboardError(
                f"the rows of view {self.path} do not match its manifest's content hash "
                "(modified or incomplete copy); download the view again")
        self.table = table
        self.dataset = datasets.Dataset(table)

    @property
    def pin(self) -> ZooPin:
        """What a submission made on this view pins."""
        return self.manifest.pin

    def row_ids(self) -> list[str]:
        """Row ids in view order."""
        return [str(r) for r in self.table.column("row_id").to_pylist()]


def check_compatible(view: HeldOutView, manifest: Manifest) -> None:
    """Refuse to predict a view with a zoo of other layouts / sources than the view's.

    Raises:
        LeaderboardError: an architecture or source of the view differs in the zoo.
    """
    if (manifest.name, manifest.version) != (view.manifest.zoo["name"],
                                             view.manifest.zoo["version"]):
        raise LeaderboardError(
            f"the view {view.manifest.name} belongs to zoo {view.manifest.zoo['name']} "
            f"v{view.manifest.zoo['version']}, not {manifest.name} v{manifest.version}; train "
            "on the public zoo the view names")
    for name, arch in view.manifest.architectures.items():
        ours = manifest.architectures.get(name)
        if ours is None or ours.layout != arch.layout or ours.n_params != arch.n_params:
            raise LeaderboardError(f"architecture {name} of the view has another layer layout "
                                   f"than in zoo {manifest.name}")
    for name, src in view.manifest.sources.items():
        ours = manifest.sources.get(name)
        if ours is None or ours.fingerprint != src.fingerprint:
            raise LeaderboardError(f"source {name} of the view has another fingerprint than in "
                                   f"zoo {manifest.name}")


class ViewedZoo(EvalZoo):
    """The public zoo plus a held-out view, for ``benchmarks.evaluate(zoo=ViewedZoo(...))``
    (``bench run --heldout VIEW``): methods fit on the zoo and also predict the view's rows
    (split ``heldout``); samples are made for the board's target model; every result records
    the view's pin in ``details["heldout"]`` (``bench submit --zoo VIEW`` looks for it).

    Raises:
        LeaderboardError: the view is invalid or belongs to another zoo (layouts, sources).
    """

    def __init__(self, path: str | Path, view: str | Path,
                 data_dir: str | Path | None = None) -> None:
        super().__init__(Path(path), str(data_dir) if data_dir is not None else None)
        self.view = HeldOutView(view)
        check_compatible(self.view, self.manifest)
        self.splits[HELDOUT_SPLIT] = self.view.dataset
        self.result_details = {"heldout": self.view.pin.model_dump(mode="json")}

    def target_model(self, task: TaskMetadata) -> TargetModel:
        """The view's target (the task's activation if it fixes one)."""
        t = self.view.manifest.target
        act = task.finetune.activation if task.finetune and task.finetune.activation \
            else t.activation
        return TargetModel(t.architecture, act, t.num_params)
