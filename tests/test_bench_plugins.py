"""Entry-point plugins: an outside distribution adds a task and a method (``bench ls``,
``bench run`` in real subprocesses), and a broken plugin fails with its name."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks.results import load_results

ROOT = Path(__file__).resolve().parents[1]

TASKS_PY = """
from benchmarks.registry import register_task
from benchmarks.tasks.metadata import TaskMetadata, ZooRef

register_task(TaskMetadata(
    name="plug-digits-epoch", description="Plugin task: regress the epoch from the weights.",
    type="regression", zoo=ZooRef(name="digits-cnn_s", version="1.0.0"), target="epoch",
    metrics=("kendall_tau", "r2"), main_score="kendall_tau"))
"""

METHOD_PY = """
from modelzoo import weights_tensor


class Norm:
    name = "plug-norm"

    def meta(self):
        return {"features": "L2 norm of the weights", "version": 1}

    def features(self, dataset, manifest):
        return weights_tensor(dataset).norm(dim=1, keepdim=True).numpy()
"""


def make_distribution(root: Path, name: str, modules: dict[str, str],
                      entry_points: str) -> Path:
    """A distribution as pip installs it: modules plus ``<name>-0.1.dist-info`` with
    ``METADATA`` and ``entry_points.txt`` (``importlib.metadata`` finds it on sys.path)."""
    for rel, text in modules.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return root


def bench(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "benchmarks.cli", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300, check=False)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_distribution(
        tmp_path_factory.mktemp("site"), "benchplug",
        {"benchplug/__init__.py": "", "benchplug/tasks.py": TASKS_PY,
         "benchplug/method.py": METHOD_PY},
        """
        [benchmarks.tasks]
        benchplug = benchplug.tasks

        [benchmarks.methods]
        plug-norm = benchplug.method:Norm
        """)


def test_plugin_task_and_method_are_listed(plugin_site: Path) -> None:
    proc = bench(plugin_site, "ls")
    assert proc.returncode == 0, proc.stderr
    tasks = proc.stdout.split("Tasks")[1].split("Methods")[0]
    methods = proc.stdout.split("Methods")[1]
    assert "plug-digits-epoch" in tasks and "digits-test-acc" in tasks
    assert "plug-norm" in methods and "features" in methods.split("plug-norm")[1].splitlines()[0]


def test_plugin_task_and_method_run(plugin_site: Path, var_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "res"
    proc = bench(plugin_site, "run", "--task", "plug-digits-epoch", "--method", "plug-norm",
                 "--zoo", str(var_zoo), "--out", str(out), "--seeds", "1")
    assert proc.returncode == 0, proc.stderr
    assert "plug-digits-epoch: kendall_tau" in proc.stdout
    (r,) = load_results(out)
    assert (r.task.name, r.method.name) == ("plug-digits-epoch", "plug-norm")
    assert r.method.meta["features"] == "L2 norm of the weights"
    assert set(r.scores["test"]) == {"kendall_tau", "r2"}


def test_broken_plugin_is_named(tmp_path: Path) -> None:
    site = make_distribution(
        tmp_path, "brokenplug", {"brokenplug.py": "raise ImportError('needs torch>=9')\n"},
        """
        [benchmarks.tasks]
        broken = brokenplug
        """)
    proc = bench(site, "ls", "tasks")
    assert proc.returncode != 0
    assert "plugin 'broken' (benchmarks.tasks = brokenplug) of distribution brokenplug 0.1" \
        in proc.stderr
    assert "needs torch>=9" in proc.stderr and "uninstall" in proc.stderr
    assert "Traceback" not in proc.stderr
