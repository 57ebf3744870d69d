"""The heterogeneous benchmark: derived sources, the digits-hetero card and suite, row masks
and leave-one-out splits, padded weight statistics for mixed layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from benchmarks import evaluate
from benchmarks.errors import TaskNotApplicableError
from benchmarks.methods.weight_stats import STATS, layer_statistics, padded_statistics
from benchmarks.registry import SUITES, TASKS
from benchmarks.splits import row_masks
from benchmarks.tasks.metadata import HoldOut, RowFilter, TaskMetadata, ZooRef
from modelzoo.hub.mix import build_mix, load_mix
from modelzoo.sources import clear_cache, load_source
from modelzoo.storage import load_zoo, read_manifest, weights_tensor

ROOT = Path(__file__).resolve().parents[1]
DERIVED = ("digits_transposed", "digits_inverted")

pytestmark = pytest.mark.usefixtures("single_thread")


# --------------------------------------------------------------------------- sources


def test_derived_sources_have_their_own_stable_fingerprints() -> None:
    digits = load_source("digits")
    prints = {"digits": digits.fingerprint}
    for name in DERIVED:
        first = load_source(name).fingerprint
        clear_cache()  # parsed again from scratch: the same fingerprint
        assert load_source(name).fingerprint == first
        prints[name] = first
    assert len(set(prints.values())) == 3


def test_derived_sources_transform_the_digits_images_and_keep_labels_and_partition() -> None:
    digits = load_source("digits")
    t, inv = load_source("digits_transposed"), load_source("digits_inverted")
    for d in (t, inv):
        assert d.sizes() == digits.sizes() and d.num_classes == 10
        assert torch.equal(d.y_test, digits.y_test) and torch.equal(d.y_train, digits.y_train)
        assert torch.equal(d.partition["test"][1], digits.partition["test"][1])
    # transposition keeps the pixel statistics, so the normalised images are transposes
    assert torch.allclose(t.x_test, digits.x_test.transpose(-1, -2))
    assert not torch.allclose(t.x_test, digits.x_test)
    # inversion 16 - x with the same std: normalised images are negated
    assert inv.mean[0] == pytest.approx(1 - digits.mean[0])
    assert torch.allclose(inv.x_test, -digits.x_test, atol=1e-5)


# --------------------------------------------------------------------------- card and suite


def test_hetero_card_has_four_architectures_on_two_sources() -> None:
    mix, members = load_mix(ROOT / "cards" / "digits-hetero.yaml")
    pairs = {(r.architecture, r.source) for r in members}
    archs = {a for a, _ in pairs}
    sources = {s for _, s in pairs}
    assert len(archs) >= 4 and len(sources) >= 2 and len(pairs) == len(archs) * len(sources)
    assert all(len(r.configs()) >= 150 for r in members)
    assert mix.name == "digits-hetero"


def test_suite_covers_pooled_per_architecture_leave_one_out_and_weights_tasks() -> None:
    tasks = [TASKS.get(n) for n in SUITES.get("digits-hetero-v1").tasks]
    assert all(t.zoo.name == "digits-hetero" for t in tasks)
    archs = {"cnn_s", "cnn_l", "ctc_cnn", "mlp"}
    held_arch = {t.holdout.value for t in tasks if t.holdout and t.holdout.by == "architecture"}
    held_src = {t.holdout.value for t in tasks if t.holdout and t.holdout.by == "source"}
    assert held_arch == archs and held_src == {"digits", "digits_transposed"}
    for kind in ("generation", "initialization"):
        assert {t.rows.architecture for t in tasks if t.type == kind and t.rows} == archs
    assert any(t.rows is None and t.holdout is None for t in tasks)


def test_holdout_cannot_also_fix_the_held_out_column() -> None:
    with pytest.raises(ValueError, match="holdout leaves out"):
        TaskMetadata(name="x", description="x", type="regression", zoo=ZooRef(name="z",
                     version="1.0.0"), target="test_acc", metrics=("r2",), main_score="r2",
                     rows=RowFilter(architecture="mlp"),
                     holdout=HoldOut(by="architecture", value="mlp"))


# --------------------------------------------------------------------------- row masks


def _task(**kw: Any) -> TaskMetadata:
    return TaskMetadata(name="t", description="t", type="regression", target="test_acc",
                        zoo=ZooRef(name="z", version="1.0.0"), metrics=("r2",),
                        main_score="r2", **kw)


def test_row_masks_leave_one_out_and_filters() -> None:
    cols = {
        "architecture": np.array(["a", "b", "a", "c", "b"]),
        "source": np.array(["x", "x", "y", "y", "y"]),
        "model_id": np.array(["1", "2", "3", "4", "5"]),
    }
    splits = ("train", "validation", "test")

    def column(_split: str, name: str) -> np.ndarray:
        return cols[name]

    assert row_masks(_task(), column, splits) is None
    loo = row_masks(_task(holdout=HoldOut(by="architecture", value="a")), column, splits)
    assert loo is not None
    assert loo["train"].tolist() == loo["validation"].tolist() == [False, True, False, True, True]
    assert loo["test"].tolist() == [True, False, True, False, False]
    both = row_masks(_task(rows=RowFilter(architecture="b"),
                           holdout=HoldOut(by="source", value="y")), column, splits)
    assert both is not None
    assert both["train"].tolist() == [False, True, False, False, False]
    assert both["test"].tolist() == [False, False, False, False, True]


# --------------------------------------------------------------------------- on a real zoo


@pytest.fixture(scope="module")
def mini_hetero(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 architectures x 2 sources, 8 models each, 1 epoch (a real mix build)."""
    root = tmp_path_factory.mktemp("hetero")
    members = [{"name": f"m-{a}-{s}", "architecture": a, "source": s, "epochs": 1,
                "arch_kwargs": {"hidden": [8]} if a == "mlp" else {},
                "grid": {"seed": list(range(8)), "lr": [0.01]},
                "splits": {"train": 0.5, "validation": 0.25, "test": 0.25, "seed": 0}}
               for a in ("mlp", "cnn_s") for s in ("digits", "digits_transposed")]
    mix = root / "mix.yaml"
    mix.write_text(yaml.safe_dump({"kind": "mix", "name": "digits-hetero",
                                   "members": members}))
    build_mix(mix=mix, out=root / "zoo", threads=1)
    return root / "zoo"


