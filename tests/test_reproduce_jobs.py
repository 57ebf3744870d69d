"""The reproductions' step scheduler (:func:`benchmarks.reproduce_common.run_jobs`): jobs wait
for the jobs they name, run at most ``workers`` at once in spawned processes, leave markers a
rerun skips, stop on the first error, and compute the same numbers as in this process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from benchmarks.errors import BenchmarkError
from benchmarks.reproduce import _bench_job
from benchmarks.reproduce_common import Job, Timings, elapsed_line, run_jobs
from benchmarks.results import load_results
from modelzoo.errors import ShardChecksumError


def stamp(*, path: str, seconds: float = 0.0, fail: bool = False,
          progress: Any = None) -> int:
    """A job: sleep, write this process's id and the start / end times to ``path``."""
    t0 = time.time()
    time.sleep(seconds)
    if fail:
        raise ValueError(f"job {Path(path).name} failed on purpose")
    Path(path).write_text(json.dumps({"pid": os.getpid(), "start": t0, "end": time.time()}))
    return os.getpid()


class Stubborn(Exception):
    """An error type that cannot be rebuilt from its pickle (a keyword-only argument)."""

    def __init__(self, *, code: int) -> None:
        super().__init__(f"code {code}")


def raises(*, kind: str, progress: Any = None) -> None:
    """A job that fails with a typed toolkit error or with :class:`Stubborn`."""
    if kind == "shard":
        raise ShardChecksumError("shard x is corrupt", shard="x.arrow", zoo="z")
    raise Stubborn(code=3)


def _read(d: Path, name: str) -> dict[str, float]:
    return json.loads((d / name).read_text())


def test_dependencies_parallelism_markers_and_timings(tmp_path: Path) -> None:
    timings = Timings(tmp_path)
    lines: list[str] = []
    jobs = [Job("a", stamp, {"path": str(tmp_path / "a"), "seconds": 1.0},
                marker=tmp_path / "done" / "a"),
            Job("b", stamp, {"path": str(tmp_path / "b"), "seconds": 1.0}),
            Job("c", stamp, {"path": str(tmp_path / "c")}, after=("a",)),
            Job("d", stamp, {"path": str(tmp_path / "d")}, timed=False)]
    out = run_jobs(jobs, workers=2, timings=timings, say=lines.append)
    a, b, c = (_read(tmp_path, n) for n in "abc")
    assert a["start"] < b["end"] and b["start"] < a["end"]  # a and b ran at once
    assert c["start"] >= a["end"]  # c waited for a
    assert len({a["pid"], b["pid"]}) == 2 and os.getpid() not in out.values()  # workers
    assert set(out) == {"a", "b", "c", "d"}
    assert (tmp_path / "done" / "a").exists()
    stored = json.loads((tmp_path / "timings.json").read_text())
    assert set(stored) == {"a", "b", "c"}  # d is not timed
    assert stored["a"]["wall_s"] >= 1.0 and stored["a"]["cpu_s"] < 0.5  # measured in the worker
    assert any("started" in m for m in lines) and any("finished" in m for m in lines)
    # a rerun skips the job with a marker; the others run again (the skip comes before the
    # choice of where jobs run: one worker here saves a pool)
    (tmp_path / "a").unlink()
    again = run_jobs(jobs, workers=1, timings=timings, say=lambda _m: None)
    assert "a" not in again and not (tmp_path / "a").exists() and "c" in again


