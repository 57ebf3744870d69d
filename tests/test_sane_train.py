"""SANE end to end on real (tiny) zoos: streaming data, training, resume after SIGKILL,
embeddings, sampling (also for heterogeneous zoos) and the CLI."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from modelzoo.errors import ZooError
from modelzoo.storage import load_zoo, read_manifest
from sane import SaneConfig, embed, load_run, load_sample, sample, train
from sane.cli import main as cli_main
from sane.data import SaneWindows, ZooRows, arch_data
from sane.train import fit_normalizer
from tests.sane_fixtures import accuracy, digits_tensors, make_zoo, single_thread

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
CFG = SaneConfig(d_model=32, n_heads=2, n_layers=1, latent_dim=8, token_size=32,
                 window_size=16, projection_dim=8, epochs=2, batch_size=4, lr=1e-3)


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


@pytest.fixture(scope="session")
def homo_zoo(tiny_zoo: Path) -> Path:
    """The lead's real digits cnn_s zoo (fixed-size weights, checkpoints 0..3)."""
    return tiny_zoo


@pytest.fixture(scope="session")
def hetero_run(hetero_zoo: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sane") / "run-hetero"
    with single_thread():
        train(zoo=hetero_zoo, out=out, config=CFG, progress=False)
    return out


def _state(path: Path) -> dict:
    return torch.load(path / "ckpt.pt", weights_only=True)


def _assert_same_tensors(a, b) -> None:
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same_tensors(a[k], b[k])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_tensors(x, y)
    else:
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))


def test_rows_are_streamed_and_windows_have_two_views(hetero_zoo: Path) -> None:
    rows = ZooRows(hetero_zoo, "train")
    assert len(rows) == load_zoo(hetero_zoo, "train").num_rows
    w = rows.weights(0)
    # the tensor views the memory-mapped Arrow buffer: no copy of the row
    buf = rows.table.column("weights").chunk(0).values.buffers()[1]
    assert buf.address <= w.data_ptr() < buf.address + buf.size
    manifest = read_manifest(hetero_zoo)
    norm = fit_normalizer(rows, manifest)
    ds = SaneWindows(rows, arch_data(manifest, CFG, norm), CFG, seed=0)
    lengths = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["x1"].shape == item["x2"].shape == (CFG.window_size, CFG.token_size)
        assert item["pos"].shape == (CFG.window_size, 3)
        assert torch.all(item["x1"][~item["mask"]] == 0)
        assert not torch.equal(item["x1"], item["x2"])  # two different views
        lengths.add(ds.archs[rows.meta[i]["architecture"]].plan.num_tokens)
    assert len(lengths) == 2  # heterogeneous: different sequence lengths
    again = ds[3]
    assert torch.equal(again["x2"], ds[3]["x2"])  # deterministic in (seed, epoch, index)
    ds.set_epoch(1)
    assert not torch.equal(again["x2"], ds[3]["x2"])


def test_normalizer_is_fitted_on_the_train_split_only(homo_zoo: Path) -> None:
    rows = ZooRows(homo_zoo, "train")
    manifest = read_manifest(homo_zoo)
    norm = fit_normalizer(rows, manifest)
    w = torch.stack([rows.weights(i).double() for i in range(len(rows))])
    layout = manifest.architectures["cnn_s"].layout
    first = layout[0].numel + layout[1].numel  # conv1 weight + bias = layer 0
    assert float(norm.stats["cnn_s"]["mean"][0]) == pytest.approx(float(w[:, :first].mean()))
    val = torch.stack([r.double() for _, r in ZooRows(homo_zoo, "validation").iter_weights()])
    assert float(norm.stats["cnn_s"]["mean"][0]) != pytest.approx(float(val[:, :first].mean()))


