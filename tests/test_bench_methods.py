"""Built-in methods, the method protocol and loading user methods by ``module:object``."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import benchmarks  # noqa: F401  (registers methods)
from benchmarks.errors import MethodError
from benchmarks.methods.base import TargetModel, capabilities, check_method, load_method
from benchmarks.methods.weight_stats import QUANTILES, WeightStats, feature_names
from benchmarks.registry import METHODS
from modelzoo import load_zoo, read_manifest, weights_tensor
from modelzoo.errors import UnknownNameError


@pytest.mark.parametrize("name", METHODS.names())
def test_registered_methods_follow_the_protocol(name: str) -> None:
    method = load_method(name)
    assert method.name == name
    assert isinstance(method.meta(), dict)
    assert capabilities(method)


def test_weight_stats_match_numpy(var_zoo: Path) -> None:
    manifest = read_manifest(var_zoo)
    ds = load_zoo(var_zoo, "validation")
    layout = manifest.architectures["cnn_s"].layout
    feats = WeightStats().features(ds, manifest)
    assert feats.shape == (len(ds), 7 * len(layout))
    assert len(feature_names(layout)) == feats.shape[1]
    w = weights_tensor(ds).numpy().astype(np.float64)
    for j, spec in enumerate(layout):
        block = w[:, spec.offset : spec.offset + spec.numel]
        expected = np.column_stack(
            [block.mean(1), block.var(1), *np.quantile(block, QUANTILES, axis=1)]
        )
        np.testing.assert_allclose(feats[:, 7 * j : 7 * j + 7], expected, rtol=1e-6, atol=1e-9)


def test_flat_features_are_each_rows_weights_in_row_order(var_zoo: Path) -> None:
    # The expected values are read row by row from the dataset (not through weights_tensor,
    # which the method itself uses), on a reordered selection as tasks make: a method that
    # ignores the selection (reads the underlying table) or reorders rows fails.
    manifest = read_manifest(var_zoo)
    ds = load_zoo(var_zoo, "test")
    sub = ds.select(list(range(len(ds)))[::-1])
    feats = load_method("flat-linear").features(sub, manifest)
    expected = np.stack([np.asarray(row["weights"], dtype=np.float32) for row in sub])
    assert feats.shape == (len(ds), manifest.architectures["cnn_s"].n_params)
    assert not np.array_equal(expected, np.asarray(ds["weights"], dtype=np.float32))
    np.testing.assert_array_equal(feats, expected)


def _target(var_zoo: Path, activation: str = "relu") -> TargetModel:
    return TargetModel("cnn_s", activation, read_manifest(var_zoo).architectures["cnn_s"].n_params)


def test_random_init_is_seeded_and_fresh(var_zoo: Path) -> None:
    manifest, t = read_manifest(var_zoo), _target(var_zoo)
    m = load_method("random-init")
    a = m.sample(zoo=var_zoo, manifest=manifest, target=t, n=3, seed=0)
    b = m.sample(zoo=var_zoo, manifest=manifest, target=t, n=3, seed=0)
    c = m.sample(zoo=var_zoo, manifest=manifest, target=t, n=3, seed=1)
    assert a.shape == (3, t.num_params)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert len({row.tobytes() for row in a}) == 3


def test_zoo_init_returns_last_train_checkpoints_with_the_activation(var_zoo: Path) -> None:
    manifest, t = read_manifest(var_zoo), _target(var_zoo, "tanh")
    w = load_method("zoo-init").sample(zoo=var_zoo, manifest=manifest, target=t, n=4, seed=0)
    train = load_zoo(var_zoo, "train")
    meta = train.select_columns(["epoch", "activation"]).to_pandas()
    last = meta[(meta.epoch == meta.epoch.max()) & (meta.activation == "tanh")].index
    pool = weights_tensor(train)[torch.as_tensor(last.to_numpy())].numpy()
    for row in w:
        assert np.abs(pool - row).max(1).min() == 0.0  # an exact training checkpoint


USER_METHOD = textwrap.dedent(
    """
    import numpy as np
    from modelzoo import weights_tensor

    class MeanWeight:
        name = "mean-weight"
        def meta(self):
            return {"version": 1}
        def features(self, dataset, manifest):
            return weights_tensor(dataset).mean(1, keepdim=True).numpy()

    INSTANCE = MeanWeight()
    NOT_A_METHOD = object()
    """
)


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    (tmp_path / "my_bench_method.py").write_text(USER_METHOD)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "my_bench_method"
    sys.modules.pop("my_bench_method", None)


@pytest.mark.parametrize("attr", ["MeanWeight", "INSTANCE"])
def test_load_user_method_from_module(user_module: str, attr: str) -> None:
    m = load_method(f"{user_module}:{attr}")
    assert m.name == "mean-weight"
    assert capabilities(m) == {"features"}


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("no_such_module_xyz:Thing", MethodError, "cannot import module"),
        ("my_bench_method:Missing", MethodError, "has no attribute"),
        ("my_bench_method:NOT_A_METHOD", MethodError, "needs a `name`"),
        ("weight-stats-linaer", UnknownNameError, "weight-stats-linear"),
    ],
)
def test_load_method_errors_are_clear(user_module: str, spec: str, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        load_method(spec)


def test_method_without_capability_is_rejected() -> None:
    class Nothing:
        name = "nothing"

        def meta(self) -> dict:
            return {}

    with pytest.raises(MethodError, match="implements none"):
        check_method(Nothing())


def test_meta_must_be_json() -> None:
    from benchmarks.methods.base import method_meta

    class BadMeta:
        name = "bad-meta"
        head = "linear"

        def meta(self) -> dict:
            return {"fn": print}

        def features(self, dataset, manifest):  # noqa: ANN001, ANN201
            return None

    with pytest.raises(MethodError, match="JSON"):
        method_meta(BadMeta())


def test_derived_source_is_a_transform_of_its_base() -> None:
    from benchmarks.data import load_image_data

    base, new = load_image_data("digits"), load_image_data("digits-transposed")
    assert torch.equal(new.x_train, base.x_train.transpose(-1, -2))
    assert torch.equal(new.y_test, base.y_test) and new.num_classes == base.num_classes
    assert new.fingerprint != base.fingerprint
    with pytest.raises(UnknownNameError, match="digits"):
        load_image_data("digitz")
