"""`zoo align`: weight matching to a reference keeps every model's function, moves models
closer to the reference, changes nothing but weights, and writes a new zoo crash-safely."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from click.testing import CliRunner

from modelzoo.align import align_zoo, compute_alignment
from modelzoo.architectures import ARCHITECTURES, create_model
from modelzoo.cli import main
from modelzoo.errors import NotPermutableError, StorageError, ZooError
from modelzoo.permutation import (
    architecture_permutation_spec,
    permutation_index,
    permutation_spec,
    permute_vector,
    random_permutation,
    weight_matching,
)
from modelzoo.storage import (
    ZooWriter,
    flatten_state_dict,
    layer_layout,
    load_flat_weights,
    read_manifest,
    verify_zoo,
)
from tests.sane_fixtures import DIGITS_KW, digits_tensors, make_zoo, single_thread

ROOT = Path(__file__).resolve().parents[1]
PERMUTABLE = [n for n in ARCHITECTURES.names() if ARCHITECTURES.get(n).permutable]
FIXED = [n for n in ARCHITECTURES.names() if not ARCHITECTURES.get(n).permutable]
META = ["model_id", "architecture", "source", "epoch", "seed", "lr", "activation", "val_acc",
        "test_acc", "train_acc", "ggap", "status", "split", "n_params"]  # fmt: skip


pytestmark = pytest.mark.usefixtures("single_thread")  # tests/conftest.py


_ZOOS: dict[str, Path] = {}


def _zoo(arch: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small trained digits zoo of one architecture (6 models, epochs 0..2), built once."""
    if arch not in _ZOOS:
        out = tmp_path_factory.mktemp("align") / arch
        with single_thread():
            make_zoo(out, archs=((arch, arch, {}),), models_per_arch=6, epochs=2,
                     steps_per_epoch=2, train_examples=128, name=f"{arch}-z")
        _ZOOS[arch] = out
    return _ZOOS[arch]


@pytest.fixture(scope="module", params=PERMUTABLE)
def arch_zoo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One zoo per permutable architecture of the registry."""
    return _zoo(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def cnn_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cnn_s zoo."""
    return _zoo("cnn_s", tmp_path_factory)


def _rows(zoo: Path) -> dict[tuple[str, int], dict]:
    """Every row of a zoo keyed by (model_id, epoch), weights as a float32 tensor."""
    from modelzoo.align import _zoo_tables

    m = read_manifest(zoo)
    out = {}
    for _fi, t in _zoo_tables(zoo, m):
        for r in t.to_pylist():
            r["weights"] = torch.tensor(r["weights"], dtype=torch.float32)
            out[(r["model_id"], r["epoch"])] = r
    return out


def _model(zoo: Path, row: dict) -> torch.nn.Module:
    (entry,) = read_manifest(zoo).architectures.values()
    net = create_model(entry.name, **{**entry.kwargs, "activation": row["activation"]})
    return load_flat_weights(net, row["weights"], entry.layout).eval()


# --- permutation level -----------------------------------------------------------------------


@pytest.mark.parametrize("arch", PERMUTABLE)
@pytest.mark.parametrize("image_size", [8, 28])
def test_weight_matching_recovers_a_permuted_reference_exactly(arch: str, image_size: int) -> None:
    torch.manual_seed(0)
    net = create_model(arch, in_channels=1, num_classes=10, image_size=image_size)
    layout = layer_layout(net)
    spec = permutation_spec(layout)
    ref = flatten_state_dict(net.state_dict(), layout)
    for seed in range(3):
        moved = permute_vector(ref, random_permutation(spec, generator=torch.Generator()
                                                       .manual_seed(seed)))
        assert not torch.equal(moved, ref)
        perms = weight_matching(spec, moved, ref)
        assert torch.equal(permute_vector(moved, permutation_index(spec, perms)), ref)
    # the reference matched to itself is the identity
    assert all(torch.equal(p, torch.arange(len(p))) for p in weight_matching(spec, ref, ref))


@pytest.mark.parametrize("arch", PERMUTABLE)
def test_weight_matching_brings_an_independent_model_closer(arch: str) -> None:
    torch.manual_seed(1)
    a = create_model(arch, **DIGITS_KW)
    b = create_model(arch, **DIGITS_KW)
    layout = layer_layout(a)
    spec = permutation_spec(layout)
    ra, wb = (flatten_state_dict(m.state_dict(), layout) for m in (a, b))
    aligned = permute_vector(wb, permutation_index(spec, weight_matching(spec, wb, ra)))
    assert (aligned - ra).norm() < (wb - ra).norm()
    x = digits_tensors()["validation"][0]
    with torch.no_grad():
        y0 = b.eval()(x)
        y1 = load_flat_weights(create_model(arch, **DIGITS_KW), aligned, layout).eval()(x)
    torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch", FIXED)
