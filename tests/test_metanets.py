"""The trained weight-space methods (issue 22): ``nfn-np``, ``nfn-hnp`` (the ``nfn`` package's
NP / HNP layers) and ``graph-metanet`` (a Neural-Graphs-style message-passing network).

Real zoos (the session's tiny CNN-s zoo and its CNN-s + MLP zoo), real training with a tiny
budget. Checked: the three are listed, hidden-neuron permutations (the project's own
function-preserving ones) leave each prediction unchanged while a non-preserving shuffle does
not, no validation or test row reaches a gradient step, the graph method scores an
architecture it never saw (and the NFNs refuse to), both predict a label-free leaderboard
view, and our ``tests`` package wins over the one the ``nfn`` wheel installs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from benchmarks import evaluate
from benchmarks.cli import cli
from benchmarks.errors import MethodError, TaskNotApplicableError
from benchmarks.methods import _trained
from benchmarks.methods._weights import chain_layers
from benchmarks.methods.graph_metanet import GraphMetanetPredictor, graph_template
from benchmarks.methods.nfn import NFNPredictor, to_wsfeat
from benchmarks.registry import METHODS
from benchmarks.tasks.metadata import HoldOut, TaskMetadata, ZooRef
from modelzoo import create_model
from modelzoo.permutation import architecture_permutation_spec, random_permutation
from modelzoo.storage import layer_layout, load_zoo, read_manifest
from tests.process_fixtures import ROOT, repo_env

pytestmark = pytest.mark.usefixtures("single_thread")
NAMES = ("nfn-np", "nfn-hnp", "graph-metanet")
#: A budget that trains in well under a second on the tiny zoos.
TINY_TRAIN = {"epochs": 3, "patience": 2, "batch_size": 8, "lr": 3e-3}


def tiny(name: str) -> Any:
    """The registered method with small networks and the tiny budget (``graph-metanet-both``:
    messages in both directions)."""
    if name.startswith("graph-metanet"):
        return GraphMetanetPredictor(network={"hidden": 8, "layers": 2, "reverse_edges":
                                              name.endswith("both")}, train=TINY_TRAIN)
    return NFNPredictor(name.removeprefix("nfn-"), network={"channels": 4, "head_hidden": 16},
                        train=TINY_TRAIN)


def task(zoo: Path, target: str = "test_acc", **kw: Any) -> TaskMetadata:
    m = read_manifest(zoo)
    return TaskMetadata(name=f"t-{target}", description="test task", type="regression"
                        if target == "test_acc" else "classification",
                        zoo=ZooRef(name=m.name, version=m.version), target=target,
                        metrics=("kendall_tau",) if target == "test_acc" else ("accuracy",),
                        main_score="kendall_tau" if target == "test_acc" else "accuracy", **kw)


def test_bench_ls_lists_the_three_methods() -> None:
    out = CliRunner().invoke(cli, ["ls"], catch_exceptions=False).output
    for name in NAMES:
        assert name in METHODS and name in out
        assert METHODS.get(name)().name == name


# --------------------------------------------------------------------------- conversions


def test_layouts_become_nfn_features_and_graphs_with_flatten_blocks() -> None:
    manifest_layout = layer_layout(create_model("cnn_s", in_channels=1, num_classes=10,
                                                image_size=8, activation="relu", dropout=0.0))
    layers = chain_layers(manifest_layout, "cnn_s")
    assert [(la.kind, la.n_out, la.n_in, la.kernel) for la in layers] == [
        ("conv", 8, 1, (5, 5)), ("conv", 6, 8, (5, 5)), ("conv", 4, 6, (2, 2)),
        ("flatten", 20, 4, (3, 3)), ("linear", 10, 20, (1, 1))]
    w = torch.randn(2, sum(s.numel for s in manifest_layout))
    feats = to_wsfeat(w, layers)
    fl = layers[3]
    assert feats.weights[3].shape == (2, 1, 20, 4, 3, 3) and feats.biases[4].shape == (2, 1, 10)
    # the [20, 36] matrix read as one 3x3 block per (unit, channel)
    assert torch.equal(feats.weights[3][1, 0, 7, 2].reshape(-1),
                       w[1, fl.weight + 7 * 36 + 2 * 9: fl.weight + 7 * 36 + 3 * 9])
    g = graph_template(manifest_layout, "cnn_s", kernel=5)
    assert g.n_nodes == 1 + 8 + 6 + 4 + 20 + 10
    assert g.kernel_index.shape == (8 + 48 + 24 + 80 + 200, 25)
    assert g.edge_index.shape == (2, 2 * 360)  # every edge both ways
    # every weight sits in exactly one edge; every bias in one node
    used = torch.cat([g.kernel_index.reshape(-1), g.bias_index])
    assert sorted(used[used < g.n_params].tolist()) == list(range(g.n_params))
    with pytest.raises(MethodError, match="kernels up to 3x3"):
        graph_template(manifest_layout, "cnn_s", kernel=3)
    resnet = create_model("resnet18", in_channels=3, num_classes=10, image_size=32,
                          activation="relu", dropout=0.0, width=4)
    with pytest.raises(MethodError, match="ResNets .* out of scope"):
        chain_layers(layer_layout(resnet), "resnet18")


# --------------------------------------------------------------------------- invariance


def _rows(arch: list[str], weights: list[np.ndarray]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"architecture": arch,
                                       "weights": [w.tolist() for w in weights]})


def _first_layer_rows_only(spec: Any, perm: torch.Tensor) -> torch.Tensor:
    """A gather index that permutes the first layer's units (weight rows, bias) but not the
    next layer's input columns: a different function."""
    idx = torch.arange(spec.n_params)
    group = spec.groups[0]
    for m in group.members[:-1]:  # the last member: the next layer's inputs
        n = m.outer * group.size * m.inner
        seg = idx[m.offset: m.offset + n].view(m.outer, group.size, m.inner)
        idx[m.offset: m.offset + n] = seg[:, perm, :].reshape(-1)
    return idx


