"""``zoo import``: the field's public zoos from their exact on-disk layouts (issue 21).

Fixtures (:mod:`tests.import_fixtures`) are written in each format's real layout with its
traps; every format is imported end to end through the CLI, and one import runs in a real
subprocess with a plugin format.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import random
import subprocess
import sys
import tarfile
import types
import zipfile
from pathlib import Path

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from benchmarks.cli import cli as bench_cli
from benchmarks.errors import ZooMismatchError
from benchmarks.registry import TASKS
from benchmarks.zoo import check_pin
from modelzoo.architectures import create_model
from modelzoo.cli import main as zoo_cli
from modelzoo.errors import UnsafeFileError
from modelzoo.importers import import_zoo
from modelzoo.importers.ctc import CTCFormat, RowReader
from modelzoo.storage import load_flat_weights, load_zoo, read_manifest
from modelzoo.storage.atomic import file_sha256
from tests.import_fixtures import (
    ctc_forward_tf,
    torchvision_resnet18_state,
    write_ctc,
    write_modelzoos,
    write_modelzoos_cnn_l,
    write_modelzoos_resnet,
    write_pdiff,
    write_wildpark,
)
from tests.source_fixtures import WRITERS, make_pools
from tests.test_plugins import make_plugin

ROOT = Path(__file__).resolve().parents[1]


def _zoo(*args: object) -> str:
    res = CliRunner().invoke(zoo_cli, [*map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


def _rows(path: Path) -> pd.DataFrame:
    parts = load_zoo(path)
    return pd.concat([parts[s].to_pandas() for s in parts]).sort_values(["model_id", "epoch"])


def _net(entry, row) -> torch.nn.Module:
    net = create_model(entry.name, **{**entry.kwargs, "activation": row["activation"]})
    return load_flat_weights(net, torch.tensor(np.asarray(row["weights"], np.float32)),
                             entry.layout).eval()


@pytest.fixture(scope="module")
def modelzoos(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    tmp = tmp_path_factory.mktemp("mz")
    trials = write_modelzoos(tmp / "tune_zoo_mnist_hyperparameter_10_random_seeds", crashed=True)
    out = tmp / "zoo"
    text = _zoo("import", "modelzoos", tmp / "tune_zoo_mnist_hyperparameter_10_random_seeds",
                "--out", out, "--no-progress")
    assert "5 models, 15 checkpoints" in text and "flag epochs_without_checkpoint: 1" in text
    return tmp / "tune_zoo_mnist_hyperparameter_10_random_seeds", out, trials


def test_modelzoos_layout_traps_metrics_and_splits(modelzoos) -> None:
    root, out, trials = modelzoos
    man = read_manifest(out)
    assert man.name == "modelzoos-mnist-cnn_s" and man.num_rows == 15
    df = _rows(out)
    by = {name: df[df["seed"] == t["params"]["seed"]]["model_id"].iloc[0]
          for name, t in trials.items()}
    # a NaN checkpoint: diverged from there on; a missing result line: incomplete, NaN metrics
    nan = df[df["model_id"] == by["t_nan"]]
    assert nan["status"].tolist() == ["ok", "diverged", "diverged"]
    # an exploding weight (|w| > 1e6), as `zoo build` flags it: diverged, kept
    relu = df[df["model_id"] == by["t_relu"]]
    assert relu["status"].tolist() == ["ok", "ok", "diverged"]
    assert man.models[by["t_relu"]].status == "diverged"
    noline = df[df["model_id"] == by["t_noline"]]
    assert noline["status"].tolist() == ["ok", "incomplete", "ok"]
    assert np.isnan(noline["test_acc"].iloc[1]) and man.models[by["t_noline"]].status == \
        "incomplete"
    flags = man.recipe["origin"]["flags"]
    assert flags["epochs_without_checkpoint"] == {by["t_nan"]: [3]}
    assert flags["checkpoints_without_result_line"] == {by["t_noline"]: [1]}
    assert flags["unparsable_result_lines"] == {by["t_nan"]: 1}
    assert "dataset.pt" in flags["skipped_in_zoo_folder"]
    crashed = "NN_tune_trainable_t_crashed_00099_model::nlin=tanh"
    assert flags["trials_without_checkpoints"] == [crashed]
    # metrics matched on training_iteration (t_plain's lines are written as 2, 0, 1)
    plain = df[df["model_id"] == by["t_plain"]]
    seed = plain["seed"].iloc[0]
    assert np.allclose(plain["test_acc"], [0.1 + 0.2 * e + 0.01 * seed for e in range(3)])
    assert np.allclose(plain["ggap"], plain["train_acc"] - plain["test_acc"])
    drop = df[df["model_id"] == by["t_dropout"]].iloc[0]
    assert (drop["activation"], drop["dropout"], drop["optimizer"], drop["batch_size"],
            drop["lr"], drop["weight_decay"]) == ("tanh", 0.5, "adam", 10, 1e-3, 1e-4)
    assert man.recipe["origin"]["unmapped_hyperparameters"] == ["optim::momentum"]
    # each imported checkpoint computes what the original network computes (dropout-shifted
    # module_list indices, un-padded and padded checkpoint names)
    entry = man.architectures["cnn_s"]
    x = torch.randn(4, 1, 28, 28)
    for name, mid in by.items():
        for _, row in df[df["model_id"] == mid].iterrows():
            if row["status"] == "diverged":
                continue
            ref = trials[name]["models"][row["epoch"]].eval()
            with torch.no_grad():
                assert torch.allclose(_net(entry, row)(x), ref(x), atol=1e-5)
    # Model Zoos' split: random.seed(42); random.shuffle(<every sub-folder, sorted>); 70/15/15
    # (the crashed trial is no model but takes its place in the shuffle, as in the original)
    names = sorted(p.name for p in root.iterdir() if p.is_dir())
    assert len(names) == 6 and crashed in names
    random.seed(42)
    random.shuffle(names)
    n = len(names)
    i1, i2 = int(0.7 * n), int(0.7 * n) + int(0.15 * n)
    want = {nm: "train" if i < i1 else "validation" if i < i2 else "test"
            for i, nm in enumerate(names)}
    assert {trials[name]["folder"]: man.models[mid].split for name, mid in by.items()} == \
        {k: v for k, v in want.items() if k != crashed}
    assert man.recipe["origin"]["splits"]["folders_shuffled_without_a_model"] == 1


def test_modelzoos_validates_loads_publishes_and_hashes_the_same(modelzoos, tmp_path) -> None:
    root, out, _ = modelzoos
    assert "15 checkpoints as the modelzoos origin files held" in _zoo("validate", out)
    ds = datasets.load_dataset(str(out))
    assert sum(len(ds[s]) for s in ds) == 15
    again = import_zoo(format="modelzoos", path=root, out=tmp_path / "again")
    assert again.content_hash == read_manifest(out).content_hash
    assert import_zoo(format="modelzoos", path=root, out=out).created == read_manifest(out).created
    _zoo("publish", out, "--out", tmp_path / "pub")
    pub = datasets.load_dataset(str(tmp_path / "pub"))
    assert sum(len(pub[s]) for s in pub) == 15


def test_modelzoos_resnet18_batchnorm_buffers(tmp_path: Path) -> None:
    root = tmp_path / "tune_zoo_cifar10_resnet18_kaiming_uniform"
    states = write_modelzoos_resnet(root)
    man = import_zoo(format="modelzoos", path=root, out=tmp_path / "zoo")
    entry = man.architectures["resnet18"]
    assert entry.kwargs["width"] == 4 and any(s.kind == "buffer" for s in entry.layout)
    df = _rows(tmp_path / "zoo")
    assert df["schedule"].tolist() == ["onecycle"] * 2 and df["optimizer"].iloc[0] == "sgd"
    x = torch.randn(2, 3, 32, 32)
    for _, row in df.iterrows():
        ref = create_model("resnet18", in_channels=3, num_classes=10, image_size=32, width=4)
        ref.load_state_dict({k.replace("downsample", "shortcut"): v
                             for k, v in states[row["epoch"]].items()})
        with torch.no_grad():
            assert torch.allclose(_net(entry, row)(x), ref.eval()(x), atol=1e-5)
    assert torchvision_resnet18_state()["layer2.0.downsample.0.weight"].ndim == 4


def test_modelzoos_cnn_l(tmp_path: Path) -> None:
    nets = write_modelzoos_cnn_l(tmp_path / "tune_zoo_cifar10_large_hyperparameter")
    man = import_zoo(format="modelzoos", path=tmp_path / "tune_zoo_cifar10_large_hyperparameter",
                     out=tmp_path / "zoo")
    entry = man.architectures["cnn_l"]
    assert entry.n_params == 10853 and man.name == "modelzoos-cifar10-cnn_l"
    assert next(iter(man.sources)) == "cifar10"  # 3x32x32, as the registered source
    x = torch.randn(2, 3, 32, 32)
    for _, row in _rows(tmp_path / "zoo").iterrows():
        with torch.no_grad():
            assert torch.allclose(_net(entry, row)(x), nets[row["epoch"]].eval()(x), atol=1e-5)


def _nfn_reference(root: Path, split_file: Path) -> dict[str, str]:
    """NFN's ZooDataset split, written the way experiments/data_utils.py computes it."""
    shuffled = pd.read_csv(split_file, header=None).values.flatten()
    metrics = pd.read_csv(root / "metrics.csv.gz", compression="gzip").iloc[shuffled]
    metrics = metrics[metrics["step"] == 86]
    metrics.index = np.arange(0, len(metrics))
    test_point = int(0.5 * len(metrics))
    trainval = list(range(test_point))
    val_point = int(0.8 * len(trainval))
    random.Random(0).shuffle(trainval)
    out = {}
    for name, idx in (("train", trainval[:val_point]), ("validation", trainval[val_point:]),
                      ("test", range(test_point, len(metrics)))):
        for i in idx:
            out.setdefault(metrics.iloc[i]["modeldir"], name)
    return out


