"""`bench reproduce`: zoos from cards, SANE from its config, every method, the paper table;
a rerun resumes without redoing finished steps. Run here on a tiny registered reproduction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import benchmarks.reproduce as rp
from benchmarks.cli import cli
from benchmarks.provenance import cpu_model, missing_facts, parse_header
from benchmarks.results import load_results


@pytest.fixture()
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> rp.Reproduction:
    cfg = tmp_path / "sane.yaml"
    cfg.write_text("d_model: 32\nn_heads: 2\nn_layers: 1\nlatent_dim: 8\ntoken_size: 32\n"
                   "window_size: 16\nepochs: 1\nbatch_size: 8\n")
    rep = rp.Reproduction(
        suite="digits-v1",
        cards={"digits-cnn_s": "cards/digits-cnn_s.yaml"},
        sane_config=str(cfg),
        sane_zoo="digits-cnn_s",
        methods=("chance", "weight-stats-linear", "zoo-init", "sane"),
        seeds=1,
        quick={"models": 32, "epochs": 2, "sane_epochs": 1, "seeds": 1},
        paper=(rp.PaperCell("digits-test-acc", "r2", "weight-stats-linear", 0.987,
                            "s(W), linear probe", rp.SOURCE_SANE),
               rp.PaperCell("digits-test-acc", "r2", "flat-linear", 0.5, "x", "y"),
               rp.PaperCell("digits-test-acc", "r2", None, 0.4, "other method", "z")),
        targets=(rp.Target("probe at most 2 below s(W)", "digits-test-acc", "r2", "sane", -2.0,
                           versus="weight-stats-linear"),
                 rp.Target("impossible", "digits-test-acc", "r2", "chance", 2.0),
                 rp.Target("novelty", "digits-generation", "novelty", "sane",
                           report_only=True)),
    )
    monkeypatch.setitem(rp.REPRODUCTIONS, "digits-v1", rep)
    return rep


def test_reproduce_end_to_end_and_resume(tiny: rp.Reproduction, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "repro"
    copy = tmp_path / "docs" / "reproduce.md"
    res = CliRunner().invoke(cli, ["reproduce", "digits-v1", "--out", str(out), "--quick",
                                   "--report", str(copy)])
    assert res.exit_code == 0, res.output
    report = (out / "report.md").read_text()
    assert copy.read_text() == report  # --report: the same generated file, e.g. under docs/
    facts = parse_header(report)  # generated: command, commit, machine, load, times
    assert not missing_facts(facts) and facts is not None
    assert facts["command"] == f"`bench reproduce digits-v1 --out {out} --quick --report {copy}`"
    assert cpu_model() in facts["machine"] and "ATen CPU capability" in facts["machine"]
    assert "torch " in facts["software"] and "at start" in facts["load average (1 min)"]
    assert "CPU-s" in facts["time"]
    assert "| sane train |" in report and "| all steps |" in report
    assert "Elapsed: the 6 jobs (zoo builds, SANE runs, bench runs)" in report  # 1 + 1 + 4
    assert "(quick variant, unpinned zoos)" in report
    assert "| digits-test-acc | r2 | weight-stats-linear |" in report
    assert "| 0.987 | s(W), linear probe |" in report
    assert "| digits-test-acc | r2 | flat-linear | not run |" in report  # not in the methods
    assert "| digits-test-acc | r2 | – | no counterpart | 0.400 | other method |" in report
    targets = report.split("## Targets")[1]
    assert "| probe at most 2 below s(W) | digits-test-acc | r2 | sane |" in targets
    assert "(weight-stats-linear " in targets and "| met |" in targets
    assert "| impossible | digits-test-acc | r2 | chance |" in targets and "| missed |" in targets
    assert "| novelty | digits-generation | novelty | sane |" in targets
    assert "| – | reported |" in targets
    methods = {r.method.name for r in load_results(out / "results")}
    assert methods == {"chance", "weight-stats-linear", "zoo-init", "sane"}
    sane = next(r for r in load_results(out / "results") if r.method.name == "sane")
    assert Path(sane.method.meta["run"]["path"]).resolve() == (out / "sane" / "run").resolve()
    plan = json.loads((out / "plan.json").read_text())  # a --quick run is not the whole one
    assert plan["suite"] == "digits-v1" and plan["complete"] is False
    assert set(json.loads((out / "timings.json").read_text())) <= set(plan["steps"])
    # a rerun redoes nothing: no method is evaluated again, the report is rewritten
    called: list[str] = []
    import benchmarks

    monkeypatch.setattr(benchmarks, "evaluate", lambda **kw: called.append(kw["method"]))
    before = (out / "timings.json").read_text()
    elapsed = (out / "elapsed.json").read_text()
    rp.reproduce(suite="digits-v1", out=out, quick=True, jobs=1)
    assert called == []
    assert (out / "timings.json").read_text() == before
    # resuming a finished build and SANE run is no new measurement: the elapsed time stays
    assert (out / "elapsed.json").read_text() == elapsed


def test_unknown_suite_and_method_are_clear(tiny: rp.Reproduction, tmp_path: Path) -> None:
    res = CliRunner().invoke(cli, ["reproduce", "digits-v9", "--out", str(tmp_path)])
    assert res.exit_code == 2 and "no reproduction recorded for suite 'digits-v9'" in res.output
    res = CliRunner().invoke(cli, ["reproduce", "digits-v1", "--out", str(tmp_path),
                                   "--method", "flat-linear"])
    assert res.exit_code == 2 and "not part of the digits-v1 reproduction" in res.output


def test_digits_v2_reproduction_names_registered_things() -> None:
    from benchmarks.registry import METHODS, SUITES

    rep = rp.REPRODUCTIONS["digits-v2"]
    suite = SUITES.get("digits-v2")
    assert all(m in METHODS for m in rep.methods)
    assert all((rp.ROOT / c).is_file() for c in rep.cards.values())
    assert (rp.ROOT / rep.sane_config).is_file()
    assert all((rp.ROOT / c).is_file() for c in rep.runs().values())
    assert set(rep.runs()) == set(rep.cards)  # a SANE run per zoo, as in the paper
    assert {c.task for c in rep.paper} <= set(suite.tasks)
    assert {c.method for c in rep.paper} - {None} <= set(rep.methods)
    assert {t.task for t in rep.targets} <= set(suite.tasks)
    assert {t.method for t in rep.targets} | {t.versus for t in rep.targets} - {None} \
        <= set(rep.methods)
    # the published S_KDE30 (a KDE over hyper-representation embeddings) is not weights-kde
    (skde,) = [c for c in rep.paper if c.published == 0.686]
    assert skde.method is None and "embeddings" in skde.published_as


def test_quick_epochs_range_moves_to_the_quick_zoos_last_epochs() -> None:
    assert rp._quick_range((20, 25), 10) == (5, 10)
    assert rp._quick_range((2, 4), 10) == (2, 4) and rp._quick_range(None, 10) is None
