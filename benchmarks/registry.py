"""Registries of tasks, suites and methods (``bench ls`` lists them).

Tasks and suites register themselves when :mod:`benchmarks.tasks` is imported; built-in
methods when :mod:`benchmarks.methods` is imported. ``import benchmarks`` does both.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from modelzoo.registry import Registry

if TYPE_CHECKING:  # importing benchmarks.tasks here would be circular
    from benchmarks.tasks.metadata import Suite, TaskMetadata

#: Tasks by name.
TASKS: Registry[TaskMetadata] = Registry("task")
#: Suites by ``name-vN``.
SUITES: Registry[Suite] = Registry("suite")
#: Method factories by name: ``METHODS.get(name)()`` returns a fresh method object.
METHODS: Registry[Callable[[], Any]] = Registry("method")


def register_task(task: TaskMetadata) -> TaskMetadata:
    """Register a task declaration and return it (use at module level in a task file)."""
    TASKS.add(task.name, task)
    return task


def register_suite(suite: Suite) -> Suite:
    """Register a suite; every task it lists must already be registered."""
    for t in suite.tasks:
        TASKS.get(t)  # raises with "did you mean" for typos
    SUITES.add(suite.key, suite)
    return suite


def register_method(name: str) -> Callable[[Callable[[], Any]], Callable[[], Any]]:
    """Decorator registering a zero-argument method factory (usually the class)."""
    return METHODS.register(name)