def test_ctc_tf_layout_reference_forward_and_nfn_split(tmp_path: Path) -> None:
    root = tmp_path / "cifar10"
    fx = write_ctc(root, models=6)
    out = tmp_path / "zoo"
    text = _zoo("import", "ctc", root, "--splits", "nfn", "--split-file", fx["split_file"],
                "--out", out, "--no-progress")
    assert "6 models, 53 checkpoints" in text
    man = read_manifest(out)
    assert man.name == "ctc-cifar10-gs" and man.architectures["ctc_cnn"].n_params == 4970
    assert "53 checkpoints as the ctc origin files held" in _zoo("validate", out)
    df = _rows(out)
    # grouped by modeldir: 9 steps each, the last model without step 86
    assert sorted(df.groupby("model_id").size().tolist()) == [8, 9, 9, 9, 9, 9]
    dirs = {m["modeldir"]: m for m in fx["metrics"]}
    mid_of = {d: f"ctc_cnn-cifar10_gs-{hashlib.sha256(d.encode()).hexdigest()[:12]}"
              for d in dirs}
    # the imported model computes the function of the Keras-layout weights (numpy reference)
    entry = man.architectures["ctc_cnn"]
    x = np.random.default_rng(1).standard_normal((2, 32, 32, 1)).astype(np.float32)
    index = {(m["modeldir"], m["step"]): i for i, m in enumerate(fx["metrics"])}
    checked = 0
    for d, mid in mid_of.items():
        sel = (df["model_id"] == mid) & df["epoch"].isin([0, 86]) & (df["status"] == "ok")
        for _, row in df[sel].iterrows():
            tf_row = fx["weights"][index[(d, row["epoch"])]]
            ref = ctc_forward_tf(tf_row, x, row["activation"])
            with torch.no_grad():
                got = _net(entry, row)(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
            assert np.allclose(got, ref, atol=1e-4)
            checked += 1
    assert checked == 10  # 6 models x steps 0 and 86, less a missing step 86 and a NaN one
    # hyperparameters into typed columns, Keras names mapped; divergence flagged
    first = df[df["model_id"] == mid_of["/cns/ctc/cifar10/1000"]].iloc[0]
    assert (first["init"], first["optimizer"], first["seed"], first["activation"]) == \
        ("kaiming_normal", "adam", 100, "relu")
    assert man.models[mid_of["/cns/ctc/cifar10/1037"]].status == "diverged"
    assert "config.init_std" in man.recipe["origin"]["unmapped_hyperparameters"]
    # NFN's protocol, exactly
    ref = _nfn_reference(root, fx["split_file"])
    assert {d: man.models[mid_of[d]].split for d in ref} == ref
    no86 = mid_of[f"/cns/ctc/cifar10/{1000 + 37 * 5}"]
    assert man.models[no86].split != "test"
    sp = man.recipe["origin"]["splits"]
    assert sp["rows_listed_twice"] == 1 and sp["models_without_step_86_to_train_validation"] == 1
    assert man.recipe["origin"]["split_file"]["name"] == "cifar10_split.csv"
    origin = man.recipe["origin"]
    assert man.recipe["format"] == origin["format"] == "ctc"
    assert origin["files"]["listing"] == {f: file_sha256(root / f) for f in
                                          ("layout.csv", "metrics.csv.gz", "weights.npy")}
    assert origin["split_file"]["sha256"] == file_sha256(fx["split_file"])


def test_ctc_import_resumes_after_a_crash_with_the_same_hash(tmp_path, monkeypatch) -> None:
    root = tmp_path / "cifar10"
    write_ctc(root, models=6)
    clean = import_zoo(format="ctc", path=root, out=tmp_path / "clean")
    plan = CTCFormat.plan
    monkeypatch.setattr(CTCFormat, "plan",
                        lambda self, r, o: dataclasses.replace(plan(self, r, o), group_rows=18))
    take, calls = RowReader.take, []

    def failing(self, idx, columns=None):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return take(self, idx, columns)

    monkeypatch.setattr(RowReader, "take", failing)
    with pytest.raises(KeyboardInterrupt):
        import_zoo(format="ctc", path=root, out=tmp_path / "z")
    assert not (tmp_path / "z" / "zoo.json").exists()
    assert len(list((tmp_path / "z" / ".build" / "done").glob("g*.json"))) == 1
    reads = []
    monkeypatch.setattr(RowReader, "take",
                        lambda self, idx, cols=None: reads.append(1) or take(self, idx, cols))
    resumed = import_zoo(format="ctc", path=root, out=tmp_path / "z")
    assert resumed.content_hash == clean.content_hash
    assert len(reads) == 2  # groups 1 and 2 of 3: the committed group 0 is not read again


def test_wildpark_heterogeneous_and_pickled_config_refused(tmp_path: Path) -> None:
    trials = write_wildpark(tmp_path / "cifar10_zooV2")
    out = tmp_path / "zoo"
    _zoo("import", "wildpark", tmp_path / "cifar10_zooV2", "--out", out, "--no-progress")
    man = read_manifest(out)
    assert man.num_models == 3 and man.num_rows == 6 and len(man.architectures) == 2
    _zoo("validate", out)
    configs = datasets.get_dataset_config_names(str(out))
    assert "all" in configs and len(configs) == 3
    for cfg in configs:
        if cfg != "all":
            part = datasets.load_dataset(str(out), cfg)
            assert len({a for s in part for a in part[s]["architecture"]}) == 1
    df = _rows(out)
    x = torch.randn(2, 3, 32, 32)
    for _, row in df.iterrows():
        name = next(t for t in trials if
                    f"-{hashlib.sha256(t.encode()).hexdigest()[:12]}"
                    in row["model_id"])
        ck = trials[name][row["epoch"] - 1]
        entry = man.architectures[row["architecture"]]
        ref = create_model("park_cnn", **entry.kwargs)
        ref.load_state_dict(ck["model"])
        with torch.no_grad():
            assert torch.allclose(_net(entry, row)(x), ref.eval()(x), atol=1e-5)
        assert row["test_acc"] == pytest.approx(ck["last_result"]["test/acc"])
        assert row["lr"] == 1e-3 and row["batch_size"] == 128
    # Neural Graphs' cnn_park_splits.json (as generate_cnn_park_splits.py writes it: per
    # split, checkpoint paths under the zoo folder, with their scores and steps)
    names = sorted(trials)
    split_json = {key: {"path": [f"data/cifar10_zooV2/{t}/checkpoint_{i:06d}/checkpoint.pt"
                                 for i in (2, 1)], "score": [0.5, 0.4], "step": [2, 1]}
                  for key, t in zip(("train", "val", "test"), names)}
    sf = tmp_path / "cnn_park_splits.json"
    sf.write_text(json.dumps(split_json))
    _zoo("import", "wildpark", tmp_path / "cifar10_zooV2", "--splits", "neural-graphs",
         "--split-file", sf, "--out", tmp_path / "ng", "--no-progress")
    ng = read_manifest(tmp_path / "ng")
    split_of = {mid.rsplit("-", 1)[1]: e.split for mid, e in ng.models.items()}
    assert split_of == {hashlib.sha256(t.encode()).hexdigest()[:12]: split
                        for t, split in zip(names, ("train", "validation", "test"))}
    write_wildpark(tmp_path / "pickled", pickled_config=True)
    res = CliRunner().invoke(zoo_cli, ["import", "wildpark", str(tmp_path / "pickled"),
                                       "--out", str(tmp_path / "no")])
    assert res.exit_code == 2
    assert "checkpoint.pt needs pickle" in res.output and "SimpleNamespace" in res.output


def test_pdiff_partial_parameter_vectors(tmp_path: Path) -> None:
    states = write_pdiff(tmp_path / "cifar100_resnet18")
    out = tmp_path / "zoo"
    text = _zoo("import", "pdiff", tmp_path / "cifar100_resnet18", "--out", out, "--no-progress")
    assert "flag skipped_files: 1" in text
    man = read_manifest(out)
    (key, entry), = man.architectures.items()
    assert entry.name == "partial" and entry.n_params == 64
    assert [s.name for s in entry.layout][:4] == ["layer4.1.bn1.weight", "layer4.1.bn1.bias",
                                                  "layer4.1.bn1.running_mean",
                                                  "layer4.1.bn1.running_var"]
    assert [s.kind for s in entry.layout][2:4] == ["buffer", "buffer"]
    df = _rows(out)
    assert df["epoch"].tolist() == [0, 10, 20, 30, 40] and df["seed"].tolist() == [40] * 5
    assert np.allclose(df["test_acc"], [0.7612 + 0.001 * i for i in range(5)])
    want = torch.cat([states[2][s.name].reshape(-1) for s in entry.layout]).numpy()
    assert np.allclose(np.asarray(df.iloc[2]["weights"]), want)


def test_unsafe_files_and_escaping_paths_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "mnist_zoo"
    write_modelzoos(root)
    trial = sorted(p for p in root.iterdir() if p.is_dir())[0]
    ck = sorted(trial.glob("checkpoint_*"))[0] / "checkpoints"
    torch.save({"w": types.SimpleNamespace(a=1)}, ck)
    res = CliRunner().invoke(zoo_cli, ["import", "modelzoos", str(root), "--out",
                                       str(tmp_path / "o1")])
    assert res.exit_code == 2 and str(ck) in res.output and "needs pickle" in res.output
    outside = tmp_path / "outside.pt"
    torch.save({"w": torch.zeros(1)}, outside)
    ck.unlink()
    ck.symlink_to(outside)
    with pytest.raises(UnsafeFileError, match="outside the folder"):
        import_zoo(format="modelzoos", path=root, out=tmp_path / "o2")
    with pytest.raises(Exception, match="inside the folder being imported"):
        import_zoo(format="modelzoos", path=root, out=root / "zoo")


PLUGIN = '''
"""A plugin zoo format: a folder of <model>_<epoch>.pt state dicts of a 2-layer MLP."""
from pathlib import Path

import numpy as np

from modelzoo import create_model
from modelzoo.importers import FormatPlan, ModelRows, ZooFormat, register_format
from modelzoo.importers.base import load_tensors, map_state_dict, walk_files
from modelzoo.importers.splits import hash_splits
from modelzoo.storage import layer_layout
from modelzoo.storage.manifest import ArchitectureEntry, SourceEntry


@register_format
class ToyFormat(ZooFormat):
    name = "toyzoo"
    description = "plugin: <model>_<epoch>.pt files"

    def origin_files(self, root):
        return walk_files(root, lambda p: p.suffix == ".pt")

    def plan(self, root, options):
        files = self.origin_files(root)
        kw = {"in_channels": 1, "num_classes": 10, "image_size": 8, "hidden": [4]}
        layout = layer_layout(create_model("mlp", **kw))
        by = {}
        for f in files:
            m, e = f.stem.rsplit("_", 1)
            by.setdefault(m, []).append((int(e), f))

        def rows(ids):
            for m in ids:
                items = sorted(by[m])
                w = np.stack([map_state_dict(load_tensors(f), layout, f) for _, f in items])
                yield ModelRows(m, np.array([e for e, _ in items]), w, {}, np.ones(len(items),
                                bool), {})

        return FormatPlan(
            name="toy", description="", license="unknown",
            architectures={"mlp": ArchitectureEntry(name="mlp", kwargs=kw, n_params=sum(
                s.numel for s in layout), layout=layout)},
            sources={"digits": SourceEntry(name="digits", fingerprint="x", num_classes=10,
                                           in_shape=(1, 8, 8))},
            models={m: ("mlp", len(v)) for m, v in by.items()}, splits=hash_splits(by),
            split_protocol={}, rows=rows)
'''


def test_a_plugin_adds_a_format_real_subprocess(tmp_path: Path) -> None:
    site = make_plugin(tmp_path / "site", "[modelzoo.importers]\ntoyzoo = toy_fmt.fmt\n",
                       {"toy_fmt/__init__.py": "", "toy_fmt/fmt.py": PLUGIN})
    data = tmp_path / "toy"
    data.mkdir()
    for m in ("a", "b"):
        for e in (0, 1):
            torch.save(create_model("mlp", in_channels=1, image_size=8, hidden=(4,)).state_dict(),
                       data / f"{m}_{e}.pt")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(site)])}
    p = subprocess.run([sys.executable, "-m", "modelzoo.cli", "import", "toyzoo", str(data),
                        "--out", str(tmp_path / "zoo"), "--no-progress"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert "2 models, 4 checkpoints" in p.stdout
    assert read_manifest(tmp_path / "zoo").recipe["format"] == "toyzoo"


def _bench(*args: object) -> str:
    res = CliRunner().invoke(bench_cli, [*map(str, args)])
    assert res.exit_code == 0, res.output
    return res.output


def test_suites_run_on_imported_fixtures(tmp_path: Path) -> None:
    root = tmp_path / "cifar10"
    fx = write_ctc(root, models=12)
    ctc = import_zoo(format="ctc", path=root, out=tmp_path / "ctc", splits="nfn",
                     split_file=fx["split_file"])
    task = TASKS.get("ctc-cifar10-gs-test-acc-86")
    with pytest.raises(ZooMismatchError, match="split_file_sha256.*num_rows 107 .pinned: 270000"):
        check_pin(task, ctc, allow_unpinned=False)
    out = tmp_path / "r"
    _bench("run", "--suite", "ctc-cifar10-gs-v1", "--zoo", tmp_path / "ctc", "--method",
           "weight-stats-gbt", "--allow-unpinned", "--seeds", 1, "--out", out)
    res = json.loads((out / "weight-stats-gbt" / "ctc-cifar10-gs-v1.0.0" /
                      "ctc-cifar10-gs-test-acc-86.json").read_text())
    assert res["zoo"]["matches_pin"] is False and "kendall_tau" in res["scores"]["test"]
    table = _bench("table", out, "--published", "ctc-cifar10-gs-v1")
    assert "0.915" in table and "StatNN (verified)" in table and "not run" in table
    write_modelzoos(tmp_path / "mz_mnist", extra=3)  # 8 models: 5 train, 1 validation, 2 test
    mz = tmp_path / "mz"
    import_zoo(format="modelzoos", path=tmp_path / "mz_mnist", out=mz)
    data = tmp_path / "data"
    WRITERS["mnist"](data, make_pools("mnist"))
    common = ("--suite", "modelzoos-mnist-cnn_s-v1", "--zoo", mz, "--allow-unpinned", "--seeds",
              1, "--data-dir", data, "--out", out)
    _bench("run", "--method", "chance", *common)
    _bench("run", "--method", "zoo-init", *common)
    got = {f.stem for f in out.rglob("modelzoos-mnist-cnn_s-*.json")}
    assert got == {"modelzoos-mnist-cnn_s-test-acc", "modelzoos-mnist-cnn_s-epoch",
                   "modelzoos-mnist-cnn_s-ggap", "modelzoos-mnist-cnn_s-generation"}
    assert "as quoted, unverified" in _bench("table", out, "--published",
                                             "modelzoos-mnist-cnn_s-v1")
    # the SVHN suites: CTC SVHN-GS (NFN split) and Model Zoos CNN-s on 28 px grayscale SVHN
    svhn = tmp_path / "svhn_cropped"
    fx = write_ctc(svhn, models=12)
    man = import_zoo(format="ctc", path=svhn, out=tmp_path / "ctc-svhn", splits="nfn",
                     split_file=fx["split_file"])
    assert man.name == "ctc-svhn-gs" and next(iter(man.sources)) == "svhn_gs"
    with pytest.raises(ZooMismatchError, match="split_file_sha256.*num_rows 107 .pinned: 269892"):
        check_pin(TASKS.get("ctc-svhn-gs-test-acc-86"), man, allow_unpinned=False)
    _bench("run", "--suite", "ctc-svhn-gs-v1", "--zoo", tmp_path / "ctc-svhn", "--method",
           "weight-stats-gbt", "--allow-unpinned", "--seeds", 1, "--out", out)
    write_modelzoos(tmp_path / "tune_zoo_svhn_hyperparameter_10_random_seeds", extra=3)
    man = import_zoo(format="modelzoos", out=tmp_path / "mz-svhn",
                     path=tmp_path / "tune_zoo_svhn_hyperparameter_10_random_seeds")
    assert man.name == "modelzoos-svhn-cnn_s" and next(iter(man.sources)) == "svhn-1x28x28"
    _bench("run", "--suite", "modelzoos-svhn-cnn_s-v1", "--zoo", tmp_path / "mz-svhn",
           "--method", "weight-stats-linear", "--allow-unpinned", "--seeds", 1, "--out", out)
    got = {f.stem for f in out.rglob("*svhn*.json")}
    assert got == {"ctc-svhn-gs-test-acc-86", "ctc-svhn-gs-test-acc", "modelzoos-svhn-cnn_s-"
                   "test-acc", "modelzoos-svhn-cnn_s-epoch", "modelzoos-svhn-cnn_s-ggap"}
    table = _bench("table", out, "--published", "ctc-svhn-gs-v1")
    assert "0.843" in table and "0.931" in table
    assert "0.985" in _bench("table", out, "--published", "modelzoos-svhn-cnn_s-v1")


def test_archives_unpack_safely_to_the_same_zoo(tmp_path: Path) -> None:
    root = tmp_path / "cifar10"
    write_ctc(root, models=3)
    folder = import_zoo(format="ctc", path=root, out=tmp_path / "from-folder")
    archive = tmp_path / "cifar10.tar.xz"
    with tarfile.open(archive, "w:xz") as tf:
        tf.add(root, arcname="cifar10")
    text = _zoo("import", "ctc", archive, "--out", tmp_path / "from-archive", "--no-progress")
    assert folder.content_hash in text
    man = read_manifest(tmp_path / "from-archive")
    assert man.recipe["origin"]["archive"]["name"] == "cifar10.tar.xz"
    assert not (tmp_path / ".from-archive.unpacked").exists()
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escaped.txt", "x")
    with pytest.raises(UnsafeFileError, match="outside the folder"):
        import_zoo(format="ctc", path=evil, out=tmp_path / "z")
    evil_tar = tmp_path / "evil.tar"
    with tarfile.open(evil_tar, "w") as tf:
        link = tarfile.TarInfo("cifar10/weights.npy")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(link)
    with pytest.raises(UnsafeFileError):
        import_zoo(format="ctc", path=evil_tar, out=tmp_path / "z2")
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / ".z.unpacked").exists() and not (tmp_path / ".z2.unpacked").exists()


def test_split_file_rows_must_match(tmp_path: Path) -> None:
    root = tmp_path / "cifar10"
    fx = write_ctc(root, models=3)
    bad = tmp_path / "bad.csv"
    bad.write_text("0\n999\n")
    with pytest.raises(Exception, match="lists row 999"):
        import_zoo(format="ctc", path=root, out=tmp_path / "z", splits="nfn", split_file=bad)
    with gzip.open(root / "metrics.csv.gz", "rt") as f:
        lines = f.read().splitlines()
    with gzip.open(root / "metrics.csv.gz", "wt") as f:
        f.write("\n".join(lines[:-1]) + "\n")
    with pytest.raises(Exception, match="rows but weights.npy"):
        import_zoo(format="ctc", path=root, out=tmp_path / "z2")
    assert fx["split_file"].exists()


def _fails(*args: object) -> str:
    res = CliRunner().invoke(zoo_cli, ["import", *map(str, args), "--no-progress"])
    assert res.exit_code == 2 and res.output.startswith("Error: "), res.output
    return res.output


def test_bad_input_gets_a_clear_error(tmp_path: Path) -> None:
    ctc, mz = tmp_path / "cifar10", tmp_path / "mnist"
    write_ctc(ctc, models=2)
    write_modelzoos(mz)
    assert "unknown zoo format 'ctcc'. Did you mean 'ctc'?" in _fails("ctcc", ctc, "--out",
                                                                      tmp_path / "o")
    # a folder that is not of the format
    assert "lacks weights.npy, metrics.csv.gz, layout.csv" in _fails("ctc", mz, "--out",
                                                                     tmp_path / "o")
    for fmt in ("modelzoos", "wildpark", "pdiff"):
        assert f"holds no files of a {fmt} zoo" in _fails(fmt, ctc, "--out", tmp_path / "o")
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    assert "neither a folder nor a zip / tar archive" in _fails("ctc", notes, "--out",
                                                                tmp_path / "o")
    assert "unknown split protocol 'modelzoos' for format ctc" in _fails(
        "ctc", ctc, "--splits", "modelzoos", "--out", tmp_path / "o")
    assert "--splits nfn needs --split-file" in _fails("ctc", ctc, "--splits", "nfn", "--out",
                                                       tmp_path / "o")
    # wrong shapes: weights.npy rows, a 3-D weights.npy, a checkpoint tensor
    w = np.load(ctc / "weights.npy")
    np.save(ctc / "weights.npy", np.concatenate([w, w[:, :1]], axis=1))
    assert "covers 4970 values but weights.npy rows have 4971" in _fails("ctc", ctc, "--out",
                                                                         tmp_path / "o")
    np.save(ctc / "weights.npy", w.reshape(len(w), 70, 71))
    assert "expected a 2-D C-order float array" in _fails("ctc", ctc, "--out", tmp_path / "o")
    ck = sorted(sorted(p for p in mz.iterdir() if p.is_dir())[0].glob("checkpoint_*"))[1]
    state = torch.load(ck / "checkpoints", weights_only=True)
    state["module_list.0.weight"] = torch.zeros(8, 1, 3, 3)
    torch.save(state, ck / "checkpoints")
    text = _fails("modelzoos", mz, "--out", tmp_path / "o")
    assert str(ck / "checkpoints") in text and "has shape (8, 1, 3, 3)" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar10", "cifar10_split.csv",
                                                          "mnist", "notes.txt", "o"]
    assert not (tmp_path / ".o.unpacked").exists()