def test_non_permutable_architectures_are_a_typed_error(arch: str) -> None:
    kw = {"width": 4} if arch.startswith("resnet") else {}
    layout = layer_layout(create_model(arch, **kw, **DIGITS_KW))
    with pytest.raises(NotPermutableError, match="skip connections"):
        architecture_permutation_spec(arch, layout)


# --- zoo level ---------------------------------------------------------------------------------


def test_aligned_zoo_keeps_functions_and_everything_but_weights(
    arch_zoo: Path, tmp_path: Path
) -> None:
    before = read_manifest(arch_zoo)
    m = align_zoo(zoo=arch_zoo, out=tmp_path / "a")
    assert read_manifest(arch_zoo) == before  # the input is never modified
    verify_zoo(arch_zoo)
    verify_zoo(tmp_path / "a")
    al = m.recipe["alignment"]
    assert al["method"] == "weight_matching" and al["epoch"] == 2
    assert al["source"]["content_hash"] == before.content_hash
    assert m.name == f"{before.name}-aligned" and m.version == before.version
    # same models, splits, checkpoints; content changed (weights)
    assert {k: v.split for k, v in m.models.items()} == {
        k: v.split for k, v in before.models.items()}
    assert m.split_hashes == before.split_hashes and m.num_rows == before.num_rows
    assert m.content_hash != before.content_hash
    assert m.architectures == before.architectures and m.sources == before.sources
    old, new = _rows(arch_zoo), _rows(tmp_path / "a")
    assert old.keys() == new.keys()
    x = digits_tensors()["validation"][0]
    ref = al["reference"]
    for key, r0 in old.items():
        r1 = new[key]
        assert {c: r1[c] for c in META} == {c: r0[c] for c in META}
        w0, w1 = r0["weights"], r1["weights"]
        assert torch.equal(torch.sort(w0).values, torch.sort(w1).values)  # a permutation
        if key[0] == ref:
            assert torch.equal(w0, w1)  # identity on the reference
        with torch.no_grad():
            y0, y1 = _model(arch_zoo, r0)(x), _model(tmp_path / "a", r1)(x)
        torch.testing.assert_close(y1, y0, rtol=1e-4, atol=1e-5 * max(1.0, float(y0.abs().max())))
    # closer to the reference at the matching epoch, for every model and on average
    ref_w = new[(ref, 2)]["weights"]
    d0 = [float((r["weights"] - ref_w).norm()) for (mid, e), r in old.items() if e == 2]
    d1 = [float((r["weights"] - ref_w).norm()) for (mid, e), r in new.items() if e == 2]
    assert np.mean(d1) < np.mean(d0)
    assert all(b <= a + 1e-4 for a, b in zip(d0, d1, strict=True))
    assert al["mean_l2_to_reference_after"] < al["mean_l2_to_reference_before"]
    assert al["models_moved"] >= 1


