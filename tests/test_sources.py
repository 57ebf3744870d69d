"""Tests for modelzoo.sources: every source read from tiny files in its real on-disk format."""

from __future__ import annotations

import builtins
import io
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from modelzoo.errors import RecipeError, SourceNotFoundError, UnknownNameError, ZooError
from modelzoo.sources import (
    SOURCES,
    SourceData,
    SourceFormatError,
    clear_cache,
    default_data_dir,
    list_sources,
    load_source,
    safe_unpickle,
)
from modelzoo.sources.core import _prepare
from tests.source_fixtures import (
    N_TEST,
    WRITERS,
    Pools,
    make_pools,
    write_cifar10,
    write_svhn,
)

FILE_SOURCES = [s.name for s in list_sources() if s.bundled is None]
HUB_SOURCES = [s.name for s in list_sources() if s.hub_id]


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No real data dir or HF cache leaks into a test; parsed arrays are not shared."""
    import datasets.config

    monkeypatch.delenv("MODELZOO_DATA", raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-default-cache"))
    clear_cache()


def assert_matches(data: SourceData, pools: Pools, *, atol: float = 1e-5) -> None:
    """Each split holds exactly the written images/labels at its partition indices."""
    spec = SOURCES.get(data.name)
    assert data.in_shape == spec.in_shape
    assert data.num_classes == spec.num_classes
    assert (data.in_channels, data.image_size) == (spec.in_shape[0], spec.in_shape[1])
    mean = torch.tensor(data.mean).view(1, -1, 1, 1)
    std = torch.tensor(data.std).view(1, -1, 1, 1)
    for split, (x, y) in {
        "train": (data.x_train, data.y_train),
        "validation": (data.x_val, data.y_val),
        "test": (data.x_test, data.y_test),
    }.items():
        pool, idx = data.partition[split]
        raw_x, raw_y = pools[pool]
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (len(idx), *spec.in_shape)
        assert x.stride() == torch.empty(x.shape).stride()  # plain NCHW, never channels_last
        assert torch.equal(y, torch.from_numpy(raw_y[idx.numpy()]))
        expected = torch.from_numpy(raw_x[idx.numpy()]).float() / 255
        torch.testing.assert_close(x * std + mean, expected, atol=atol, rtol=0)


# --------------------------------------------------------------------------- digits


def test_digits_shapes_labels_and_normalisation() -> None:
    from sklearn.datasets import load_digits

    data = load_source("digits")
    assert data.name == "digits" and data.num_classes == 10
    assert data.in_shape == (1, 8, 8) and data.image_size == 8 and data.in_channels == 1
    assert data.sizes() == {"train": 1077, "validation": 360, "test": 360}
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", data.fingerprint)
    for x in (data.x_train, data.x_val, data.x_test):  # C == 1 must not look channels_last
        assert x.stride() == torch.empty(x.shape).stride()
    for y in (data.y_train, data.y_val, data.y_test):
        assert y.dtype == torch.int64
        assert sorted(y.unique().tolist()) == list(range(10))  # stratified: all classes
    # normalised with the train partition's per-channel statistics
    assert abs(float(data.x_train.mean())) < 1e-4
    assert abs(float(data.x_train.std(unbiased=False)) - 1) < 1e-4
    assert abs(float(data.x_val.mean())) < 0.1
    # and they are the sklearn images, values / 16
    digits = load_digits()
    pools = {"train": ((digits.images * 255 / 16), digits.target)}
    idx = data.partition["test"][1].numpy()
    restored = data.x_test * data.std[0] + data.mean[0]
    torch.testing.assert_close(
        restored[:, 0].double(), torch.from_numpy(pools["train"][0][idx] / 255), atol=1e-5, rtol=0
    )
    assert torch.equal(data.y_test, torch.from_numpy(digits.target[idx]))


def test_digits_partition_is_disjoint_stratified_and_deterministic() -> None:
    a = load_source("digits")
    clear_cache()
    b = load_source("digits")
    assert a.fingerprint == b.fingerprint
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    parts = {s: set(a.partition[s][1].tolist()) for s in ("train", "validation", "test")}
    assert {p for p, _ in a.partition.values()} == {"train"}
    assert not parts["train"] & parts["validation"]
    assert not parts["train"] & parts["test"]
    assert not parts["validation"] & parts["test"]
    assert set.union(*parts.values()) == set(range(1797))
    frac = [torch.bincount(y, minlength=10).float() / len(y) for y in (a.y_train, a.y_test)]
    assert torch.allclose(frac[0], frac[1], atol=0.02)


def test_fingerprint_identical_in_a_fresh_process() -> None:
    code = "from modelzoo.sources import load_source; print(load_source('digits').fingerprint)"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == load_source("digits").fingerprint


def test_max_train_is_a_fixed_nested_subset() -> None:
    full = load_source("digits")
    small = load_source("digits", max_train=100)
    smaller = load_source("digits", max_train=50)
    assert small.sizes() == {"train": 100, "validation": 360, "test": 360}
    assert small.fingerprint == load_source("digits", max_train=100).fingerprint
    assert len({full.fingerprint, small.fingerprint, smaller.fingerprint}) == 3
    idx_small = set(small.partition["train"][1].tolist())
    assert set(smaller.partition["train"][1].tolist()) < idx_small
    assert idx_small < set(full.partition["train"][1].tolist())
    # the subset changes neither the other splits nor the normalisation
    assert torch.equal(small.x_val, full.x_val) and small.mean == full.mean
    pos = {int(i): k for k, i in enumerate(full.partition["train"][1])}
    rows = [pos[int(i)] for i in small.partition["train"][1]]
    assert torch.equal(small.x_train, full.x_train[rows])
    assert load_source("digits", max_train=10**6).fingerprint == full.fingerprint
    for bad in (0, -3):
        with pytest.raises(RecipeError, match="max_train"):
            load_source("digits", max_train=bad)


def test_repeated_loads_use_the_in_process_cache() -> None:
    first = load_source("digits")
    first.x_train.zero_()  # callers own their tensors; the cache is not affected
    hits = _prepare.cache_info().hits
    second = load_source("digits")
    assert _prepare.cache_info().hits == hits + 1
    assert float(second.x_train.abs().sum()) > 0


# --------------------------------------------------------------------------- file formats


def test_every_file_source_has_a_writer_here() -> None:
    assert set(WRITERS) == set(FILE_SOURCES)
    assert set(SOURCES.names()) == {"digits", "digits_transposed", "digits_inverted", *FILE_SOURCES}


@pytest.mark.parametrize("name", FILE_SOURCES)
def test_reads_original_format(name: str, tmp_path: Path) -> None:
    pools = make_pools(name)
    WRITERS[name](tmp_path, pools)
    data = load_source(name, data_dir=tmp_path)
    assert data.sizes() == {"train": 18, "validation": 2, "test": N_TEST}
    assert data.partition["test"][0] == "test"
    assert_matches(data, pools, atol=0.03 if name == "tiny_imagenet" else 1e-5)
    train_idx = set(data.partition["train"][1].tolist())
    assert not train_idx & set(data.partition["validation"][1].tolist())
    assert str(tmp_path) in data.origin


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_plain_and_gzip_give_the_same_fingerprint(name: str, tmp_path: Path) -> None:
    pools = make_pools(name)
    WRITERS[name](tmp_path / "gz", pools, gz=True)
    WRITERS[name](tmp_path / "plain", pools, gz=False)
    a = load_source(name, data_dir=tmp_path / "gz")
    b = load_source(name, data_dir=tmp_path / "plain")
    assert a.fingerprint == b.fingerprint
    assert_matches(b, pools)
    other = make_pools(name, seed=1)
    WRITERS[name](tmp_path / "other", other, gz=False)
    assert load_source(name, data_dir=tmp_path / "other").fingerprint != a.fingerprint


def test_svhn_label_10_means_digit_0(tmp_path: Path) -> None:
    pools = make_pools("svhn")
    write_svhn(tmp_path / "svhn", pools)  # the lower-case sub-folder is accepted too
    data = load_source("svhn", data_dir=tmp_path)
    assert int(data.y_test[0]) == 0 and int(data.y_test.max()) <= 9
    assert_matches(data, pools)


def test_env_var_sets_the_default_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_data_dir() == Path.home() / ".cache" / "modelzoo" / "data"
    monkeypatch.setenv("MODELZOO_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    pools = make_pools("mnist")
    WRITERS["mnist"](tmp_path, pools)
    assert_matches(load_source("mnist"), pools)


def test_corrupt_idx_file_is_a_clear_error(tmp_path: Path) -> None:
    WRITERS["mnist"](tmp_path, make_pools("mnist"), gz=False)
    (tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte").write_bytes(b"<html>not found</html>")
    with pytest.raises(SourceFormatError, match="t10k-images-idx3-ubyte.*magic"):
        load_source("mnist", data_dir=tmp_path)


def test_wrong_image_shape_is_rejected(tmp_path: Path) -> None:
    pools = make_pools("mnist")
    pools = {k: (np.zeros((len(y), 1, 14, 14), np.uint8), y) for k, (_, y) in pools.items()}
    WRITERS["fashion_mnist"](tmp_path, pools)
    with pytest.raises(SourceFormatError, match=r"shape \[N, 1, 28, 28\]"):
        load_source("fashion_mnist", data_dir=tmp_path)


# --------------------------------------------------------------------------- unsafe pickles


class _Payload:
    def __init__(self, func: Callable[..., object], *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.mark.parametrize("via", ["exec", "system"])
def test_malicious_cifar_pickle_is_refused(via: str, tmp_path: Path) -> None:
    write_cifar10(tmp_path, make_pools("cifar10"))
    marker = tmp_path / "pwned"
    payload = (
        _Payload(builtins.exec, f"open({str(marker)!r}, 'w').close()")
        if via == "exec"
        else _Payload(os.system, f"touch {marker}")
    )
    evil = {b"data": np.zeros((4, 3072), np.uint8), b"labels": [0, 1, 2, 3], b"x": payload}
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(SourceFormatError, match="refusing to load global"):
        load_source("cifar10", data_dir=tmp_path)
    with pytest.raises(SourceFormatError, match="refusing"):
        safe_unpickle(batch)
    assert not marker.exists()


class _Py2Pickler(pickle._Pickler):
    """Writes bytes as Python 2 ``str`` opcodes, like the cPickle that made the CIFAR files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + len(obj).to_bytes(4, "little") + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes


