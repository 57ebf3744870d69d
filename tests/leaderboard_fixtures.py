"""The leaderboard tests' shared setup (the ``lb_env`` fixture of tests/conftest.py) and
helpers: two methods with every capability, submissions, boards, folder snapshots."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

import benchmarks
from benchmarks.leaderboard import add_submission, make_submission
from benchmarks.methods.providers import RandomInit
from benchmarks.registry import METHODS
from modelzoo.storage.verify import VERIFIED_NAME
from tests.bench_fixtures import one_thread

SCRIPT_NAME = "Chance <script>window.__pwned = 1; document.title = 'pwned';</script>"
IMG_AUTHOR = "<img src=x onerror=\"window.__pwned = 2\">"


class Combo(RandomInit):
    """Every capability: weight statistics features + PyTorch default init samples."""

    name = "combo"

    def __init__(self) -> None:
        self._ws = METHODS.get("weight-stats-linear")()

    def meta(self) -> dict[str, object]:
        return {"version": 1, "features": "weight stats", "weights": {"init": "torch default"}}

    def features(self, dataset: object, manifest: object) -> np.ndarray:
        return self._ws.features(dataset, manifest)


class ComboFlat(Combo):
    """Like Combo, with flat-weight features (different predictions)."""

    name = "combo-flat"

    def __init__(self) -> None:
        self._ws = METHODS.get("flat-linear")()


@dataclass
class LbEnv:
    """The shared setup: zoo, results roots, submission files and two template boards."""

    zoo: Path
    res_full: Path
    res_props: Path
    subs: dict[str, Path] = field(default_factory=dict)
    full_board: Path = Path()
    props_board: Path = Path()

    def board_copy(self, kind: str, dst: Path) -> Path:
        """A private copy of a template board (``full`` or ``props``)."""
        shutil.copytree(self.full_board if kind == "full" else self.props_board, dst)
        return dst


def build_lb_env(root: Path, var_zoo: Path) -> LbEnv:
    """Results of 5 methods, 5 submissions, a digits-v1 board (combo) and a properties board
    (chance with hostile display name, weight-stats-linear, flat-linear), under ``root``."""
    env = LbEnv(zoo=var_zoo, res_full=root / "res-full", res_props=root / "res-props")
    with one_thread():
        for method in (Combo(), ComboFlat()):
            benchmarks.evaluate(method=method, zoo=var_zoo, suite="digits-v1", seeds=2,
                                out=env.res_full, save_predictions=True)
        for method in ("chance", "weight-stats-linear", "flat-linear"):
            benchmarks.evaluate(method=method, zoo=var_zoo, suite="digits-properties-v1",
                                seeds=2, out=env.res_props, save_predictions=True)
    for key, res, suite, method, extra in (
        ("combo", env.res_full, "digits-v1", "combo", {}),
        ("combo-flat", env.res_full, "digits-v1", "combo-flat",
         {"display_name": "Flat <b>bold</b> & co", "url": "https://example.org/flat?a=1&b=2"}),
        ("chance", env.res_props, "digits-properties-v1", "chance",
         {"display_name": SCRIPT_NAME, "authors": ["=HYPERLINK(\"http://x\")", IMG_AUTHOR]}),
        ("ws", env.res_props, "digits-properties-v1", "weight-stats-linear", {}),
        ("flat", env.res_props, "digits-properties-v1", "flat-linear", {}),
    ):
        env.subs[key] = root / f"{key}.json"
        make_submission(results=res, zoo=var_zoo, suite=suite, method=method,
                        out=env.subs[key], **extra)
    env.full_board = root / "board-full"
    env.props_board = root / "board-props"
    with one_thread():
        add_submission(submission=env.subs["combo"], board=env.full_board, zoo=var_zoo)
        for key in ("chance", "ws", "flat"):
            add_submission(submission=env.subs[key], board=env.props_board, zoo=var_zoo)
    return env


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (relative path -> bytes), but the shard verification
    caches (``.verified.json``) that checking a board's zoo may (re)write."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != VERIFIED_NAME}


def edited(src: Path, dst: Path, edit: object) -> Path:
    """Write a copy of submission ``src`` to ``dst`` after ``edit(dict)``."""
    data = json.loads(src.read_text())
    edit(data)  # type: ignore[operator]
    dst.write_text(json.dumps(data))
    return dst


def variant(src: Path, dst: Path, name: str, delta: float = 0.25) -> Path:
    """A copy of a property submission as method ``name`` with one prediction changed."""

    def edit(d: dict) -> None:
        d["method"]["name"] = name
        d["tasks"][0]["items"]["predictions"][0][0] += delta

    return edited(src, dst, edit)
