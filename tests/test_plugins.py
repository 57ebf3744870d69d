"""Entry-point plugins: an outside package adds an architecture and a source dataset.

The plugin is a real (tiny) distribution: a package plus a ``.dist-info`` folder with
``entry_points.txt`` in a temporary ``sys.path`` folder, as ``pip install --target`` leaves it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from modelzoo.errors import PluginError, UnknownNameError
from modelzoo.registry import Registry

ROOT = Path(__file__).resolve().parents[1]

ARCH_MODULE = '''
"""A plugin architecture: registered when the entry point's module is imported."""
from torch import nn

from modelzoo import register_arch


@register_arch(description="plugin: a two-layer perceptron")
def plugin_mlp(*, in_channels, num_classes, image_size, activation, dropout, hidden=12):
    """Two dense layers."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, hidden), nn.ReLU(),
                         nn.Linear(hidden, num_classes))
'''

SOURCE_MODULE = '''
"""A plugin source dataset: the bundled digits under another name."""
from modelzoo.sources import SOURCES, SourceSpec
from modelzoo.sources.catalog import read_digits

SOURCES.add("plugin_digits", SourceSpec(
    name="plugin_digits", description="plugin: digits again", num_classes=10,
    in_shape=(1, 8, 8), bundled=read_digits, partition="stratified"))
'''


def make_plugin(root: Path, entry_points: str, files: dict[str, str]) -> Path:
    """Write a distribution ``zoo_plugin_demo`` into ``root`` (a folder for sys.path)."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    info = root / "zoo_plugin_demo-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: zoo-plugin-demo\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    return root


DEMO_ENTRY_POINTS = """
    [modelzoo.architectures]
    plugin_mlp = zoo_plugin_demo.archs

    [modelzoo.sources]
    plugin_digits = zoo_plugin_demo.sources
"""
DEMO_FILES = {
    "zoo_plugin_demo/__init__.py": "",
    "zoo_plugin_demo/archs.py": ARCH_MODULE,
    "zoo_plugin_demo/sources.py": SOURCE_MODULE,
}


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_plugin(tmp_path_factory.mktemp("site"), DEMO_ENTRY_POINTS, DEMO_FILES)


def _zoo(args: list[str], plugin_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(plugin_path)])}
    return subprocess.run([sys.executable, "-m", "modelzoo.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600, check=False)  # fmt: skip


def test_zoo_build_with_a_plugin_architecture_and_source(plugin_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "zoo"
    p = _zoo(["build", "--arch", "plugin_mlp", "--dataset", "plugin_digits", "--models", "2",
              "--epochs", "1", "--max-train", "64", "--out", str(out)], plugin_path)  # fmt: skip
    assert p.returncode == 0, p.stderr
    manifest = json.loads((out / "zoo.json").read_text())
    assert list(manifest["architectures"]) == ["plugin_mlp"]
    assert list(manifest["sources"]) == ["plugin_digits"]
    assert manifest["architectures"]["plugin_mlp"]["n_params"] == 64 * 12 + 12 + 12 * 10 + 10
    listed = _zoo(["archs"], plugin_path)
    assert listed.returncode == 0, listed.stderr
    assert "plugin_mlp" in listed.stdout


def test_ray_workers_import_user_and_plugin_modules(plugin_path: Path, tmp_path: Path) -> None:
    """A user module (no entry point) registers the architecture in the driver; Ray workers
    import it from the job, and load the plugin source through its entry point."""
    pytest.importorskip("ray")
    (plugin_path / "user_archs.py").write_text(
        ARCH_MODULE.replace("plugin_mlp", "user_mlp").replace("plugin:", "user:")
    )
    script = (
        "import user_archs\n"
        "from modelzoo.builder import build_zoo\n"
        f"m = build_zoo(out={str(tmp_path / 'zoo')!r}, arch='user_mlp', source='plugin_digits',"
        " models=2, epochs=1, max_train=64, group_size=1, executor='ray')\n"
        "print(len(m.models), m.num_rows)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(plugin_path)])}
    p = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert p.stdout.split()[-2:] == ["2", "4"]


def on_path(monkeypatch: pytest.MonkeyPatch, root: Path, group: str,
            modules: dict[str, str]) -> None:
    """Put a plugin distribution on sys.path: one entry point per module (``name=module``)."""
    eps = "".join(f"{m.rsplit('.', 1)[-1]} = {m}\n" for m in modules)
    files = {m.replace(".", "/") + ".py": text for m, text in modules.items()}
    make_plugin(root, f"[{group}]\n{eps}", {"zoo_plugin_things/__init__.py": "", **files})
    monkeypatch.syspath_prepend(str(root))


def test_registry_loads_plugins_lazily_and_names_a_broken_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path(monkeypatch, tmp_path, "modelzoo_test.things", {
        "zoo_plugin_things.good": "from tests.test_plugins import THINGS\nTHINGS.add('good', 1)\n",
        "zoo_plugin_things.bad": "raise RuntimeError('broken on purpose')\n",
    })  # fmt: skip
    THINGS.add("builtin", 0)
    assert THINGS.get("builtin") == 0  # a known name never loads plugins
    assert not THINGS._plugins_loaded
    with pytest.raises(PluginError, match=r"'bad' .*zoo-plugin-demo.*broken on purpose"):
        THINGS.get("good")


def test_registry_plugin_names_their_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    on_path(monkeypatch, tmp_path, "modelzoo_test.others", {
        "zoo_plugin_other": "from tests.test_plugins import OTHERS\nOTHERS.add('other', 2)\n",
    })  # fmt: skip
    assert "other" in OTHERS and OTHERS.get("other") == 2
    assert OTHERS.origin("other") == "zoo_plugin_other"
    with pytest.raises(UnknownNameError, match="Did you mean 'other'"):
        OTHERS.get("othr")


THINGS: Registry[int] = Registry("thing", group="modelzoo_test.things")
OTHERS: Registry[int] = Registry("other", group="modelzoo_test.others")
