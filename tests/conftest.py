"""Shared fixtures: a tiny real zoo built once per test session."""

from __future__ import annotations

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
    from modelzoo.build import build_zoo

    out = tmp_path_factory.mktemp("zoo") / "tiny"
    build_zoo(out=out, arch="cnn_s", source="digits", models=12, epochs=3, grid=TINY_GRID,
              name="digits-cnn_s")
    return out


@pytest.fixture(scope="session")
def tiny_mlp_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A digits MLP zoo: 8 models, checkpoints 0..2 (a second architecture for merges)."""
    from modelzoo.build import build_zoo

    out = tmp_path_factory.mktemp("zoo") / "tiny_mlp"
    build_zoo(out=out, arch="mlp", source="digits", models=8, epochs=2)
    return out
