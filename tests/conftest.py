"""Shared fixtures: tiny real zoos and boards built once per test session, one-thread torch.

Fixtures live here; the helpers they use are plain functions in tests/*_fixtures.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """One torch thread in the test process: the test models are tiny, and thread spin-waits
    on a busy 2-core CI machine cost more than they give. Subprocess tests use the default."""
    import torch

    torch.set_num_threads(1)


TINY_GRID = {"activation": ["relu", "tanh"], "lr": [1e-3, 3e-3], "init": ["kaiming_uniform"]}


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits CNN-s zoo: 12 models, checkpoints at epochs 0..3 (built in a few seconds)."""
    from modelzoo.builder import build_zoo

    out = tmp_path_factory.mktemp("zoo") / "tiny"
    build_zoo(out=out, arch="cnn_s", source="digits", models=12, epochs=3, grid=TINY_GRID,
              name="digits-cnn_s")
    return out


@pytest.fixture(scope="session")
def tiny_mlp_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits MLP zoo: 8 models, checkpoints 0..2 (a second architecture for merges)."""
    from modelzoo.builder import build_zoo

    out = tmp_path_factory.mktemp("zoo") / "tiny_mlp"
    build_zoo(out=out, arch="mlp", source="digits", models=8, epochs=2)
    return out


@pytest.fixture(scope="session")
def var_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16-model digits CNN-s zoo varying activation x init x optimizer
    (:func:`tests.bench_fixtures.build_test_zoo`)."""
    from tests.bench_fixtures import build_test_zoo, one_thread

    path = tmp_path_factory.mktemp("bench-zoo") / "var"
    with one_thread():
        build_test_zoo(path)
    return path


@pytest.fixture(scope="session")
def hetero_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """cnn_s + mlp-16 in one zoo (``list<float32>`` weights, different sequence lengths)."""
    from tests.sane_fixtures import make_zoo, single_thread

    out = tmp_path_factory.mktemp("sane") / "hetero"
    with single_thread():
        make_zoo(out, archs=(("cnn_s", "cnn_s", {}), ("mlp-16", "mlp", {"hidden": [16]})),
                 models_per_arch=6, epochs=2, name="hetero")
    return out


@pytest.fixture(scope="module")
def single_thread() -> Iterator[None]:
    """Module-scoped single-threaded torch (``pytest.mark.usefixtures("single_thread")``)."""
    from tests.bench_fixtures import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="session")
def lb_env(tmp_path_factory: pytest.TempPathFactory, var_zoo: Path):  # -> LbEnv
    """Results, submissions and two template boards on ``var_zoo``
    (:func:`tests.leaderboard_fixtures.build_lb_env`)."""
    from tests.leaderboard_fixtures import build_lb_env

    return build_lb_env(tmp_path_factory.mktemp("lb"), var_zoo)


@pytest.fixture(scope="session")
def ho_env(tmp_path_factory: pytest.TempPathFactory):  # -> HoEnv
    """A public zoo and held-out boards from one tiny recipe
    (:func:`tests.heldout_fixtures.build_ho_env`)."""
    from tests.heldout_fixtures import build_ho_env

    return build_ho_env(tmp_path_factory.mktemp("heldout"))