def test_one_worker_runs_here_in_order(tmp_path: Path) -> None:
    jobs = [Job("a", stamp, {"path": str(tmp_path / "a")}),
            Job("b", stamp, {"path": str(tmp_path / "b")}, after=("a",))]
    out = run_jobs(jobs, workers=1, timings=Timings(tmp_path), say=lambda _m: None)
    assert out == {"a": os.getpid(), "b": os.getpid()}
    with pytest.raises(BenchmarkError, match="listed before the jobs it waits for"):
        run_jobs(jobs[::-1], workers=1, timings=Timings(tmp_path), say=lambda _m: None)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_job_stops_the_rest_and_is_raised(tmp_path: Path, workers: int) -> None:
    jobs = [Job("bad", stamp, {"path": str(tmp_path / "bad"), "fail": True},
                marker=tmp_path / "done-bad"),
            Job("slow", stamp, {"path": str(tmp_path / "slow"), "seconds": 0.5}),
            Job("after-bad", stamp, {"path": str(tmp_path / "after")}, after=("bad",)),
            Job("later", stamp, {"path": str(tmp_path / "later")}, after=("slow",))]
    with pytest.raises(ValueError, match="failed on purpose"):
        run_jobs(jobs, workers=workers, timings=Timings(tmp_path), say=lambda _m: None)
    assert not (tmp_path / "done-bad").exists() and not (tmp_path / "after").exists()
    assert not (tmp_path / "later").exists()  # nothing starts after the error
    if workers == 2:  # the job running beside the failed one finished
        assert (tmp_path / "slow").exists()


def test_errors_from_a_worker_keep_their_type_or_say_it(tmp_path: Path) -> None:
    jobs = [Job("shard", raises, {"kind": "shard"}), Job("stubborn", raises, {"kind": "x"})]
    with pytest.raises(ShardChecksumError) as e:  # e.g. exit code 2 and --no-verify hint
        run_jobs(jobs[:1], workers=2, timings=Timings(tmp_path), say=lambda _m: None)
    assert e.value.shard == "x.arrow" and e.value.zoo == "z"
    with pytest.raises(BenchmarkError, match="Stubborn: code 3"):
        run_jobs(jobs[1:], workers=2, timings=Timings(tmp_path), say=lambda _m: None)


def test_unknown_and_circular_waits_are_errors(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="waits for unknown jobs"):
        run_jobs([Job("a", stamp, {"path": str(tmp_path / "a")}, after=("x",))], workers=2,
                 timings=Timings(tmp_path), say=lambda _m: None)
    loop = [Job("a", stamp, {"path": str(tmp_path / "a")}, after=("b",)),
            Job("b", stamp, {"path": str(tmp_path / "b")}, after=("a",))]
    with pytest.raises(BenchmarkError, match="wait for each other"):
        run_jobs(loop, workers=2, timings=Timings(tmp_path), say=lambda _m: None)


def test_a_bench_run_in_a_worker_gives_the_same_scores(tiny_zoo: Path, tmp_path: Path) -> None:
    """The point of the design: a job's numbers do not depend on where it ran."""
    scores = {}
    for workers in (1, 2):
        res = tmp_path / f"res{workers}"
        job = Job("bench", _bench_job, {
            "method": "weight-stats-gbt", "run": None, "zoo": tiny_zoo, "suite": "digits-v1",
            "out": res, "seeds": 1, "allow_unpinned": True, "workdir": tmp_path / "w",
            "verify": True})
        (tmp_path / f"t{workers}").mkdir()
        timings = Timings(tmp_path / f"t{workers}")
        run_jobs([job], workers=workers, timings=timings, say=lambda _m: None)
        scores[workers] = {r.task.name: (r.main_score.mean, r.main_score.ci.low)
                           for r in load_results(res)}
        line = elapsed_line(tmp_path / f"t{workers}", elapsed_s=3.0, workers=workers,
                            ran=["bench"], timings=timings, zoo_builds_s=None)
        assert f"with {workers} worker(s)" in line and "1 jobs" in line
    assert scores[1] and scores[1] == scores[2]


def test_the_report_header_counts_overlapping_jobs_once(tmp_path: Path) -> None:
    from benchmarks.provenance import Step, parse_header
    from benchmarks.reproduce_common import report_header

    timings = Timings(tmp_path)
    for name, wall in (("zoos", 60.0), ("a", 600.0), ("b", 600.0)):
        timings.add(name, Step(wall_s=wall, cpu_s=wall))
    elapsed_line(tmp_path, elapsed_s=620.0, workers=2, ran=["a", "b"], timings=timings)
    facts = parse_header(report_header(title="t", command="c", timings=timings, threads="1",
                                       load_start=0.0))
    assert facts is not None and facts["time"].startswith("11 min 20 s wall")  # 60 + 620