@pytest.mark.parametrize("name", [*NAMES, "graph-metanet-both"])
def test_hidden_neuron_permutations_leave_predictions_unchanged(
    name: str, hetero_zoo: Path
) -> None:
    """Fitted on CNN-s + MLP rows; the test rows and their permuted copies predict alike."""
    manifest = read_manifest(hetero_zoo)
    zoo = load_zoo(hetero_zoo)
    method = tiny(name)
    method.fit(zoo["train"], target="test_acc", task_type="regression",
               validation=zoo["validation"], manifest=manifest, seed=0)
    gen = torch.Generator().manual_seed(0)
    archs, orig, perm, broken = [], [], [], []
    for row in zoo["test"].select_columns(["architecture", "weights"]):
        entry = manifest.architectures[row["architecture"]]
        spec = architecture_permutation_spec(entry.name, entry.layout)
        w = torch.tensor(row["weights"])
        idx = random_permutation(spec, generator=gen)
        assert not torch.equal(idx, torch.arange(len(w)))
        # not function-preserving: the first layer's units move, the next layer's inputs not
        bad = _first_layer_rows_only(spec, torch.randperm(spec.sizes[0], generator=gen))
        archs.append(row["architecture"])
        orig.append(w.numpy())
        perm.append(w[idx].numpy())
        broken.append(w[bad].numpy())
    p0 = method.predict(_rows(archs, orig), manifest=manifest)
    p1 = method.predict(_rows(archs, perm), manifest=manifest)
    p2 = method.predict(_rows(archs, broken), manifest=manifest)
    assert len(set(archs)) == 2 and np.std(p0) > 1e-6  # both architectures, not constant
    # rows of mixed architectures are predicted in their own order
    order = np.argsort(np.asarray(archs, dtype=object) == archs[0], kind="stable")
    alone = method.predict(_rows([archs[i] for i in order], [orig[i] for i in order]),
                           manifest=manifest)
    np.testing.assert_allclose(alone, p0[order], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(p1, p0, rtol=1e-4, atol=1e-5)
    # a shuffle that changes the function is seen, far above the rounding of the above
    assert np.abs(p2 - p0).max() > max(20 * np.abs(p1 - p0).max(), 1e-6)


# --------------------------------------------------------------------------- no leakage


@pytest.mark.parametrize("name", NAMES)
def test_no_validation_or_test_row_reaches_a_gradient_step(
    name: str, tiny_zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, int]] = []
    real = _trained.train_step

    def spy(net: Any, opt: Any, batch: _trained.Batch, coder: Any) -> float:
        assert torch.is_grad_enabled() and net.training
        seen.extend(batch.keys)
        return real(net, opt, batch, coder)

    monkeypatch.setattr(_trained, "train_step", spy)
    method = tiny(name)
    (res,) = evaluate(method=method, zoo=tiny_zoo, tasks=[task(tiny_zoo, "activation")],
                      seeds=1, bootstrap=None, allow_unpinned=True)
    zoo = load_zoo(tiny_zoo)
    keys = {s: {(r["model_id"], r["epoch"]) for r in zoo[s].select_columns(
        ["model_id", "epoch"])} for s in ("train", "validation", "test")}
    assert seen and set(seen) <= keys["train"]
    assert not set(seen) & (keys["validation"] | keys["test"])
    (fit,) = res.method.meta["fits"]
    facts = fit["groups"]
    assert all(f["best_val_loss"] is not None for f in facts.values())  # validation: scored
    assert 0.0 <= res.main_score.mean <= 1.0