def test_training_reduces_validation_loss_and_saves_a_safe_checkpoint(
    homo_zoo: Path, tmp_path: Path
) -> None:
    cfg = CFG.replace(epochs=6, gamma=0.0, noise_prob=0.0)
    seen = []
    path = train(zoo=homo_zoo, out=tmp_path, config=cfg, progress=False,
                 callback=lambda ev, info: seen.append(ev))
    assert path == tmp_path / "ckpt.pt"
    ckpt = torch.load(path, weights_only=True)  # tensors/primitives only: no pickle
    assert ckpt["epoch"] == 5 and len(ckpt["history"]) == 6
    assert SaneConfig.from_dict(ckpt["config"]) == cfg
    assert set(ckpt["normalizer"]) == {"cnn_s"}
    hist = ckpt["history"]
    assert all(math.isfinite(h["val_loss"]) for h in hist)
    assert hist[-1]["val_recon"] < hist[0]["val_recon"]
    steps = math.ceil(len(ZooRows(homo_zoo, "train")) / cfg.batch_size)
    assert seen.count("epoch") == 6 and seen.count("step") == 6 * steps
    assert json.loads((tmp_path / "history.json").read_text()) == hist
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temp files
    # calling train again on a finished run is a no-op resume
    before = path.stat().st_mtime_ns
    train(zoo=homo_zoo, out=tmp_path, config=cfg, progress=False)
    assert path.stat().st_mtime_ns == before


