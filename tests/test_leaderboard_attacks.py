"""Issue 23: adaptive attacks on a held-out board by a submitter who never looks at a weight.

Both attacks run through the CLI (``bench leaderboard add`` in-process with click's
CliRunner, the release in a real subprocess) against the tiny held-out board of
:mod:`tests.heldout_fixtures` (33 view rows of 11 test models; the secret split gives 15
feedback rows and 18 ranking rows), which already holds chance and weight-stats-linear.
Every probe comes under a new method name and a new author name: one person under many
names (sybils), which the per-author limit cannot tell apart.

1. Boosting (Blum & Hardt 2015): 100 probes of random predictions; per task, the probes
   above the median feedback score (regression: above the median |score|) are combined, by
   majority vote per row (classification) or summed with the sign of their score
   (regression), into one more entry.
2. One row at a time, on a regression task: probe ``i`` predicts 1 for row ``i`` and 0
   elsewhere, so its feedback Kendall tau tells whether row ``i``'s label is high or low
   (0: the row is not a feedback row); the combined entry predicts each row's tau.

The attacker reads only what the board publishes (the feedback columns of the rendered
CSV). Each attack works where it can: on the feedback half the combined entry scores far
above the 99th percentile of chance (the same predictions re-assigned to rows at random).
Where it matters it does not: its ranking score stays within the 99th percentile of chance,
and the release publishes nothing of it or of any probe, while the honest weight-stats-linear
ranks first with a ranking score above chance.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from benchmarks.cli import cli
from benchmarks.leaderboard import SubmissionLimitError, add_submission, load_board
from benchmarks.leaderboard.board import load_index, open_board_zoo
from benchmarks.leaderboard.publish import publish_board
from benchmarks.leaderboard.ranking import (
    FEEDBACK,
    RANKING,
    auto_margin,
    ladder,
    ranking_models,
    ranking_score,
)
from benchmarks.leaderboard.score import HeldOutZoo
from benchmarks.registry import TASKS
from benchmarks.scoring import METRICS, score_predictions
from modelzoo.storage import load_zoo
from tests.heldout_fixtures import HoEnv, invoke
from tests.leaderboard_fixtures import snapshot

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[1]
PROBES = 100
ROW_TASK = "digits-test-acc"  # the regression task probed one row at a time


@dataclass
class Attacked:
    """The attacked board after both attacks and a release, and what the attacker saw."""

    board: Path
    held: HeldOutZoo
    seen: dict[str, dict[str, float]]  # method -> task -> published feedback main score
    add_output: str
    release_output: str
    published: dict[str, dict[str, str]]  # method -> CSV row after the release
    subs: dict[str, Path] = field(default_factory=dict)

    def predictions(self, method: str) -> dict[str, np.ndarray]:
        """Per task, the entry's (first seed's) predictions in the board's row order."""
        pos = {r: i for i, r in enumerate(self.held.row_ids() or [])}
        out = {}
        for t in json.loads(self.subs[method].read_text())["tasks"]:
            p = np.empty(len(pos), dtype=object)
            p[[pos[r] for r in t["items"]["row_id"]]] = t["items"]["predictions"][0]
            out[t["task"]] = p
        return out


def _typed(task: str, values: object) -> np.ndarray:
    regression = TASKS.get(task).type == "regression"
    return np.asarray(values, dtype=np.float64 if regression else str)


def _chance(metric: str, y: np.ndarray, p: np.ndarray, draws: int,
            rng: np.random.Generator) -> np.ndarray:
    """``metric`` of ``draws`` random re-assignments of ``p`` to the rows of ``y``."""
    perms = np.array([rng.permutation(p) for _ in range(draws)])
    if metric == "accuracy":  # what sklearn's accuracy_score computes, for all draws at once
        return (perms == y[None, :]).mean(axis=1)
    return np.array([METRICS[metric](y, q) for q in perms])


def half_score(att: Attacked, method: str, half: str, *, tasks: tuple[str, ...] = (),
               null: int = 0) -> tuple[float, float]:
    """``(score, 99th percentile of chance)``: the mean main score over ``tasks`` (default:
    all) of ``method``'s predictions on a half, and of ``null`` random re-assignments of
    those predictions to the half's rows (0: no null)."""
    mask = att.held.halves()[half]  # type: ignore[index]
    preds = att.predictions(method)
    names = tasks or tuple(preds)
    rng = np.random.default_rng(0)
    score, draws = 0.0, np.zeros(null)
    for name in names:
        task = TASKS.get(name)
        y = _typed(name, att.held.zoo.column("test", task.target))[mask]
        p = _typed(name, preds[name])[mask]
        score += score_predictions((task.main_score,), y, p)[task.main_score] / len(names)
        if null:
            draws += _chance(task.main_score, y, p, null, rng) / len(names)
    return score, float(np.quantile(draws, 0.99)) if null else float("nan")


