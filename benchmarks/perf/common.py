"""Helpers shared by the speed benchmarks: fresh-process cells and the CLI's output."""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
_SHARED: ProcessPoolExecutor | None = None


def isolated(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a fresh (spawned) process: its own threads and peak RSS.

    Inside :func:`shared_worker`, in that block's one worker process instead (a smoke run:
    one interpreter start instead of one per cell; peak RSS is then the worker's so far).
    """
    if _SHARED is not None:
        return _SHARED.submit(fn, *args, **kwargs).result()
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(fn, *args, **kwargs).result()


@contextlib.contextmanager
def shared_worker() -> Iterator[None]:
    """Run every :func:`isolated` call of the block in one spawned worker (``--quick``)."""
    global _SHARED
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        before, _SHARED = _SHARED, ex
        try:
            yield
        finally:
            _SHARED = before


def emit(result: T, print_table: Callable[[T], None], json_path: str | None) -> T:
    """Print ``result`` with ``print_table``, also write it to ``json_path`` when given."""
    print_table(result)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    return result
