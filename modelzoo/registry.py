"""A small generic registry with "did you mean" errors (timm / lm-eval style).

A registry may name an entry-point group (``modelzoo.architectures``, ``modelzoo.sources``):
installed packages that declare entry points in that group are plugins. Loading an entry point
imports its module, which registers its objects as built-in modules do (``@register_arch``,
``SOURCES.add``). Plugins load on the first lookup of a name the registry does not hold, or
when the registry is listed, so a broken plugin never affects lookups of built-in names.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from modelzoo.errors import PluginError, UnknownNameError

T = TypeVar("T")


def describe_plugin(ep: EntryPoint) -> str:
    """``plugin 'name' (group = value) of distribution dist version`` for error messages."""
    dist = getattr(ep, "dist", None)
    origin = f" of distribution {dist.name} {dist.version}" if dist is not None else ""
    return f"plugin {ep.name!r} ({ep.group} = {ep.value}){origin}"


def load_entry_points(
    group: str, error: type[PluginError] = PluginError
) -> Iterator[tuple[EntryPoint, object]]:
    """Load the entry points of ``group`` one by one (sorted by name), yielding each with the
    object it names (a module registers its objects when imported).

    Args:
        group: entry-point group, e.g. ``modelzoo.architectures`` or ``benchmarks.methods``.
        error: the :class:`~modelzoo.errors.PluginError` subclass to raise.

    Raises:
        PluginError: an entry point failed to load; names the plugin and its distribution.
    """
    for ep in sorted(entry_points(group=group), key=lambda e: e.name):
        try:
            obj = ep.load()
        except Exception as e:  # noqa: BLE001  (any error of foreign code)
            raise error(
                f"cannot load {describe_plugin(ep)}: {type(e).__name__}: {e}. Fix or uninstall "
                "that package (`pip uninstall` its distribution)"
            ) from e
        yield ep, obj


class Registry(Generic[T]):
    """Maps names to objects; lookups of unknown names suggest close matches.

    Args:
        kind: What is registered, used in error messages (e.g. ``"architecture"``).
        group: Entry-point group whose plugins register into this registry.
    """

    def __init__(self, kind: str, group: str | None = None) -> None:
        self.kind = kind
        self.group = group
        self._items: dict[str, T] = {}
        self._origins: dict[str, str] = {}
        self._plugins_loaded = group is None

    def load_plugins(self) -> None:
        """Import the modules of the group's entry points (once); they register themselves.

        Raises:
            PluginError: a plugin failed to import (names the package and entry point).
        """
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        before = set(self._items)
        for ep, _ in load_entry_points(self.group):
            for key in set(self._items) - before:
                self._origins[key] = ep.module
            before = set(self._items)

    def origin(self, name: str) -> str | None:
        """The module of the plugin that registered ``name`` (None: not from a plugin)."""
        return self._origins.get(name)

    def register(self, name: str | None = None) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (default: its ``__name__``)."""

        def deco(obj: T) -> T:
            key = name or getattr(obj, "__name__", None)
            if not key:
                raise ValueError(f"cannot infer a {self.kind} name for {obj!r}")
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[key] = obj
            return obj

        return deco

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``."""
        self.register(name)(obj)

    def get(self, name: str) -> T:
        """Return the object registered as ``name`` or raise with suggestions."""
        if name not in self._items:
            self.load_plugins()
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The error text for an unknown ``name``."""
        self.load_plugins()
        close = difflib.get_close_matches(name, list(self._items), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._items))}."
        )

    def names(self) -> list[str]:
        """All registered names (plugins included), sorted."""
        self.load_plugins()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        if name not in self._items:
            self.load_plugins()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.load_plugins()
        return len(self._items)
