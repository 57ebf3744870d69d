"""Helpers shared by the speed benchmarks: fresh-process cells and the CLI's output."""

from __future__ import annotations

import json
import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def isolated(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a fresh (spawned) process: its own threads and peak RSS."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(fn, *args, **kwargs).result()


def emit(result: T, print_table: Callable[[T], None], json_path: str | None) -> T:
    """Print ``result`` with ``print_table``, also write it to ``json_path`` when given."""
    print_table(result)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    return result