class SpyPredictor:
    """Fit/predict method that records what it is fitted on and asked to predict."""

    name = "spy"

    def __init__(self) -> None:
        self.fit_rows: list[dict[str, set[str]]] = []
        self.predicted: list[set[str]] = []

    def meta(self) -> dict[str, Any]:
        return {}

    def fit(self, train: Any, *, target: str, task_type: str, validation: Any,
            manifest: Any, seed: int) -> None:
        self.fit_rows.append({
            c: set(train.unique(c)) | set(validation.unique(c))
            for c in ("architecture", "source", "model_id")})
        self.mean = float(np.mean(train["test_acc"]))

    def predict(self, dataset: Any, *, manifest: Any) -> np.ndarray:
        self.predicted.append(set(dataset.unique("architecture")))
        # a prediction that varies, so that rank metrics are defined
        return np.asarray(dataset["epoch"], dtype=np.float64) + self.mean


@pytest.mark.parametrize("by,value", [("architecture", "mlp"), ("source", "digits")])
def test_leave_one_out_fits_on_no_model_of_the_held_out_group(
    mini_hetero: Path, by: str, value: str
) -> None:
    task = _task(holdout=HoldOut(by=by, value=value)).model_copy(
        update={"zoo": ZooRef(name="digits-hetero", version="1.0.0")})
    spy = SpyPredictor()
    (res,) = evaluate(method=spy, zoo=mini_hetero, tasks=[task], seeds=1, bootstrap=None)
    held = load_zoo(mini_hetero)
    held_ids = {r["model_id"] for s in ("train", "validation", "test") for r in held[s]
                if r[by] == value}
    fitted = spy.fit_rows[0]
    assert value not in fitted[by] and not fitted["model_id"] & held_ids
    assert len(fitted[by]) == 1  # every other group is there
    test = held["test"]
    expected = sum(1 for r in test if r[by] == value)
    assert expected and res.details["per_seed"] is not None
    # the test score uses held-out test rows only: validation has the other groups
    arch_seen = spy.predicted
    if by == "architecture":
        assert {"mlp"} in arch_seen and {"cnn_s"} in arch_seen


