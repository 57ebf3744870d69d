"""The held-out board tests' shared setup (the ``ho_env`` fixture of tests/conftest.py): a
public zoo and held-out boards built from one tiny recipe (16 digits CNN-s models, 3
checkpoints each), with chance and weight-stats-linear entries, all through the CLI."""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from click.testing import CliRunner, Result

from benchmarks.cli import cli
from benchmarks.leaderboard.heldout import init_board
from modelzoo.builder import build_zoo
from tests.bench_fixtures import one_thread

PROPS = "digits-properties-v1"
KEY = hashlib.sha256(b"test board key").digest()
RECIPE = """\
name: digits-cnn_s
version: 1.0.0
architecture: cnn_s
source: digits
grid:
  seed: [0, 1]
  activation: [relu, tanh]
  init: [kaiming_uniform, xavier_uniform]
  optimizer: [adam, sgd]
  lr: [0.003]
epochs: 2
checkpoint_epochs: all
splits: {train: 0.7, validation: 0.15, test: 0.15, seed: 0}
"""


@dataclass
class HoEnv:
    """Public zoo, held-out board (empty and with chance + weight-stats entries), view."""

    recipe: Path
    public: Path
    board: Path
    view: Path
    res: Path
    cli_board: Path
    subs: dict[str, Path] = field(default_factory=dict)
    props_board: Path = Path()

    def copy(self, kind: str, dst: Path) -> Path:
        """A private copy of the empty board or of the one with property entries."""
        shutil.copytree(self.board if kind == "empty" else self.props_board, dst)
        return dst


def invoke(*args: object) -> Result:
    res = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def build_ho_env(root: Path) -> HoEnv:
    """init -> run --heldout -> submit -> add, all through the CLI, under ``root``."""
    env = HoEnv(recipe=root / "recipe.yaml", public=root / "public", board=root / "board",
                view=root / "view", res=root / "res", cli_board=root / "cli-board")
    env.recipe.write_text(RECIPE)
    with one_thread():
        build_zoo(out=env.public, recipe=env.recipe)  # `zoo build recipe.yaml`: the public zoo
        out = invoke("leaderboard", "init", "--recipe", env.recipe, "--board", env.cli_board,
                     "--view", root / "cli-view", "--public-zoo", env.public)
        assert "random secret seeds" in out.output
        assert "keep the board folder private" in out.output
        # the board the other tests use: known seeds and key, so the attack is reproducible
        init_board(recipe=env.recipe, board=env.board, view=env.view, public_zoo=env.public,
                   seed_offset=1000, key=KEY)
        for method in ("chance", "weight-stats-linear"):
            invoke("run", "--suite", PROPS, "--method", method, "--zoo", env.public,
                   "--heldout", env.view, "--out", env.res, "--seeds", 2, "--save-predictions")
            env.subs[method] = root / f"{method}.json"
            invoke("submit", "--results", env.res, "--zoo", env.view, "--suite", PROPS,
                   "--method", method, "--out", env.subs[method])
        env.props_board = root / "board-props"
        shutil.copytree(env.board, env.props_board)
        for method in ("chance", "weight-stats-linear"):
            invoke("leaderboard", "add", env.subs[method], "--board", env.props_board)
    return env
