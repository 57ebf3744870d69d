"""``publish_zoo`` / ``zoo publish``: Hub repository layout read back with the real ``datasets``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from modelzoo.cli import main as zoo_cli
from modelzoo.errors import CorruptZooError
from modelzoo.hub.configs import ALL_CONFIG, zoo_configs
from modelzoo.hub.merge import merge_zoos
from modelzoo.hub.publish import publish_zoo
from modelzoo.hub.upload import PublishError
from modelzoo.hub.versioning import VersionConflictError
from modelzoo.storage import load_zoo, read_manifest
from tests.merge_fixtures import make_synthetic_zoo

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


def front_matter(readme: Path) -> dict:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture(scope="module")
def hetero(tmp_path_factory: pytest.TempPathFactory, tiny_zoo: Path, tiny_mlp_zoo: Path) -> Path:
    out = tmp_path_factory.mktemp("pub") / "hetero"
    merge_zoos(zoos=[tiny_zoo, tiny_mlp_zoo], out=out, name="hetero", card="## About\n\nTwo zoos.",
               citation="@misc{zoo2026, title={A zoo}}")  # fmt: skip
    return out


def test_publish_homogeneous_zoo_loads_offline(tiny_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    r = publish_zoo(zoo=tiny_zoo, out=out)
    m = read_manifest(tiny_zoo)
    assert r.folder == out and not r.unchanged
    assert {"README.md", "accuracy.png", "zoo.json"} <= set(r.files)
    for split in ("train", "validation", "test"):
        assert (out / "data" / f"{split}-00000-of-00001.parquet").is_file()
    meta = front_matter(out / "README.md")
    assert meta["pretty_name"] == m.name and meta["license"] == m.license
    assert meta["size_categories"] == ["n<1K"]
    assert meta["task_categories"] and "model-zoo" in meta["tags"]
    [cfg] = meta["configs"]
    assert cfg["config_name"] == "default"
    assert {d["split"]: d["path"] for d in cfg["data_files"]} == {
        s: f"data/{s}-*.parquet" for s in ("train", "validation", "test")
    }
    assert read_manifest(out).content_hash == m.content_hash

    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    local = load_zoo(tiny_zoo)
    assert set(ds) == set(local)
    for split in ds:
        assert len(ds[split]) == len(local[split])
        a = {(r["model_id"], r["epoch"]): r["weights"] for r in ds[split]}
        b = {(r["model_id"], r["epoch"]): r["weights"] for r in local[split]}
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(np.asarray(a[k], np.float32), np.asarray(b[k]))
    assert ds["train"].features["weights"].length == m.architectures["cnn_s"].n_params


def test_publish_heterogeneous_zoo_shards_and_configs(hetero: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    r = publish_zoo(zoo=hetero, out=out, max_shard_size=20_000)
    m = read_manifest(hetero)
    configs = zoo_configs(m)
    data = [f for f in r.files if f.startswith("data/")]
    assert all(f.endswith(".parquet") for f in data)
    # several shards per split, named <split>-0000i-of-0000n
    train = sorted(f for f in data if f.startswith("data/cnn_s-digits/train-"))
    n = len(train)
    assert n > 1 and train == [f"data/cnn_s-digits/train-{i:05d}-of-{n:05d}.parquet"
                               for i in range(n)]  # fmt: skip
    assert sum(pq.ParquetFile(out / f).metadata.num_rows for f in data) == m.num_rows
    meta = front_matter(out / "README.md")
    names = [c["config_name"] for c in meta["configs"]]
    assert names == [c.name for c in configs] and ALL_CONFIG in names
    assert [c.get("default", False) for c in meta["configs"]] == [
        c.name == ALL_CONFIG for c in configs
    ]
    cache = str(tmp_path / "cache")
    for c in configs:
        ds = datasets.load_dataset(str(out), c.name, cache_dir=cache)
        assert {s: len(d) for s, d in ds.items()} == c.rows
    everything = datasets.load_dataset(str(out), cache_dir=cache)
    assert sum(len(d) for d in everything.values()) == m.num_rows
    card = (out / "README.md").read_text()
    assert "## About\n\nTwo zoos." in card and "@misc{zoo2026" in card  # the recipe's prose
    for mem in m.recipe["members"]:  # provenance: every member with its content hash
        assert f"| {mem['name']} | {mem['version']} | `{mem['content_hash']}` |" in card


def test_republish_same_release_is_a_noop(tiny_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    publish_zoo(zoo=tiny_zoo, out=out)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    r = publish_zoo(zoo=tiny_zoo, out=out)
    assert r.unchanged
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])
def test_published_version_never_changes_in_place(
    tiny_zoo: Path, tmp_path: Path, version: str
) -> None:
    out = tmp_path / "repo"
    publish_zoo(zoo=tiny_zoo, out=out)
    other = tmp_path / "other"
    make_synthetic_zoo(other, models=2, version=version)
    before = (out / "zoo.json").read_bytes()
    with pytest.raises(VersionConflictError, match="already holds"):
        publish_zoo(zoo=other, out=out)
    assert (out / "zoo.json").read_bytes() == before


def _corrupt(root: Path) -> None:
    shard = root / read_manifest(root).files[-1].path
    data = bytearray(shard.read_bytes())
    data[-20] ^= 0xFF
    shard.write_bytes(bytes(data))


def _no_manifest(root: Path) -> None:
    (root / "zoo.json").unlink()


def _newer(root: Path) -> None:
    raw = json.loads((root / "zoo.json").read_text())
    raw["format_version"] = 99
    (root / "zoo.json").write_text(json.dumps(raw))


@pytest.mark.parametrize(
    ("damage", "message"),
    [(_corrupt, "corrupt"), (_no_manifest, "no zoo.json"), (_newer, "newer")],
)
def test_publish_bad_zoo_leaves_nothing(tmp_path: Path, damage, message) -> None:
    zoo = tmp_path / "zoo"
    make_synthetic_zoo(zoo, models=2)
    damage(zoo)
    with pytest.raises(CorruptZooError, match=message):
        publish_zoo(zoo=zoo, out=tmp_path / "repo")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["zoo"]


def test_cli_publish_local_then_noop(tiny_mlp_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "repo"
    r = CliRunner().invoke(zoo_cli, ["publish", str(tiny_mlp_zoo), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "written" in r.output and (out / "data" / "train-00000-of-00001.parquet").is_file()
    r = CliRunner().invoke(zoo_cli, ["publish", str(tiny_mlp_zoo), "--out", str(out)])
    assert r.exit_code == 0 and "unchanged" in r.output
    r = CliRunner().invoke(zoo_cli, ["publish", str(tiny_mlp_zoo)])
    assert r.exit_code != 0 and "--repo-id" in r.output


def test_hub_offline_mode_fails_cleanly(
    tiny_mlp_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    staging = tmp_path / "tmp"
    staging.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(staging))
    out = tmp_path / "repo"
    r = CliRunner().invoke(
        zoo_cli, ["publish", str(tiny_mlp_zoo), "--repo-id", "user/zoo", "--out", str(out)]
    )
    assert r.exit_code == 2
    assert "offline mode is enabled" in r.output and "Traceback" not in r.output
    assert not out.exists() and list(staging.iterdir()) == []


def test_hub_unreachable_fails_fast_without_traceback(tiny_mlp_zoo: Path, tmp_path: Path) -> None:
    staging = tmp_path / "tmp"
    staging.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(PYTHONPATH=str(ROOT), HF_ENDPOINT="http://127.0.0.1:9", TMPDIR=str(staging),
               HF_TOKEN="hf_not_a_real_token")  # fmt: skip
    start = time.monotonic()
    p = subprocess.run(
        [sys.executable, "-m", "modelzoo.cli", "publish", str(tiny_mlp_zoo),
         "--repo-id", "user/zoo", "--revision", "v1.0.0"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert p.returncode == 2, p.stderr
    assert "cannot publish to the Hugging Face Hub at http://127.0.0.1:9" in p.stderr
    assert "Traceback" not in p.stderr
    assert time.monotonic() - start < 60
    assert list(staging.iterdir()) == []


def test_api_unreachable_endpoint_raises_publish_error(
    tiny_mlp_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(PublishError, match="127.0.0.1:9"):
        publish_zoo(zoo=tiny_mlp_zoo, repo_id="user/zoo", endpoint="http://127.0.0.1:9",
                    timeout=5)  # fmt: skip
