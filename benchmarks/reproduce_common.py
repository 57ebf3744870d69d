"""What both reproductions (``digits-v2`` in :mod:`benchmarks.reproduce`, ``digits-hetero-v1``
in :mod:`benchmarks.reproduce_hetero`) share: method choice, the step scheduler, the per-step
timings file and the generated report's header (:mod:`benchmarks.provenance`).

The scheduler (:func:`run_jobs`): a reproduction's SANE runs and bench runs are
:class:`Job` s, each a top-level function with keyword arguments and the names of the jobs
it waits for (a SANE method's bench run waits for its SANE run). With ``workers == 1`` they
run here, in order. With more, each runs in a process of a pool (``spawn``: a fresh
interpreter, no forked torch state), at most ``workers`` at a time, a job starting as soon as
the jobs it waits for have finished, in the order given (the reproductions list their longest
jobs first). Every job sets its own thread count (bench runs and SANE training: 1), so a job
computes the same numbers in a worker as in this process: parallel jobs change the wall
time, not a digit. A job's wall and CPU seconds are measured in the process that ran it. A
finished job writes its marker file (from this process, after the job returned), so a rerun
skips it; a failed job stops the scheduler: no further job starts, the running ones finish
(their results are kept) and the error is raised.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.errors import BenchmarkError
from benchmarks.provenance import Step, cpu_seconds, header, load_average, utc_now
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir

__all__ = ["Job", "Timings", "chosen_methods", "default_jobs", "elapsed_line", "record_plan",
           "report_header", "run_jobs", "write_report"]

#: Most workers :func:`default_jobs` proposes (each holds a zoo and a method in memory).
MAX_DEFAULT_JOBS = 4


def chosen_methods(suite: str, methods: Sequence[str] | None,
                   allowed: Sequence[str]) -> tuple[str, ...]:
    """``methods`` (default: all of ``allowed``), checked against ``allowed``.

    Raises:
        BenchmarkError: a method that is not part of the reproduction.
    """
    chosen = tuple(methods or allowed)
    unknown = [m for m in chosen if m not in allowed]
    if unknown:
        raise BenchmarkError(f"methods {unknown} are not part of the {suite} reproduction "
                             f"({', '.join(allowed)})")
    return chosen


class Timings:
    """Wall and CPU seconds per step in ``OUT/timings.json``, kept across resumed runs.

    Steps run one after the other, so a step's CPU time is the process's CPU time (its own
    and its finished children's) since the previous :meth:`record`; each step also keeps the
    1-minute load average at its start and end (:class:`benchmarks.provenance.Step`). Older
    files (wall seconds only) are read as well.

    Args:
        root: the reproduction's working folder.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / "timings.json"
        raw = json.loads(self.path.read_text()) if self.path.exists() else {}
        self.steps: dict[str, Step] = {k: Step.of(v) for k, v in raw.items()}
        self._cpu, self._load = cpu_seconds(), load_average()

    @property
    def values(self) -> dict[str, float]:
        """Wall seconds per step."""
        return {k: v.wall_s for k, v in self.steps.items()}

    def record(self, step: str, t0: float, *, fresh: bool = True) -> None:
        """Store ``step``'s time since ``t0`` (a step found finished, not ``fresh``, keeps
        its first time) and write the file."""
        cpu, load = cpu_seconds(), load_average()
        if fresh:
            self.steps[step] = Step(wall_s=round(time.perf_counter() - t0, 1),
                                    cpu_s=round(cpu - self._cpu, 1),
                                    load_start=round(self._load, 2), load_end=round(load, 2),
                                    finished=utc_now())
        self._cpu, self._load = cpu, load
        self._write()

    def add(self, step: str, value: Step) -> None:
        """Store ``step``'s time measured elsewhere (a job of :func:`run_jobs`) and write the
        file."""
        self.steps[step] = value
        self._cpu, self._load = cpu_seconds(), load_average()
        self._write()

    def _write(self) -> None:
        atomic_write_bytes(self.path, json.dumps(
            {k: v.to_dict() for k, v in self.steps.items()}, indent=1).encode())

    def table(self) -> str:
        """Markdown: one row per step (wall, CPU, load), then the total."""
        lines = ["| step | wall s | CPU s | load (1 min) start -> end |",
                 "|---|---:|---:|---|"]
        for k, v in self.steps.items():
            cpu = "" if v.cpu_s is None else f"{v.cpu_s:.0f}"
            load = "" if v.load_start is None else f"{v.load_start:.1f} -> {v.load_end:.1f}"
            lines.append(f"| {k} | {v.wall_s:.0f} | {cpu} | {load} |")
        wall = sum(v.wall_s for v in self.steps.values())
        cpus = [v.cpu_s for v in self.steps.values() if v.cpu_s is not None]
        lines.append(f"| all steps | {wall:.0f} | {sum(cpus):.0f} | |")
        return "\n".join(lines) + "\n"


def write_report(path: Path, text: str, *, copy_to: str | Path | None = None) -> Path:
    """Write ``text`` to ``path`` and, if given, also to ``copy_to`` (e.g. a file under
    ``docs/``, ``--report``); both atomically. Returns ``path``."""
    atomic_write_bytes(path, text.encode())
    if copy_to is not None:
        target = Path(copy_to)
        ensure_dir(target.parent)
        atomic_write_bytes(target, text.encode())
    return path


def report_header(*, title: str, command: str, timings: Timings, threads: str,
                  load_start: float) -> str:
    """The generated header (:func:`benchmarks.provenance.header`) of a reproduction's
    report: the command, commit, machine, threads, load and the steps' total time."""
    steps = timings.steps.values()
    cpus = [v.cpu_s for v in steps if v.cpu_s is not None]
    wall = sum(v.wall_s for v in steps)
    elapsed = timings.path.parent / "elapsed.json"
    if elapsed.exists():  # jobs that overlapped count once: their elapsed time
        rec = json.loads(elapsed.read_text())
        wall = sum(v.wall_s for k, v in timings.steps.items() if k not in rec["jobs"]) \
            + rec["elapsed_s"]
    return header(title=title, command=command, threads=threads, load_start=load_start,
                  load_end=load_average(), wall_s=wall,
                  cpu_s=sum(cpus) if cpus else None,
                  extra={"steps": "wall and CPU seconds and load of each step in the Time "
                                  "table (steps a rerun found finished keep the times of the "
                                  "run that did them)"})


def default_jobs() -> int:
    """Jobs run at once by default: the CPUs this process may use, at most
    :data:`MAX_DEFAULT_JOBS` (every job uses one thread)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_JOBS))


@dataclass(frozen=True)
class Job:
    """One step of a reproduction for :func:`run_jobs`.

    Attributes:
        name: the step's name in the timings table.
        fn: a module-level function (a worker imports it by name), called with ``kwargs``
            and ``progress`` (a line callback here, ``None`` in a worker); what it returns
            goes back to :func:`run_jobs`'s caller.
        kwargs: its keyword arguments (picklable: paths, names, numbers).
        after: names of jobs that must finish first.
        marker: written when the job has finished; a job whose marker exists is skipped.
        timed: record the job's time (False: e.g. a SANE run that was already trained, whose
            first time is kept).
    """

    name: str
    fn: Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    marker: Path | None = None
    timed: bool = True


def _quiet_worker() -> None:
    """A worker prints no progress bars of its own (the scheduler says what runs)."""
    import datasets

    datasets.disable_progress_bars()


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _call(fn: Callable[..., Any], kwargs: dict[str, Any],
          progress: Callable[[str], None] | None) -> tuple[Any, Step]:
    """Run ``fn(**kwargs, progress=...)``; its result and :class:`Step` (wall, this
    process's CPU, load at start and end)."""
    load0, w0, c0 = load_average(), time.perf_counter(), _own_cpu()
    try:
        out = fn(**kwargs, progress=progress)
    except Exception as e:
        if progress is not None:
            raise  # in this process: the error as it is
        try:  # from a worker the error travels pickled: keep its type if it can
            pickle.loads(pickle.dumps(e))
        except Exception:  # noqa: BLE001 - an error type that does not survive pickling
            raise BenchmarkError(f"{type(e).__name__}: {e}") from None
        raise
    return out, Step(wall_s=round(time.perf_counter() - w0, 1), cpu_s=round(_own_cpu() - c0, 1),
                     load_start=round(load0, 2), load_end=round(load_average(), 2),
                     finished=utc_now())


def run_jobs(jobs: Sequence[Job], *, workers: int, timings: Timings,
             say: Callable[[str], None]) -> dict[str, Any]:
    """Run ``jobs`` (see the module doc), at most ``workers`` at once; return each run
    job's result by name. Jobs with an existing marker are skipped (and count as finished).

    Raises:
        BenchmarkError: a job waits for a job that is not in ``jobs``.
        Exception: the first error of a job, after the running jobs have finished.
    """
    names = {j.name for j in jobs}
    for j in jobs:
        missing = set(j.after) - names
        if missing:
            raise BenchmarkError(f"job {j.name!r} waits for unknown jobs {sorted(missing)}")
    todo = [j for j in jobs if j.marker is None or not j.marker.exists()]
    finished = {j.name for j in jobs} - {j.name for j in todo}
    results: dict[str, Any] = {}

    def done(job: Job, out: Any, step: Step) -> None:
        results[job.name] = out
        finished.add(job.name)
        if job.timed:
            timings.add(job.name, step)
        if job.marker is not None:
            ensure_dir(job.marker.parent)
            atomic_write_bytes(job.marker, b"")

    if workers <= 1:
        for job in todo:
            if not set(job.after) <= finished:
                raise BenchmarkError(f"job {job.name!r} is listed before the jobs it waits "
                                     f"for ({sorted(set(job.after) - finished)})")
            say(job.name)
            out, step = _call(job.fn, job.kwargs, say)
            done(job, out, step)
        return results
    running: dict[Future[tuple[Any, Step]], Job] = {}
    error: BaseException | None = None
    with ProcessPoolExecutor(max_workers=workers, initializer=_quiet_worker,
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        while todo or running:
            if error is None:
                for job in [j for j in todo if set(j.after) <= finished]:
                    if len(running) >= workers:
                        break
                    todo.remove(job)
                    say(f"{job.name} (started; {len(running) + 1} of {workers} workers busy)")
                    running[pool.submit(_call, job.fn, job.kwargs, None)] = job
            if not running:
                if error is None:
                    raise BenchmarkError(f"jobs {[j.name for j in todo]} wait for each other")
                break  # after an error: nothing left to wait for
            ready, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in ready:
                job = running.pop(fut)
                try:
                    out, step = fut.result()
                except BaseException as e:  # noqa: BLE001 - re-raised once the pool is idle
                    error = error or e
                    say(f"{job.name} failed: {type(e).__name__}: {e}")
                    continue
                done(job, out, step)
                say(f"{job.name} finished ({step.wall_s:.0f} s)")
    if error is not None:
        raise error
    return results


def record_plan(root: Path, *, suite: str, steps: Sequence[str], complete: bool,
                seeds: int | None = None) -> None:
    """Keep in ``OUT/plan.json`` every step a reproduction in ``root`` has planned (this
    invocation's and, for the same suite, the earlier ones') and whether one invocation
    planned the whole reproduction (every method of the suite's spec, full size, not
    ``--quick``), with ``seeds`` per method when one count was asked for (the budget's
    verdict names it). :mod:`benchmarks.perf.reproduction` checks ``timings.json`` against
    it: a budget verdict on a part of a reproduction would be no verdict at all."""
    path = root / "plan.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    if old.get("suite") != suite:
        old = {}
    names = list(dict.fromkeys([*old.get("steps", []), *steps]))
    atomic_write_bytes(path, json.dumps(
        {"suite": suite, "steps": names, "complete": bool(old.get("complete")) or complete,
         "seeds": seeds if complete or "seeds" not in old else old["seeds"]},
        indent=1).encode())


def elapsed_line(root: Path, *, elapsed_s: float, workers: int, ran: Sequence[str],
                 timings: Timings, zoo_builds_s: float | None = None) -> str:
    """Markdown: how long the jobs of the last invocation that ran any took, elapsed, with
    how many workers, beside the sum of their own wall times (kept in ``OUT/elapsed.json``
    so a rerun that finds everything done still reports it)."""
    path = root / "elapsed.json"
    if ran:
        rec = {"workers": workers, "elapsed_s": round(elapsed_s, 1), "jobs": list(ran),
               "zoo_builds_s": None if zoo_builds_s is None else round(zoo_builds_s, 1),
               "finished": utc_now()}
        atomic_write_bytes(path, json.dumps(rec, indent=1).encode())
    elif path.exists():
        rec = json.loads(path.read_text())
    else:
        return "\nNo job (SANE run or bench run) was run by this invocation.\n"
    steps = [timings.steps[n] for n in rec["jobs"] if n in timings.steps]
    summed = sum(s.wall_s for s in steps)
    cpu = sum(s.cpu_s or 0.0 for s in steps)
    builds = "" if rec.get("zoo_builds_s") is None else \
        f"; the zoo builds before them (one after the other): {rec['zoo_builds_s']:.0f} s"
    return (f"\nElapsed: the {len(rec['jobs'])} jobs (zoo builds, SANE runs, bench runs) of "
            f"the last invocation that ran any ({rec['finished']}) took {rec['elapsed_s']:.0f} s "
            f"elapsed with {rec['workers']} worker(s) of one thread each, against "
            f"{summed:.0f} s of their own wall time ({cpu:.0f} CPU-s) one after the other"
            f"{builds}.\n")
