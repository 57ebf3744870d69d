"""benchmarks: score weight-space methods on standard zoos, tasks and suites.

``benchmarks.evaluate(suite=..., method=..., zoo=..., out=..., seeds=...)`` is the API;
``bench`` is its command line (``bench ls``, ``bench run``, ``bench table``).
"""

from benchmarks import methods as _methods  # noqa: F401  (registers built-in methods)
from benchmarks import tasks as _tasks  # noqa: F401  (registers built-in tasks and suites)
from benchmarks.registry import METHODS, SUITES, TASKS
from benchmarks.results import TaskResult, load_result, load_results
from benchmarks.runner import evaluate
from benchmarks.tasks.metadata import Suite, TaskMetadata, ZooRef

__all__ = [
    "METHODS",
    "SUITES",
    "TASKS",
    "Suite",
    "TaskMetadata",
    "TaskResult",
    "ZooRef",
    "evaluate",
    "load_result",
    "load_results",
]