def test_auto_reference_is_the_median_train_model(arch_zoo: Path) -> None:
    rows = _rows(arch_zoo)
    m = read_manifest(arch_zoo)
    train = sorted((r["val_acc"], mid) for (mid, e), r in rows.items()
                   if e == 2 and m.models[mid].split == "train")  # fmt: skip
    al = compute_alignment(zoo=arch_zoo)
    assert al.reference == train[(len(train) - 1) // 2][1]
    assert compute_alignment(zoo=arch_zoo).permutations.keys() == al.permutations.keys()
    al1 = compute_alignment(zoo=arch_zoo, epoch=1, reference=train[0][1])
    assert al1.reference == train[0][1] and al1.epoch == 1
    assert al1.reference not in al1.moved


def _rewrite(src: Path, out: Path, fn) -> Path:
    """Copy zoo ``src`` to ``out`` with ``fn(table) -> table`` applied to all its rows."""
    from modelzoo.align import _zoo_tables

    m = read_manifest(src)
    table = pa.concat_tables(t for _fi, t in _zoo_tables(src, m))
    table = fn(table)
    w = ZooWriter(out, table.schema)
    w.write_group(0, table)
    w.finalize(name=m.name, version=m.version, recipe=m.recipe, architectures=m.architectures,
               sources=m.sources, toolkit_version="test")  # fmt: skip
    return out


def test_permuted_copies_of_the_reference_are_recovered_exactly(tmp_path: Path) -> None:
    zoo = tmp_path / "z"
    with single_thread():
        make_zoo(zoo, models_per_arch=6, epochs=2, steps_per_epoch=1, train_examples=64)
    m = read_manifest(zoo)
    spec = permutation_spec(m.architectures["cnn_s"].layout)
    ids = sorted(m.models)
    ref = next(i for i in ids if m.models[i].split == "train")
    nan_model = next(i for i in ids if i != ref)

    def fn(table: pa.Table) -> pa.Table:
        w = np.array(table.column("weights").to_pylist(), dtype=np.float32)
        mids, eps = table.column("model_id").to_pylist(), table.column("epoch").to_pylist()
        ref_rows = {e: w[i].copy() for i, (mid, e) in enumerate(zip(mids, eps)) if mid == ref}
        for i, (mid, e) in enumerate(zip(mids, eps, strict=True)):
            g = torch.Generator().manual_seed(ids.index(mid))
            w[i] = ref_rows[e][random_permutation(spec, generator=g).numpy()]
            if mid == nan_model:
                w[i, :5] = np.nan
        col = pa.FixedSizeListArray.from_arrays(pa.array(w.reshape(-1)), spec.n_params)
        return table.set_column(table.schema.get_field_index("weights"),
                                table.schema.field("weights"), col)  # fmt: skip

    _rewrite(zoo, tmp_path / "perm", fn)
    out = align_zoo(zoo=tmp_path / "perm", out=tmp_path / "a", reference=ref)
    assert out.recipe["alignment"]["models_nonfinite"] == 1
    rows = _rows(tmp_path / "a")
    orig = _rows(tmp_path / "perm")
    for (mid, e), r in rows.items():
        if mid == nan_model:  # non-finite weights: kept as they were
            assert torch.equal(r["weights"].nan_to_num(), orig[(mid, e)]["weights"].nan_to_num())
        else:  # every checkpoint, not only the matching epoch, is recovered exactly
            assert torch.equal(r["weights"], rows[(ref, e)]["weights"])


def test_bad_inputs_are_clear_errors(arch_zoo: Path, tmp_path: Path) -> None:
    m = read_manifest(arch_zoo)
    val = next(k for k, v in m.models.items() if v.split != "train")
    with pytest.raises(ZooError, match="split"):
        align_zoo(zoo=arch_zoo, out=tmp_path / "a", reference=val)
    with pytest.raises(ZooError, match="not in the zoo.*Did you mean"):
        align_zoo(zoo=arch_zoo, out=tmp_path / "a", reference=val[:-1] + "?")
    with pytest.raises(ZooError, match=r"share: \[0, 1, 2\]"):
        align_zoo(zoo=arch_zoo, out=tmp_path / "a", epoch=7)
    with pytest.raises(ZooError, match="never modified"):
        align_zoo(zoo=arch_zoo, out=arch_zoo)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(ZooError, match="not empty"):
        align_zoo(zoo=arch_zoo, out=tmp_path / "used")
    assert not (tmp_path / "a").exists() or not any((tmp_path / "a").iterdir())


def test_resnet_and_heterogeneous_zoos_are_refused(tmp_path: Path) -> None:
    with single_thread():
        make_zoo(tmp_path / "r", archs=(("resnet18", "resnet18", {"width": 4}),),
                 models_per_arch=2, epochs=0, train_examples=16)
        make_zoo(tmp_path / "h", archs=(("cnn_s", "cnn_s", {}), ("mlp", "mlp", {})),
                 models_per_arch=2, epochs=0, train_examples=16)
    with pytest.raises(NotPermutableError, match="resnet18"):
        align_zoo(zoo=tmp_path / "r", out=tmp_path / "ra")
    with pytest.raises(ZooError, match="align one at a time"):
        align_zoo(zoo=tmp_path / "h", out=tmp_path / "ha")
    res = CliRunner().invoke(main, ["align", str(tmp_path / "r"), "--out", str(tmp_path / "c")])
    assert res.exit_code == 2 and "Error:" in res.output and "permutable" in res.output


def test_interrupted_alignment_resumes_to_the_same_zoo(
    cnn_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    arch_zoo = cnn_zoo
    clean = align_zoo(zoo=arch_zoo, out=tmp_path / "clean")
    real_fsync = os.fsync
    calls = []

    def full(fd: int) -> None:  # the disk fills up after the first shard is written
        calls.append(fd)
        if len(calls) > 6:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError, match="disk is full"):
        align_zoo(zoo=arch_zoo, out=tmp_path / "a")
    monkeypatch.setattr(os, "fsync", real_fsync)
    done = list((tmp_path / "a" / ".build" / "done").glob("g*.json"))
    shards = list((tmp_path / "a").rglob("*.arrow"))
    assert len(done) == len(shards) == 1  # one shard finished, nothing half-written visible
    assert not (tmp_path / "a" / "zoo.json").exists()
    with pytest.raises(ZooError, match="other arguments"):
        align_zoo(zoo=arch_zoo, out=tmp_path / "a", epoch=1)
    again = align_zoo(zoo=arch_zoo, out=tmp_path / "a")
    assert again.content_hash == clean.content_hash
    assert align_zoo(zoo=arch_zoo, out=tmp_path / "a") == again  # finished: a no-op
    with pytest.raises(ZooError, match="another zoo"):
        align_zoo(zoo=arch_zoo, out=tmp_path / "a", epoch=1)


def test_cli_align_info_diff_and_subprocess(cnn_zoo: Path, tmp_path: Path) -> None:
    arch_zoo = cnn_zoo
    runner = CliRunner()
    res = runner.invoke(main, ["align", "--help"])
    assert res.exit_code == 0 and "weight matching" in res.output and "--reference" in res.output
    res = runner.invoke(main, ["align", str(arch_zoo), "--out", str(tmp_path / "a"),
                               "--epoch", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "aligned to" in res.output and "mean L2 distance" in res.output
    res = runner.invoke(main, ["info", str(tmp_path / "a")])
    assert "aligned (weight_matching) to" in res.output and "at epoch 1" in res.output
    res = runner.invoke(main, ["diff", str(arch_zoo), str(tmp_path / "a")])
    assert "models changed" in res.output and "recipe.alignment.reference" in res.output
    res = runner.invoke(main, ["align", str(arch_zoo), "--out", str(tmp_path / "b"),
                               "--epoch", "soon"])
    assert res.exit_code == 2 and "--epoch" in res.output
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "modelzoo.cli", "align", str(arch_zoo), "--out",
         str(tmp_path / "s"), "--epoch", "1"],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_manifest(tmp_path / "s").content_hash == read_manifest(tmp_path / "a").content_hash


# --- SANE on aligned zoos ----------------------------------------------------------------------


def test_sane_trains_on_canonical_views_of_an_aligned_zoo(cnn_zoo: Path, tmp_path: Path) -> None:
    """`sane train --permutation-prob 0`: both views un-permuted (SANE's shipped setting)."""
    from sane import SaneConfig
    from sane.cli import main as sane_main
    from sane.data import SaneWindows, ZooRows, arch_data

    aligned = tmp_path / "a"
    align_zoo(zoo=cnn_zoo, out=aligned)
    manifest = read_manifest(aligned)
    cfg = SaneConfig(d_model=32, n_heads=2, n_layers=1, latent_dim=8, token_size=32,
                     window_size=16, projection_dim=8, epochs=1, batch_size=4,
                     permutation_prob=0.0, noise_prob=0.0)  # fmt: skip
    ds = SaneWindows(ZooRows(aligned, "train"), arch_data(manifest, cfg, None), cfg, seed=0)
    for i in range(len(ds)):
        item = ds[i]
        assert torch.equal(item["x1"], item["x2"])  # no permutation, no noise: same view
    permuted = SaneWindows(ZooRows(aligned, "train"),
                           arch_data(manifest, cfg.replace(permutation_prob=1.0), None),
                           cfg.replace(permutation_prob=1.0), seed=0)  # fmt: skip
    assert any(not torch.equal(permuted[i]["x1"], permuted[i]["x2"]) for i in range(len(ds)))
    res = CliRunner().invoke(sane_main, [
        "train", "--zoo", str(aligned), "--out", str(tmp_path / "run"), "--epochs", "1",
        "--d-model", "32", "--n-heads", "2", "--n-layers", "1", "--latent-dim", "8",
        "--token-size", "32", "--window-size", "16", "--batch-size", "4",
        "--permutation-prob", "0", "--device", "cpu", "--quiet"])  # fmt: skip
    assert res.exit_code == 0, res.output
    state = torch.load(tmp_path / "run" / "ckpt.pt", weights_only=True)
    assert state["config"]["permutation_prob"] == 0.0


def test_variable_length_weight_lists_align_like_fixed_size(cnn_zoo: Path, tmp_path: Path) -> None:
    """Zoos with ``list<float32>`` weights (e.g. one config of a merged zoo) align the same."""
    from modelzoo.storage import zoo_schema

    _rewrite(cnn_zoo, tmp_path / "list", lambda t: t.cast(zoo_schema(None)))
    a = align_zoo(zoo=cnn_zoo, out=tmp_path / "a")
    b = align_zoo(zoo=tmp_path / "list", out=tmp_path / "b")
    assert a.recipe["alignment"]["reference"] == b.recipe["alignment"]["reference"]
    ra, rb = _rows(tmp_path / "a"), _rows(tmp_path / "b")
    assert ra.keys() == rb.keys()
    assert all(torch.equal(ra[k]["weights"], rb[k]["weights"]) for k in ra)
    from modelzoo.storage import load_zoo

    assert load_zoo(tmp_path / "b", "train").features["weights"].length == -1