def _published_feedback(board: Path, out: Path) -> dict[str, dict[str, float]]:
    """What anyone sees: the rendered CSV's feedback main scores per method and task."""
    invoke("leaderboard", "render", "--board", board, "--out", out)
    rows = list(csv.DictReader((out / "leaderboard.csv").read_text().splitlines()))
    return {r["method"]: {k.split("/")[0]: float(v) for k, v in r.items()
                          if k.endswith("/mean") and v} for r in rows}


def _write(base: dict, path: Path, name: str, preds: dict[str, list[object]]) -> Path:
    """A submission of ``base``'s rows under a new method and author, one seed."""
    d = json.loads(json.dumps(base))
    d["method"].update(name=name, display_name=name, authors=[f"Sybil {name}"])
    for t in d["tasks"]:
        t["seeds"], t["items"]["predictions"] = [0], [preds[t["task"]]]
    path.write_text(json.dumps(d))
    return path


@pytest.fixture(scope="module")
def attacked(ho_env: HoEnv, tmp_path_factory: pytest.TempPathFactory) -> Attacked:
    """Both attacks through the CLI, then a release (real subprocess) and a render."""
    root = tmp_path_factory.mktemp("attacks")
    board = ho_env.copy("props", root / "board")
    base = json.loads(ho_env.subs["chance"].read_text())
    n = len(base["tasks"][0]["items"]["row_id"])
    tasks = [t["task"] for t in base["tasks"]]
    train = load_zoo(ho_env.public, "train").to_pandas()  # public: the classes to guess from
    classes = {t: sorted(map(str, set(train[TASKS.get(t).target]))) for t in tasks
               if TASKS.get(t).type == "classification"}
    rng = np.random.default_rng(2015)

    # 1. boosting: 100 random probes, each under a new name and author, one `add`
    probes = {}
    for k in range(PROBES):
        probes[f"probe-{k:03d}"] = {
            t: [str(c) for c in rng.choice(classes[t], n)] if t in classes
            else rng.normal(size=n).tolist() for t in tasks}
    files = [_write(base, root / f"{m}.json", m, p) for m, p in probes.items()]
    out = invoke("leaderboard", "add", *files, "--board", board).output
    seen = _published_feedback(board, root / "site-1")
    combined: dict[str, list[object]] = {}
    for t in tasks:
        s = np.array([seen[m][t] for m in probes])
        p = np.array([probes[m][t] for m in probes], dtype=object)
        if t in classes:  # majority vote of the probes above the median
            votes = p[s > np.median(s)]
            combined[t] = [max(sorted(set(col)), key=list(col).count) for col in votes.T]
        else:  # the probes with |score| above the median, summed with the sign of their score
            keep = np.abs(s) > np.median(np.abs(s))
            combined[t] = (np.sign(s[keep])[:, None] * p[keep].astype(float)).sum(0).tolist()
    subs = {"boosted": _write(base, root / "boosted.json", "boosted", combined)}
    invoke("leaderboard", "add", subs["boosted"], "--board", board)

    # 2. one row at a time: probe i predicts 1 for row i of ROW_TASK (chance elsewhere)
    chance = {t["task"]: t["items"]["predictions"][0] for t in base["tasks"]}
    rows = [_write(base, root / f"row-{i:02d}.json", f"row-{i:02d}",
                   {**chance, ROW_TASK: [float(j == i) for j in range(n)]}) for i in range(n)]
    invoke("leaderboard", "add", *rows, "--board", board)
    seen = _published_feedback(board, root / "site-2")
    tau = [seen[f"row-{i:02d}"][ROW_TASK] for i in range(n)]
    subs["row-combined"] = _write(base, root / "row-combined.json", "row-combined",
                                  {**chance, ROW_TASK: tau})
    invoke("leaderboard", "add", subs["row-combined"], "--board", board)

    proc = subprocess.run(  # the maintainer's release, in a real process
        [sys.executable, "-m", "benchmarks.cli", "leaderboard", "release", "--board",
         str(board)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    invoke("leaderboard", "render", "--board", board, "--out", root / "site-3")
    table = csv.DictReader((root / "site-3" / "leaderboard.csv").read_text().splitlines())
    subs["weight-stats-linear"] = ho_env.subs["weight-stats-linear"]
    subs["chance"] = ho_env.subs["chance"]
    return Attacked(board=board, held=open_board_zoo(board, load_index(board), None),
                    seen=seen, add_output=out, release_output=proc.stdout,
                    published={r["method"]: r for r in table}, subs=subs)


def test_boosting_attack_fits_the_feedback_half_only(attacked: Attacked) -> None:
    # what each probe's submitter was told: feedback scores, and that ranking waits
    assert attacked.add_output.count("feedback score") == PROBES
    assert "ranking scores stay private until the next `bench leaderboard release`" \
        in attacked.add_output
    # where the attacker looked, the attack works: far above chance, above the honest entry
    fb, fb99 = half_score(attacked, "boosted", FEEDBACK, null=300)
    honest_fb, _ = half_score(attacked, "weight-stats-linear", FEEDBACK)
    assert fb > fb99 + 0.2 and fb > honest_fb
    # where it matters, it does not: the ranking score is chance
    rk, rk99 = half_score(attacked, "boosted", RANKING, null=300)
    assert rk <= rk99
    # the honest method ranks above chance, first on the released board
    honest, honest99 = half_score(attacked, "weight-stats-linear", RANKING, null=300)
    assert honest > honest99 and honest > rk
    pub = attacked.published
    assert pub["weight-stats-linear"]["rank"] == "1" and pub["chance"]["rank"] == "2"
    assert all(pub[m]["rank"] == "" and pub[m]["ranking_score"] == ""
               for m in pub if m.startswith(("probe-", "row-", "boosted")))
    # the board recorded the same scores it published nothing of
    _, entries = load_board(attacked.board)
    e = {x.method.name: x for x in entries}
    assert ranking_score(e["boosted"]) == pytest.approx(rk)
    assert "not above the best" in attacked.release_output


def test_one_row_probes_learn_feedback_labels_only(attacked: Attacked) -> None:
    ranking = attacked.held.halves()[RANKING]  # type: ignore[index]
    n = len(ranking)
    tau = np.array([attacked.seen[f"row-{i:02d}"][ROW_TASK] for i in range(n)])
    pos = {r: i for i, r in enumerate(attacked.held.row_ids() or [])}
    row_ids = json.loads(attacked.subs["boosted"].read_text())["tasks"][0]["items"]["row_id"]
    in_ranking = np.array([ranking[pos[r]] for r in row_ids])
    # a probe of a ranking row moves no feedback score; most feedback rows give a signal
    assert np.all(tau[in_ranking] == 0) and np.mean(tau[~in_ranking] != 0) > 0.8
    fb, fb99 = half_score(attacked, "row-combined", FEEDBACK, tasks=(ROW_TASK,), null=300)
    assert fb > 0.8 and fb > fb99  # the feedback labels are learnt...
    rk, rk99 = half_score(attacked, "row-combined", RANKING, tasks=(ROW_TASK,), null=300)
    assert rk <= rk99 and rk == 0.0  # ...the ranking ones are not: constant there
    everything, everything99 = half_score(attacked, "row-combined", RANKING, null=300)
    assert everything <= everything99
    assert attacked.published["row-combined"]["ranking_score"] == ""


def test_feedback_does_not_depend_on_ranking_rows(ho_env: HoEnv, tmp_path: Path) -> None:
    """Two submissions that differ only on ranking rows get the same feedback scores (the
    submitter learns nothing of those rows), and different private ranking scores."""
    board = ho_env.copy("props", tmp_path / "b")
    held = open_board_zoo(board, load_index(board), None)
    ranking = held.halves()[RANKING]  # type: ignore[index]
    pos = {r: i for i, r in enumerate(held.row_ids() or [])}
    src = json.loads(ho_env.subs["weight-stats-linear"].read_text())
    for t in src["tasks"]:
        rows, p = t["items"]["row_id"], t["items"]["predictions"]
        t["items"]["predictions"] = [[v if not ranking[pos[r]] else
                                      (-v if isinstance(v, float) else p[0][0])
                                      for r, v in zip(rows, seed, strict=True)] for seed in p]
    src["method"].update(name="twin", authors=["Twin"])
    (tmp_path / "twin.json").write_text(json.dumps(src))
    out = invoke("leaderboard", "add", tmp_path / "twin.json", "--board", board).output
    _, entries = load_board(board)
    e = {x.method.name: x for x in entries}
    for a, b in zip(e["twin"].feedback, e["weight-stats-linear"].feedback, strict=True):
        assert a.scores == b.scores
        assert f"{a.main}" in out
    assert ranking_score(e["twin"]) != ranking_score(e["weight-stats-linear"])


def test_author_limit_and_release(ho_env: HoEnv, tmp_path: Path) -> None:
    board = ho_env.copy("props", tmp_path / "b")  # chance, weight-stats-linear: no authors
    rules = load_index(board).heldout.rules
    assert rules.max_entries_per_author == 5
    base = json.loads(ho_env.subs["chance"].read_text())

    def sub(k: int, authors: list[str]) -> Path:
        d = json.loads(json.dumps(base))
        d["method"].update(name=f"m{k}", authors=authors)
        d["tasks"][0]["items"]["predictions"][0][0] += k + 1.0
        path = tmp_path / f"m{k}.json"
        path.write_text(json.dumps(d))
        return path

    for k in range(3):  # three more anonymous entries: five waiting for the release
        add_submission(submission=sub(k, []), board=board)
    before = snapshot(board)
    with pytest.raises(SubmissionLimitError, match="without an author .*: 5 entries already"):
        add_submission(submission=sub(9, []), board=board)
    res = CliRunner().invoke(cli, ["leaderboard", "add", str(sub(9, [])), "--board",
                                   str(board)])
    assert res.exit_code == 2 and "rejected, the board is unchanged" in res.output
    assert snapshot(board) == before
    add_submission(submission=sub(5, ["  A.  Person "]), board=board)  # another quota
    out = invoke("leaderboard", "release", "--board", board).output
    assert "release 1: 6 entries" in out
    index, entries = load_board(board)
    (rel,) = index.releases
    assert [s.id for s in rel.steps] == [e.id for e in entries]  # in the order added
    res = CliRunner().invoke(cli, ["leaderboard", "release", "--board", str(board)])
    assert res.exit_code == 2 and "nothing to release" in res.output
    add_submission(submission=sub(9, []), board=board)  # a new release, a new quota
    # page, Markdown and the view's card state the rules in plain words
    invoke("leaderboard", "render", "--board", board, "--out", tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    card = (ho_env.view / "README.md").read_text()
    for text in (page, md.replace("\\", ""), card):
        assert "feedback half" in text and "bench leaderboard release" in text
        assert "at most 5 entries per author name" in text
        assert f"by more than {rules.ladder_margin:g}" in text
        assert "names are not identities" in text
    assert "pending release" in md and "| 1 | " in md
    # the Hub rows: feedback metrics, and of the ranking half only what the release published
    publish_board(board=board, out=tmp_path / "hub")
    rows = pq.read_table(tmp_path / "hub" / "data").to_pylist()
    assert {r["rows"] for r in rows} == {"feedback"}
    index, entries = load_board(board)
    published = {s.id: s.published for s in index.releases[0].steps}
    assert {(r["entry_id"], r["ranking_score"]) for r in rows} == {
        (e.id, published.get(e.id)) for e in entries}
    assert "feedback half" in (tmp_path / "hub" / "README.md").read_text()


def test_split_ladder_and_margin_units() -> None:
    ids = [f"m{i}" for i in range(11) for _ in range(3)]  # 11 models, 3 checkpoints each
    a = ranking_models(b"k" * 32, ids, 0.5)
    assert len(a) == 6 and a == ranking_models(b"k" * 32, reversed(ids), 0.5)
    assert a != ranking_models(b"another key" * 3, ids, 0.5)
    with pytest.raises(ValueError, match="at least two"):
        ranking_models(b"k" * 32, ["m0"] * 3, 0.5)
    steps = ladder([("a", 0.31), ("b", 0.35), ("c", 0.52), ("d", 0.55), ("e", 0.9)],
                   best=None, margin=0.1)
    assert [s.published for s in steps] == [0.3, None, 0.5, None, 0.9]
    assert [s.best for s in steps] == [0.3, 0.3, 0.5, 0.5, 0.9]
    assert ladder([("f", 0.95)], best=0.9, margin=0.1)[0].published is None
    y = (np.arange(1100) % 2).astype(str)  # chance accuracy: std about 0.5 / sqrt(1100)
    assert auto_margin([("accuracy", y)], resamples=100) == 0.05  # 2 x 0.015, 1-2-5 up
