"""`zoo build`: CLI, resume after SIGKILL, bad input, full disk, divergence."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from modelzoo.builder import build_zoo, plan_groups
from modelzoo.builder.recipe import make_recipe
from modelzoo.cli import main
from modelzoo.errors import RecipeError, StorageError, ZooError
from modelzoo.storage import load_zoo, read_manifest
from tests.process_fixtures import kill_when, repo_env

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--max-train", "300", "--no-progress"]


def test_cli_build_info_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "z"
    res = runner.invoke(main, ["build", "--arch", "mlp", "--dataset", "digits", "--models", "4",
                               "--epochs", "2", "--checkpoints", "0,2", "--grid",
                               "lr=1e-3,1e-2", "--out", str(out), *FAST])
    assert res.exit_code == 0, res.output
    assert "4 models, 8 checkpoints" in res.output
    m = read_manifest(out)
    zoo = load_zoo(out)
    rows = [r for s in zoo for r in zoo[s].select_columns(["lr", "epoch"])]
    assert {r["lr"] for r in rows} == {1e-3, 1e-2}
    assert {r["epoch"] for r in rows} == {0, 2}
    res = runner.invoke(main, ["info", str(out)])
    assert res.exit_code == 0 and "4 models, 8 checkpoints" in res.output
    assert m.content_hash in res.output
    res = runner.invoke(main, ["validate", str(out)])
    assert res.exit_code == 0 and "ok:" in res.output
    # rerunning a finished build is a no-op returning the same zoo
    res = runner.invoke(main, ["build", "--arch", "mlp", "--models", "4", "--epochs", "2",
                               "--checkpoints", "0,2", "--grid", "lr=1e-3,1e-2",
                               "--out", str(out), *FAST])
    assert res.exit_code == 0 and m.content_hash in res.output


def test_cli_archs_and_help() -> None:
    runner = CliRunner()
    res = runner.invoke(main, ["archs"])
    assert res.exit_code == 0
    assert "2,464" in res.output and "10,853" in res.output and "4,970" in res.output
    res = runner.invoke(main, ["build", "--help"])
    assert res.exit_code == 0 and "resume" in res.output and "Examples" in res.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--arch", "resnet81"], "Did you mean 'resnet18'"),
        (["--arch", "cnn_s", "--dataset", "cifar1000"], "Did you mean 'cifar100'"),
        (["--arch", "cnn_s", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "cifar-10"),
        (["--arch", "cnn_s", "--grid", "lr=-1"], "lr"),
        (["--arch", "cnn_s", "--grid", "activation=swishy"], "unknown ['swishy']"),
        (["--arch", "cnn_s", "--grid", "bogus=1"], "bogus"),
        (["--arch", "cnn_s", "--epochs", "2", "--checkpoints", "0,5"], "outside 0..2"),
        (["--arch", "cnn_s", "--grid", "lr=x,y"], "lr"),
    ],
)
def test_bad_input_gives_clear_error(args: list[str], message: str, tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["build", *args, "--out", str(tmp_path / "z"), *FAST])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output


def test_unwritable_out_is_clear(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="not a directory"):
        build_zoo(out=blocker / "zoo", arch="mlp", models=1, epochs=1, max_train=50)
    with pytest.raises(StorageError, match="not a directory"):
        build_zoo(out=blocker, arch="mlp", models=1, epochs=1, max_train=50)


def test_full_disk_is_clear_and_resumable(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "z"
    real_fsync = os.fsync

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageError, match="disk is full"):
        build_zoo(out=out, arch="mlp", models=2, epochs=1, max_train=50)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert not list(out.rglob("*.arrow"))  # no half-written shard became visible
    m = build_zoo(out=out, arch="mlp", models=2, epochs=1, max_train=50)
    assert m.num_models == 2


def test_other_recipe_in_out_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "z"
    build_zoo(out=out, arch="mlp", models=2, epochs=1, max_train=50)
    with pytest.raises(ZooError, match="different recipe"):
        build_zoo(out=out, arch="mlp", models=3, epochs=1, max_train=50)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ZooError, match="not a zoo build"):
        build_zoo(out=other, arch="mlp", models=2, epochs=1, max_train=50)


def test_diverged_models_are_recorded_and_flagged(tmp_path: Path) -> None:
    m = build_zoo(out=tmp_path / "z", arch="mlp", models=4, epochs=2, max_train=100,
                  grid={"lr": [1e-3, 1e7], "optimizer": ["sgd"]})
    assert m.num_models == 4
    bad = [k for k, v in m.models.items() if v.status == "diverged"]
    assert len(bad) == 2
    zoo = load_zoo(tmp_path / "z")
    statuses = {(r["model_id"], r["epoch"]): r["status"] for s in zoo for r in zoo[s]}
    assert all(statuses[(b, 0)] == "ok" and statuses[(b, 2)] == "diverged" for b in bad)


def test_group_plan_is_deterministic_and_covers_all_models() -> None:
    rec = make_recipe({"name": "x", "architecture": "cnn_s", "models": 40,
                       "grid": {"activation": ["relu", "tanh"], "lr": [1e-3, 1e-4]}})
    a, b = plan_groups(rec, 8), plan_groups(rec, 8)
    assert a == b
    flat = [c for g in a for c in g]
    assert len(flat) == 40 and len(set(flat)) == 40
    assert all(len({c.group_key() for c in g}) == 1 for g in a)
    with pytest.raises(RecipeError):
        make_recipe({"name": "x", "architecture": "cnn_s", "splits": {"train": 0.9}})


def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path) -> None:
    """Kill a real `zoo build` process mid-run; the rerun finishes with the same content."""
    # many small groups: the kill lands part-way however fast one group trains
    args = ["build", "--arch", "mlp", "--models", "48", "--epochs", "2", "--group-size", "2",
            "--grid", "activation=relu,tanh", *FAST]
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    cmd = [sys.executable, "-m", "modelzoo.cli", *args]
    done = killed / ".build" / "done"
    kill_when([*cmd, "--out", str(killed)], lambda: len(list(done.glob("g*.json"))) >= 2)
    n_done = len(list(done.glob("g*.json")))
    assert 2 <= n_done < 24, "the build must be killed part-way"
    assert not (killed / "zoo.json").exists()
    res = subprocess.run([*cmd, "--out", str(killed)], env=repo_env(), capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    res2 = subprocess.run([*cmd, "--out", str(clean)], env=repo_env(), capture_output=True,
                          text=True, timeout=300)
    assert res2.returncode == 0, res2.stderr
    a, b = read_manifest(killed), read_manifest(clean)
    assert a.num_models == b.num_models == 48 and a.num_rows == b.num_rows == 144
    assert a.content_hash == b.content_hash
    zoo = load_zoo(killed)
    keys = [(r["model_id"], r["epoch"]) for s in zoo for r in zoo[s].select_columns(
        ["model_id", "epoch"])]
    assert len(keys) == len(set(keys)) == 144  # nothing lost, nothing duplicated
    assert json.loads((killed / "dataset_dict.json").read_text())["splits"]


def test_build_from_recipe_file_with_overrides(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "name: demo\nversion: 1.2.0\narchitecture: ctc_cnn\nsource: digits\nmax_train: 200\n"
        "epochs: 3\ncheckpoint_epochs: [0, 3]\ngrid:\n  seed: [0, 1]\n  init: [normal, uniform]\n"
        "license: mit\n"
    )
    res = CliRunner().invoke(main, ["build", str(recipe), "--epochs", "3", "--out",
                                    str(tmp_path / "z"), "--no-progress"])
    assert res.exit_code == 0, res.output
    m = read_manifest(tmp_path / "z")
    assert (m.name, m.version, m.license, m.num_models) == ("demo", "1.2.0", "mit", 4)
    assert m.architectures["ctc_cnn"].n_params == 4970
    res = CliRunner().invoke(main, ["ls", str(tmp_path)])
    assert "demo v1.2.0" in res.output and "4 models" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    res = CliRunner().invoke(main, ["build", str(bad), "--out", str(tmp_path / "b")])
    assert res.exit_code == 2 and "not valid YAML" in res.output


def test_perf_benchmark_runs() -> None:
    from benchmarks.perf.common import shared_worker
    from benchmarks.perf.population import measure

    with shared_worker():  # both trainers in one spawned worker: one interpreter start
        res = measure(models=2, epochs=1, arch="mlp")
    pop, loop = res["results"]
    assert (pop["trainer"], loop["trainer"]) == ("population", "loop")
    for r in (pop, loop):
        assert (r["models"], r["epochs"]) == (2, 1) and r["seconds"] > 0
        assert r["models_per_s"] == pytest.approx(2 / r["seconds"])
        assert 50 < r["peak_rss_mb"] < 20_000  # MB of a process with torch (KB -> MB right)
    # the ratio is population over loop speed (same models: loop time / population time)
    assert res["speedup"] == pytest.approx(loop["seconds"] / pop["seconds"])
    # like with like: both timed runs trained the same models to the same test accuracy
    assert 0.1 < pop["mean_test_acc"] <= 1.0  # above chance (10 classes) after one epoch
    assert pop["mean_test_acc"] == pytest.approx(loop["mean_test_acc"], abs=0.005)


def test_resnet18_on_cifar100_from_local_torchvision_files(tmp_path: Path) -> None:
    """The issue's command, end to end, on tiny CIFAR-100 files in the torchvision layout."""
    from tests.source_fixtures import make_pools, write_cifar100

    write_cifar100(tmp_path / "data", make_pools("cifar100"))
    out = tmp_path / "z"
    res = CliRunner().invoke(main, ["build", "--arch", "resnet18", "--dataset", "cifar100",
                                    "--data-dir", str(tmp_path / "data"), "--models", "2",
                                    "--epochs", "1", "--out", str(out), "--no-progress"])
    assert res.exit_code == 0, res.output
    m = read_manifest(out)
    assert m.architectures["resnet18"].kwargs["num_classes"] == 100
    entry = m.architectures["resnet18"]
    learnable = sum(s.numel for s in entry.layout if s.kind == "param")
    assert learnable == 11_220_132  # ResNet-18 with a 100-class head
    assert entry.n_params == learnable + 9_600  # + BatchNorm running mean/var in the vector
    assert m.sources["cifar100"].in_shape == (3, 32, 32)
    res = CliRunner().invoke(main, ["build", "--arch", "resnet18", "--arch-opt", "widht=4",
                                    "--dataset", "cifar100", "--data-dir",
                                    str(tmp_path / "data"), "--out", str(tmp_path / "bad")])
    assert res.exit_code == 2 and "invalid options for architecture" in res.output