# --------------------------------------------------------------------------- architectures


def test_graph_metanet_scores_an_architecture_it_never_saw(
    hetero_zoo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trained_on: set[str] = set()
    real = _trained.train_step
    zoo = load_zoo(hetero_zoo)
    arch_of = {(r["model_id"], r["epoch"]): r["architecture"] for s in ("train", "validation")
               for r in zoo[s].select_columns(["model_id", "epoch", "architecture"])}

    def spy(net: Any, opt: Any, batch: _trained.Batch, coder: Any) -> float:
        trained_on.update(arch_of[k] for k in batch.keys)
        return real(net, opt, batch, coder)

    monkeypatch.setattr(_trained, "train_step", spy)
    loao = task(hetero_zoo, holdout=HoldOut(by="architecture", value="mlp-16"))
    (res,) = evaluate(method=tiny("graph-metanet"), zoo=hetero_zoo, tasks=[loao], seeds=1,
                      allow_unpinned=True, bootstrap=None)
    assert trained_on == {"cnn_s"}
    assert np.isfinite(res.main_score.mean)
    with pytest.raises(TaskNotApplicableError, match="one network per architecture"):
        evaluate(method=tiny("nfn-np"), zoo=hetero_zoo, tasks=[loao], seeds=1,
                 allow_unpinned=True, bootstrap=None)


@pytest.mark.parametrize("name", ["nfn-hnp", "graph-metanet"])
def test_metanets_predict_a_label_free_view(name: str, hetero_zoo: Path,
                                            tmp_path: Path) -> None:
    from benchmarks.leaderboard.schema import BoardRules
    from benchmarks.leaderboard.view import HeldOutView, ViewedZoo, ViewTarget, write_view
    from benchmarks.results import load_predictions, load_results
    from benchmarks.zoo import EvalZoo

    m = read_manifest(hetero_zoo)
    view = tmp_path / "view"
    write_view(test=EvalZoo(hetero_zoo).splits["test"], secret=b"k", out=view,
               name=f"{m.name}-heldout", version=m.version,
               zoo={"name": m.name, "version": m.version}, architectures=m.architectures,
               sources=m.sources, tasks=["t-test_acc"],
               target=ViewTarget(architecture="cnn_s", activation="relu",
                                 num_params=m.architectures["cnn_s"].n_params),
               rules=BoardRules())
    evaluate(method=tiny(name), zoo=ViewedZoo(hetero_zoo, view), tasks=[task(hetero_zoo)],
             seeds=1, out=tmp_path / "res", save_predictions=True, allow_unpinned=True,
             bootstrap=None)
    (res,) = load_results(tmp_path / "res")
    pred = load_predictions(res, tmp_path / "res").to_pandas()
    rows = HeldOutView(view).dataset
    assert sorted(pred.row_id[pred.seed == 0]) == sorted(rows["row_id"])
    assert np.isfinite(pred.prediction.astype(float)).all()


def test_our_tests_package_wins_over_the_nfn_wheels(tmp_path: Path) -> None:
    """The nfn wheel installs a top-level ``tests`` package into site-packages: under pytest
    and in subprocesses started with the repository on PYTHONPATH (:func:`repo_env`), from
    any working directory, ``tests`` is still ours."""
    import tests

    assert Path(tests.__file__).resolve().parent == ROOT / "tests"
    code = ("import importlib.util, tests, tests.process_fixtures; "
            "assert importlib.util.find_spec('tests.test_layers') is None; print(tests.__file__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=repo_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert Path(out.stdout.strip()).resolve().parent == ROOT / "tests"


def test_reproductions_run_the_metanets() -> None:
    from benchmarks.reproduce import REPRODUCTIONS
    from benchmarks.reproduce_hetero import SEEDS, _plan

    assert set(NAMES) <= set(REPRODUCTIONS["digits-v2"].methods)
    zoos = {f"{k}-{a}": Path() for k in ("arch", "without") for a in ("cnn_s", "mlp")}
    plan = {m: names for m, _, names in _plan(zoos, NAMES)}
    assert "digits-hetero-loao-mlp-test-acc" in plan["graph-metanet"]
    assert "digits-hetero-mlp-test-acc" in plan["nfn-np"]
    assert not any("loao" in n for n in plan["nfn-np"] + plan["nfn-hnp"])
    assert len(plan["graph-metanet"]) - len(plan["nfn-np"]) == 4  # 2 archs x 2 loao targets
    assert all(SEEDS[m] == 2 for m in NAMES)
