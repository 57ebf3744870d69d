"""The three CLIs (`zoo`, `sane`, `bench`) behave the same: -h/--help everywhere, usage errors
and toolkit errors exit 2, a toolkit error is one clean `Error: ...` line on stderr."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from benchmarks.cli import cli as bench_cli
from modelzoo.cli import main as zoo_cli
from modelzoo.clickutil import ZooGroup
from sane.cli import main as sane_cli

CLIS = {"zoo": zoo_cli, "sane": sane_cli, "bench": bench_cli}


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every group and command path under ``group`` (the group itself is ``()``)."""
    out = [path]
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            out += _commands(cmd, (*path, name))
        else:
            out.append((*path, name))
    return out


def _toolkit_error_args(name: str, empty: Path) -> list[str]:
    """A command line of each CLI that fails with a ZooError (not a click usage error)."""
    return {
        "zoo": ["info", str(empty)],
        "sane": ["train", "--zoo", str(empty), "--out", str(empty / "run")],
        "bench": ["table", str(empty)],
    }[name]


@pytest.mark.parametrize("name", sorted(CLIS))
def test_help_usage_and_toolkit_errors_behave_alike(name: str, tmp_path: Path) -> None:
    cli = CLIS[name]
    assert isinstance(cli, ZooGroup)
    runner = CliRunner()
    for path in _commands(cli):
        for flag in ("-h", "--help"):
            res = runner.invoke(cli, [*path, flag])
            assert res.exit_code == 0, (name, path, flag, res.output)
            assert res.output.startswith("Usage:"), (name, path, flag)
    # a usage error: click's exit code 2
    res = runner.invoke(cli, ["no-such-command"])
    assert res.exit_code == 2 and "No such command" in res.output
    # a toolkit error: exit 2, one line on stderr, no traceback
    empty = tmp_path / "empty"
    empty.mkdir()
    res = runner.invoke(cli, _toolkit_error_args(name, empty))
    assert res.exit_code == 2, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)
    assert res.stdout == ""
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.output
