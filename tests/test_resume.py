"""Resume never loses or duplicates a model, whatever changed between the runs.

Real SIGKILLs of real subprocesses (``zoo build``, ``sane train``, ``sane embed``) at random
moments, with the group size, thread count and executor changed between runs; the result must
equal an uninterrupted run. Also: the plan check before ``zoo.json`` is written, ``zoo
validate`` against the plan, refusals of options that change the numbers, and the thread
choice.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

from modelzoo import threads as thr
from modelzoo.builder import build_zoo, resume_plan
from modelzoo.builder.plan import verify_plan
from modelzoo.builder.recipe import make_recipe
from modelzoo.cli import main as zoo_main
from modelzoo.errors import IncompleteZooError, ZooError
from modelzoo.sources import load_source
from modelzoo.storage import load_zoo, read_manifest
from modelzoo.storage.atomic import replace_dir
from modelzoo.storage.schema import zoo_schema
from modelzoo.storage.writer import ZooWriter
from modelzoo.training import train_population
from modelzoo.training.population import population_path
from tests.process_fixtures import ROOT, kill_when, repo_env

FAST = ["--max-train", "300", "--no-progress"]


def _zoo(*args: str) -> list[str]:
    return [sys.executable, "-m", "modelzoo.cli", *args]


def _fault_rng() -> random.Random:
    """Random kill moments; set MODELZOO_FAULT_SEED to replay a failure (its seed is printed)."""
    seed = int(os.environ.get("MODELZOO_FAULT_SEED", time.time_ns() % 2**32))
    print(f"MODELZOO_FAULT_SEED={seed}")  # shown by pytest when the test fails
    return random.Random(seed)


def _kill_at_random(cmd: list[str], started: Callable[[], bool], rng: random.Random,
                    max_delay: float) -> bool:
    """Start ``cmd``; once ``started()`` holds, wait a random moment and SIGKILL it.

    Returns True if the process was killed, False if it finished first.
    """
    return kill_when(cmd, started, delay=rng.uniform(0.0, max_delay))


def _rows(zoo: Path) -> list[tuple[str, int]]:
    ds = load_zoo(zoo)
    return [(r["model_id"], r["epoch"]) for s in ds
            for r in ds[s].select_columns(["model_id", "epoch"])]


# --------------------------------------------------------------------------- zoo build


def test_issue_sequence_resumes_with_a_larger_group_size(tmp_path: Path) -> None:
    """The issue's sequence: killed after two groups of 4, rerun with groups of 16."""
    args = ["build", "--arch", "cnn_s", "--dataset", "digits", "--models", "32", "--epochs", "3",
            *FAST]
    out, clean = tmp_path / "zg", tmp_path / "clean"
    done = out / ".build" / "done"
    kill_when(_zoo(*args, "--group-size", "4", "--out", str(out)),
              lambda: len(list(done.glob("g*.json"))) >= 2, poll=0.005)
    n_done = len(list(done.glob("g*.json")))
    assert 2 <= n_done < 8, "the build must be killed part-way"
    res = CliRunner().invoke(zoo_main, [*args, "--group-size", "16", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "32 models, 128 checkpoints" in res.output
    build_zoo(out=clean, arch="cnn_s", source="digits", models=32, epochs=3, max_train=300)
    a, b = read_manifest(out), read_manifest(clean)
    assert a.num_models == 32 and a.content_hash == b.content_hash
    rows = _rows(out)
    assert len(rows) == len(set(rows)) == 128
    assert "32 planned models present once" in verify_plan(out)


def test_resume_with_a_smaller_group_size_trains_only_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Groups of 8 committed by a crashed first run are kept when the rerun plans groups
    of 3 across them; only the other models are trained."""
    import modelzoo.builder.zoo as build

    rec = make_recipe({"name": "r", "architecture": "mlp", "models": 24, "epochs": 2,
                       "max_train": 300})
    out = tmp_path / "z"
    real = build.group_tables
    trained: list[str] = []

    def crash_on_third(job, cfgs, data):  # type: ignore[no-untyped-def]
        if len(trained) >= 16:
            raise KeyboardInterrupt
        trained.extend(rec.model_id(c) for c in cfgs)
        yield from real(job, cfgs, data)

    monkeypatch.setattr(build, "group_tables", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_zoo(out=out, recipe=rec, group_size=8)
    finished = ZooWriter(out, zoo_schema(None)).finished_models()
    assert sorted(finished) == sorted(trained) and len(finished) == 16
    todo = resume_plan(rec, 3, finished)
    rest = {rec.model_id(c) for c in rec.configs()} - set(finished)
    assert sorted(rec.model_id(c) for _, g in todo for c in g) == sorted(rest)
    assert not {gi for gi, _ in todo} & set(finished.values())  # no committed index reused
    assert len({gi for gi, _ in todo}) == len(todo)
    trained.clear()
    monkeypatch.setattr(build, "group_tables", lambda job, cfgs, data: (
        trained.extend(rec.model_id(c) for c in cfgs) or real(job, cfgs, data)))
    m = build_zoo(out=out, recipe=rec, group_size=3)
    assert sorted(trained) == sorted(rest)  # nothing trained twice
    clean = build_zoo(out=tmp_path / "clean", recipe=rec)
    assert m.num_models == 24 and m.content_hash == clean.content_hash


def test_randomized_sigkills_with_changing_group_size_threads_and_executor(
    tmp_path: Path,
) -> None:
    """>= 5 SIGKILLs at random moments of one build; group size and threads change every
    run and the last run uses Ray: the zoo equals the uninterrupted build."""
    rng = _fault_rng()
    out, clean = tmp_path / "z", tmp_path / "clean"
    args = ["build", "--arch", "cnn_s", "--models", "48", "--epochs", "4", *FAST]
    kills = 0
    for _ in range(12):
        gs, th = rng.choice([1, 2, 3, 5, 7, 16]), rng.choice([1, 2])
        cmd = _zoo(*args, "--group-size", str(gs), "--threads", str(th), "--out", str(out))
        started = (out / ".build" / "numerics.json").exists
        kills += _kill_at_random(cmd, started, rng, max_delay=1.2)
        assert not (out / "zoo.json").exists() or kills < 5
        if kills >= 5:
            break
        ZooWriter(out, zoo_schema(None)).finished_models()  # raises on a duplicate commit
    assert kills >= 5, "the build finished before it could be killed 5 times"
    last = ["--executor", "ray"] if shutil.which("ray") or _has_ray() else []
    res = subprocess.run(_zoo(*args, "--group-size", "8", *last, "--out", str(out)),
                         env=repo_env(), capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    build_zoo(out=clean, arch="cnn_s", source="digits", models=48, epochs=4, max_train=300)
    a, b = read_manifest(out), read_manifest(clean)
    assert a.num_models == 48 and a.num_rows == 240
    assert a.content_hash == b.content_hash
    rows = _rows(out)
    assert len(rows) == len(set(rows)) == 240
    verify_plan(out)


def _has_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("arch", ["cnn_s", "mlp", "ctc_cnn"])
def test_population_numbers_do_not_depend_on_group_or_threads(arch: str) -> None:
    """What makes free regrouping exact: a model's weights and metrics are bit-identical
    alone, in any group and with 1 or 2 threads (dense path on digits)."""
    rec = make_recipe({"name": "p", "architecture": arch, "models": 7, "epochs": 2,
                       "grid": {"optimizer": ["adam", "sgd"], "lr": [1e-3, 3e-3]}})
    data = load_source("digits", max_train=200)
    from modelzoo.builder.groups import arch_kwargs_for as _arch_kwargs

    kw = _arch_kwargs(rec, data)
    cfgs = rec.configs()

    def run(c: list, n_threads: int) -> list:
        with thr.limit_threads(n_threads):
            return list(train_population(arch=arch, arch_kwargs=kw, configs=c, data=data,
                                         epochs=2, checkpoint_epochs=[0, 2]))

    full = run(cfgs, 2)
    for part, n_threads in ((cfgs[:1], 1), (cfgs[2:5], 2), (cfgs, 1)):
        got = run(part, n_threads)
        k0 = cfgs.index(part[0])
        for ck, ref in zip(got, full):
            assert torch.equal(ck.weights, ref.weights[k0:k0 + len(part)])
            for name, v in ck.metrics.items():
                assert torch.equal(v, ref.metrics[name][k0:k0 + len(part)]), name


def test_changing_the_trainer_on_resume_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "z"
    (out / ".build").mkdir(parents=True)
    rec = make_recipe({"name": "r", "architecture": "mlp", "models": 4, "epochs": 1})
    (out / ".build" / "recipe.json").write_text(json.dumps(rec.build_key(), sort_keys=True))
    (out / ".build" / "numerics.json").write_text(
        json.dumps({"trainer": "population", "device": "cpu"}))
    res = CliRunner().invoke(zoo_main, ["build", "--arch", "mlp", "--models", "4", "--epochs",
                                        "1", "--name", "r", "--trainer", "loop", "--out",
                                        str(out), "--no-progress"])
    assert res.exit_code == 2
    assert "--trainer population (this run: loop)" in res.output


def test_dropout_recipe_refuses_another_group_size(tmp_path: Path) -> None:
    """Dropout masks are drawn per population: the group size changes the numbers there."""
    grid = {"dropout": [0.5]}
    build_zoo(out=tmp_path / "a", arch="mlp", models=4, epochs=1, grid=grid, group_size=2,
              max_train=200)
    (tmp_path / "a" / "zoo.json").unlink()  # as if killed before the manifest
    (tmp_path / "a" / ".build" / "done").mkdir(parents=True, exist_ok=True)
    (tmp_path / "a" / ".build" / "recipe.json").write_text(json.dumps(make_recipe(
        {"name": "mlp-digits", "architecture": "mlp", "models": 4, "epochs": 1, "grid": grid,
         "max_train": 200}).build_key(), sort_keys=True))
    (tmp_path / "a" / ".build" / "numerics.json").write_text(
        json.dumps({"trainer": "population", "device": "cpu", "group_size": 2}))
    with pytest.raises(ZooError, match=r"--group-size 2 \(this run: 4\)"):
        build_zoo(out=tmp_path / "a", arch="mlp", models=4, epochs=1, grid=grid,
                  group_size=4, max_train=200)
    m = build_zoo(out=tmp_path / "a", arch="mlp", models=4, epochs=1, grid=grid,
                  group_size=2, max_train=200)
    assert m.num_models == 4


def test_loop_trainer_records_and_repeats_its_thread_count(tmp_path: Path) -> None:
    out = tmp_path / "z"
    (out / ".build").mkdir(parents=True)
    rec = make_recipe({"name": "mlp-digits", "architecture": "mlp", "models": 2, "epochs": 1,
                       "max_train": 200})
    (out / ".build" / "recipe.json").write_text(json.dumps(rec.build_key(), sort_keys=True))
    (out / ".build" / "numerics.json").write_text(
        json.dumps({"trainer": "loop", "device": "cpu", "threads": 1}))
    with pytest.raises(ZooError, match=r"--threads 1 \(this run: 2\)"):
        build_zoo(out=out, recipe=rec, trainer="loop", threads=2)
    m = build_zoo(out=out, recipe=rec, trainer="loop")  # auto repeats the recorded count
    assert m.num_models == 2


def test_manifest_is_refused_when_models_are_missing(tmp_path: Path, tiny_zoo: Path) -> None:
    """finalize checks the committed ids against the plan before zoo.json is written."""
    ds = load_zoo(tiny_zoo, split="train")
    table = ds.data.table
    ids = sorted(set(table.column("model_id").to_pylist()))
    writer = ZooWriter(tmp_path / "z", table.schema)
    writer.write_group(0, table)
    kwargs = dict(name="x", version="1.0.0", recipe={}, architectures={}, sources={},
                  toolkit_version="0")
    with pytest.raises(IncompleteZooError, match=r"1 missing \(zz-missing\)"):
        writer.finalize(**kwargs, planned={*ids, "zz-missing"})
    assert not (tmp_path / "z" / "zoo.json").exists()
    with pytest.raises(IncompleteZooError, match="1 not in the plan"):
        writer.finalize(**kwargs, planned=set(ids[1:]))
    assert writer.finalize(**kwargs, planned=set(ids)).num_models == len(ids)


def test_validate_checks_the_zoo_against_its_plan(tmp_path: Path, tiny_zoo: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(zoo_main, ["validate", str(tiny_zoo)])
    assert res.exit_code == 0, res.output
    assert "12 planned models present once, 48 checkpoints as planned" in res.output
    # a zoo.json whose recipe plans more models than it holds
    z = tmp_path / "more"
    shutil.copytree(tiny_zoo, z)
    man = json.loads((z / "zoo.json").read_text())
    man["recipe"]["models"] = 13
    (z / "zoo.json").write_text(json.dumps(man))
    res = runner.invoke(zoo_main, ["validate", str(z)])
    assert res.exit_code == 2 and "1 missing" in res.output
    # a shard listed twice: every row of it duplicated, checksums all fine
    z2 = tmp_path / "dup"
    shutil.copytree(tiny_zoo, z2)
    man = json.loads((z2 / "zoo.json").read_text())
    f = next(f for f in man["files"] if f["split"] == "train" and f["num_rows"])
    copy = Path(f["path"]).with_name("data-g00999.arrow")
    shutil.copy(z2 / f["path"], z2 / copy)
    man["files"].append({**f, "path": str(copy)})
    (z2 / "zoo.json").write_text(json.dumps(man))
    res = runner.invoke(zoo_main, ["validate", str(z2)])
    assert res.exit_code == 2 and "written more than once" in res.output


def test_orphan_shards_of_an_uncommitted_group_are_removed(tmp_path: Path) -> None:
    """A crash after a group's shards were renamed but before its marker: the rerun deletes
    them, so ``load_dataset`` (which globs the split folders) sees no duplicate rows."""
    rec = make_recipe({"name": "r", "architecture": "mlp", "models": 6, "epochs": 1,
                       "max_train": 200})
    clean = build_zoo(out=tmp_path / "clean", recipe=rec, group_size=2)
    out = tmp_path / "z"
    shutil.copytree(tmp_path / "clean", out)
    (out / "zoo.json").unlink()
    done = sorted((tmp_path / "clean").glob("train/data-g*.arrow"))
    orphan = out / "train" / "data-g00042.arrow"
    shutil.copy(done[0], orphan)
    (out / "train" / ".data-g00007.arrow.tmp").write_bytes(b"partial")
    (out / ".build" / "done").mkdir(parents=True)
    (out / ".build" / "recipe.json").write_text(json.dumps(rec.build_key(), sort_keys=True))
    m = build_zoo(out=out, recipe=rec, group_size=2)
    assert not orphan.exists() and not (out / "train" / ".data-g00007.arrow.tmp").exists()
    assert m.content_hash == clean.content_hash
    ds = datasets.load_dataset(str(out))
    assert sum(len(ds[s]) for s in ds) == 12


# --------------------------------------------------------------------------- threads


def test_cgroup_quota_and_allowed_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert thr.cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert thr.cgroup_cpu_quota(tmp_path) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("200000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert thr.cgroup_cpu_quota(v1) == 2.0
    assert 1 <= thr.allowed_cpus() <= len(os.sched_getaffinity(0))


def test_auto_threads_leaves_out_busy_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(thr, "allowed_cpus", lambda: 4)
    for idle, want in ((4.0, 4), (3.4, 3), (1.2, 1), (0.1, 1), (None, 4)):
        monkeypatch.setattr(thr, "idle_cpus", lambda window=0.1, v=idle: v)
        assert thr.auto_threads() == want
    assert thr.resolve_threads(3) == 3
    with pytest.raises(ValueError):
        thr.resolve_threads(0)


def test_idle_cpus_from_proc_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Idle CPUs = CPUs x idle share of the jiffies between two reads (iowait counts idle)."""
    stat = tmp_path / "stat"
    reads = iter([
        "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3\n",   # busy 200, total 1000
        "cpu  250 0 150 1050 150 0 0 0 0 0\ncpu0 1 2 3\n",  # +200 busy of +600
    ])

    def fake_sleep(_: float) -> None:
        nxt = next(reads, None)
        if nxt is not None:
            stat.write_text(nxt)

    stat.write_text(next(reads))
    monkeypatch.setattr(thr.time, "sleep", fake_sleep)
    monkeypatch.setattr(thr.os, "cpu_count", lambda: 3)
    assert thr.idle_cpus(0.1, stat=str(stat)) == pytest.approx(3 * (1 - 200 / 600))
    assert thr.idle_cpus(0.1, stat=str(tmp_path / "missing")) is None


def test_idle_cpus_sees_a_busy_process() -> None:
    """/proc/stat sampling: a spinning child takes about one CPU off the idle count.

    Other jobs on a shared machine come and go, so the quiet/busy pair is measured up to three
    times; one clear drop passes (a broken sampler never shows one)."""
    drops = []
    for _ in range(3):
        quiet = thr.idle_cpus(0.3)
        if quiet is None:
            pytest.skip("no /proc/stat")
        if quiet < 1.0:
            continue
        spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.3)
            busy = thr.idle_cpus(0.5)
        finally:
            spin.kill()
            spin.wait()
        assert busy is not None
        drops.append(quiet - busy)
        if quiet - busy > 0.5:
            return
    if not drops:
        pytest.skip("the machine is busy (under 1 idle CPU): nothing left to take")
    pytest.fail(f"a spinning process never took 0.5 CPU off the idle count: drops {drops}")


def test_population_path_is_reported_per_network() -> None:
    from modelzoo.architectures import create_model

    assert population_path(create_model("cnn_s", in_channels=1, image_size=8), (1, 8, 8),
                           torch.device("cpu")) == "dense"
    assert population_path(create_model("cnn_s", in_channels=1, image_size=28), (1, 28, 28),
                           torch.device("cpu")) == "grouped"
    assert population_path(create_model("cnn_s", in_channels=1, image_size=8), (1, 8, 8),
                           torch.device("meta")) == "vmap"


# --------------------------------------------------------------------------- sane


TINY_SANE = ["--d-model", "32", "--n-heads", "2", "--n-layers", "1", "--latent-dim", "8",
             "--token-size", "32", "--window-size", "16",
             "--batch-size", "4", "--lr", "0.001"]
#: The same settings as SaneConfig fields.
TINY_SANE_CONFIG = {"d_model": 32, "n_heads": 2, "n_layers": 1, "latent_dim": 8,
                    "token_size": 32, "window_size": 16, "batch_size": 4, "lr": 0.001}


def test_sane_train_randomized_sigkills_equal_an_uninterrupted_run(
    tiny_zoo: Path, tmp_path: Path
) -> None:
    rng = _fault_rng()
    killed, straight = tmp_path / "killed", tmp_path / "straight"
    args = [sys.executable, "-m", "sane.cli", "train", "--zoo", str(tiny_zoo), *TINY_SANE,
            "--epochs", "8", "--quiet", "--threads", "1"]
    kills = 0
    for _ in range(12):
        kills += _kill_at_random([*args, "--out", str(killed)], (killed / "ckpt.pt").exists,
                                 rng, max_delay=1.0)
        if kills >= 5:
            break
    assert kills >= 3, "sane train finished before it could be killed"
    res = subprocess.run([*args, "--out", str(killed)], env=repo_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    from sane.config import SaneConfig
    from sane.train import train

    # the uninterrupted run in this process: the CLI's config and thread count (1)
    train(zoo=tiny_zoo, out=straight, config=SaneConfig(**TINY_SANE_CONFIG, epochs=8),
          progress=False, threads=1)
    a = torch.load(killed / "ckpt.pt", weights_only=True)
    b = torch.load(straight / "ckpt.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 7
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-6)


def test_sane_embed_output_is_replaced_atomically(tiny_zoo: Path, tmp_path: Path) -> None:
    """Kill `sane embed` at random moments over an existing output: the output always loads
    whole (the old dataset until the new one is swapped in), never half-written or gone."""
    from modelzoo.threads import limit_threads
    from sane.config import SaneConfig
    from sane.embed import embed
    from sane.train import train

    run, out = tmp_path / "run", tmp_path / "emb"
    # the run and the first output in this process (the CLI's threads: 1); only the killed
    # and the last embed need processes of their own
    with limit_threads(1):
        train(zoo=tiny_zoo, out=run, config=SaneConfig(**TINY_SANE_CONFIG, epochs=1),
              progress=False)
        embed(run=run, zoo=tiny_zoo, out=out, progress=False)
    cmd = [sys.executable, "-m", "sane.cli", "embed", "--run", str(run), "--zoo",
           str(tiny_zoo), "--out", str(out), "--quiet"]
    want = datasets.load_from_disk(str(out))["embedding"]
    rng = _fault_rng()
    for _ in range(5):
        _kill_at_random(cmd, lambda: True, rng, max_delay=4.0)
        got = datasets.load_from_disk(str(out))
        assert len(got) == 48
        np.testing.assert_allclose(np.asarray(got["embedding"]), np.asarray(want), atol=1e-6)
    res = subprocess.run(cmd, env=repo_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0
    assert not list(tmp_path.glob(".emb.*")), "stale temp folders are cleaned up"


@pytest.mark.parametrize("exchange", [True, False])
def test_replace_dir_swaps_whole_folders(tmp_path: Path, exchange: bool,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import modelzoo.storage.atomic as atomic

    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out, tmp = tmp_path / "out", tmp_path / ".out.tmp"
    tmp.mkdir()
    (tmp / "a").write_text("1")
    replace_dir(tmp, out)
    assert (out / "a").read_text() == "1" and not tmp.exists()
    tmp.mkdir()
    (tmp / "b").write_text("2")
    replace_dir(tmp, out)
    assert sorted(p.name for p in out.iterdir()) == ["b"]
    assert not tmp.exists() and not (tmp_path / ".out.old").exists()


def test_bench_run_results_are_whole_after_random_kills(tiny_zoo: Path, tmp_path: Path) -> None:
    """Every result file a killed `bench run` leaves is a complete, loadable result."""
    from benchmarks.results import load_results

    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "benchmarks.cli", "run", "--suite", "digits-properties-v1",
           "--method", "flat-linear", "--zoo", str(tiny_zoo), "--out", str(out),
           "--save-predictions"]
    rng = _fault_rng()
    for _ in range(5):
        _kill_at_random(cmd, lambda: True, rng, max_delay=6.0)
        for f in out.rglob("*.json"):
            json.loads(f.read_text())
        if out.exists():
            load_results(out)
        for f in out.rglob("*.parquet"):
            pq.read_table(f)  # raises on a partial file
    res = subprocess.run(cmd, env=repo_env(), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    # the tiny zoo serves 4 of the suite's 6 tasks (one init and one optimizer: nothing to
    # classify); each is a whole result of this zoo
    results = load_results(out)
    assert sorted(r.task.name for r in results) == [
        "digits-epoch", "digits-ggap", "digits-hp-activation", "digits-test-acc"]


def test_validate_plan_of_an_aligned_zoo(tiny_zoo: Path, tmp_path: Path) -> None:
    """An aligned zoo keeps its input's plan (its recipe gains only an alignment record)."""
    from modelzoo.align import align_zoo

    align_zoo(zoo=tiny_zoo, out=tmp_path / "aligned")
    assert "12 planned models present once" in verify_plan(tmp_path / "aligned")


def test_recent_threads_measures_at_most_once_per_max_age(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """zoo build asks at every group; the 0.1 s probe must not run for every small group."""
    probes: list[int] = []
    monkeypatch.setattr(thr, "auto_threads", lambda: probes.append(1) or len(probes))
    clock = [100.0]
    monkeypatch.setattr(thr.time, "monotonic", lambda: clock[0])
    recent = thr.RecentThreads(max_age=10.0)
    assert [recent(), recent(), recent()] == [1, 1, 1] and len(probes) == 1
    clock[0] += 10.0
    assert recent() == 2 and len(probes) == 2
