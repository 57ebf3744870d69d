"""Leaderboard: submit, add (re-scored, atomic, duplicates, coverage), render, publish.

Everything runs on a real zoo (``var_zoo``: 16 digits CNN-s models) with real ``bench run``
output. The shared setup (results, submissions, two boards) is built once per session by
:func:`lb_env` and copied per test where a test changes a board.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import benchmarks
from benchmarks.cli import cli
from benchmarks.leaderboard import (
    ClaimMismatchError,
    DuplicateSubmissionError,
    IncompleteSubmissionError,
    add_submission,
    load_board,
    make_submission,
    read_submission,
)
from benchmarks.leaderboard.board import INDEX_NAME
from benchmarks.leaderboard.render import csv_safe, render_board
from benchmarks.registry import SUITES
from benchmarks.results import load_predictions, load_results
from benchmarks.scoring import score_predictions
from modelzoo.storage import load_zoo, read_manifest
from tests.leaderboard_fixtures import (
    IMG_AUTHOR,
    SCRIPT_NAME,
    LbEnv,
    edited,
    snapshot,
    variant,
)

pytestmark = pytest.mark.usefixtures("single_thread")
ROOT = Path(__file__).resolve().parents[1]
def invoke(*args: object) -> object:
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


# --------------------------------------------------------------------------- predictions


def test_saved_predictions_reproduce_the_results(lb_env: LbEnv) -> None:
    zoo_test = load_zoo(lb_env.zoo, "test").to_pandas()
    zoo_test = zoo_test[zoo_test.status == "ok"]
    for r in load_results(lb_env.res_props):
        table = load_predictions(r, lb_env.res_props).to_pandas()
        assert len(table) == len(r.seeds) * len(zoo_test)
        for seed in r.seeds:
            part = table[table.seed == seed]
            assert list(zip(part.model_id, part.epoch)) == list(zip(zoo_test.model_id,
                                                                   zoo_test.epoch))
            y = zoo_test[r.task.target].to_numpy()
            p = part.prediction.to_numpy()
            if r.task.type == "regression":
                y, p = y.astype(np.float64), p.astype(np.float64)
            got = score_predictions((r.task.main_score,), y, p)[r.task.main_score]
            assert got == pytest.approx(r.scores["test"][r.task.main_score].values[
                r.seeds.index(seed)])
    for r in load_results(lb_env.res_full):
        if r.task.type in ("initialization", "generation"):
            table = load_predictions(r, lb_env.res_full).to_pydict()
            n = {"initialization": 2, "generation": 8}[r.task.type]
            assert len(table["weights"]) == n * len(r.seeds)
            assert len(table["weights"][0]) == 2464


def test_save_predictions_needs_out(var_zoo: Path) -> None:
    with pytest.raises(benchmarks.runner.BenchmarkError, match="needs an output directory"):
        benchmarks.evaluate(method="chance", zoo=var_zoo, tasks=["digits-epoch"], seeds=1,
                            save_predictions=True)


# --------------------------------------------------------------------------- submit


def test_submission_content(lb_env: LbEnv) -> None:
    sub = read_submission(lb_env.subs["combo"])
    manifest = read_manifest(lb_env.zoo)
    assert sub.zoo.content_hash == manifest.content_hash
    assert sub.zoo.split_hashes == manifest.split_hashes and set(sub.zoo.split_hashes) == {
        "train", "validation", "test"}
    assert [t.task for t in sub.tasks] == list(SUITES.get("digits-v1").tasks)
    assert sub.method.name == "combo" and sub.method.version == "1"
    assert sub.method.meta["weights.init"] == "torch default"  # nested meta flattened
    results = {r.task.name: r for r in load_results(lb_env.res_full) if r.method.name == "combo"}
    for t in sub.tasks:
        assert t.claimed == {m: s.mean for m, s in results[t.task].scores["test"].items()}
        assert t.seeds == [0, 1]
    gen = next(t for t in sub.tasks if t.task == "digits-generation").items
    assert len(gen.weights) == 2 and len(gen.weights[0]) == 8 and len(gen.weights[0][0]) == 2464
    assert set(gen.item_scores) == {"zero_shot_accuracy", "percentile", "novelty", "novel"}
    init = next(t for t in sub.tasks if t.task == "digits-init-same").items
    assert len(init.curves[0][0]) == 4  # epochs 0..3


def test_submit_cli(lb_env: LbEnv, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    res = invoke("submit", "--results", lb_env.res_props, "--zoo", lb_env.zoo, "--suite",
                 "digits-properties-v1", "--method", "chance", "--method-version", "2.0",
                 "--display-name", "Chance", "--author", "A. Person", "--url",
                 "https://example.org", "--out", out)
    assert res.exit_code == 0, res.output
    assert "6 tasks of digits-properties-v1" in res.output
    sub = read_submission(out)
    assert sub.method.version == "2.0" and sub.method.authors == ["A. Person"]
    # several methods in one results root: --method is required
    res = invoke("submit", "--results", lb_env.res_props, "--zoo", lb_env.zoo, "--suite",
                 "digits-properties-v1", "--out", out)
    assert res.exit_code == 2 and "choose one with --method" in res.output


def test_submit_needs_every_task(lb_env: LbEnv, tmp_path: Path) -> None:
    with pytest.raises(benchmarks.leaderboard.LeaderboardError, match="digits-init-same"):
        make_submission(results=lb_env.res_props, zoo=lb_env.zoo, suite="digits-v1",
                        method="chance", out=tmp_path / "x.json")
    assert not (tmp_path / "x.json").exists()


def test_submit_without_saved_predictions(lb_env: LbEnv, tmp_path: Path) -> None:
    res = tmp_path / "res"
    benchmarks.evaluate(method="chance", zoo=lb_env.zoo, suite="digits-properties-v1",
                        seeds=1, out=res)
    with pytest.raises(benchmarks.leaderboard.LeaderboardError, match="--save-predictions"):
        make_submission(results=res, zoo=lb_env.zoo, suite="digits-properties-v1")
    out = invoke("run", "--suite", "digits-properties-v1", "--method", "chance", "--zoo",
                 lb_env.zoo, "--out", res, "--seeds", 1, "--save-predictions")
    assert out.exit_code == 0, out.output
    assert len(list(res.glob("chance/*/predictions/*.parquet"))) == 6
    assert len(load_results(res)) == 6  # prediction files are not mistaken for results
    sub = make_submission(results=res, zoo=lb_env.zoo, suite="digits-properties-v1")
    assert sub.method.name == "chance" and all(t.seeds == [0] for t in sub.tasks)


# --------------------------------------------------------------------------- add


def test_full_suite_rescored_equals_bench_run(lb_env: LbEnv) -> None:
    index, (entry,) = load_board(lb_env.full_board)
    assert index.suite == "digits-v1" and index.zoo.content_hash == entry.zoo.content_hash
    results = {r.task.name: r for r in load_results(lb_env.res_full) if r.method.name == "combo"}
    assert [s.task for s in entry.scores] == list(SUITES.get("digits-v1").tasks)
    for s in entry.scores:
        ref = results[s.task].scores["test"]
        for metric, stat in s.scores.items():
            assert stat.values == pytest.approx(ref[metric].values, abs=1e-9), (s.task, metric)
    assert entry.discrepancies == []
    files = snapshot(lb_env.full_board)
    assert set(files) == {INDEX_NAME, ".lock", f"entries/{entry.id}.json",
                          f"submissions/{entry.id}.json"}
    assert files[f"submissions/{entry.id}.json"] == lb_env.subs["combo"].read_bytes()


def test_add_second_full_entry_and_cli_output(lb_env: LbEnv, tmp_path: Path) -> None:
    board = lb_env.board_copy("full", tmp_path / "b")
    res = invoke("leaderboard", "add", lb_env.subs["combo-flat"], "--board", board, "--zoo",
                 lb_env.zoo)
    assert res.exit_code == 0, res.output
    assert "added entry combo-flat-1-" in res.output and "digits-generation" in res.output
    _, entries = load_board(board)
    assert [e.method.name for e in entries] == ["combo", "combo-flat"]


def test_claims_are_never_trusted(lb_env: LbEnv, tmp_path: Path) -> None:
    def boast(d: dict) -> None:
        d["method"]["version"] = "9"
        for t in d["tasks"]:
            t["claimed"] = {k: 0.999 for k in t["claimed"]}
        gen = next(t for t in d["tasks"] if t["task"] == "digits-generation")["items"]
        gen["item_scores"]["zero_shot_accuracy"] = [[1.0] * 8 for _ in range(2)]

    sub = edited(lb_env.subs["combo-flat"], tmp_path / "boast.json", boast)
    board = lb_env.board_copy("full", tmp_path / "b")
    before = snapshot(board)
    with pytest.raises(ClaimMismatchError, match="claimed 0.999"):
        add_submission(submission=sub, board=board, zoo=lb_env.zoo, strict=True)
    assert snapshot(board) == before
    entry = add_submission(submission=sub, board=board, zoo=lb_env.zoo)
    honest = {r.task.name: r for r in load_results(lb_env.res_full)
              if r.method.name == "combo-flat"}
    for s in entry.scores:
        assert s.main.mean == pytest.approx(honest[s.task].main_score.mean, abs=1e-9)
    assert entry.claimed["digits-test-acc"]["kendall_tau"] == 0.999
    assert any("digits-test-acc kendall_tau: claimed 0.999" in d for d in entry.discrepancies)
    assert any("per-sample zero_shot_accuracy" in d for d in entry.discrepancies)


def test_scores_come_from_the_predictions(lb_env: LbEnv, tmp_path: Path) -> None:
    """Predicting the held-out labels exactly gives a perfect recomputed score."""
    test = load_zoo(lb_env.zoo, "test").to_pandas().set_index(["model_id", "epoch"])

    def oracle(d: dict) -> None:
        d["method"]["name"] = "oracle"
        for t in d["tasks"]:
            items = t["items"]
            target = {"digits-test-acc": "test_acc", "digits-hp-init": "init"}.get(t["task"])
            if target:
                truth = [test.loc[(m, e), target] for m, e in zip(items["model_id"],
                                                                  items["epoch"])]
                items["predictions"] = [[float(v) if target == "test_acc" else str(v)
                                         for v in truth]] * len(t["seeds"])

    sub = edited(lb_env.subs["chance"], tmp_path / "oracle.json", oracle)
    board = lb_env.board_copy("props", tmp_path / "b")
    entry = add_submission(submission=sub, board=board, zoo=lb_env.zoo)
    assert entry.score("digits-test-acc").main.mean == pytest.approx(1.0)
    assert entry.score("digits-hp-init").scores["accuracy"].mean == 1.0
    assert entry.score("digits-epoch").main.mean == 0.0  # still chance's constant


def test_duplicates_rejected(lb_env: LbEnv, tmp_path: Path) -> None:
    board = lb_env.board_copy("props", tmp_path / "b")
    before = snapshot(board)
    with pytest.raises(DuplicateSubmissionError, match="already on the board as entry"):
        add_submission(submission=lb_env.subs["ws"], board=board, zoo=lb_env.zoo)
    renamed = edited(lb_env.subs["ws"], tmp_path / "renamed.json",
                     lambda d: d["method"].update(name="my-method", display_name="Mine"))
    with pytest.raises(DuplicateSubmissionError, match="same predictions"):
        add_submission(submission=renamed, board=board, zoo=lb_env.zoo)

    def other_predictions(d: dict) -> None:
        d["tasks"][0]["items"]["predictions"][0][0] += 0.5

    same_version = edited(lb_env.subs["ws"], tmp_path / "v.json", other_predictions)
    with pytest.raises(DuplicateSubmissionError, match="--method-version"):
        add_submission(submission=same_version, board=board, zoo=lb_env.zoo)
    assert snapshot(board) == before


def test_incomplete_coverage_rejected(lb_env: LbEnv, tmp_path: Path) -> None:
    board = lb_env.board_copy("props", tmp_path / "b")
    before = snapshot(board)

    def drop_task(d: dict) -> None:
        d["method"]["version"] = "3"
        d["tasks"] = [t for t in d["tasks"] if t["task"] != "digits-ggap"]

    with pytest.raises(IncompleteSubmissionError, match="missing task.*digits-ggap"):
        add_submission(submission=edited(lb_env.subs["flat"], tmp_path / "t.json", drop_task),
                       board=board, zoo=lb_env.zoo)

    def drop_item(d: dict) -> None:
        d["method"]["version"] = "3"
        items = d["tasks"][1]["items"]
        items["model_id"].pop()
        items["epoch"].pop()
        for p in items["predictions"]:
            p.pop()

    with pytest.raises(IncompleteSubmissionError, match="1 of 12 test items have no prediction"):
        add_submission(submission=edited(lb_env.subs["flat"], tmp_path / "i.json", drop_item),
                       board=board, zoo=lb_env.zoo)
    assert snapshot(board) == before


# --------------------------------------------------------------------------- atomicity


def test_failed_commit_leaves_board_unchanged(
    lb_env: LbEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An I/O error while writing the index (the commit) removes what the add wrote."""
    import benchmarks.leaderboard.board as board_mod

    board = lb_env.board_copy("full", tmp_path / "b")
    before = snapshot(board)
    real = board_mod.atomic_write_bytes

    def disk_full_at_commit(path: Path, data: bytes) -> None:
        if path.name == INDEX_NAME:
            raise board_mod.LeaderboardError("injected: disk full")
        real(path, data)

    monkeypatch.setattr(board_mod, "atomic_write_bytes", disk_full_at_commit)
    with pytest.raises(board_mod.LeaderboardError, match="disk full"):
        add_submission(submission=lb_env.subs["combo-flat"], board=board, zoo=lb_env.zoo)
    assert snapshot(board) == before


