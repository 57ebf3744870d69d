"""The performance report's --quick mode runs end to end, prints every table and writes the
generated Markdown report (not timed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.perf import report, targets
from benchmarks.provenance import missing_facts, parse_header
from tests.process_fixtures import ROOT, repo_env

TABLES = (
    "## targets", "## dense path vs sgemm peak", "## scaling: population trainer vs per-model",
    "## SANE vs a baseline of the reference's structure", "## Arrow zero-copy load",
    "## default threads vs one thread", "## SANE at its default tokenisation",
    "## anchor-scale digits zoos", "## linear heads: flat-linear vs weight-stats-linear",
    "## bench reproduce: step times", "## shard verification",
)


def test_quick_report_prints_every_table_with_commit_and_targets(tmp_path: Path) -> None:
    out, md = tmp_path / "perf.json", tmp_path / "docs" / "perf.md"
    repro = tmp_path / "repro"  # a reproduction's timings (as bench reproduce writes them)
    repro.mkdir()
    (repro / "timings.json").write_text(json.dumps({
        "zoo build digits-cnn_s-hyp": {"wall_s": 161.0, "cpu_s": 300.0},
        "sane train": {"wall_s": 127.0, "cpu_s": 130.0}, "bench flat-linear x": 50.0}))
    (repro / "plan.json").write_text(json.dumps({  # the whole reproduction was planned
        "suite": "digits-v2", "complete": True,
        "steps": ["zoo build digits-cnn_s-hyp", "sane train", "bench flat-linear x"]}))
    proc = subprocess.run([sys.executable, "-m", "benchmarks.perf.report", "--quick", "--json",
                           str(out), "--out", str(md), "--reproduction", str(repro)],
                          capture_output=True, text=True, cwd=ROOT, env=repo_env(),
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    for title in TABLES:
        assert title in text, title
    facts = parse_header(md.read_text())  # the generated report: header, then the tables
    assert not missing_facts(facts) and facts is not None
    assert facts["command"].startswith("`python -m benchmarks.perf.report --quick")
    assert text in md.read_text()
    assert "without SANE training 211 s wall: within the 12-minute budget" in text  # no CPU-s:
    # the last step is in the older format (wall seconds only)
    r = json.loads(out.read_text())
    assert r["commit"] and r["commit"] in text.splitlines()[0]
    assert [t["name"] for t in r["targets"]] == list(targets.TRIED)
    for t in r["targets"]:
        assert t["status"] in ("PASS", "MISS") and f"{t['name']:<16}" in text
        if t["status"] == "MISS":
            assert f"tried ({t['name']})" in text
    roof = r["dense_roofline"]
    # FLOPs really counted: the dense path runs at least the useful convolution FLOPs
    assert roof["counted_gflop"] >= roof["useful_gflop"] > 0 and roof["sgemm_gflops"] > 0
    assert 0 < roof["achieved_frac_peak"] == roof["achieved_gflops"] / roof["sgemm_gflops"]
    ref = r["sane_reference"]
    assert ref["ours_step_gflop"] > 0 and ref["reference_step_gflop"] > 0
    assert ref["ratio"] == ref["ours_tokens_per_s"] / ref["reference_tokens_per_s"]
    assert [s["results"][0]["models"] for s in r["scaling"]] == report.QUICK_SIZES
    assert all(s["results"][1]["models"] == report.QUICK_LOOP for s in r["scaling"])  # subset
    heads = {row["method"]: row for row in r["heads"]["rows"]}
    assert set(heads) == {"weight-stats-linear", "flat-linear"}
    assert r["heads"]["ratio_wall"] == heads["flat-linear"]["wall_s"] / \
        heads["weight-stats-linear"]["wall_s"]
    assert all(len(row["tasks"]) >= 3 for row in heads.values())  # the property tasks ran
    # the Arrow table: two zoo sizes, streamed (not loaded whole)
    assert [row["scale"] for row in r["io"]] == [1, 2]
    assert r["io"][1]["zoo_mb"] > r["io"][0]["zoo_mb"] > 0
    assert all(row["arrow_zero_copy_gb_s"] > 0 and row["raw_read_gb_s"] > 0 for row in r["io"])
    assert all(row["anon_growth_mb"] < 50 for row in r["io"])
    # the threads table (quick: under one busy process): each setting ran with its threads
    assert list(r["threads_vs_one"]["loads"]) == ["+1 busy"]
    for row in r["threads_vs_one"]["loads"].values():
        assert row["one"]["threads"] == [1]
        assert row["per-core"]["threads"] == [os.cpu_count()]
        assert 1 <= row["default"]["threads"][0] <= (os.cpu_count() or 1)
        assert row["default_over_one"] > 0


def test_reproduction_budget_verdict_only_for_a_whole_reproduction(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A folder of a partial run (no plan kept, a partial plan, a planned step without a
    time) gets its totals and no verdict, with the reason; a whole one gets the verdict."""
    from benchmarks.perf import reproduction

    (tmp_path / "timings.json").write_text(json.dumps({
        "zoo build z": {"wall_s": 400.0, "cpu_s": 390.0},
        "bench weight-stats-linear z": {"wall_s": 8.0, "cpu_s": 8.0}}))
    cases = [
        (None, "plan.json is missing"),
        ((False, ()), "a partial digits-v2 reproduction"),
        ((True, ("bench flat-linear z",)), "1 planned step(s) have no time yet: bench flat"),
        ((True, ()), None),
    ]
    for plan, why in cases:
        if plan is not None:
            (tmp_path / "plan.json").write_text(json.dumps({
                "suite": "digits-v2", "complete": plan[0], "seeds": 2,
                "steps": ["zoo build z", "bench weight-stats-linear z", *plan[1]]}))
        r = reproduction.read(tmp_path)
        assert r["without_sane_wall_s"] == 408.0 and r["complete"] is (why is None)
        if why is None:
            assert r["no_verdict"] is None and r["missing"] == []
        else:
            assert why in r["no_verdict"]
        capsys.readouterr()
        reproduction.print_table(r)
        printed = capsys.readouterr().out
        if why is None:
            assert "408 s wall, 398 CPU-s: within the 12-minute budget (sum of the steps, 2 " \
                "seed(s) per method)" in printed
        else:
            assert "no verdict on the 12-minute budget: " in printed and "within" not in printed
