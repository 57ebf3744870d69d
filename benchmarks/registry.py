"""Registries of tasks, suites, methods and task types (``bench ls`` lists them), and the
entry-point plugins that add to them.

Tasks and suites register themselves when :mod:`benchmarks.tasks` is imported; built-in
methods when :mod:`benchmarks.methods` is imported (``import benchmarks`` does both); the
evaluators of the built-in task types (:mod:`benchmarks.evaluators`) on the first lookup of
:data:`EVALUATORS`.

Plugins: an installed distribution adds tasks, suites, task types and methods through the
entry-point groups ``benchmarks.tasks`` and ``benchmarks.methods`` (``pyproject.toml``)::

    [project.entry-points."benchmarks.tasks"]
    mypkg = "mypkg.bench_tasks"          # a module that calls register_task / _suite / _evaluator
    [project.entry-points."benchmarks.methods"]
    my-method = "mypkg.method:MyMethod"  # a method class / factory, registered as "my-method"

They are loaded lazily, once, after the built-ins, on the first listing of any of these
registries or lookup of a name that is not built in (a module only
registers what it calls ``register_*`` for; a method factory is registered under the entry
point's name unless its module registered it already). A plugin that fails to load raises
:class:`PluginError` naming it, on that and every later lookup.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from benchmarks.errors import BenchmarkError
from modelzoo.errors import PluginError as ZooPluginError
from modelzoo.registry import Registry, describe_plugin, load_entry_points

if TYPE_CHECKING:  # importing benchmarks.tasks / .evaluators here would be circular
    from benchmarks.evaluators.base import Evaluator
    from benchmarks.tasks.metadata import Suite, TaskMetadata

T = TypeVar("T")
E = TypeVar("E", bound="type[Evaluator]")

#: Entry-point groups read by :func:`load_plugins`.
PLUGIN_GROUPS = ("benchmarks.tasks", "benchmarks.methods")


class PluginError(BenchmarkError, ZooPluginError):
    """An entry-point plugin (``benchmarks.tasks`` / ``benchmarks.methods``) failed to load."""


class _PluginState:
    """Whether plugins were loaded, and the error if one failed."""

    loading = False
    done = False
    error: PluginError | None = None


def load_plugins() -> None:
    """Import every ``benchmarks.tasks`` / ``benchmarks.methods`` entry point (once).

    Raises:
        PluginError: a plugin cannot be imported or registers something invalid; the error
            names the plugin and its distribution (raised again on later calls).
    """
    state = _PluginState
    if state.error is not None:
        raise state.error
    if state.done or state.loading:
        return
    state.loading = True
    try:
        for builtin in ("benchmarks.tasks", "benchmarks.methods"):  # plugins come after them
            importlib.import_module(builtin)
        for group in PLUGIN_GROUPS:
            try:
                for ep, obj in load_entry_points(group, PluginError):
                    if group == "benchmarks.methods" and not isinstance(obj, types.ModuleType) \
                            and callable(obj) and not Registry.__contains__(METHODS, ep.name):
                        try:
                            METHODS.add(ep.name, obj)  # type: ignore[arg-type]
                        except ValueError as e:
                            raise PluginError(f"cannot register {describe_plugin(ep)}: {e}") from e
            except PluginError as e:
                state.error = e
                raise
        state.done = True
    finally:
        state.loading = False


def _builtin_evaluators() -> None:
    importlib.import_module("benchmarks.evaluators")


class PluginRegistry(Registry[T]):
    """A :class:`~modelzoo.registry.Registry` whose lookups load the plugins first.

    Args:
        kind: what is registered (error messages).
        builtins: called before every lookup to import the built-in entries (optional).
    """

    def __init__(self, kind: str, builtins: Callable[[], None] | None = None) -> None:
        super().__init__(kind)
        self._builtins = builtins

    def _ready(self, name: object = None) -> None:
        """Import the built-ins, then the plugins (for a ``name`` only if still missing)."""
        if self._builtins is not None and (name is None or name not in self._items):
            self._builtins()
        if name is None or name not in self._items:
            load_plugins()

    def get(self, name: str) -> T:
        """The entry ``name`` (plugins loaded first if it is not built in), or an error with
        suggestions."""
        self._ready(name)
        return super().get(name)

    def names(self) -> list[str]:
        """All names, plugins included."""
        self._ready()
        return super().names()

    def __contains__(self, name: object) -> bool:
        self._ready(name)
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._ready()
        return super().__len__()


#: Tasks by name.
TASKS: PluginRegistry[TaskMetadata] = PluginRegistry("task")
#: Suites by ``name-vN``.
SUITES: PluginRegistry[Suite] = PluginRegistry("suite")
#: Method factories by name: ``METHODS.get(name)()`` returns a fresh method object.
METHODS: PluginRegistry[Callable[[], Any]] = PluginRegistry("method")
#: Evaluators by task type (one instance per :class:`~benchmarks.evaluators.base.Evaluator`
#: subclass).
EVALUATORS: PluginRegistry[Evaluator] = PluginRegistry("task type", _builtin_evaluators)


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


def register_evaluator(cls: E) -> E:
    """Class decorator registering an evaluator for the task type ``cls.type``."""
    EVALUATORS.add(cls.type, cls())
    return cls


def evaluator_for(task_type: str) -> Evaluator:
    """The evaluator of ``task_type`` (an error listing the known types otherwise)."""
    return EVALUATORS.get(task_type)
