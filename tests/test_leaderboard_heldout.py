"""Held-out boards (issue 13): a private zoo built with other seeds, a label-free public view,
row-id submissions scored against private labels, the verified track, and the attacks.

Everything is real: a public zoo and a held-out board built from one tiny recipe (16 digits
CNN-s models, 3 checkpoints each), ``bench`` commands through click's CliRunner, one real
subprocess. The shared setup is built once per session by the ``ho_env`` fixture
(:func:`tests.heldout_fixtures.build_ho_env`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from click.testing import CliRunner

import benchmarks
from benchmarks.cli import cli
from benchmarks.leaderboard import (
    IncompleteSubmissionError,
    InvalidSubmissionError,
    LeaderboardError,
    SubmissionRejected,
    ZooVersionError,
    add_submission,
    load_board,
    make_submission,
    read_submission,
)
from benchmarks.leaderboard.board import load_index, open_board_zoo
from benchmarks.leaderboard.heldout import heldout_recipe, init_board, make_view
from benchmarks.leaderboard.render import OPEN_BOARD_NOTE
from benchmarks.leaderboard.verify import VerificationError, verify_entry
from benchmarks.leaderboard.view import VIEW_COLUMNS, HeldOutView, ViewedZoo, row_id
from benchmarks.registry import SUITES, TASKS
from benchmarks.results import load_results
from benchmarks.scoring import score_predictions
from modelzoo.builder.recipe import load_recipe
from modelzoo.storage import SPLITS, load_zoo, read_manifest, weights_tensor
from tests.heldout_fixtures import PROPS, HoEnv, invoke
from tests.leaderboard_fixtures import Combo, snapshot

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[1]
def edited(src: Path, dst: Path, edit: object, *, raw: object = None) -> Path:
    data = json.loads(src.read_text())
    edit(data)  # type: ignore[operator]
    text = json.dumps(data)
    if raw is not None:
        text = raw(text)  # type: ignore[operator]
    dst.write_text(text)
    return dst


def _weight_hashes(path: Path) -> set[str]:
    return {hashlib.sha256(np.ascontiguousarray(r, dtype=np.float32).tobytes()).hexdigest()
            for s in SPLITS for r in weights_tensor(load_zoo(path, s)).numpy()}


# --------------------------------------------------------------------------- the held-out zoo


def test_heldout_zoo_shares_no_model_or_weights_with_the_public_zoo(ho_env: HoEnv) -> None:
    pub = read_manifest(ho_env.public)
    for board in (ho_env.board, ho_env.cli_board):
        held = read_manifest(board / "heldout")
        assert held.num_models == pub.num_models == 16
        assert not set(held.models) & set(pub.models)
        index = load_index(board)
        assert index.heldout.seeds == sorted(held.recipe["grid"]["seed"])
        assert index.heldout.public_zoo.content_hash == pub.content_hash
        assert index.zoo == index.heldout.view  # submissions pin the view
        assert not _weight_hashes(board / "heldout") & _weight_hashes(ho_env.public)
    # default (CLI): secret random seeds, nobody can rebuild the zoo from the public recipe
    cli = load_index(ho_env.cli_board).heldout
    assert cli.seed_offset is None and all(2**32 <= s < 2**42 for s in cli.seeds)
    assert load_index(ho_env.board).heldout.seeds == [1000, 1001]
    # join attack: no view row (nor any held-out checkpoint) equals a public weight vector
    view_rows = {hashlib.sha256(np.asarray(w, dtype=np.float32).tobytes()).hexdigest()
                 for w in pq.read_table(ho_env.view / "data").column("weights").to_pylist()}
    assert not view_rows & _weight_hashes(ho_env.public)
    pw = torch.cat([weights_tensor(load_zoo(ho_env.public, s)) for s in SPLITS])
    vw = weights_tensor(HeldOutView(ho_env.view).dataset)
    assert float(torch.cdist(vw, pw).min()) > 1e-3  # not even near-copies


def test_seed_offset_must_not_reuse_public_seeds(ho_env: HoEnv, tmp_path: Path) -> None:
    recipe = load_recipe(ho_env.recipe)
    with pytest.raises(LeaderboardError, match="reuse seed 1 of the public recipe"):
        heldout_recipe(recipe, seed_offset=1, test_fraction=0.5)
    held = heldout_recipe(recipe, seed_offset=7, test_fraction=0.5)
    assert not {recipe.model_id(c) for c in recipe.configs()} & {
        held.model_id(c) for c in held.configs()}
    with pytest.raises(LeaderboardError, match="already holds a board"):
        init_board(recipe=ho_env.recipe, board=ho_env.board, view=tmp_path / "v")
    res = CliRunner().invoke(cli, ["leaderboard", "init", "--recipe", str(ho_env.recipe),
                                   "--board", str(tmp_path / "b"), "--view",
                                   str(tmp_path / "v"), "--seed-offset", "1"])
    assert res.exit_code == 2 and "choose a larger --seed-offset" in res.output
    # an init killed before its commit (board.json) resumes with the same secret seeds
    board = shutil.copytree(ho_env.cli_board, tmp_path / "killed")
    seeds = load_index(board).heldout.seeds
    (board / "board.json").unlink()
    index = init_board(recipe=ho_env.recipe, board=board, view=tmp_path / "v2")
    assert index.heldout.seeds == seeds
    assert index.heldout.view == load_index(ho_env.cli_board).heldout.view


def test_view_carries_no_labels(ho_env: HoEnv, tmp_path: Path) -> None:
    files = sorted(p.relative_to(ho_env.view).as_posix() for p in ho_env.view.rglob("*")
                   if p.is_file())
    assert files == ["README.md", "data/test-00000-of-00001.parquet", "view.json"]
    table = pq.read_table(ho_env.view / "data")
    assert tuple(table.column_names) == VIEW_COLUMNS
    manifest = json.loads((ho_env.view / "view.json").read_text())
    assert set(manifest) == {"format", "format_version", "name", "version", "zoo", "license",
                             "architectures", "sources", "tasks", "target", "num_rows",
                             "content_hash", "split_hashes", "rules"}
    held = load_zoo(ho_env.board / "heldout", "test").to_pandas()
    assert manifest["num_rows"] == len(held) == table.num_rows
    blob = b"".join((ho_env.view / f).read_bytes() for f in files)
    for mid in set(held.model_id):  # no model id (nor its hash part) anywhere in the view
        assert mid.encode() not in blob and mid.split("-")[-1].encode() not in blob
    facts = json.dumps({k: v for k, v in manifest.items() if k not in ("rules", "tasks")})
    for word in ("test_acc", "ggap", "loss", "optimizer", "kaiming", "xavier", "recipe",
                 "epoch", "seed", "1000", "model_id", "split\"", "created"):
        assert word not in facts, word
    # row ids: keyed by the board's secret, in an order unrelated to the zoo's
    secret = bytes.fromhex((ho_env.board / "secret.key").read_text().strip())
    ids = [row_id(secret, m, e) for m, e in zip(held.model_id, held.epoch, strict=True)]
    got = table.column("row_id").to_pylist()
    assert sorted(ids) == got and ids != got
    assert row_id(b"another key", held.model_id[0], int(held.epoch[0])) not in got
    order = [ids.index(r) for r in got]
    assert abs(np.corrcoef(order, np.arange(len(order)))[0, 1]) < 0.6
    # the view is a Hub dataset folder, re-created byte for byte from the board
    import datasets

    ds = datasets.load_dataset(str(ho_env.view), split="test", cache_dir=str(tmp_path / "c"))
    assert ds.column_names == list(VIEW_COLUMNS) and len(ds) == table.num_rows
    out = invoke("leaderboard", "view", "--board", ho_env.board, "--out", tmp_path / "again")
    assert manifest["content_hash"] in out.output
    assert snapshot(tmp_path / "again") == snapshot(ho_env.view)
    with pytest.raises(LeaderboardError, match="not a held-out board"):
        make_view(board=ho_env.public, out=tmp_path / "x")
    card = (ho_env.view / "README.md").read_text()
    assert "not a weight-space method" in card and "What it cannot enforce" in card


# --------------------------------------------------------------------------- run, submit, add


def test_heldout_submissions_score_against_private_labels(ho_env: HoEnv) -> None:
    sub = read_submission(ho_env.subs["weight-stats-linear"])
    assert sub.zoo == HeldOutView(ho_env.view).pin
    assert [t.task for t in sub.tasks] == list(SUITES.get(PROPS).tasks)
    assert all(t.items.kind == "rows" and t.claimed == {} for t in sub.tasks)
    index, entries = load_board(ho_env.props_board)
    assert [e.method.name for e in entries] == ["chance", "weight-stats-linear"]
    # the board's score equals scoring the predictions against the private labels by hand
    held = open_board_zoo(ho_env.props_board, index, None)
    ids = held.row_ids()
    ws = entries[1]
    for t in sub.tasks:
        task = TASKS.get(t.task)
        pos = {r: i for i, r in enumerate(t.items.row_id)}
        y = held.zoo.column("test", task.target)
        p = np.asarray(t.items.predictions[0], dtype=object)[[pos[r] for r in ids]]
        if task.type == "regression":
            y, p = y.astype(np.float64), p.astype(np.float64)
        want = score_predictions((task.main_score,), y, p)[task.main_score]
        assert ws.score(t.task).main.values[0] == pytest.approx(want)
    avg = {e.method.name: np.mean([s.main.mean for s in e.scores]) for e in entries}
    assert avg["weight-stats-linear"] > avg["chance"] + 0.1  # the board still sees signal


def test_full_suite_samples_are_fine_tuned_by_the_board(ho_env: HoEnv, tmp_path: Path) -> None:
    res = tmp_path / "res"
    benchmarks.evaluate(method=Combo(), zoo=ViewedZoo(ho_env.public, ho_env.view),
                        suite="digits-v1", seeds=1, out=res, save_predictions=True)
    sub = make_submission(results=res, zoo=ho_env.view, suite="digits-v1",
                          out=tmp_path / "combo.json")
    init = next(t for t in sub.tasks if t.task == "digits-init-same")
    assert init.items.kind == "samples" and init.items.curves == []  # no claims
    board = ho_env.copy("empty", tmp_path / "b")
    entry = add_submission(submission=tmp_path / "combo.json", board=board)
    assert [s.task for s in entry.scores] == list(SUITES.get("digits-v1").tasks)
    local = {r.task.name: r for r in load_results(res)}
    # same weights, same target model and data: the board's fine-tuning reproduces the run
    assert entry.score("digits-init-same").main.mean == pytest.approx(
        local["digits-init-same"].main_score.mean, abs=1e-9)
    assert entry.discrepancies == []
    # the verified track re-runs an installed method (here the test's own class) end to end
    out = invoke("leaderboard", "verify", entry.id, "--board", board, "--method",
                 "tests.leaderboard_fixtures:Combo", "--zoo", ho_env.public)
    assert f"verified {entry.id}" in out.output
    assert load_board(board)[1][0].verification.method == "tests.leaderboard_fixtures:Combo"


# --------------------------------------------------------------------------- the attacks


def _typed(task: str, values: list[object]) -> list[object]:
    """Numbers for regression tasks, class labels (strings) for classification."""
    numeric = TASKS.get(task).type == "regression"
    return [float(v) if numeric else str(v) for v in values]  # type: ignore[arg-type]


def test_issue13_attack_copying_public_labels_scores_at_chance(
    ho_env: HoEnv, tmp_path: Path
) -> None:
    """Issue 13: replace every prediction with the true value read from the public zoo's
    test split. The held-out board refuses it as filed, and re-keyed to the view's rows the
    copied labels score no better than chance (a method predicting the train mean)."""
    board = ho_env.copy("props", tmp_path / "b")
    before = snapshot(board)
    pub_test = load_zoo(ho_env.public, "test").to_pandas().set_index(["model_id", "epoch"],
                                                                     drop=False)
    # 1. as filed: a valid submission on the public zoo, every prediction the true value
    res = tmp_path / "res-public"
    benchmarks.evaluate(method="chance", zoo=ho_env.public, suite=PROPS, seeds=2, out=res,
                        save_predictions=True)
    honest = make_submission(results=res, zoo=ho_env.public, suite=PROPS,
                             out=tmp_path / "public.json")
    assert all(t.items.kind == "property" for t in honest.tasks)

    def oracle(d: dict) -> None:
        d["method"].update(name="oracle", display_name="Oracle")
        for t in d["tasks"]:
            items, target = t["items"], TASKS.get(t["task"]).target
            truth = [pub_test.loc[(m, e), target] for m, e in zip(items["model_id"],
                                                                  items["epoch"])]
            items["predictions"] = [_typed(t["task"], truth)] * len(t["seeds"])

    filed = edited(tmp_path / "public.json", tmp_path / "oracle.json", oracle)
    with pytest.raises(ZooVersionError, match="whose labels are public.*label-free held-out"):
        add_submission(submission=filed, board=board)
    # 2. the same checkpoints under the view's pin: the board takes rows by opaque id only
    view_pin = json.loads(ho_env.subs["chance"].read_text())["zoo"]
    repinned = edited(filed, tmp_path / "repinned.json", lambda d: d.update(zoo=view_pin))
    with pytest.raises(InvalidSubmissionError, match="label-free view by row id"):
        add_submission(submission=repinned, board=board)
    assert snapshot(board) == before

    # 3. adapted: public labels copied onto the view's rows (valid, so it is scored)
    def copy_labels(d: dict) -> None:
        d["method"].update(name="copy-public-labels", display_name="Copied labels")
        for t in d["tasks"]:
            values = pub_test[TASKS.get(t["task"]).target].tolist()
            n = len(t["items"]["row_id"])
            preds = [values[i % len(values)] for i in range(n)]
            t["items"]["predictions"] = [_typed(t["task"], preds)] * len(t["seeds"])

    attack = edited(ho_env.subs["chance"], tmp_path / "attack.json", copy_labels)
    entry = add_submission(submission=attack, board=board)
    _, entries = load_board(board)
    avg = {e.method.name: float(np.mean([s.main.mean for s in e.scores])) for e in entries}
    assert max(s.main.mean for s in entry.scores) < 0.75  # the issue's attack got 1.000
    assert avg["copy-public-labels"] < avg["weight-stats-linear"]
    # and inside the chance band: random re-assignments of the same labels do as well, and
    # their expected score on the regression tasks is that of predicting the mean (0)
    held = open_board_zoo(board, load_index(board), None)
    sub = read_submission(attack)
    rng = np.random.default_rng(0)
    null: dict[str, list[float]] = {t.task: [] for t in sub.tasks}
    for t in sub.tasks:
        task = TASKS.get(t.task)
        y = held.zoo.column("test", task.target)
        p = np.asarray(t.items.predictions[0], dtype=object)
        if task.type == "regression":
            y, p = y.astype(np.float64), p.astype(np.float64)
        for _ in range(300):
            null[t.task].append(score_predictions((task.main_score,), y, rng.permutation(p))[
                task.main_score])
    null_avg = np.mean([null[t] for t in null], axis=0)
    assert avg["copy-public-labels"] <= np.quantile(null_avg, 0.99)
    chance = next(e for e in entries if e.method.name == "chance")
    for t in sub.tasks:
        if TASKS.get(t.task).type == "regression":
            assert chance.score(t.task).main.mean == 0.0
            assert abs(np.mean(null[t.task])) < 0.05


def _row(d: dict, i: int = 0) -> dict:
    return d["tasks"][i]["items"]


def _other_rows(d: dict) -> None:
    _row(d)["row_id"][0] = "r" + "0" * 20


def _drop_row(d: dict) -> None:
    items = _row(d, 1)
    items["row_id"].pop()
    for p in items["predictions"]:
        p.pop()


def _extra_row(d: dict) -> None:
    items = _row(d, 1)
    items["row_id"].append("r" + "f" * 20)
    for p in items["predictions"]:
        p.append(0.5)


def _twice(d: dict) -> None:
    _row(d)["row_id"][1] = _row(d)["row_id"][0]


def _short_seed(d: dict) -> None:
    _row(d, 2)["predictions"][1].pop()


def _public_pin(pub: Path) -> object:
    m = read_manifest(pub)

    def edit(d: dict) -> None:
        d["zoo"] = {"name": m.name, "version": m.version, "content_hash": m.content_hash,
                    "split_hashes": m.split_hashes}
    return edit


def _nan(value: str) -> tuple[object, object]:
    return (lambda d: _row(d)["predictions"][0].__setitem__(0, 12345.678),
            lambda t: t.replace("12345.678", value))


HOSTILE = [
    ("other-row-ids", _other_rows, None, InvalidSubmissionError,
     "1 row id\\(s\\) are not rows of the board's view, e.g. r00000000000000000000"),
    ("wrong-count-short", _drop_row, None, InvalidSubmissionError,
     "wrong count: 32 predicted rows, the board's view has 33"),
    ("wrong-count-long", _extra_row, None, InvalidSubmissionError,
     "wrong count: 34 predicted rows"),
    ("row-twice", _twice, None, InvalidSubmissionError, "is predicted twice"),
    ("seed-list-short", _short_seed, None, InvalidSubmissionError,
     "seed 1 has 32 predictions for 33 items"),
    ("nan", *_nan("NaN"), InvalidSubmissionError, "contains NaN"),
    ("infinity", *_nan("Infinity"), InvalidSubmissionError, "contains Infinity"),
    ("overflow", *_nan("1e999"), InvalidSubmissionError, "overflows to inf"),
    ("bad-row-id", lambda d: _row(d)["row_id"].__setitem__(0, "cnn_s-digits-abc"), None,
     InvalidSubmissionError, "does not match the submission schema"),
    ("missing-task", lambda d: d["tasks"].pop(), None, IncompleteSubmissionError,
     "missing task\\(s\\) digits-hp-optimizer"),
    ("wrong-view-hash", lambda d: d["zoo"].update(content_hash="sha256:" + "2" * 64), None,
     ZooVersionError, "content hash 222222222222"),
]


@pytest.mark.parametrize(("edit", "raw", "error", "message"),
                         [pytest.param(*c[1:], id=c[0]) for c in HOSTILE])
def test_hostile_heldout_submission_rejected(
    ho_env: HoEnv, tmp_path: Path, edit: object, raw: object, error: type[Exception],
    message: str,
) -> None:
    board = ho_env.copy("props", tmp_path / "b")
    before = snapshot(board)
    fresh = lambda d: (d["method"].update(name="fresh"), edit(d))  # noqa: E731
    sub = edited(ho_env.subs["weight-stats-linear"], tmp_path / "s.json", fresh, raw=raw)
    with pytest.raises(error, match=message) as info:
        add_submission(submission=sub, board=board)
    assert isinstance(info.value, SubmissionRejected) and len(str(info.value)) < 1200
    assert snapshot(board) == before


def test_public_zoo_hash_and_zoo_option_refused(ho_env: HoEnv, tmp_path: Path) -> None:
    board = ho_env.copy("empty", tmp_path / "b")
    before = snapshot(board)
    sub = edited(ho_env.subs["weight-stats-linear"], tmp_path / "s.json",
                 _public_pin(ho_env.public))
    res = CliRunner().invoke(cli, ["leaderboard", "add", str(sub), "--board", str(board)])
    assert res.exit_code == 2
    assert "rejected, the board is unchanged" in res.output
    assert "whose labels are public" in res.output and "--heldout VIEW" in res.output
    res = CliRunner().invoke(cli, ["leaderboard", "add", str(ho_env.subs["chance"]),
                                   "--board", str(board), "--zoo", str(ho_env.public)])
    assert res.exit_code == 2 and "do not pass --zoo" in res.output
    assert snapshot(board) == before


def test_attack_rejected_in_a_real_subprocess(ho_env: HoEnv, tmp_path: Path) -> None:
    board = ho_env.copy("empty", tmp_path / "b")
    before = snapshot(board)
    sub = edited(ho_env.subs["weight-stats-linear"], tmp_path / "s.json",
                 _public_pin(ho_env.public))
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", "leaderboard", "add", str(sub), "--board",
         str(board)], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stdout
    assert "whose labels are public" in proc.stderr and "Traceback" not in proc.stderr
    assert snapshot(board) == before


# --------------------------------------------------------------------------- verify, render


def test_verify_and_render(ho_env: HoEnv, tmp_path: Path) -> None:
    board = ho_env.copy("props", tmp_path / "b")
    _, entries = load_board(board)
    ws = next(e for e in entries if e.method.name == "weight-stats-linear")
    before = snapshot(board)
    with pytest.raises(VerificationError,
                       match="does not reproduce its predictions and scores.*predictions differ"):
        verify_entry(board=board, entry=ws.id, method="chance", zoo=ho_env.public)
    assert snapshot(board) == before
    res = CliRunner().invoke(cli, ["leaderboard", "verify", ws.id, "--board", str(board),
                                   "--method", "weight-stats-linear", "--zoo",
                                   str(board / "heldout")])
    assert res.exit_code == 2 and "is not the board's public zoo" in res.output
    out = invoke("leaderboard", "verify", ws.id, "--board", board, "--method",
                 "weight-stats-linear", "--zoo", ho_env.public)
    assert f"verified {ws.id}" in out.output
    _, entries = load_board(board)
    got = {e.method.name: e for e in entries}
    assert got["weight-stats-linear"].verified and not got["chance"].verified
    assert got["weight-stats-linear"].verification.max_abs_diff == pytest.approx(0, abs=1e-12)
    invoke("leaderboard", "render", "--board", board, "--out", tmp_path / "site")
    page = (tmp_path / "site" / "index.html").read_text()
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    csv_text = (tmp_path / "site" / "leaderboard.csv").read_text()
    assert "<h2>Rules</h2>" in page and "not a weight-space method" in page
    assert "What it cannot enforce" in page and OPEN_BOARD_NOTE not in page
    row = next(line for line in page.splitlines() if f'data-entry="{ws.id}"' in line)
    assert '<td class="verified" data-value="1">yes (' in row
    assert f'data-entry="{got["chance"].id}"' in page
    assert "| Verified |" in md and "| no |" in md and "| yes (" in md
    assert csv_text.splitlines()[0].endswith(",verified")


def test_open_board_states_its_labels_are_public(ho_env: HoEnv, tmp_path: Path) -> None:
    res = tmp_path / "res"
    benchmarks.evaluate(method="chance", zoo=ho_env.public, suite=PROPS, seeds=1, out=res,
                        save_predictions=True)
    make_submission(results=res, zoo=ho_env.public, suite=PROPS, out=tmp_path / "s.json")
    add_submission(submission=tmp_path / "s.json", board=tmp_path / "open", zoo=ho_env.public)
    with pytest.raises(LeaderboardError, match="open board: pass the zoo"):
        add_submission(submission=tmp_path / "s.json", board=tmp_path / "open")
    invoke("leaderboard", "render", "--board", tmp_path / "open", "--out", tmp_path / "site")
    assert "copying the labels scores perfectly" in (tmp_path / "site" / "index.html").read_text()
    _, (entry,) = load_board(tmp_path / "open")
    with pytest.raises(LeaderboardError, match="not a held-out board"):
        verify_entry(board=tmp_path / "open", entry=entry.id, method="chance",
                     zoo=ho_env.public)


def test_run_refuses_a_tampered_or_foreign_view(ho_env: HoEnv, tmp_path: Path) -> None:
    import pyarrow as pa

    view = shutil.copytree(ho_env.view, tmp_path / "view")
    data = view / "data" / "test-00000-of-00001.parquet"
    table = pq.read_table(data)
    weights = table.column("weights").to_pylist()
    weights[0][0] += 1.0
    pq.write_table(table.set_column(4, "weights", pa.array(weights, pa.list_(pa.float32()))),
                   data)
    res = CliRunner().invoke(cli, ["run", "--task", "digits-epoch", "--method", "chance",
                                   "--zoo", str(ho_env.public), "--heldout", str(view),
                                   "--out", str(tmp_path / "r"), "--seeds", "1"])
    assert res.exit_code == 2 and "do not match its manifest's content hash" in res.output
    manifest = json.loads((ho_env.view / "view.json").read_text())
    manifest["zoo"]["name"] = "other-zoo"
    shutil.rmtree(view)
    shutil.copytree(ho_env.view, view)
    (view / "view.json").write_text(json.dumps(manifest))
    with pytest.raises(LeaderboardError, match="belongs to zoo other-zoo"):
        benchmarks.evaluate(method="chance", zoo=ViewedZoo(ho_env.public, view),
                            tasks=["digits-epoch"], seeds=1)
