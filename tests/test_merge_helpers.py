"""The synthetic zoos of tests/merge_fixtures.py are valid zoos."""

from __future__ import annotations

from pathlib import Path

import torch

import modelzoo
from modelzoo.architectures import create_model
from modelzoo.storage import read_manifest
from tests.merge_fixtures import make_synthetic_zoo


def test_synthetic_zoo_is_a_valid_zoo(tmp_path: Path) -> None:
    m = make_synthetic_zoo(tmp_path / "z", models=3, epochs=1)
    assert read_manifest(tmp_path / "z").content_hash == m.content_hash
    assert m.num_models == 3 and m.num_rows == 6
    entry = m.architectures["cnn_s"]
    net = create_model(entry.name, activation="relu", dropout=0.0, **entry.kwargs)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    modelzoo.verify_zoo(tmp_path / "z")
