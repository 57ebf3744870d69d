"""`bench reproduce digits-hetero-v1 --quick` end to end on a 2-architecture card."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import benchmarks.reproduce_hetero as rh
from benchmarks.cli import cli
from benchmarks.results import load_results

TINY_SANE = {"d_model": 32, "n_heads": 2, "n_layers": 1, "latent_dim": 8, "token_size": 201,
             "window_size": 48, "batch_size": 8}


@pytest.fixture()
def tiny_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    grid = {"seed": [0, 1], "activation": ["tanh", "relu"], "optimizer": ["adam", "sgd"],
            "lr": [0.01, 0.001]}
    members = [{"name": f"t-{a}-{s}", "architecture": a, "source": s, "grid": grid,
                "epochs": 2, "checkpoint_epochs": [0, 2],
                "splits": {"train": 0.5, "validation": 0.25, "test": 0.25, "seed": 0},
                **({"arch_kwargs": {"hidden": [8]}} if a == "mlp" else {})}
               for a in ("mlp", "cnn_s") for s in ("digits", "digits_transposed")]
    card = tmp_path / "tiny-hetero.yaml"
    card.write_text(yaml.safe_dump({"kind": "mix", "name": "digits-hetero",
                                    "members": members}))
    monkeypatch.setattr(rh, "CARD", str(card))
    monkeypatch.setitem(rh.SANE_CONFIG, "token_size", TINY_SANE["token_size"])
    for k, v in TINY_SANE.items():
        monkeypatch.setitem(rh.SANE_CONFIG, k, v)
    monkeypatch.setattr(rh, "UNSEEN", ("cnn_s", "mlp"))
    monkeypatch.setattr(rh, "METHODS", ("weight-stats-padded-linear", "zoo-init",
                                        "sane-pooled", "sane-per-arch", "sane-unseen"))
    return card


@pytest.mark.usefixtures("single_thread")
def test_reproduce_hetero_quick(tiny_card: Path, tmp_path: Path) -> None:
    out = tmp_path / "repro"
    res = CliRunner().invoke(cli, ["reproduce", "digits-hetero-v1", "--out", str(out),
                                   "--quick"])
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    assert "(quick variant, unpinned zoos)" in report
    results = load_results(out / "results")
    by_method: dict[str, set[str]] = {}
    for r in results:
        by_method.setdefault(r.method.name, set()).add(r.task.name)
    # the per-architecture runs score only their own architecture's tasks
    assert "digits-hetero-mlp-test-acc" in by_method["sane-per-arch"]
    plan = json.loads((out / "plan.json").read_text())  # the steps, kept for the perf report
    assert plan["complete"] is False and "zoos" in plan["steps"]
    assert set(json.loads((out / "timings.json").read_text())) <= set(plan["steps"])
    assert not any("loao" in t for t in by_method["sane-per-arch"])
    # the unseen runs score the leave-one-architecture-out tasks and that architecture's weights
    assert "digits-hetero-loao-mlp-test-acc" in by_method["sane-unseen"]
    assert "digits-hetero-mlp-generation" in by_method["sane-unseen"]
    # a run without cnn_s (trained on MLPs only) cannot tokenize cnn_s: said, not scored
    assert not any("cnn_s" in t for t in by_method["sane-unseen"])
    assert "Not scored: `sane-unseen` with run `without-cnn_s`" in report
    assert not any("cnn_l" in t or "ctc_cnn" in t for ts in by_method.values() for t in ts)
    assert "| digits-hetero-mlp-test-acc | sane-pooled | sane-per-arch |" in report
    assert "| digits-hetero-loao-mlp-test-acc | sane-pooled | sane-unseen |" in report
    # the unseen run was trained on a zoo without that architecture
    from modelzoo.storage import read_manifest

    assert set(read_manifest(out / "zoos" / "digits-hetero-without-mlp").architectures) == \
        {"cnn_s"}