KILL_AT_SECOND_MARKER = '''
import os, signal, sys
import modelzoo.storage.writer as writer
from modelzoo.importers import import_zoo
real, markers = writer.atomic_write_bytes, []

def write(path, data):
    if path.parent.name == "done":  # a group's marker: its shards are already in place
        markers.append(path)
        if len(markers) == 2:
            os.kill(os.getpid(), signal.SIGKILL)
    return real(path, data)

writer.atomic_write_bytes = write
import_zoo(format="wildpark", path=sys.argv[1], out=sys.argv[2], progress=True)
'''


def test_sigkilled_heterogeneous_import_resumes_with_a_progress_bar(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SIGKILL after the second member's shards are renamed into place, before its marker;
    the rerun keeps the finished member, discards the unmarked shards, and gives the zoo of
    an uninterrupted import."""
    root = tmp_path / "cifar10_zooV2"
    write_wildpark(root)
    clean = import_zoo(format="wildpark", path=root, out=tmp_path / "clean")
    out = tmp_path / "zoo"
    p = subprocess.run([sys.executable, "-c", KILL_AT_SECOND_MARKER, str(root), str(out)],
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                       capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert p.returncode == -9, p.stderr[-2000:]
    work = tmp_path / ".zoo.import"
    first, second = sorted(d for d in work.iterdir() if d.is_dir())
    assert (first / "zoo.json").exists() and not (second / "zoo.json").exists()
    assert list(second.glob("*/data-g00000.arrow")) and not (second / ".build" / "done" /
                                                               "g00000.json").exists()
    assert not (out / "zoo.json").exists()
    resumed = import_zoo(format="wildpark", path=root, out=out, progress=True)
    assert "importing wildpark" in capsys.readouterr().err
    assert resumed.content_hash == clean.content_hash and not work.exists()
    assert import_zoo(format="wildpark", path=root, out=tmp_path / "again").content_hash == \
        clean.content_hash
    assert "checkpoints as the wildpark origin files held" in _zoo("validate", out)
    _zoo("publish", out, "--out", tmp_path / "pub")
    pub = datasets.load_dataset(str(tmp_path / "pub"), "all")
    assert sum(len(pub[s]) for s in pub) == 6


def _rss_mb() -> float:
    from benchmarks.perf.import_ctc import _status_kb  # the benchmark's own reading

    return _status_kb("VmRSS") / 1024


def test_ctc_rows_are_read_with_flat_resident_memory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Reading all of a 61 MB weights.npy in groups keeps the process's resident memory
    about one group above where it started (the mapped pages are released after each
    group); and the memory benchmark (benchmarks/perf/import_ctc.py) runs end to end."""
    path = tmp_path / "weights.npy"
    np.save(path, np.ones((3200, 4970), np.float32))
    perm = np.arange(4970)[::-1].copy()
    reader = RowReader(path)
    base, growth = _rss_mb(), 0.0
    try:
        for start in range(0, 3200, 256):  # 5 MB a group
            block = reader.take(np.arange(start, min(start + 256, 3200)), perm)
            assert block[0, 0] == 1.0
            growth = max(growth, _rss_mb() - base)
            del block
    finally:
        reader.close()
    assert growth < 25, f"resident memory grew by {growth:.0f} MB reading a 61 MB file"
    from benchmarks.perf import import_ctc

    monkeypatch.setattr(import_ctc, "isolated", lambda fn, *args: fn(*args))
    monkeypatch.setattr(torch, "set_num_threads", lambda n: None)  # this process's setting
    result = import_ctc.run([1], workdir=tmp_path)
    (cell,) = result["cells"]
    assert cell["rows"] == 45 and cell["models"] == 5 and cell["peak_rss_mb"] > 0
    import_ctc.print_table(result)
    assert "peak-base" in capsys.readouterr().out