def test_a_missing_held_out_group_is_not_applicable(mini_hetero: Path) -> None:
    task = _task(holdout=HoldOut(by="architecture", value="resnet18")).model_copy(
        update={"zoo": ZooRef(name="digits-hetero", version="1.0.0")})
    with pytest.raises(TaskNotApplicableError, match="no test-split rows"):
        evaluate(method=SpyPredictor(), zoo=mini_hetero, tasks=[task], seeds=1,
                 bootstrap=None)


def test_padded_statistics_align_layers_from_the_output_and_flag_them(
    mini_hetero: Path,
) -> None:
    manifest = read_manifest(mini_hetero)
    train = load_zoo(mini_hetero)["train"]
    x = padded_statistics(train, manifest)
    slots = max(len(e.layout) for e in manifest.architectures.values())
    assert x.shape == (len(train), 8 * slots + len(STATS))
    archs = np.asarray(train["architecture"])
    for arch in ("mlp", "cnn_s"):
        rows = np.flatnonzero(archs == arch)
        layout = list(manifest.architectures[arch].layout)
        start = slots - len(layout)
        w = weights_tensor(train.select(rows.tolist()))
        assert np.allclose(x[rows, 7 * start : 7 * slots], layer_statistics(w, layout).numpy())
        assert np.all(x[rows, : 7 * start] == 0)
        flags = x[rows, 7 * slots : 8 * slots]
        assert np.all(flags[:, start:] == 1) and np.all(flags[:, :start] == 0)
        assert np.allclose(x[rows, 8 * slots + 0], w.double().mean(1).numpy())


def test_padded_weight_stats_score_pooled_and_leave_one_out_tasks(mini_hetero: Path) -> None:
    ref = ZooRef(name="digits-hetero", version="1.0.0")
    tasks = [_task().model_copy(update={"zoo": ref, "name": "pooled"}),
             _task(holdout=HoldOut(by="architecture", value="cnn_s")).model_copy(
                 update={"zoo": ref, "name": "loao"})]
    res = evaluate(method="weight-stats-padded-linear", zoo=mini_hetero, tasks=tasks,
                   seeds=1, allow_unpinned=True)
    assert [r.task.name for r in res] == ["pooled", "loao"]
    assert all(r.main_score.ci is not None for r in res)


def test_sane_windows_of_mixed_architectures_mask_their_padding(mini_hetero: Path) -> None:
    """One token size for both architectures: the MLP's short neurons are padded, the mask
    marks exactly its real weights, and the masked loss ignores whatever the padding holds."""
    from sane import SaneConfig
    from sane.data import SaneWindows, ZooRows, arch_data
    from sane.loss import masked_mse

    cfg = SaneConfig(token_size=289, window_size=93, normalize="none", loss_norm="batch",
                     recon_norm="real")
    rows = ZooRows(mini_hetero, "train")
    manifest = read_manifest(mini_hetero)
    ds = SaneWindows(rows, arch_data(manifest, cfg, None), cfg, seed=0, augment=False)
    seen = set()
    for i in range(len(rows)):
        arch = rows.meta[i]["architecture"]
        if arch in seen:
            continue
        seen.add(arch)
        item = ds[i]
        n_params = manifest.architectures[arch].n_params
        assert int(item["mask"].sum()) == n_params  # the window covers the whole model
        assert torch.all(item["t1"][~item["mask"]] == 0)
        out = item["t1"] + 0.5 * item["mask"]  # error 0.5 on every real weight
        garbage = out.clone()
        garbage[~item["mask"]] = 1e3
        a = masked_mse(out[None], item["t1"][None], item["mask"][None], norm="batch",
                       over="real", valid=item["valid"][None])
        b = masked_mse(garbage[None], item["t1"][None], item["mask"][None], norm="batch",
                       over="real", valid=item["valid"][None])
        assert torch.allclose(a, b)
    assert seen == {"mlp", "cnn_s"}
