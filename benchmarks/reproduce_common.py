"""What both reproductions (``digits-v2`` in :mod:`benchmarks.reproduce`, ``digits-hetero-v1``
in :mod:`benchmarks.reproduce_hetero`) share: method choice and the per-step timings file."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.errors import BenchmarkError
from modelzoo.storage.atomic import atomic_write_bytes

__all__ = ["Timings", "chosen_methods"]


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
    """Seconds per step in ``OUT/timings.json``, kept across resumed runs.

    Args:
        root: the reproduction's working folder.
    """

    def __init__(self, root: Path) -> None:
        self.path = root / "timings.json"
        self.values: dict[str, float] = (json.loads(self.path.read_text())
                                         if self.path.exists() else {})

    def record(self, step: str, t0: float, *, fresh: bool = True) -> None:
        """Store ``step``'s time since ``t0`` (a step found finished, not ``fresh``, keeps
        its first time) and write the file."""
        if fresh:
            self.values[step] = round(time.perf_counter() - t0, 1)
        atomic_write_bytes(self.path, json.dumps(self.values, indent=1).encode())
