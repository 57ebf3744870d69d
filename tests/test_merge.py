"""``merge_zoos`` / ``zoo merge`` / ``build_mix``: heterogeneous zoos, real and synthetic."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest
import torch
from click.testing import CliRunner

from modelzoo.architectures import create_model
from modelzoo.cli import main as zoo_cli
from modelzoo.errors import CorruptZooError
from modelzoo.hub.configs import ALL_CONFIG, DEFAULT_CONFIG, zoo_configs
from modelzoo.hub.merge import MergeConflictError, merge_zoos
from modelzoo.hub.mix import build_mix
from modelzoo.storage import load_flat_weights, load_zoo, read_manifest, verify_zoo
from tests.merge_fixtures import make_synthetic_zoo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def rgb_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cnn_s on a 3-channel 32x32 source: same registry name as tiny_zoo, another layout."""
    root = tmp_path_factory.mktemp("rgb") / "cnn_s-svhn"
    make_synthetic_zoo(root, arch="cnn_s", source="svhn", in_shape=(3, 32, 32), models=5)
    return root


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory, tiny_zoo: Path, tiny_mlp_zoo: Path,
           rgb_zoo: Path) -> Path:  # fmt: skip
    out = tmp_path_factory.mktemp("merged") / "mix"
    merge_zoos(
        zoos=[tiny_zoo, tiny_mlp_zoo, rgb_zoo], out=out, name="mix", version="1.2.0",
        description="three zoos", citation="@misc{x, title={X}}", card="## Prose",
    )  # fmt: skip
    return out


def _rows_by_key(path: Path) -> dict[tuple[str, int], tuple[dict, np.ndarray]]:
    out = {}
    for split, ds in load_zoo(path).items():
        for row in ds:
            w = np.asarray(row.pop("weights"), dtype=np.float32)
            out[(row["model_id"], row["epoch"])] = (row, w)
            assert row["split"] == split
    return out


def test_merge_heterogeneous_keeps_models_splits_and_weights(
    merged: Path, tiny_zoo: Path, tiny_mlp_zoo: Path, rgb_zoo: Path
) -> None:
    m = verify_zoo(merged)
    ins = [read_manifest(p) for p in (tiny_zoo, tiny_mlp_zoo, rgb_zoo)]
    assert m.name == "mix" and m.version == "1.2.0"
    assert m.num_models == sum(i.num_models for i in ins)
    assert m.num_rows == sum(i.num_rows for i in ins)
    # same registry name, different layouts -> column values renamed by source
    assert set(m.architectures) == {"cnn_s@digits", "cnn_s@svhn", "mlp"}
    assert m.architectures["cnn_s@svhn"].name == "cnn_s"
    assert m.architectures["cnn_s@svhn"].kwargs["in_channels"] == 3
    assert m.architectures["cnn_s@digits"].kwargs["in_channels"] == 1
    assert [c.name for c in zoo_configs(m)] == ["cnn_s-digits", "cnn_s-svhn", "mlp-digits",
                                                 ALL_CONFIG]  # fmt: skip
    for i in ins:  # every model keeps its split
        for mid, e in i.models.items():
            assert m.models[mid].split == e.split
    assert m.recipe["kind"] == "merge"
    assert [mem["content_hash"] for mem in m.recipe["members"]] == [i.content_hash for i in ins]

    rows = _rows_by_key(merged)
    originals = {}
    for p in (tiny_zoo, tiny_mlp_zoo, rgb_zoo):
        originals.update(_rows_by_key(p))
    assert rows.keys() == originals.keys()
    for key, (row, w) in rows.items():
        orow, ow = originals[key]
        np.testing.assert_array_equal(w, ow)  # bit-identical weights
        assert row["test_acc"] == orow["test_acc"] and row["split"] == orow["split"]
        assert row["architecture"] in m.architectures
        assert row["architecture"].split("@")[0] == orow["architecture"]
    schema = load_zoo(merged, "train").data.schema
    assert pa.types.is_list(schema.field("weights").type)


def test_merged_rows_rebuild_working_networks(merged: Path) -> None:
    m = read_manifest(merged)
    seen = set()
    for row in load_zoo(merged, "train"):
        if row["architecture"] in seen:
            continue
        seen.add(row["architecture"])
        entry = m.architectures[row["architecture"]]
        src = m.sources[row["source"]]
        net = create_model(entry.name, **{**entry.kwargs, "activation": row["activation"],
                                          "dropout": row["dropout"]})  # fmt: skip
        load_flat_weights(net, torch.tensor(row["weights"]), entry.layout)
        out = net.eval()(torch.zeros(2, *src.in_shape))
        assert out.shape == (2, src.num_classes)
    assert seen == set(m.architectures)