def test_one_model_zoo_with_empty_splits_loads_everywhere(tmp_path: Path) -> None:
    import datasets

    m = build_zoo(out=tmp_path / "z", arch="mlp", models=1, epochs=1, max_train=50)
    (split,) = {v.split for v in m.models.values()}
    loaded = datasets.load_dataset(str(tmp_path / "z"), cache_dir=str(tmp_path / "c"))
    assert list(loaded) == [split] and loaded[split].num_rows == 2
    from_disk = datasets.load_from_disk(str(tmp_path / "z"))
    assert sum(from_disk[s].num_rows for s in from_disk) == 2


def test_cli_builds_the_heterogeneous_mix_card(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["build", str(ROOT / "cards" / "hetero-mix.yaml"), "--models",
                                    "2", "--epochs", "1", "--max-train", "100", "--out",
                                    str(tmp_path / "mix"), "--no-progress"])
    assert res.exit_code == 0, res.output
    m = read_manifest(tmp_path / "mix")
    assert {e.name for e in m.architectures.values()} == {"cnn_s", "mlp", "ctc_cnn"}
    assert m.num_models == 6
    res = CliRunner().invoke(main, ["build", str(ROOT / "cards" / "hetero-mix.yaml"), "--arch",
                                    "mlp", "--out", str(tmp_path / "mix2")])
    assert res.exit_code == 2 and "mix of recipes" in res.output


def test_overriding_epochs_cuts_a_recipe_checkpoint_list_and_arch_options_update() -> None:
    from modelzoo.builder.recipe import make_recipe

    raw = {"name": "r", "architecture": "resnet18", "arch_kwargs": {"norm": "bn"},
           "epochs": 50, "checkpoint_epochs": [0, 5, 10, 50]}
    assert make_recipe(raw, epochs=7).checkpoint_epochs == [0, 5, 7]
    assert make_recipe(raw, epochs=10).checkpoint_epochs == [0, 5, 10]
    assert make_recipe(raw, epochs=7, checkpoint_epochs=[7]).checkpoint_epochs == [7]
    assert make_recipe(raw, arch_kwargs={"width": 4}).arch_kwargs == {"norm": "bn", "width": 4}
    other = make_recipe(raw, architecture="cnn_s", arch_kwargs={})
    assert other.arch_kwargs == {}  # another architecture does not inherit resnet options
    with pytest.raises(RecipeError, match="outside 0..7"):
        make_recipe(raw, epochs=7, checkpoint_epochs=[0, 9])
