"""Zoo storage: datasets compatibility, per-model splits, zero-copy reads, corruption checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import datasets
import pytest
import torch

from modelzoo.architectures import create_model
from modelzoo.errors import CorruptZooError
from modelzoo.storage import (
    SPLITS,
    iter_weight_batches,
    load_flat_weights,
    load_zoo,
    read_manifest,
    verify_zoo,
    weights_tensor,
)


def test_manifest_records_provenance(tiny_zoo: Path) -> None:
    m = read_manifest(tiny_zoo)
    assert m.num_models == 12 and m.num_rows == 12 * 4
    assert m.torch_version == torch.__version__ and m.toolkit_version
    assert m.sources["digits"].fingerprint.startswith("sha256:")
    assert m.architectures["cnn_s"].n_params == 2464
    assert m.content_hash.startswith("sha256:")
    assert m.recipe["architecture"] == "cnn_s" and m.recipe["epochs"] == 3
    assert set(m.split_hashes) <= set(SPLITS)


def test_load_from_disk_and_load_dataset(tiny_zoo: Path, tmp_path: Path) -> None:
    from_disk = datasets.load_from_disk(str(tiny_zoo))
    loaded = datasets.load_dataset(str(tiny_zoo), cache_dir=str(tmp_path / "cache"))
    ours = load_zoo(tiny_zoo)
    for split in SPLITS:
        assert from_disk[split].num_rows == loaded[split].num_rows == ours[split].num_rows
    total = sum(ours[s].num_rows for s in SPLITS)
    assert total == 48
    row = loaded["train"][0]
    assert len(row["weights"]) == row["n_params"] == 2464
    assert row["status"] == "ok" and row["split"] == "train"


def test_splits_are_per_model_and_deterministic(tiny_zoo: Path) -> None:
    zoo = load_zoo(tiny_zoo)
    seen: dict[str, str] = {}
    for split in SPLITS:
        for mid, s in zip(zoo[split]["model_id"], zoo[split]["split"]):
            assert s == split
            assert seen.setdefault(mid, split) == split  # all checkpoints in one split
    assert len(seen) == 12
    m = read_manifest(tiny_zoo)
    assert {k: v.split for k, v in m.models.items()} == seen
    epochs = sorted(zoo["train"].filter(lambda r: r["model_id"] == zoo["train"][0]["model_id"])
                    ["epoch"])
    assert epochs == [0, 1, 2, 3]


def test_zero_copy_weights(tiny_zoo: Path) -> None:
    ds = load_zoo(tiny_zoo, split="train")
    t = weights_tensor(ds)
    assert t.shape == (ds.num_rows, 2464) and t.dtype == torch.float32
    chunk = ds.data.table.column("weights").chunks[0]
    values = chunk.values
    expected_ptr = values.buffers()[1].address + values.offset * 4
    first = next(iter(iter_weight_batches(ds)))
    assert first.data_ptr() == expected_ptr  # a view of the memory-mapped Arrow buffer
    assert torch.equal(first[0], torch.tensor(ds[0]["weights"]))


def test_rows_rebuild_the_network(tiny_zoo: Path) -> None:
    m = read_manifest(tiny_zoo)
    ds = load_zoo(tiny_zoo, split="test")
    row = ds.filter(lambda r: r["epoch"] == 3)[0]
    entry = m.architectures[row["architecture"]]
    net = create_model(entry.name, **{**entry.kwargs, "activation": row["activation"]})
    load_flat_weights(net, torch.tensor(row["weights"]), entry.layout)
    from modelzoo.sources import load_source
    from modelzoo.training import evaluate_model

    data = load_source("digits")
    _, acc = evaluate_model(net, data.x_test, data.y_test)
    assert acc == pytest.approx(row["test_acc"], abs=1e-6)


def _copy(zoo: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(zoo, dst)
    return dst


def test_corrupt_shard_is_detected(tiny_zoo: Path, tmp_path: Path) -> None:
    zoo = _copy(tiny_zoo, tmp_path)
    verify_zoo(zoo)
    shard = zoo / read_manifest(zoo).files[0].path
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(CorruptZooError, match="corrupt: sha256"):
        verify_zoo(zoo)
    with pytest.raises(CorruptZooError):
        load_zoo(zoo, verify=True)


def test_missing_and_newer_manifest(tiny_zoo: Path, tmp_path: Path) -> None:
    zoo = _copy(tiny_zoo, tmp_path)
    raw = json.loads((zoo / "zoo.json").read_text())
    raw["format_version"] = 99
    (zoo / "zoo.json").write_text(json.dumps(raw))
    with pytest.raises(CorruptZooError, match="newer than this toolkit"):
        read_manifest(zoo)
    (zoo / "zoo.json").unlink()
    with pytest.raises(CorruptZooError, match="no zoo.json"):
        load_zoo(zoo)
    with pytest.raises(CorruptZooError, match="not a model zoo"):
        read_manifest(tmp_path / "nowhere")