def test_merged_zoo_loads_with_datasets_per_config(merged: Path, tmp_path: Path) -> None:
    m = read_manifest(merged)
    counts = {c.name: c.rows for c in zoo_configs(m)}
    everything = datasets.load_dataset(str(merged), cache_dir=str(tmp_path))
    assert {s: len(d) for s, d in everything.items()} == counts[ALL_CONFIG]
    one = datasets.load_dataset(str(merged), "cnn_s-svhn", cache_dir=str(tmp_path))
    assert {s: len(d) for s, d in one.items()} == counts["cnn_s-svhn"]
    assert set(one["train"]["architecture"]) == {"cnn_s@svhn"}
    # each config folder is a zoo of its own
    sub = read_manifest(merged / "data" / "mlp-digits")
    assert set(sub.models) == {k for k, v in m.models.items() if v.architecture == "mlp"}


def test_merging_a_zoo_with_its_copy_keeps_one_copy(tiny_zoo: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_zoo, copy)
    m = merge_zoos(zoos=[tiny_zoo, copy], out=tmp_path / "out")
    src = read_manifest(tiny_zoo)
    assert m.num_models == src.num_models and m.num_rows == src.num_rows
    assert m.content_hash == src.content_hash  # same models, splits and per-model hashes
    assert [c.name for c in zoo_configs(m)] == [DEFAULT_CONFIG]


def test_remerging_a_merged_zoo_with_a_member_dedupes_relabelled_models(
    merged: Path, tiny_zoo: Path, tmp_path: Path
) -> None:
    m = merge_zoos(zoos=[merged, tiny_zoo], out=tmp_path / "again", name="mix", version="1.2.0")
    first = read_manifest(merged)
    assert set(m.architectures) == set(first.architectures)
    assert m.content_hash == first.content_hash  # the relabelled cnn_s models are the same


def test_conflicting_model_is_refused_without_output(tmp_path: Path) -> None:
    a = tmp_path / "a"
    b = tmp_path / "b"
    make_synthetic_zoo(a, arch="mlp", source="digits", in_shape=(1, 8, 8), models=3)
    make_synthetic_zoo(b, arch="mlp", source="digits", in_shape=(1, 8, 8), models=3,
                       perturb=("mlp-digits-0001",))  # fmt: skip
    with pytest.raises(MergeConflictError, match="mlp-digits-0001"):
        merge_zoos(zoos=[a, b], out=tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]