def test_resume_after_sigkill_equals_uninterrupted_run(homo_zoo: Path, tmp_path: Path) -> None:
    cfg = CFG.replace(epochs=3)
    killed = tmp_path / "killed"
    script = (
        "import os, signal, torch\n"
        "from sane import SaneConfig, train\n"
        "torch.set_num_threads(1)\n"
        f"cfg = SaneConfig.from_dict({cfg.to_dict()!r})\n"
        "def cb(event, info):\n"
        "    if event == 'step' and info['epoch'] == 1 and info['step'] == 1:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        f"train(zoo={str(homo_zoo)!r}, out={str(killed)!r}, config=cfg, progress=False,"
        " callback=cb)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          timeout=120, env=ENV)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert _state(killed)["epoch"] == 0  # killed mid-epoch 1: only epoch 0 was saved
    train(zoo=homo_zoo, out=killed, config=cfg, progress=False)  # resume
    straight = tmp_path / "straight"
    train(zoo=homo_zoo, out=straight, config=cfg, progress=False)
    a, b = _state(killed), _state(straight)
    assert a["epoch"] == b["epoch"] == 2
    for key in ("model", "optimizer", "normalizer", "history", "step"):
        _assert_same_tensors(a[key], b[key])


def test_thread_count_is_fixed_recorded_and_other_counts_agree_within_tolerance(
        homo_zoo: Path, tmp_path: Path) -> None:
    """The default is a fixed count (not the idle CPUs), recorded and repeated on resume; a
    run with another count agrees within the tolerance the README states."""
    from sane.train import DEFAULT_THREADS, THREADS_TOLERANCE

    cfg = CFG.replace(epochs_range=(3, 3))  # the last checkpoints only: a few steps per epoch
    one = tmp_path / "one"
    train(zoo=homo_zoo, out=one, config=cfg, progress=False)  # default threads
    assert _state(one)["threads"] == DEFAULT_THREADS == 1
    two = tmp_path / "two"

    class Stop(Exception):
        pass

    def stop(event: str, info: dict) -> None:
        if event == "epoch":
            raise Stop  # after the first checkpoint: a killed run

    with pytest.raises(Stop):
        train(zoo=homo_zoo, out=two, config=cfg, progress=False, threads=2, callback=stop)
    seen: set[int] = set()
    train(zoo=homo_zoo, out=two, config=cfg, progress=False,  # resume: repeats 2 threads
          callback=lambda event, info: seen.add(torch.get_num_threads()))
    assert seen == {2} and _state(two)["threads"] == 2
    a, b = _state(one)["history"], _state(two)["history"]
    for ea, eb in zip(a, b, strict=True):
        for key in ("train_loss", "train_recon", "val_loss", "val_recon"):
            assert abs(ea[key] - eb[key]) <= THREADS_TOLERANCE * abs(ea[key]), (key, ea, eb)


def test_dataloader_workers_do_not_change_results(homo_zoo: Path, tmp_path: Path) -> None:
    cfg = CFG.replace(epochs=1)
    train(zoo=homo_zoo, out=tmp_path / "w0", config=cfg, progress=False)
    train(zoo=homo_zoo, out=tmp_path / "w2", config=cfg.replace(num_workers=2), progress=False)
    _assert_same_tensors(_state(tmp_path / "w0")["model"], _state(tmp_path / "w2")["model"])


def test_resume_refuses_a_different_config(homo_zoo: Path, tmp_path: Path) -> None:
    train(zoo=homo_zoo, out=tmp_path, config=CFG.replace(epochs=1), progress=False)
    with pytest.raises(ZooError, match="different config .*lr"):
        train(zoo=homo_zoo, out=tmp_path, config=CFG.replace(epochs=2, lr=5e-4), progress=False)
    other = CFG.replace(seed=1, epochs=1)
    train(zoo=homo_zoo, out=tmp_path / "s1", config=other, progress=False)
    assert not torch.equal(_state(tmp_path)["model"]["tokenizer.weight"],
                           _state(tmp_path / "s1")["model"]["tokenizer.weight"])


def test_no_training_rows_is_a_clear_error(homo_zoo: Path, tmp_path: Path) -> None:
    with pytest.raises(ZooError, match="no usable training rows"):
        train(zoo=homo_zoo, out=tmp_path, config=CFG.replace(epochs_range=(7, 9)),
              progress=False)


def test_heterogeneous_embeddings(hetero_run: Path, hetero_zoo: Path, tmp_path: Path) -> None:
    ds = embed(run=hetero_run, zoo=hetero_zoo, out=tmp_path / "emb", progress=False)
    manifest = read_manifest(hetero_zoo)
    assert len(ds) == manifest.num_rows
    keys = {(r["model_id"], r["epoch"], r["split"]) for r in ds}
    assert len(keys) == len(ds)
    assert set(ds["architecture"]) == {"cnn_s", "mlp-16"}
    emb = np.asarray(ds["embedding"])
    assert emb.shape == (len(ds), CFG.latent_dim) and np.isfinite(emb).all()
    again = datasets.load_from_disk(str(tmp_path / "emb"))
    assert again["model_id"] == ds["model_id"]
    # embedding is the mean of the latent tokens of the whole sequence
    run = load_run(hetero_run)
    rows = ZooRows(hetero_zoo, "test")
    from sane.embed import sequence_tokens
    from sane.run import encode_sequences

    arch = rows.meta[0]["architecture"]
    tok, plan = sequence_tokens(run, arch, rows.weights(0), manifest.architectures[arch].layout)
    with torch.no_grad():
        z = encode_sequences(run, [tok], [plan])[0]
    test = ds.filter(lambda r: r["split"] == "test")
    assert np.allclose(test[0]["embedding"], z.mean(0).numpy(), atol=1e-5)


@pytest.mark.parametrize("arch", ["cnn_s", "mlp-16"])
def test_heterogeneous_sampling_for_each_architecture(
    hetero_run: Path, hetero_zoo: Path, tmp_path: Path, arch: str
) -> None:
    index = sample(run=hetero_run, zoo=hetero_zoo, out=tmp_path, n=2, architecture=arch,
                   anchor_top_k=3, seed=0)
    meta = json.loads(index.read_text())
    assert meta["architecture"] == arch and len(meta["samples"]) == 2
    # anchors: the best models that share the best model's activation (2 of 4 here)
    assert len(meta["anchors"]) == 2
    acts = {r["activation"] for r in ZooRows(hetero_zoo, "train").meta
            if r["model_id"] in meta["anchors"]}
    assert acts == {meta["kwargs"]["activation"]}
    assert meta["anchor_val_acc"] == sorted(meta["anchor_val_acc"], reverse=True)
    x = digits_tensors()["test"][0][:5]
    outs = []
    for i in range(2):
        model = load_sample(tmp_path, i)
        with torch.no_grad():
            y = model(x)
        assert y.shape == (5, 10) and torch.isfinite(y).all()
        outs.append(y)
    assert not torch.allclose(outs[0], outs[1])  # two different samples
    with pytest.raises(ZooError, match="several architectures"):
        sample(run=hetero_run, zoo=hetero_zoo, out=tmp_path / "x", n=1)


def test_subsampled_and_bootstrapped_keep_the_best(
    hetero_run: Path, hetero_zoo: Path, tmp_path: Path
) -> None:
    val = digits_tensors()["validation"]
    calls = []

    def score(model: torch.nn.Module) -> float:
        calls.append(1)
        return accuracy(model, val)

    for method, rounds in (("subsampled", 1), ("bootstrapped", 2)):
        calls.clear()
        index = sample(run=hetero_run, zoo=hetero_zoo, out=tmp_path / method, n=2,
                       architecture="mlp-16", method=method, candidates=5, score_fn=score,
                       bootstrap_iterations=2, anchor_top_k=2)
        meta = json.loads(index.read_text())
        scores = [s["score"] for s in meta["samples"]]
        assert len(calls) == 5 * rounds
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(accuracy(load_sample(index, 0), val))


def test_subsampled_scores_on_the_zoo_source_by_default(homo_zoo: Path, tmp_path: Path) -> None:
    from modelzoo.sources import load_source

    run = tmp_path / "run"
    train(zoo=homo_zoo, out=run, config=CFG.replace(epochs=1), progress=False)
    index = sample(run=run, zoo=homo_zoo, out=tmp_path / "s", n=1, method="subsampled",
                   candidates=3, anchor_top_k=2)
    src = load_source("digits")
    score = json.loads(index.read_text())["samples"][0]["score"]
    assert score == pytest.approx(accuracy(load_sample(index, 0), (src.x_val, src.y_val)))


def test_cli_train_embed_sample(homo_zoo: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(cli_main, ["--help"])
    assert res.exit_code == 0 and "train" in res.output and "sample" in res.output
    cfg_file = tmp_path / "sane.yaml"
    cfg_file.write_text(json.dumps({**CFG.to_dict(), "epochs": 5}))  # JSON is YAML
    run = tmp_path / "run"
    res = runner.invoke(cli_main, ["train", "--zoo", str(homo_zoo), "--out", str(run),
                                   "--config", str(cfg_file), "--epochs", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert _state(run)["config"]["epochs"] == 1  # option overrides the file
    res = runner.invoke(cli_main, ["embed", "--run", str(run), "--zoo", str(homo_zoo),
                                   "--out", str(tmp_path / "emb"), "--split", "train",
                                   "--epochs-range", "1", "2", "--quiet"])
    assert res.exit_code == 0, res.output
    emb = datasets.load_from_disk(str(tmp_path / "emb"))
    assert len(emb) == len(ZooRows(homo_zoo, "train", epochs_range=(1, 2)))
    assert set(emb["epoch"]) == {1, 2} and set(emb["split"]) == {"train"}
    res = runner.invoke(cli_main, ["sample", "--run", str(run), "--zoo", str(homo_zoo),
                                   "--out", str(tmp_path / "s"), "-n", "1",
                                   "--architecture", "nope"])
    assert res.exit_code == 2 and "not in the zoo" in res.output
    proc = subprocess.run(
        [sys.executable, "-m", "sane.cli", "sample", "--run", str(run), "--zoo", str(homo_zoo),
         "--out", str(tmp_path / "s"), "-n", "2", "--kde-mode", "token"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=ENV,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "2 cnn_s models" in proc.stdout
    assert len(list((tmp_path / "s").glob("sample_*.safetensors"))) == 2
    load_sample(tmp_path / "s", 1)


def test_non_permutable_architecture_with_batchnorm(tmp_path: Path) -> None:
    """ResNet-18 (BatchNorm buffers, skip connections: no permutations) trains, embeds and
    samples; sampled models carry finite BN statistics."""
    zoo = tmp_path / "resnet"
    with single_thread():
        make_zoo(zoo, archs=(("resnet18", "resnet18", {"width": 4}),), models_per_arch=3,
                 epochs=1, steps_per_epoch=1, train_examples=64)
    cfg = CFG.replace(epochs=1, window_size=32, batch_size=3)
    train(zoo=zoo, out=tmp_path / "run", config=cfg, progress=False)
    hist = _state(tmp_path / "run")["history"]
    assert math.isnan(hist[0]["val_loss"])  # no validation models in this zoo
    index = sample(run=tmp_path / "run", zoo=zoo, out=tmp_path / "s", n=1, anchor_top_k=2)
    model = load_sample(index, 0)
    bn = model.state_dict()["bn1.running_var"]
    assert bn.shape == (4,) and torch.isfinite(bn).all()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


def test_multizoo_settings_without_data_normalisation(hetero_zoo: Path, tmp_path: Path) -> None:
    """MultiZoo-SANE: raw weights + masked batch loss normalisation on a heterogeneous zoo."""
    cfg = CFG.replace(epochs=1, normalize="none", loss_norm="batch")
    train(zoo=hetero_zoo, out=tmp_path / "run", config=cfg, progress=False)
    ckpt = _state(tmp_path / "run")
    assert ckpt["normalizer"] == {} and math.isfinite(ckpt["history"][0]["train_loss"])
    assert load_run(tmp_path / "run").normalizer is None
    index = sample(run=tmp_path / "run", zoo=hetero_zoo, out=tmp_path / "s", n=1,
                   architecture="mlp", anchor_top_k=2)  # registry name works too
    assert json.loads(index.read_text())["architecture"] == "mlp-16"
    load_sample(index, 0)


def test_unknown_architecture_for_a_run_is_a_clear_error(
    hetero_run: Path, homo_zoo: Path, tmp_path: Path
) -> None:
    from modelzoo.architectures import create_model
    from modelzoo.storage import layer_layout

    run = load_run(hetero_run)
    cnn = read_manifest(homo_zoo).architectures["cnn_s"].layout
    assert run.plan(cnn).num_tokens > 0  # another zoo's cnn_s fits the run's positions
    big = layer_layout(create_model("resnet18", in_channels=1, image_size=8, width=4))
    with pytest.raises(ZooError, match="needs positions up to"):
        run.plan(big)
    with pytest.raises(ZooError, match="not trained on architecture 'resnet18'"):
        run.layout("resnet18")


def test_training_under_bf16_autocast(homo_zoo: Path, tmp_path: Path, monkeypatch) -> None:
    """The bf16 autocast that `sane train` uses on CUDA, exercised with CPU autocast: model,
    masked loss and optimizer cope with bf16 activations (no dtype errors, finite losses that
    go down, float32 weights in the checkpoint)."""
    import importlib

    sane_train = importlib.import_module("sane.train")  # the module; `sane.train` is the function
    entered = []

    def cpu_bf16(device: str):
        entered.append(device)
        return torch.autocast(device_type="cpu", dtype=torch.bfloat16)

    monkeypatch.setattr(sane_train, "autocast", cpu_bf16)
    cfg = CFG.replace(epochs=4, gamma=0.05, noise_prob=0.0)
    path = train(zoo=homo_zoo, out=tmp_path, config=cfg, progress=False)
    assert entered
    hist = torch.load(path, weights_only=True)["history"]
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in hist)
    assert hist[-1]["val_recon"] < hist[0]["val_recon"]
    state = torch.load(path, weights_only=True)["model"]
    assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