def test_killed_mid_add_keeps_the_old_board(lb_env: LbEnv, tmp_path: Path) -> None:
    """SIGKILL between writing the entry and the index: readers see the old board; the next
    add cleans up the orphaned files."""
    board = lb_env.board_copy("props", tmp_path / "b")
    before_index = (board / INDEX_NAME).read_bytes()
    before_ids = [e.id for e in load_board(board)[1]]
    sub = variant(lb_env.subs["ws"], tmp_path / "v2.json", "ws-two")
    script = textwrap.dedent(f"""
        import os, signal
        real = os.replace
        def replace(src, dst, *a, **k):
            if str(dst).endswith({INDEX_NAME!r}):
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *a, **k)
        os.replace = replace
        from benchmarks.leaderboard import add_submission
        add_submission(submission={str(sub)!r}, board={str(board)!r}, zoo={str(lb_env.zoo)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (board / INDEX_NAME).read_bytes() == before_index
    assert [e.id for e in load_board(board)[1]] == before_ids
    orphans = set(snapshot(board)) - set(snapshot(lb_env.props_board))
    assert orphans and all(o.startswith(("entries/ws-two", "submissions/ws-two", ".board.json"))
                           for o in orphans)
    site = render_board(board=board, out=tmp_path / "site")
    assert "ws-two" not in site[0].read_text()
    entry = add_submission(submission=sub, board=board, zoo=lb_env.zoo)  # succeeds, cleans up
    after = set(snapshot(board))
    assert after == set(snapshot(lb_env.props_board)) | {
        f"entries/{entry.id}.json", f"submissions/{entry.id}.json"}


def test_concurrent_adds_both_recorded(lb_env: LbEnv, tmp_path: Path) -> None:
    """Two adds at once (threads, each with its own lock file handle): neither is lost."""
    board = lb_env.board_copy("props", tmp_path / "b")
    subs = [variant(lb_env.subs["ws"], tmp_path / f"c{i}.json", f"conc-{i}", delta=i + 1.0)
            for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        entries = list(pool.map(lambda s: add_submission(submission=s, board=board,
                                                         zoo=lb_env.zoo), subs))
    names = [e.method.name for e in load_board(board)[1]]
    assert sorted(names[3:]) == [f"conc-{i}" for i in range(4)]
    assert {e.id for e in entries} <= {e.id for e in load_board(board)[1]}


# --------------------------------------------------------------------------- render, publish


def test_render_markdown_and_csv(lb_env: LbEnv, tmp_path: Path) -> None:
    res = invoke("leaderboard", "render", "--board", lb_env.props_board, "--out",
                 tmp_path / "site")
    assert res.exit_code == 0, res.output
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    csv_text = (tmp_path / "site" / "leaderboard.csv").read_text()
    _, entries = load_board(lb_env.props_board)
    avg = {e.method.name: np.mean([s.main.mean for s in e.scores]) for e in entries}
    ranked = sorted(avg, key=lambda m: -avg[m])
    rows = [line for line in md.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert [r.split(" | ")[2].split()[0] for r in rows] == ranked  # "name version" column
    assert "<script>" not in md and "&lt;script&gt;" in md and "<img" not in md
    import csv as csv_mod

    table = list(csv_mod.DictReader(csv_text.splitlines()))
    assert [r["method"] for r in table] == ranked
    chance = next(r for r in table if r["method"] == "chance")
    assert chance["display_name"] == SCRIPT_NAME  # CSV keeps text; formulas neutralised:
    assert chance["authors"] == "'=HYPERLINK(\"http://x\"); " + IMG_AUTHOR
    assert csv_safe("=1+1") == "'=1+1" and csv_safe("-2") == "'-2" and csv_safe("ok") == "ok"
    assert float(chance["digits-test-acc/kendall_tau/mean"]) == 0.0


def test_publish_loads_with_datasets(lb_env: LbEnv, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "hub"
    res = invoke("leaderboard", "publish", "--board", lb_env.props_board, "--out", out)
    assert res.exit_code == 0, res.output
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["configs"][0]["data_files"][0]["path"] == "data/train-*.parquet"
    ds = datasets.load_dataset(str(out), split="train", cache_dir=str(tmp_path / "cache"))
    _, entries = load_board(lb_env.props_board)
    assert len(ds) == sum(len(s.scores) for e in entries for s in e.scores)
    main = ds.filter(lambda r: r["is_main_score"] and r["task"] == "digits-test-acc")
    got = {r["method"]: r["mean"] for r in main}
    assert got == {e.method.name: e.score("digits-test-acc").main.mean for e in entries}
    assert set(ds["display_name"]) >= {SCRIPT_NAME}
    assert sorted(set(zip(ds["rank"], ds["method"])))[0][0] == 1


def test_publish_repo_id_fails_clearly_offline(lb_env: LbEnv, tmp_path: Path) -> None:
    out = tmp_path / "hub"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "HF_TOKEN": "hf_fake"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.cli", "leaderboard", "publish", "--board",
         str(lb_env.props_board), "--out", str(out), "--repo-id", "someone/leaderboard"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert proc.returncode == 2
    assert "cannot upload" in proc.stderr and "someone/leaderboard" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert (out / "data" / "train-00000-of-00001.parquet").is_file()  # folder written anyway


def test_cli_subprocess_and_rejection_exit_code(lb_env: LbEnv, tmp_path: Path) -> None:
    board = tmp_path / "b"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.leaderboard.cli", "leaderboard", "add",
         str(lb_env.subs["flat"]), "--board", str(board), "--zoo", str(lb_env.zoo)],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert "added entry flat-linear-1-" in proc.stdout
    before = snapshot(board)
    bad = tmp_path / "bad.json"
    bad.write_bytes(b"\x80\x04K\x01.")
    res = CliRunner().invoke(cli, ["leaderboard", "add", str(bad), "--board", str(board),
                                   "--zoo", str(lb_env.zoo)])
    assert res.exit_code == 2
    assert "rejected, the board is unchanged" in res.output and "pickle" in res.output
    assert snapshot(board) == before


def test_stale_predictions_refused(lb_env: LbEnv, tmp_path: Path) -> None:
    """A run without --save-predictions over an older run leaves predictions that no longer
    match the results; submit refuses them instead of packaging a mix."""
    res = tmp_path / "res"
    benchmarks.evaluate(method="chance", zoo=lb_env.zoo, tasks=["digits-epoch"], seeds=1,
                        out=res, save_predictions=True)
    (r,) = load_results(res)
    assert load_predictions(r, res).num_rows == 12
    benchmarks.evaluate(method="chance", zoo=lb_env.zoo, tasks=["digits-epoch"], seeds=[0, 1],
                        out=res)
    (r2,) = load_results(res)
    with pytest.raises(benchmarks.errors.ResultSchemaError, match="stale"):
        load_predictions(r2, res)
