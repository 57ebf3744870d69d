"""`zoo build --executor ray` on a local 2-CPU Ray cluster started by the test."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from modelzoo.builder import build_zoo
from modelzoo.storage import load_zoo, read_manifest

ray = pytest.importorskip("ray")
psutil = pytest.importorskip("psutil")

ARGS = {"arch": "cnn_s", "models": 8, "epochs": 2, "max_train": 200, "group_size": 2,
        "grid": {"activation": ["relu", "tanh"]}}


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_zoo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "z"
    build_zoo(out=out, **ARGS)
    return out


def _kill_one_worker_task(stop: threading.Event, killed: list[int]) -> None:
    """SIGKILL the first Ray worker process seen executing a group task."""
    while not stop.is_set() and not killed:
        for p in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(p.info["cmdline"] or [])
            if cmd.startswith("ray::train_group_ipc") and p.pid != os.getpid():
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    continue
                killed.append(p.pid)
                return
        time.sleep(0.02)


def test_ray_matches_local_even_when_a_worker_is_killed(
    local_ray: None, local_zoo: Path, tmp_path: Path
) -> None:
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_one_worker_task, args=(stop, killed), daemon=True)
    killer.start()
    try:
        m = build_zoo(out=tmp_path / "ray", executor="ray", **ARGS)
    finally:
        stop.set()
        killer.join()
    assert killed, "the test must have killed a worker mid-task"
    ref = read_manifest(local_zoo)
    assert m.num_models == ref.num_models == 8
    assert m.content_hash == ref.content_hash  # retried group, same bits, nothing duplicated
    zoo = load_zoo(tmp_path / "ray")
    keys = [(r["model_id"], r["epoch"]) for s in zoo for r in zoo[s].select_columns(
        ["model_id", "epoch"])]
    assert len(keys) == len(set(keys)) == 8 * 3


def test_unreachable_ray_address_is_a_clear_error(tmp_path: Path) -> None:
    from modelzoo.errors import ZooError

    if ray.is_initialized():
        ray.shutdown()
    with pytest.raises(ZooError, match="cannot connect to the Ray cluster"):
        build_zoo(out=tmp_path / "z", executor="ray", address="127.0.0.1:1", **ARGS)
