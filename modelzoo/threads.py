"""How many intra-op threads to use: the CPUs this process may run on, less those kept busy.

torch's default is one thread per core of the machine. On a shared machine that is a bad
choice for the small, fine-grained ops of a population of tiny models: every op ends at a
barrier, a thread the scheduler has parked delays all the others, and a 2-core machine with
one other busy process ran the population trainer ~10x slower with 2 threads than with 1
(``python -m benchmarks.perf.threads`` measures it). So the default here is

    threads = max(1, min(allowed CPUs, CPUs idle right now))

where *allowed* is the smaller of the CPU affinity mask and the cgroup CPU quota (a container
limited to 2 CPUs on a 64-core host gets 2, not 64), and *idle* is read from ``/proc/stat``
over a short window. Ray workers use one thread per CPU Ray gives their task.

The population trainer's dense and grouped paths give bit-identical results for any thread
count (tested), so the choice only changes speed there; the per-model loop and the vmap path
use oneDNN convolutions whose results depend on the thread count, and ``zoo build`` records
the count for those builds so a resumed build repeats it.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

import torch

#: Seconds over which idle CPUs are measured.
PROBE_WINDOW = 0.1


def allowed_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        n = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    return max(1, n)


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The cgroup CPU limit in CPUs (v2 ``cpu.max`` or v1 CFS quota), or None when unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max" and float(period) > 0:
            return float(quota) / float(period)
        return None
    except (OSError, ValueError):
        pass
    try:
        q = float((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = float((root / "cpu" / "cpu.cfs_period_us").read_text())
        return q / p if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def _cpu_times(stat: str = "/proc/stat") -> tuple[float, float] | None:
    """(busy, total) jiffies summed over all CPUs from ``/proc/stat``, or None."""
    try:
        with open(stat) as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 4:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user/nice
    return total - idle, total


def idle_cpus(window: float = PROBE_WINDOW, stat: str = "/proc/stat") -> float | None:
    """CPUs of the machine left idle by every process over ``window`` seconds (None: unknown)."""
    a = _cpu_times(stat)
    time.sleep(window)
    b = _cpu_times(stat)
    if a is None or b is None or b[1] <= a[1]:
        return None
    ncpu = os.cpu_count() or 1
    return ncpu * (1.0 - (b[0] - a[0]) / (b[1] - a[1]))


def auto_threads(window: float = PROBE_WINDOW) -> int:
    """The default intra-op thread count: allowed CPUs that are idle now (at least 1)."""
    n = allowed_cpus()
    idle = idle_cpus(window)
    if idle is not None:
        n = min(n, math.floor(idle + 0.5))
    return max(1, n)


class RecentThreads:
    """:func:`auto_threads`, measured again only once ``max_age`` seconds have passed.

    For a loop over many short units (``zoo build`` groups): each measurement sleeps for
    :data:`PROBE_WINDOW`, which would dominate groups of one small model.
    """

    def __init__(self, max_age: float = 10.0) -> None:
        self.max_age = max_age
        self._at = -float("inf")
        self._n = 1

    def __call__(self) -> int:
        """The thread count to use now."""
        if time.monotonic() - self._at >= self.max_age:
            self._n = auto_threads()
            self._at = time.monotonic()
        return self._n


def resolve_threads(threads: int | None) -> int:
    """``threads`` if given (must be >= 1), else :func:`auto_threads`."""
    if threads is None:
        return auto_threads()
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return threads


@contextlib.contextmanager
def limit_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch and BLAS/OpenMP threads (None: leave them as they are)."""
    if n is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)