def test_reads_python2_style_cifar_pickles(tmp_path: Path) -> None:
    pools = make_pools("cifar100")
    for pool in ("train", "test"):
        x, y = pools[pool]
        batch = {
            b"data": x.reshape(len(x), -1),
            b"fine_labels": y.tolist(),
            b"coarse_labels": (y // 5).tolist(),
            b"batch_label": b"training batch",
        }
        buf = io.BytesIO()
        _Py2Pickler(buf, protocol=2).dump(batch)
        data = buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"_codecs" not in data  # no Python 3 bytes encoding: str keys as in Python 2
        (tmp_path / "cifar-100-python").mkdir(exist_ok=True)
        (tmp_path / "cifar-100-python" / pool).write_bytes(data)
    assert_matches(load_source("cifar100", data_dir=tmp_path), pools)


def test_safe_unpickle_still_reads_numpy_arrays(tmp_path: Path) -> None:
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": list(np.arange(3))}
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    back = safe_unpickle(path)
    assert np.array_equal(back[b"data"], obj[b"data"]) and back[b"labels"] == [0, 1, 2]


# --------------------------------------------------------------------------- Hugging Face copies

HF_COLUMNS = {  # the column and split names the Hub copies use
    "mnist": ("image", "label", "test"),
    "fashion_mnist": ("image", "label", "test"),
    "svhn": ("image", "label", "test"),
    "cifar10": ("img", "label", "test"),
    "cifar100": ("img", "fine_label", "test"),
    "tiny_imagenet": ("image", "label", "valid"),
}


def hf_dataset_dict(name: str, pools: Pools):  # noqa: ANN201  (datasets.DatasetDict)
    from datasets import ClassLabel, Dataset, DatasetDict, Features, Image
    from PIL import Image as PILImage

    spec = SOURCES.get(name)
    img_col, lab_col, test_split = HF_COLUMNS[name]
    splits = {}
    for pool, split in (("train", "train"), ("test", test_split)):
        x, y = pools[pool]
        images = [PILImage.fromarray(i[0] if len(i) == 1 else i.transpose(1, 2, 0)) for i in x]
        if name == "tiny_imagenet":  # some Tiny-ImageNet images are grayscale
            images[0] = images[0].convert("L")
            x[0] = np.asarray(images[0])[None]
        cols = {img_col: images, lab_col: y.tolist()}
        feats = {img_col: Image(), lab_col: ClassLabel(num_classes=spec.num_classes)}
        if name == "cifar100":
            cols["coarse_label"] = (y // 5).tolist()
            feats["coarse_label"] = ClassLabel(num_classes=20)
        splits[split] = Dataset.from_dict(cols, features=Features(feats))
    return DatasetDict(splits)


@pytest.mark.parametrize("kind", ["save_to_disk", "parquet"])
@pytest.mark.parametrize("name", HUB_SOURCES)
def test_reads_hugging_face_copy(name: str, kind: str, tmp_path: Path) -> None:
    pools = make_pools(name)
    dd = hf_dataset_dict(name, pools)
    folder = tmp_path / name
    if kind == "save_to_disk":
        dd.save_to_disk(str(folder))
    else:
        spec = SOURCES.get(name)
        sub = folder / (spec.hub_config or "data")
        sub.mkdir(parents=True)
        for split, ds in dd.items():
            ds.to_parquet(str(sub / f"{split}-00000-of-00001.parquet"))
        if spec.hub_config:  # another config of the same repo must be ignored
            (folder / "full_numbers").mkdir()
            (folder / "full_numbers" / "train-00000-of-00001.parquet").write_bytes(b"junk")
    data = load_source(name, data_dir=tmp_path)
    assert data.sizes() == {"train": 18, "validation": 2, "test": N_TEST}
    assert_matches(data, pools)
    assert str(folder) in data.origin


def test_hf_copy_has_the_same_fingerprint_as_the_original_files(tmp_path: Path) -> None:
    pools = make_pools("mnist")
    WRITERS["mnist"](tmp_path / "orig", pools)
    hf_dataset_dict("mnist", pools).save_to_disk(str(tmp_path / "hf" / "mnist"))
    a = load_source("mnist", data_dir=tmp_path / "orig")
    b = load_source("mnist", data_dir=tmp_path / "hf")
    assert a.origin != b.origin and a.fingerprint == b.fingerprint


def test_reads_hugging_face_cache_offline(tmp_path: Path) -> None:
    from datasets.packaged_modules.parquet.parquet import Parquet

    pools = make_pools("mnist")
    files = {}
    for split, ds in hf_dataset_dict("mnist", pools).items():
        files[split] = [str(tmp_path / f"{split}.parquet")]
        ds.to_parquet(files[split][0])
    # build a cache entry as `load_dataset("ylecun/mnist")` leaves it: <ns>___<name>/<config>/...
    cache = tmp_path / "cache"
    Parquet(
        cache_dir=str(cache),
        dataset_name="mnist",
        config_name="mnist",
        hash="0" * 16,
        data_files=files,
    ).download_and_prepare()
    (cache / "mnist").rename(cache / "ylecun___mnist")
    (config_dir,) = (cache / "ylecun___mnist").iterdir()
    config_dir.rename(config_dir.with_name("mnist"))
    data = load_source("mnist", data_dir=cache)
    assert "Hugging Face cache of ylecun/mnist" in data.origin
    assert_matches(data, pools)


# --------------------------------------------------------------------------- errors / listing


@pytest.mark.parametrize("name", FILE_SOURCES)
def test_missing_data_message_says_where_to_put_it(name: str, tmp_path: Path) -> None:
    spec = SOURCES.get(name)
    with pytest.raises(SourceNotFoundError) as info:
        load_source(name, data_dir=tmp_path)
    assert isinstance(info.value, ZooError)
    msg = str(info.value)
    for path in spec.expected_paths(tmp_path):
        assert str(path) in msg
    assert spec.url.split()[0] in msg
    assert str(tmp_path / name) in msg
    assert f"{spec.hub_id!r}" in msg
    assert str(tmp_path / "hf-default-cache") in msg  # the datasets cache was searched too
    assert "--data-dir" in msg and "MODELZOO_DATA" in msg


@pytest.mark.parametrize(("typo", "suggestion"), [("cifar11", "cifar10"), ("mnsit", "mnist")])
def test_unknown_source_suggests_close_names(typo: str, suggestion: str) -> None:
    with pytest.raises(UnknownNameError, match=f"Did you mean.*'{suggestion}'"):
        load_source(typo)


def test_list_sources_describes_every_registered_source(tmp_path: Path) -> None:
    specs = list_sources()
    assert [s.name for s in specs] == SOURCES.names()
    for spec in specs:
        assert spec.description and spec.num_classes >= 10 and len(spec.in_shape) == 3
        where = spec.where(tmp_path)
        if spec.bundled is None:
            assert str(tmp_path / spec.name) in where
            assert all(p.name in where for p in spec.expected_paths(tmp_path))
    by_name = {s.name: s for s in specs}
    assert by_name["cifar100"].num_classes == 100
    assert by_name["tiny_imagenet"].in_shape == (3, 64, 64)
