"""The ``bench`` command line (CliRunner, plus one real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.cli import cli
from benchmarks.registry import METHODS, SUITES, TASKS
from benchmarks.results import load_results

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def test_ls_lists_every_registered_name() -> None:
    res = invoke("ls")
    assert res.exit_code == 0
    for name in [*TASKS.names(), *SUITES.names(), *METHODS.names()]:
        assert name in res.output
    only = invoke("ls", "suites").output
    assert "digits-v1" in only and "digits-test-acc" not in only


def test_run_then_table(var_zoo: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    for method in ("weight-stats-linear", "chance"):
        res = invoke("run", "--task", "digits-test-acc", "--task", "digits-hp-init",
                     "--method", method, "--zoo", var_zoo, "--out", out, "--seeds", 2)
        assert res.exit_code == 0, res.output
        assert "wrote 2 result file(s)" in res.output
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert files == [f"{m}/digits-cnn_s-v1.0.0/{t}.json" for m in ("chance", "weight-stats-linear")
                     for t in ("digits-hp-init", "digits-test-acc")]
    table = invoke("table", out, "--format", "markdown")
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0] == "### digits-cnn_s-v1.0.0"
    # a constant prediction ranks nothing in any resample of the test models
    assert any(line.startswith("| chance | 0.000 ± 0.000 [0.000, 0.000] |") for line in lines)
    assert any(line.startswith("| weight-stats-linear |") for line in lines)
    assert "95% bootstrap interval" in table.output
    plain = invoke("table", out, "--no-ci").output
    assert "| chance | 0.000 ± 0.000 |" in plain and "bootstrap" not in plain
    csv_file = tmp_path / "table.csv"
    assert invoke("table", out, "--format", "csv", "-o", csv_file).exit_code == 0
    assert len(csv_file.read_text().strip().splitlines()) == 1 + 4


def test_run_user_method(var_zoo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cli_user_method.py").write_text(textwrap.dedent(
        """
        from modelzoo import weights_tensor

        class Norm:
            name = "weight-norm"
            def meta(self):
                return {"features": "L2 norm"}
            def features(self, dataset, manifest):
                return weights_tensor(dataset).norm(dim=1, keepdim=True).numpy()
        """
    ))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        res = invoke("run", "--task", "digits-epoch", "--method", "cli_user_method:Norm",
                     "--zoo", var_zoo, "--out", tmp_path / "r", "--seeds", 1)
    finally:
        sys.modules.pop("cli_user_method", None)
    assert res.exit_code == 0, res.output
    (r,) = load_results(tmp_path / "r")
    assert r.method.name == "weight-norm" and r.method.meta["features"] == "L2 norm"


@pytest.mark.parametrize(
    ("args", "code", "match"),
    [
        (["--suite", "digits-v1", "--task", "digits-epoch"], 2, "either --suite or"),
        (["--task", "digits-epoch", "--method", "flat-linaer"], 2, "flat-linear"),
        (["--task", "digits-epch"], 2, "digits-epoch"),
        (["--task", "digits-init-same", "--method", "chance"], 2, "needs sample"),
    ],
)
def test_run_errors_are_clear(var_zoo: Path, args: list[str], code: int, match: str) -> None:
    if "--method" not in args:
        args = [*args, "--method", "chance"]
    res = invoke("run", *args, "--zoo", var_zoo)
    assert res.exit_code == code
    assert match in res.output
    assert "Traceback" not in res.output


def test_schema_check_and_write(tmp_path: Path) -> None:
    assert invoke("schema", "--check").exit_code == 0
    out = tmp_path / "schema.json"
    assert invoke("schema", "--out", out).exit_code == 0
    assert json.loads(out.read_text())["title"] == "TaskResult"


def test_real_subprocess(var_zoo: Path, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "res"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", "run", "--task", "digits-ggap", "--method",
         "weight-stats-linear", "--zoo", str(var_zoo), "--out", str(out), "--seeds", "1"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "digits-ggap: kendall_tau" in proc.stdout
    (r,) = load_results(out)
    assert r.task.name == "digits-ggap" and r.seeds == [0]


def test_table_of_empty_dir_fails_clearly(tmp_path: Path) -> None:
    res = invoke("table", tmp_path)
    assert res.exit_code == 2 and "no result files" in res.output
