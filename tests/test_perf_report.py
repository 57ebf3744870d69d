"""The performance report's --quick mode runs end to end and prints every table (not timed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.perf import targets
from tests.process_fixtures import ROOT, repo_env

TABLES = (
    "## targets", "## dense path vs sgemm peak", "## scaling: population trainer vs per-model",
    "## SANE vs a baseline of the reference's structure", "## Arrow zero-copy load",
    "## default threads vs one thread", "## SANE at its default tokenisation",
    "## anchor-scale digits zoos", "## shard verification",
)


def test_quick_report_prints_every_table_with_commit_and_targets(tmp_path: Path) -> None:
    out = tmp_path / "perf.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks.perf.report", "--quick", "--json",
                           str(out)], capture_output=True, text=True, cwd=ROOT, env=repo_env(),
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    for title in TABLES:
        assert title in text, title
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
    assert [s["results"][0]["models"] for s in r["scaling"]] == [8, 16, 32]
    assert all(s["results"][1]["models"] == 4 for s in r["scaling"])  # loop on a subset
