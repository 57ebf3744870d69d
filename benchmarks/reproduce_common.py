"""What both reproductions (``digits-v2`` in :mod:`benchmarks.reproduce`, ``digits-hetero-v1``
in :mod:`benchmarks.reproduce_hetero`) share: method choice, the per-step timings file and
the generated report's header (:mod:`benchmarks.provenance`)."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.errors import BenchmarkError
from benchmarks.provenance import Step, cpu_seconds, header, load_average, utc_now
from modelzoo.storage.atomic import atomic_write_bytes, ensure_dir

__all__ = ["Timings", "chosen_methods", "report_header", "write_report"]


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
    return header(title=title, command=command, threads=threads, load_start=load_start,
                  load_end=load_average(), wall_s=sum(v.wall_s for v in steps),
                  cpu_s=sum(cpus) if cpus else None,
                  extra={"steps": "wall and CPU seconds and load of each step in the Time "
                                  "table (steps a rerun found finished keep the times of the "
                                  "run that did them)"})