def test_same_registry_name_and_source_with_other_kwargs(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_synthetic_zoo(a, arch="mlp", source="digits", in_shape=(1, 8, 8), models=2,
                       arch_kwargs={"hidden": (32,)}, id_prefix="wide")  # fmt: skip
    make_synthetic_zoo(b, arch="mlp", source="digits", in_shape=(1, 8, 8), models=2,
                       arch_kwargs={"hidden": (16,)}, id_prefix="narrow")  # fmt: skip
    m = merge_zoos(zoos=[a, b], out=tmp_path / "out")
    assert len(m.architectures) == 2
    assert all(k.startswith("mlp@") and e.name == "mlp" for k, e in m.architectures.items())
    hidden = {m.models[mid].architecture: m.architectures[m.models[mid].architecture]
              .kwargs["hidden"] for mid in m.models}  # fmt: skip
    assert sorted(tuple(h) for h in hidden.values()) == [(16,), (32,)]
    names = [c.name for c in zoo_configs(m)]
    assert len(set(names)) == 3 and names[-1] == ALL_CONFIG


def test_same_source_name_with_other_data_is_kept_apart(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_synthetic_zoo(a, arch="mlp", source="digits", in_shape=(1, 8, 8), models=2,
                       fingerprint="sha256:" + "11" * 32, id_prefix="a")  # fmt: skip
    make_synthetic_zoo(b, arch="mlp", source="digits", in_shape=(1, 8, 8), models=2,
                       fingerprint="sha256:" + "22" * 32, id_prefix="b")  # fmt: skip
    m = merge_zoos(zoos=[a, b], out=tmp_path / "out")
    assert set(m.sources) == {"digits@11111111", "digits@22222222"}
    assert {s.name for s in m.sources.values()} == {"digits"}
    assert {m.models[f"a-{i:04d}"].source for i in range(2)} == {"digits@11111111"}


def _corrupt_shard(root: Path) -> None:
    shard = root / read_manifest(root).files[0].path
    data = bytearray(shard.read_bytes())
    data[-20] ^= 0xFF
    shard.write_bytes(bytes(data))


def _drop_manifest(root: Path) -> None:
    (root / "zoo.json").unlink()


def _newer_format(root: Path) -> None:
    raw = json.loads((root / "zoo.json").read_text())
    raw["format_version"] = 99
    (root / "zoo.json").write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_corrupt_shard, "corrupt"), (_drop_manifest, "no zoo.json"), (_newer_format, "newer")],
)
def test_bad_input_fails_cleanly(tmp_path: Path, tiny_mlp_zoo: Path, damage, message) -> None:
    bad = tmp_path / "bad"
    make_synthetic_zoo(bad, arch="cnn_s", source="svhn", models=2)
    damage(bad)
    with pytest.raises(CorruptZooError, match=message):
        merge_zoos(zoos=[tiny_mlp_zoo, bad], out=tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_existing_output_is_refused(tmp_path: Path, tiny_mlp_zoo: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(Exception, match="already exists"):
        merge_zoos(zoos=[tiny_mlp_zoo], out=tmp_path / "out")
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_cli_merge(tmp_path: Path, tiny_mlp_zoo: Path, rgb_zoo: Path) -> None:
    r = CliRunner().invoke(zoo_cli, ["merge", str(tiny_mlp_zoo), str(rgb_zoo), "--out",
                                     str(tmp_path / "m"), "--version", "2.0.0"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "config mlp-digits" in r.output and "config cnn_s-svhn" in r.output
    assert read_manifest(tmp_path / "m").version == "2.0.0"
    bad = CliRunner().invoke(zoo_cli, ["merge", str(tiny_mlp_zoo), "--out",
                                       str(tmp_path / "m2"), "--version", "two"])  # fmt: skip
    assert bad.exit_code == 2 and "semantic" in bad.output and "Traceback" not in bad.output


def test_cli_merge_subprocess_reports_conflict(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    make_synthetic_zoo(a, arch="mlp", source="digits", in_shape=(1, 8, 8), models=2)
    make_synthetic_zoo(b, arch="mlp", source="digits", in_shape=(1, 8, 8), models=2,
                       perturb=("mlp-digits-0000",))  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run(
        [sys.executable, "-m", "modelzoo.cli", "merge", str(a), str(b), "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2
    assert "mlp-digits-0000" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "out").exists()


def test_build_mix_builds_members_and_merges(tmp_path: Path) -> None:
    from modelzoo.hub.cli import build_recipe_file

    out = tmp_path / "mix"
    m = build_mix(mix=ROOT / "cards" / "hetero-mix.yaml", out=out, models=2, epochs=1,
                  max_train=64)  # fmt: skip
    assert m.name == "hetero-mix" and m.recipe["kind"] == "mix"
    assert {c.name for c in zoo_configs(m)} == {"cnn_s-digits", "mlp-digits",
                                                 "ctc_cnn-digits", ALL_CONFIG}  # fmt: skip
    assert m.num_models == 6
    assert {mm.num_checkpoints for mm in m.models.values()} == {2}
    assert not (tmp_path / ".mix.members").exists()  # member builds cleaned up
    verify_zoo(out)
    again = build_recipe_file(ROOT / "cards" / "hetero-mix.yaml", out=out, models=2, epochs=1,
                              max_train=64)  # fmt: skip
    assert again.content_hash == m.content_hash  # finished: returned as is


def test_build_recipe_file_dispatches_plain_recipes_and_refuses_mix_only_options(
    tmp_path: Path,
) -> None:
    from modelzoo.errors import ZooError
    from modelzoo.hub.cli import build_recipe_file

    m = build_recipe_file(ROOT / "cards" / "digits-mlp.yaml", out=tmp_path / "mlp", models=2,
                          epochs=1, max_train=32, arch=None, grid=None)  # fmt: skip
    assert m.name == "digits-mlp" and m.num_models == 2 and m.num_rows == 4
    with pytest.raises(ZooError, match="--arch, --grid"):
        build_recipe_file(ROOT / "cards" / "hetero-mix.yaml", out=tmp_path / "mix", arch="mlp",
                          grid={"lr": [0.1]}, models=None)  # fmt: skip
    assert not (tmp_path / "mix").exists()
